"""`/callstats` from per-day sums where they hold, from the calls for the rest: exact.

A long history makes every figure a scan of hundreds of thousands of calls. So each UTC day,
once it is over and no call of it changed since (migration 12 marks changed days in
`stats_dirty`, by trigger, whatever wrote), is summed once per slice: all calls, and each
agent, person, channel, campaign and direction. A question about one slice (or none) over a
period then reads the sums of the whole clean days inside the period, and reads the calls
only for what is left: the ragged ends, today, days still marked. Medians are found in the
per-day counts of each second (each 10 ms of latency) and read exactly from the calls in
that one bucket. Everything is read in one snapshot (a read transaction), so a rebuild that
commits meanwhile is either wholly seen or not at all.

Questions the sums cannot answer (an outcome filter, two filters at once, a breakdown by
another slice) go to the plain queries in stats.py, as before.
"""

from __future__ import annotations

import functools
import math
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from storage.models import Breakdown, CallFilter, CallStats, DayCounts
from storage.sqlite.filters import FIGURES_SQL, outcome_sql, placed_sql

DAY = 86400
QUARTER = 900
QUARTERS_PER_DAY = DAY // QUARTER
SETTLE_SECONDS = 600.0  # a day is summed once it has been over this long
LATENCY_BUCKET_MS = 10
TOP_REASONS = 5
BREAKDOWN_ROWS = 25

# slice kind -> (its key, its name) as expressions on `calls`
SLICES: dict[str, tuple[str, str]] = {
    "all": ("''", "''"),
    "agent": ("coalesce(agent_id, '')", "coalesce(agent_name, '')"),
    "user": ("coalesce(user_id, '')", "''"),
    "channel": ("coalesce(channel_id, '')", "''"),
    "campaign": ("coalesce(CAST(campaign_id AS TEXT), '')", "''"),
    "direction": ("coalesce(direction, '')", "''"),
}
# by:<key> -> the label a breakdown row is known by (the raw queries group on the same)
LABELS = {
    "agent": "coalesce(nullif(agent_name, ''), agent_id, '')",
    "user": "coalesce(user_id, '')",
    "campaign": "coalesce(CAST(campaign_id AS TEXT), '')",
}
_OUTCOMES = ("successful", "failed", "no_answer", "other")
_SUMS = ("calls", "refused", "analyzed", "successful", "positive", "neutral", "negative",
         "connected", "talk_ms", "cost", "latencies")


@dataclass(frozen=True)
class Slice:
    kind: str  # a key of SLICES
    value: str = ""  # the agent (id or name), person, channel, campaign id or direction


def slice_for(flt: CallFilter) -> Slice | None:
    """The one slice `flt` picks; None when the sums cannot answer it (the sums are not
    kept per workspace: a workspace's figures come from its calls)."""
    if flt.outcome is not None or flt.team_id is not None:
        return None
    picked = [(kind, value) for kind, value in (
        ("agent", flt.agent), ("user", flt.user_id), ("channel", flt.channel_id),
        ("campaign", None if flt.campaign_id is None else str(flt.campaign_id)),
        ("direction", flt.direction)) if value is not None]
    if not picked:
        return Slice("all")
    if len(picked) > 1 or not picked[0][1]:
        return None
    return Slice(*picked[0])


def answerable(flt: CallFilter, by: str | None) -> Slice | None:
    """The slice to read when the sums can answer the question (with its breakdown)."""
    found = slice_for(flt)
    if found is None or by in (None, "day"):
        return found
    if by in LABELS and found.kind in ("all", by):
        return found
    return None


# -- writing the sums -------------------------------------------------------------------------


def _calls_of_day(key: str, name: str) -> str:
    """The day's calls (placed, then refused attempts) with what the sums need."""
    return f"""
        SELECT {key} AS k, {name} AS nm, CAST(created_at AS INTEGER) / {QUARTER} AS q,
               1 AS placed, successful, sentiment, duration_ms, cost_cents, latency_ms,
               ({outcome_sql()}) AS outcome
        FROM calls WHERE call_id IS NOT NULL AND created_at >= :lo AND created_at < :hi
        UNION ALL
        SELECT {key}, {name}, CAST(created_at AS INTEGER) / {QUARTER}, 0, NULL, NULL, NULL,
               NULL, NULL, NULL
        FROM calls WHERE call_id IS NULL AND created_at >= :lo AND created_at < :hi"""


