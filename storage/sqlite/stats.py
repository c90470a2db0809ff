"""Figures over the history, on a read-only connection of their own (StatsStore)."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from storage.models import (
    Breakdown,
    CallFilter,
    CallRecord,
    CallStats,
    DayCounts,
    FieldSummary,
    StatsReport,
)
from storage.sqlite import rollup
from storage.sqlite.connection import _Connection, _HeavyReader
from storage.sqlite.filters import FIGURES_SQL, outcome_sql, placed_sql
from storage.sqlite.rows import _LIGHT_COLUMNS, _to_record

T = TypeVar("T")
OUTCOME_SQL = outcome_sql()  # each call's one outcome, for the chart's bars
_BY = rollup.LABELS  # by:<key> -> the label a breakdown groups on
BUCKET_SECONDS = 900  # calls counted per quarter hour, then put in the reader's days
FIELD_CALLS = 200_000  # extracted fields are summarised over the newest this many calls
TOP_VALUES = 5
TEXT_VALUE = 60  # a text value longer than this is not a category


class StatsPart(_Connection):
    """Figures over the history, on a read-only connection of their own (StatsStore)."""

    def _heavy_reader(self) -> _HeavyReader:
        """The read-only connection heavy queries (stats over all history) share, in a
        thread of its own, one at a time: the shared reader, which health checks, the
        outbox and the Home tab use, never waits behind them. It is kept (its page cache
        makes the next query several times faster than a fresh connection's)."""
        if not self._open:
            raise RuntimeError("store is not open")
        if self._heavy is None:
            self._heavy = _HeavyReader(self.path)
        return self._heavy

    async def _stats_read(self, sql: str, params: dict[str, Any]) -> list[Any]:
        return await self._heavy_reader().read(sql, params)

    async def _heavy_run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` with that connection: several reads in one snapshot."""
        return await self._heavy_reader().run(fn)

    async def refresh_stats(self, now: float, *, days: int = 20) -> int:
        """Sum again up to `days` UTC days whose calls changed and that are over, oldest
        first: each read from its calls beside the writer, then stored in a short write of
        its own; how many were summed."""
        marked = await self._read("SELECT day, version FROM stats_dirty WHERE day < ? "
                                  "ORDER BY day LIMIT ?", (rollup.settled_before(now), days))
        done = 0
        for day, _ in marked:
            sums = await asyncio.to_thread(rollup.read_day, self.path, int(day))
            if sums is None:
                continue
            # Short writes, so webhooks never wait long behind a day's sums; the last one
            # clears the day's mark and says whether it could.
            for step in rollup.writes(sums):
                cleared = await self._writer.write(step)
            done += bool(cleared)
        return done

    async def stats(self, since: float | None) -> CallStats:
        lower = since if since is not None else float("-inf")
        window = "call_id IS NOT NULL AND created_at >= :since"
        return await self._figures(window, {"since": lower}, failed_window=(
            "call_id IS NULL AND created_at >= :since"))

    async def report(self, flt: CallFilter, *, previous: CallFilter | None = None,
                     by: str | None = None, fields: tuple[str, ...] | None = None,
                     with_fields: bool = True, days_in: Callable[[float], str] | None = None,
                     sums: bool = True) -> StatsReport:
        """`/callstats` with filters: the figures for `flt` (and `previous`), a breakdown
        `by` agent | user | campaign | day, the extracted fields (all, or `fields`), and
        calls per day when `days_in` (epoch -> the reader's YYYY-MM-DD) is given.

        From the per-day sums where they can answer (rollup.py); `sums=False` reads every
        call (the tests compare the two)."""
        window, params = placed_sql(flt)
        piece = rollup.answerable(flt, by) if sums else None
        if piece is not None and (previous is None or rollup.slice_for(previous) == piece):
            found = await self._heavy_run(functools.partial(
                rollup.report, flt=flt, piece=piece, now=time.time(), previous=previous,
                by=by, days_in=days_in))
            summaries = await self._fields(window, params, fields) if with_fields else ()
            return StatsReport(found.stats, found.latency_p50_ms, found.previous,
                               found.breakdown, summaries, found.days)
        failed = window.replace("call_id IS NOT NULL", "call_id IS NULL", 1)
        figures = await self._figures(window, params, failed_window=failed)
        latency = await self._latency(window, params)
        before = None
        if previous is not None:  # what the changes need: no medians, no reasons
            p_window, p_params = placed_sql(previous)
            before = await self._figures(p_window, p_params, failed_window=p_window.replace(
                "call_id IS NOT NULL", "call_id IS NULL", 1), headline=True)
        table: tuple[Breakdown, ...] = ()
        days: tuple[DayCounts, ...] = ()
        if days_in is not None:
            days = await self._days(window, params, days_in)
        if by == "day" and days_in is not None:
            table = await self._by_day(window, params, days_in)
        elif by in _BY:
            table = await self._breakdown(window, params, _BY[by])
        summaries = await self._fields(window, params, fields) if with_fields else ()
        return StatsReport(figures, latency, before, table, summaries, days)

    async def _figures(self, window: str, params: dict[str, Any], *,
                       failed_window: str, headline: bool = False) -> CallStats:
        """The figures; `headline`: without the median and the reasons (what a comparison
        with the period before needs, for half the reading)."""
        [agg] = await self._stats_read(
            f"""SELECT {FIGURES_SQL},
                       avg(CASE WHEN duration_ms > 0 THEN duration_ms END) AS avg_ms
                FROM calls WHERE {window}""",
            params,
        )
        [failed_row] = await self._stats_read(
            f"SELECT count(*) FROM calls WHERE {failed_window}", params)
        median = None if headline else await self._median_duration(window, params,
                                                                     int(agg["connected"]))
        reason_rows = [] if headline else await self._stats_read(
            f"""SELECT disconnection_reason AS reason, count(*) AS n
                FROM calls
                WHERE {window} AND disconnection_reason IS NOT NULL
                GROUP BY disconnection_reason ORDER BY n DESC, reason LIMIT 5""",
            params,
        )
        reasons = [(str(r["reason"]), int(r["n"])) for r in reason_rows]
        calls = int(agg["calls"])
        known = int(agg["positive"]) + int(agg["neutral"]) + int(agg["negative"])
        return CallStats(
            calls=calls,
            failed_attempts=int(failed_row[0]),
            analyzed=int(agg["analyzed"]),
            successful=int(agg["successful"]),
            sentiments={
                "Positive": int(agg["positive"]),
                "Neutral": int(agg["neutral"]),
                "Negative": int(agg["negative"]),
                "Unknown": calls - known,
            },
            connected=int(agg["connected"]),
            avg_duration_ms=float(agg["avg_ms"]) if agg["avg_ms"] is not None else None,
            median_duration_ms=median,
            total_cost_cents=float(agg["cost"]),
            top_reasons=reasons,
        )

    async def _median_duration(
        self, window: str, params: dict[str, Any], n: int
    ) -> float | None:
        if n == 0:
            return None
        rows = await self._stats_read(
            f"""SELECT duration_ms FROM calls
                WHERE {window} AND duration_ms > 0
                ORDER BY duration_ms LIMIT :take OFFSET :skip""",
            {**params, "take": 2 - n % 2, "skip": (n - 1) // 2},
        )
        if not rows:  # calls were deleted between the count and this query
            return None
        return sum(float(r[0]) for r in rows) / len(rows)

    async def export_calls(self, flt: CallFilter, *, after_id: int = 0, limit: int = 1000,
                           transcripts: bool = False) -> list[CallRecord]:
        """The next `limit` calls `flt` picks with a row id above `after_id`, oldest first:
        an export reads page by page in constant memory."""
        window, params = placed_sql(flt)
        columns = _LIGHT_COLUMNS + ", summary" + (", transcript" if transcripts else "")
        rows = await self._stats_read(
            f"SELECT {columns} FROM calls WHERE {window} AND id > :after ORDER BY id "
            "LIMIT :limit", {**params, "after": after_id, "limit": limit})
        return [_to_record(r) for r in rows]

    async def field_names(self, flt: CallFilter, limit: int = 100) -> list[str]:
        """The extracted fields the calls `flt` picks carry (an export's columns)."""
        window, params = placed_sql(flt)
        rows = await self._stats_read(
            f"""SELECT DISTINCT j.key AS name FROM calls, json_each(
                    CASE WHEN json_valid(calls.extracted) THEN calls.extracted ELSE '{{}}' END
                ) AS j WHERE {window} AND calls.extracted IS NOT NULL ORDER BY 1 LIMIT :n""",
            {**params, "n": limit})
        return [str(r["name"]) for r in rows]

    async def _latency(self, window: str, params: dict[str, Any]) -> float | None:
        """The median of the calls' end-to-end latency (Retell's p50 per call)."""
        [row] = await self._stats_read(
            f"SELECT count(*) FROM calls WHERE {window} AND latency_ms IS NOT NULL", params)
        n = int(row[0])
        if n == 0:
            return None
        rows = await self._stats_read(
            f"""SELECT latency_ms FROM calls WHERE {window} AND latency_ms IS NOT NULL
                ORDER BY latency_ms LIMIT :take OFFSET :skip""",
            {**params, "take": 2 - n % 2, "skip": (n - 1) // 2})
        return sum(float(r[0]) for r in rows) / len(rows) if rows else None

    async def _breakdown(self, window: str, params: dict[str, Any],
                         key: str) -> tuple[Breakdown, ...]:
        rows = await self._stats_read(
            f"""SELECT {key} AS k, count(*) AS calls,
                       count(CASE WHEN duration_ms > 0 THEN 1 END) AS connected,
                       count(successful) AS analyzed,
                       coalesce(sum(successful = 1), 0) AS successful,
                       avg(CASE WHEN duration_ms > 0 THEN duration_ms END) AS avg_ms,
                       coalesce(sum(cost_cents), 0) AS cost
                FROM calls WHERE {window} GROUP BY k ORDER BY calls DESC, k LIMIT 25""",
            params)
        return tuple(Breakdown(str(r["k"]), int(r["calls"]), int(r["connected"]),
                               int(r["analyzed"]), int(r["successful"]),
                               float(r["avg_ms"]) if r["avg_ms"] is not None else None,
                               float(r["cost"])) for r in rows)

    async def _quarters(self, window: str, params: dict[str, Any], columns: str
                        ) -> list[Any]:
        return await self._stats_read(
            f"""SELECT CAST(created_at AS INTEGER) / {BUCKET_SECONDS} AS q, {columns}
                FROM calls WHERE {window} GROUP BY 1""", params)

    async def _days(self, window: str, params: dict[str, Any],
                    days_in: Callable[[float], str]) -> tuple[DayCounts, ...]:
        rows = await self._quarters(window, params, f"""
            coalesce(sum(({OUTCOME_SQL}) = 'successful'), 0) AS successful,
            coalesce(sum(({OUTCOME_SQL}) = 'failed'), 0) AS failed,
            coalesce(sum(({OUTCOME_SQL}) = 'no_answer'), 0) AS no_answer,
            coalesce(sum(({OUTCOME_SQL}) = 'other'), 0) AS other""")
        found: dict[str, Counter[str]] = {}
        for r in rows:
            day = found.setdefault(days_in(float(r["q"]) * BUCKET_SECONDS), Counter())
            for name in ("successful", "failed", "no_answer", "other"):
                day[name] += int(r[name])
        return tuple(DayCounts(day, **dict(c)) for day, c in sorted(found.items()))

    async def _by_day(self, window: str, params: dict[str, Any],
                      days_in: Callable[[float], str]) -> tuple[Breakdown, ...]:
        rows = await self._quarters(window, params, """count(*) AS calls,
            count(CASE WHEN duration_ms > 0 THEN 1 END) AS connected,
            count(successful) AS analyzed, coalesce(sum(successful = 1), 0) AS successful,
            coalesce(sum(CASE WHEN duration_ms > 0 THEN duration_ms END), 0) AS talk_ms,
            coalesce(sum(cost_cents), 0) AS cost""")
        days: dict[str, list[float]] = {}
        for r in rows:
            acc = days.setdefault(days_in(float(r["q"]) * BUCKET_SECONDS), [0.0] * 6)
            for i, name in enumerate(("calls", "connected", "analyzed", "successful",
                                      "talk_ms", "cost")):
                acc[i] += float(r[name])
        return tuple(
            Breakdown(day, int(a[0]), int(a[1]), int(a[2]), int(a[3]),
                      a[4] / a[1] if a[1] else None, a[5])
            for day, a in sorted(days.items()))

    async def _fields(self, window: str, params: dict[str, Any],
                      wanted: tuple[str, ...] | None) -> tuple[FieldSummary, ...]:
        """Each extracted field by its type, over the newest FIELD_CALLS calls with any:
        counted by (field, type, value) in SQL, so Python sees each distinct value once."""
        rows = await self._stats_read(
            f"""SELECT j.key AS name, j.type AS type, j.value AS value, count(*) AS n
                FROM (SELECT extracted FROM calls WHERE {window} AND extracted IS NOT NULL
                      ORDER BY created_at DESC LIMIT {FIELD_CALLS}) AS c,
                     json_each(CASE WHEN json_valid(c.extracted) THEN c.extracted
                                    ELSE '{{}}' END) AS j
                GROUP BY 1, 2, 3""", params)
        # Thousands of distinct values at most: summarised in a thread all the same, never
        # on the event loop that acks Slack.
        return await asyncio.to_thread(_summaries, rows, wanted)


def _summaries(rows: list[Any], wanted: tuple[str, ...] | None) -> tuple[FieldSummary, ...]:
    values: dict[str, list[tuple[str, Any, int]]] = {}
    for r in rows:
        name = str(r["name"])
        if wanted is None or name in wanted:
            values.setdefault(name, []).append((str(r["type"]), r["value"], int(r["n"])))
    return tuple(_summary(name, found) for name, found in sorted(values.items()))


def _summary(name: str, found: list[tuple[str, Any, int]]) -> FieldSummary:
    """One field from its distinct values and how often each came."""
    total = sum(n for _, _, n in found)
    kinds: Counter[str] = Counter()
    for kind, _, n in found:
        kinds[kind] += n
    if kinds["true"] + kinds["false"] >= total / 2:
        return FieldSummary(name, "boolean", total, yes=kinds["true"], no=kinds["false"])
    numbers = sorted((float(v), n) for kind, v, n in found if kind in ("integer", "real"))
    count = sum(n for _, n in numbers)
    if numbers and count >= total / 2:
        return FieldSummary(name, "number", total,
                            mean=math.fsum(v * n for v, n in numbers) / count,
                            median=_median(numbers, count), low=numbers[0][0],
                            high=numbers[-1][0])
    texts: Counter[str] = Counter()
    for kind, v, n in found:
        if kind != "null":
            texts[str(v).strip() if kind == "text" else json.dumps(v)] += n
    top = tuple((v, n) for v, n in texts.most_common(TOP_VALUES) if len(v) <= TEXT_VALUE)
    return FieldSummary(name, "text", total, top=top)


def _median(numbers: list[tuple[float, int]], count: int) -> float:
    """The median of sorted (value, how many) pairs: the middle one, or the mean of two."""
    ranks = [(count - 1) // 2, count // 2]
    found: list[float] = []
    below = 0
    for value, n in numbers:
        while len(found) < 2 and ranks[len(found)] < below + n:
            found.append(value)
        below += n
    return (found[0] + found[1]) / 2