def _quarters_sql(key: str, name: str) -> str:
    outcomes = ", ".join(f"coalesce(sum(outcome = '{o}'), 0)" for o in _OUTCOMES)
    return f"""
        SELECT :kind, k, nm, q, sum(placed), sum(1 - placed), count(successful),
               coalesce(sum(successful = 1), 0), coalesce(sum(sentiment = 'Positive'), 0),
               coalesce(sum(sentiment = 'Neutral'), 0), coalesce(sum(sentiment = 'Negative'), 0),
               count(CASE WHEN duration_ms > 0 THEN 1 END),
               coalesce(sum(CASE WHEN duration_ms > 0 THEN duration_ms END), 0),
               coalesce(sum(cost_cents), 0), count(latency_ms), {outcomes}
        FROM ({_calls_of_day(key, name)}) GROUP BY k, nm, q"""


def _reasons_sql(key: str, name: str) -> str:
    return f"""
        SELECT :kind, {key}, {name}, :day, disconnection_reason, count(*) FROM calls
        WHERE call_id IS NOT NULL AND created_at >= :lo AND created_at < :hi
              AND disconnection_reason IS NOT NULL
        GROUP BY 2, 3, 5"""


def _values_sql(key: str, name: str) -> str:
    return f"""
        SELECT :kind, {key}, {name}, 'd', :day, {_DURATION_BUCKET}, count(*) FROM calls
        WHERE call_id IS NOT NULL AND created_at >= :lo AND created_at < :hi
              AND duration_ms > 0
        GROUP BY 2, 3, 6
        UNION ALL
        SELECT :kind, {key}, {name}, 'l', :day, {_LATENCY_BUCKET}, count(*) FROM calls
        WHERE call_id IS NOT NULL AND created_at >= :lo AND created_at < :hi
              AND latency_ms IS NOT NULL
        GROUP BY 2, 3, 6"""


_DURATION_BUCKET = "CAST(duration_ms AS INTEGER) / 1000"
_LATENCY_BUCKET = f"max(CAST(latency_ms AS INTEGER), 0) / {LATENCY_BUCKET_MS}"


_COLUMNS = {  # each table's columns, in the order its SELECT above gives them
    "stats_quarters": ("kind", "key", "name", "q", "calls", "refused", "analyzed",
                       "successful", "positive", "neutral", "negative", "connected",
                       "talk_ms", "cost", "latencies", "o_successful", "o_failed",
                       "o_no_answer", "o_other"),
    "stats_reasons": ("kind", "key", "name", "day", "reason", "n"),
    "stats_values": ("kind", "key", "name", "measure", "day", "bucket", "n"),
}


TABLES = tuple(_COLUMNS)


@dataclass(frozen=True)
class DaySums:
    """One day's sums as read from its calls, and the mark's version they were read at."""

    day: int
    version: int
    rows: dict[str, list[tuple[Any, ...]]]


def read_day(path: Path, day: int) -> DaySums | None:
    """Sum a marked day from its calls on a connection of its own, in one snapshot, so the
    writer is held only to store the result (reading a busy day takes ~0.5 s at a million
    calls). None when the day is no longer marked."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA query_only = ON")
        conn.execute("BEGIN")
        found = conn.execute("SELECT version FROM stats_dirty WHERE day = ?", (day,)).fetchone()
        if found is None:
            return None
        params = {"day": day, "lo": day * DAY, "hi": (day + 1) * DAY}
        rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in _COLUMNS}
        for kind, (key, name) in SLICES.items():
            for table, sql in (("stats_quarters", _quarters_sql(key, name)),
                               ("stats_reasons", _reasons_sql(key, name)),
                               ("stats_values", _values_sql(key, name))):
                rows[table] += conn.execute(sql, {**params, "kind": kind}).fetchall()
        conn.execute("COMMIT")
        return DaySums(day, int(found[0]), rows)
    finally:
        conn.close()


WRITE_ROWS = 2000  # rows stored per write: each write holds the writer ~15 ms at most


def clear_table(conn: sqlite3.Connection, sums: DaySums, table: str) -> None:
    """Drop a table's old sums of the day (the day stays marked: nobody reads them)."""
    if table == "stats_quarters":
        first = sums.day * QUARTERS_PER_DAY
        conn.execute("DELETE FROM stats_quarters WHERE q >= ? AND q < ?",
                     (first, first + QUARTERS_PER_DAY))
        conn.executemany("INSERT OR IGNORE INTO stats_slices (kind, key, name) "
                         "VALUES (?, ?, ?)", {row[:3] for row in sums.rows[table]})
    else:
        conn.execute(f"DELETE FROM {table} WHERE day = ?", (sums.day,))


def store_rows(conn: sqlite3.Connection, table: str, rows: list[tuple[Any, ...]]) -> None:
    columns = _COLUMNS[table]
    conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                     f"VALUES ({', '.join('?' * len(columns))})", rows)


def writes(sums: DaySums) -> list[Callable[[sqlite3.Connection], Any]]:
    """A day's sums as short writes, in order: each table cleared, then its rows a few
    thousand at a time; the last clears the mark (see `clear_mark`)."""
    steps: list[Callable[[sqlite3.Connection], Any]] = []
    for table in TABLES:
        steps.append(functools.partial(clear_table, sums=sums, table=table))
        rows = sums.rows[table]
        for start in range(0, len(rows), WRITE_ROWS):
            steps.append(functools.partial(store_rows, table=table,
                                           rows=rows[start:start + WRITE_ROWS]))
    steps.append(functools.partial(clear_mark, sums=sums))
    return steps


def clear_mark(conn: sqlite3.Connection, sums: DaySums) -> bool:
    """The day's sums are stored: clear its mark, unless a call of the day changed since
    they were read (then it stays marked, to be summed again). True when cleared."""
    cleared = conn.execute("DELETE FROM stats_dirty WHERE day = ? AND version = ?",
                           (sums.day, sums.version))
    return cleared.rowcount > 0


def write_day(conn: sqlite3.Connection, sums: DaySums) -> bool:
    """All of a day's sums and its mark in one transaction (tests; the store writes them
    in short steps, `writes`)."""
    result = False
    for step in writes(sums):
        result = bool(step(conn))
    return result


def settled_before(now: float) -> int:
    """Days before this one are over (and settled) at `now`."""
    return math.floor((now - SETTLE_SECONDS) / DAY)


# -- reading them --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    runs: tuple[tuple[int, int], ...]  # [first day, day after) of whole clean days
    raw: tuple[tuple[float | None, float | None], ...]  # the rest, read from the calls


@dataclass
class Sums:
    values: Counter[str]
    reasons: Counter[str]

    def stats(self, median_ms: float | None, headline: bool) -> CallStats:
        v = self.values
        known = v["positive"] + v["neutral"] + v["negative"]
        top = sorted(self.reasons.items(), key=lambda item: (-item[1], item[0]))
        return CallStats(
            calls=int(v["calls"]), failed_attempts=int(v["refused"]),
            analyzed=int(v["analyzed"]), successful=int(v["successful"]),
            sentiments={"Positive": int(v["positive"]), "Neutral": int(v["neutral"]),
                        "Negative": int(v["negative"]),
                        "Unknown": int(v["calls"] - known)},
            connected=int(v["connected"]),
            avg_duration_ms=v["talk_ms"] / v["connected"] if v["connected"] else None,
            median_duration_ms=median_ms, total_cost_cents=float(v["cost"]),
            top_reasons=[] if headline else [(r, int(n)) for r, n in top[:TOP_REASONS]])


@dataclass(frozen=True)
class RollupAnswer:
    stats: CallStats
    latency_p50_ms: float | None
    previous: CallStats | None
    breakdown: tuple[Breakdown, ...]
    days: tuple[DayCounts, ...]


class Reader:
    """One report's reads, on one connection inside one read transaction."""

    def __init__(self, conn: sqlite3.Connection, now: float) -> None:
        self.conn = conn
        self.now = now

    def rows(self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()

    def plan(self, since: float | None, until: float | None) -> Plan:
        end = until if until is not None else self.now
        start = since
        if start is None:
            firsts = [r[0] for sql in (
                "SELECT min(created_at) FROM calls WHERE call_id IS NOT NULL",
                "SELECT min(created_at) FROM calls WHERE call_id IS NULL")
                for r in self.rows(sql) if r[0] is not None]
            start = min(firsts) if firsts else end
        first, last = math.ceil(start / DAY), math.floor(end / DAY)  # whole days inside
        if last <= first:
            return Plan((), ((since, until),))
        dirty = {int(r[0]) for r in self.rows(
            "SELECT day FROM stats_dirty WHERE day >= ? AND day < ?", (first, last))}
        runs: list[tuple[int, int]] = []
        raw: list[tuple[float | None, float | None]] = []
        cursor, day = since, first
        while day < last:
            if day in dirty:
                day += 1
                continue
            stop = day
            while stop < last and stop not in dirty:
                stop += 1
            runs.append((day, stop))
            raw.append((cursor, float(day * DAY)))
            cursor, day = float(stop * DAY), stop
        raw.append((cursor, until))
        kept = tuple((a, b) for a, b in raw if a is None or b is None or a < b)
        return Plan(tuple(runs), kept)

    # -- where a slice's sums are ---------------------------------------------------------

    def _pairs(self, piece: Slice, kind: str) -> list[tuple[str, str]]:
        """The (key, name) rows of `kind` that belong to the slice."""
        if kind == "all":
            return [("", "")]
        params: tuple[str, ...]
        if piece.kind == "all":
            sql, params = "SELECT key, name FROM stats_slices WHERE kind = ?", (kind,)
        elif piece.kind == "agent":
            sql = ("SELECT key, name FROM stats_slices WHERE kind = 'agent' "
                   "AND (key = ? OR lower(name) = lower(?))")
            params = (piece.value, piece.value)
        else:
            return [(piece.value, "")]
        return [(str(r[0]), str(r[1])) for r in self.rows(sql, params)]

    def _sum_rows(self, table: str, columns: str, piece: Slice, runs: Iterable[tuple[int, int]],
                  group: str = "", kind: str | None = None, measure: str = "") -> list[Any]:
        """`columns` of the sums of the slice's rows (of `kind`, its own by default) over
        whole days `runs`: one read per row kept apart and run, each on its key's prefix."""
        kind = kind or piece.kind
        cond = "kind = :kind AND key = :key AND name = :name"
        if measure:
            cond += " AND measure = :measure"
        if table == "stats_quarters":
            span, scale = "q >= :lo AND q < :hi", QUARTERS_PER_DAY
        else:
            span, scale = "day >= :lo AND day < :hi", 1
        sql = (f"SELECT {columns} FROM {table} WHERE {cond} AND {span}"
               + (f" GROUP BY {group}" if group else ""))
        found: list[Any] = []
        for key, name in self._pairs(piece, kind) if runs else ():
            for first, stop in runs:
                found += self.rows(sql, {"kind": kind, "key": key, "name": name,
                                         "measure": measure, "lo": first * scale,
                                         "hi": stop * scale})
        return found

    @staticmethod
    def _calls(flt: CallFilter, placed: bool = True, latency: bool = False) -> str:
        """`calls` read through the index that suits a short stretch of time: a person's
        own (calls_user), else the time index of placed calls or of refused attempts (the
        planner, without statistics, would take a campaign's or call_id's index and read
        every call of the campaign, or every refused attempt, for each stretch)."""
        if flt.user_id is not None:
            return "calls INDEXED BY calls_user"
        if latency:  # (time, latency): latencies are not in calls_stats
            return "calls INDEXED BY calls_latency"
        return "calls INDEXED BY " + ("calls_stats" if placed else "calls_failed")

    # -- the figures -----------------------------------------------------------------------

    def sums(self, flt: CallFilter, piece: Slice, plan: Plan, headline: bool) -> Sums:
        values: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        columns = ", ".join(f"coalesce(sum({c}), 0) AS {c}" for c in _SUMS)
        for row in self._sum_rows("stats_quarters", columns, piece, plan.runs):
            for c in _SUMS:
                values[c] += row[c]
        if not headline:
            for row in self._sum_rows("stats_reasons", "reason, sum(n) AS n", piece,
                                      plan.runs, group="reason"):
                reasons[str(row["reason"])] += int(row["n"])
        for a, b in plan.raw:
            window, params = placed_sql(replace(flt, since=a, until=b))
            # One read for the figures and how calls ended: the sums grouped by reason.
            for row in self.rows(f"""
                    SELECT disconnection_reason AS reason, {FIGURES_SQL}
                    FROM {self._calls(flt)} WHERE {window} GROUP BY 1""", params):
                for c in _SUMS:
                    if c not in ("refused", "latencies"):
                        values[c] += row[c]
                if row["reason"] is not None and not headline:
                    reasons[str(row["reason"])] += int(row["calls"])
            values["latencies"] += self.rows(
                f"SELECT count(*) FROM {self._calls(flt, latency=True)} WHERE {window} "
                "AND latency_ms IS NOT NULL", params)[0][0]
            failed = window.replace("call_id IS NOT NULL", "call_id IS NULL", 1)
            values["refused"] += self.rows(
                f"SELECT count(*) FROM {self._calls(flt, placed=False)} WHERE {failed}",
                params)[0][0]
        return Sums(values, reasons)

    # -- medians -----------------------------------------------------------------------------

    def median(self, flt: CallFilter, piece: Slice, plan: Plan, measure: str,
               count: int) -> float | None:
        """The exact median of duration (measure 'd', connected calls) or latency ('l')."""
        if count <= 0:
            return None
        column, present = (("duration_ms", "duration_ms > 0") if measure == "d"
                           else ("latency_ms", "latency_ms IS NOT NULL"))
        window, params = placed_sql(flt)
        if not plan.runs:  # no whole day summed: straight from the calls
            return self._direct_median(column, present, window, params, count)
        buckets: Counter[int] = Counter()
        for row in self._sum_rows("stats_values", "bucket, sum(n) AS n", piece, plan.runs,
                                  group="bucket", measure=measure):
            buckets[int(row["bucket"])] += int(row["n"])
        bucket_sql = _DURATION_BUCKET if measure == "d" else _LATENCY_BUCKET
        for a, b in plan.raw:
            w, p = placed_sql(replace(flt, since=a, until=b))
            source = self._calls(flt, latency=measure == "l")
            for row in self.rows(f"SELECT {bucket_sql} AS bucket, count(*) AS n "
                                 f"FROM {source} WHERE {w} AND {present} GROUP BY 1", p):
                buckets[int(row["bucket"])] += int(row["n"])
        if sum(buckets.values()) != count:  # the sums and the calls disagree: read directly
            return self._direct_median(column, present, window, params, count)
        ranks = [(count - 1) // 2] if count % 2 else [count // 2 - 1, count // 2]
        found: list[float] = []
        index = "calls_duration" if measure == "d" else "calls_latency_value"
        for rank in ranks:
            below = 0
            for bucket in sorted(buckets):
                if below + buckets[bucket] > rank:
                    rows = self.rows(
                        f"""SELECT {column} FROM calls INDEXED BY {index}
                            WHERE {present} AND {bucket_sql} = :bucket AND {window}
                            ORDER BY {column} LIMIT 1 OFFSET :skip""",
                        {**params, "bucket": bucket, "skip": rank - below})
                    if not rows:
                        return self._direct_median(column, present, window, params, count)
                    found.append(float(rows[0][0]))
                    break
                below += buckets[bucket]
        return sum(found) / len(found) if len(found) == len(ranks) else None

    def _direct_median(self, column: str, present: str, window: str,
                       params: dict[str, Any], count: int) -> float | None:
        rows = self.rows(f"""SELECT {column} FROM calls WHERE {window} AND {present}
                             ORDER BY {column} LIMIT :take OFFSET :skip""",
                         {**params, "take": 2 - count % 2, "skip": (count - 1) // 2})
        return sum(float(r[0]) for r in rows) / len(rows) if rows else None

    # -- breakdowns and days -------------------------------------------------------------

    def breakdown(self, flt: CallFilter, piece: Slice, plan: Plan, by: str
                  ) -> tuple[Breakdown, ...]:
        acc: dict[str, list[float]] = {}
        label = "CASE WHEN name != '' THEN name ELSE key END"
        for row in self._sum_rows(
                "stats_quarters", f"{label} AS k, sum(calls) AS calls, "
                "sum(connected) AS connected, sum(analyzed) AS analyzed, "
                "sum(successful) AS successful, sum(talk_ms) AS talk_ms, sum(cost) AS cost",
                piece, plan.runs, group="key, name", kind=by):
            _add(acc, str(row["k"]), row)
        for a, b in plan.raw:
            window, params = placed_sql(replace(flt, since=a, until=b))
            for row in self.rows(f"""SELECT {LABELS[by]} AS k, count(*) AS calls,
                    count(CASE WHEN duration_ms > 0 THEN 1 END) AS connected,
                    count(successful) AS analyzed, coalesce(sum(successful = 1), 0) AS successful,
                    coalesce(sum(CASE WHEN duration_ms > 0 THEN duration_ms END), 0) AS talk_ms,
                    coalesce(sum(cost_cents), 0) AS cost
                    FROM {self._calls(flt)} WHERE {window} GROUP BY k""", params):
                _add(acc, str(row["k"]), row)
        ranked = sorted(((k, a) for k, a in acc.items() if a[0] > 0),
                        key=lambda item: (-item[1][0], item[0]))[:BREAKDOWN_ROWS]
        return tuple(_breakdown(k, a) for k, a in ranked)

    def quarters(self, flt: CallFilter, piece: Slice, plan: Plan) -> dict[int, list[float]]:
        """Per quarter hour with calls: the sums a day's row and the chart need (_QUARTER)."""
        found: dict[int, list[float]] = {}
        width = len(_QUARTER)

        def add(rows: list[Any]) -> None:
            for row in rows:
                acc = found.get(row[0])
                if acc is None:
                    found[row[0]] = [float(v) for v in row[1:]]
                else:
                    for i in range(width):
                        acc[i] += row[i + 1]

        columns = "q, " + ", ".join(f"sum({n})" for n in _QUARTER)
        add(self._sum_rows("stats_quarters", columns, piece, plan.runs, group="q"))
        outcomes = ", ".join(f"coalesce(sum(({outcome_sql()}) = '{o}'), 0)"
                             for o in _OUTCOMES)
        for a, b in plan.raw:
            window, params = placed_sql(replace(flt, since=a, until=b))
            add(self.rows(f"""SELECT CAST(created_at AS INTEGER) / {QUARTER} AS q,
                    count(*), count(CASE WHEN duration_ms > 0 THEN 1 END),
                    count(successful), coalesce(sum(successful = 1), 0),
                    coalesce(sum(CASE WHEN duration_ms > 0 THEN duration_ms END), 0),
                    coalesce(sum(cost_cents), 0), {outcomes}
                    FROM {self._calls(flt)} WHERE {window} GROUP BY 1""", params))
        return {q: acc for q, acc in found.items() if acc[0] > 0}


# what `quarters` sums, in its order: a day's breakdown row, then the chart's outcomes
_QUARTER = ("calls", "connected", "analyzed", "successful", "talk_ms", "cost",
            *(f"o_{o}" for o in _OUTCOMES))


def _add(acc: dict[str, list[float]], key: str, row: Any) -> None:
    into = acc.setdefault(key, [0.0] * 6)
    for i, name in enumerate(("calls", "connected", "analyzed", "successful", "talk_ms",
                              "cost")):
        into[i] += float(row[name])


def _breakdown(key: str, a: list[float]) -> Breakdown:
    return Breakdown(key, int(a[0]), int(a[1]), int(a[2]), int(a[3]),
                     a[4] / a[1] if a[1] else None, a[5])


def report(conn: sqlite3.Connection, flt: CallFilter, piece: Slice, *, now: float,
           previous: CallFilter | None, by: str | None,
           days_in: Callable[[float], str] | None) -> RollupAnswer:
    """The whole figure side of an answer, from the sums and the calls, in one snapshot."""
    conn.execute("BEGIN")
    try:
        read = Reader(conn, now)
        plan = read.plan(flt.since, flt.until)
        sums = read.sums(flt, piece, plan, headline=False)
        median = read.median(flt, piece, plan, "d", int(sums.values["connected"]))
        latency = read.median(flt, piece, plan, "l", int(sums.values["latencies"]))
        before = None
        if previous is not None:
            before = read.sums(previous, piece, read.plan(previous.since, previous.until),
                               headline=True).stats(None, headline=True)
        table: tuple[Breakdown, ...] = ()
        days: tuple[DayCounts, ...] = ()
        if days_in is not None:
            per_day: dict[str, list[float]] = {}
            quarters = read.quarters(flt, piece, plan)
            for q in sorted(quarters):
                day = days_in(float(q * QUARTER))
                acc = per_day.get(day)
                if acc is None:
                    per_day[day] = list(quarters[q])
                else:
                    for i, value in enumerate(quarters[q]):
                        acc[i] += value
            days = tuple(DayCounts(day, *(int(v) for v in acc[6:]))
                         for day, acc in sorted(per_day.items()))
            if by == "day":
                table = tuple(_breakdown(day, acc[:6]) for day, acc in sorted(per_day.items()))
        if by in LABELS:
            table = read.breakdown(flt, piece, plan, by)
        return RollupAnswer(sums.stats(median, headline=False), latency, before, table, days)
    finally:
        conn.execute("COMMIT")
