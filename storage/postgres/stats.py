"""Figures over the history (StatsStore), read from the calls.

SQLite keeps per-day sums for long periods (storage/sqlite/rollup.py); PostgreSQL answers
every question from the calls themselves, with its parallel scans and the indexes of the
STATS migration, and gives the answers SQLite's plain path (`sums=False`) gives on the same
data. Each answer is read in one snapshot (a read-only REPEATABLE READ transaction), so a
count and the median read after it agree however the calls change meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg

from storage.models import (
    Breakdown,
    CallFilter,
    CallRecord,
    CallStats,
    DayCounts,
    StatsReport,
)
from storage.postgres.connection import Tx, _Connection
from storage.postgres.filters import FIGURES_SQL, placed_sql
from storage.sqlite.filters import outcome_sql
from storage.sqlite.rollup import LABELS
from storage.sqlite.rows import _LIGHT_COLUMNS, _to_record
from storage.sqlite.stats import BUCKET_SECONDS, FIELD_CALLS, _summaries

OUTCOME_SQL = outcome_sql()  # each call's one outcome, for the chart's bars
_OUTCOMES = ("successful", "failed", "no_answer", "other")
# SQLite's CAST(created_at AS INTEGER) / 900: both truncate toward zero.
_QUARTER = f"trunc(created_at)::bigint / {BUCKET_SECONDS}"
# Text ordered as SQLite's BINARY collation orders it (by code point), whatever the
# database's locale.
_C = 'COLLATE "C"'
_INT64 = range(-(2**63), 2**63)


class StatsPart(_Connection):
    """Figures over the history (StatsStore)."""

    async def refresh_stats(self, now: float, *, days: int = 20) -> int:
        """Nothing to sum: PostgreSQL keeps no per-day sums (SQLite's are there to spare it
        a scan of the whole history, which PostgreSQL does in parallel, on the indexes of
        the STATS migration), so `report` reads the calls themselves and this is 0."""
        return 0

    @contextlib.asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[Tx]:
        """One read-only transaction, every read in it seeing the same calls."""
        async with self._p.acquire() as conn, conn.transaction(
                isolation="repeatable_read", readonly=True):
            yield Tx(conn)

    async def stats(self, since: float | None) -> CallStats:
        lower = since if since is not None else float("-inf")
        async with self._snapshot() as tx:
            return await _figures(tx, "call_id IS NOT NULL AND created_at >= :since",
                                  {"since": lower},
                                  failed_window="call_id IS NULL AND created_at >= :since")

    async def report(self, flt: CallFilter, *, previous: CallFilter | None = None,
                     by: str | None = None, fields: tuple[str, ...] | None = None,
                     with_fields: bool = True, days_in: Callable[[float], str] | None = None,
                     sums: bool = True) -> StatsReport:
        """`/callstats` with filters: the figures for `flt` (and `previous`), a breakdown
        `by` agent | user | campaign | day, the extracted fields (all, or `fields`), and
        calls per day when `days_in` (epoch -> the reader's YYYY-MM-DD) is given.

        Always from the calls: `sums` is SQLite's choice (its per-day sums or not) and
        changes nothing here."""
        window, params = placed_sql(flt)
        async with self._snapshot() as tx:
            failed = window.replace("call_id IS NOT NULL", "call_id IS NULL", 1)
            figures = await _figures(tx, window, params, failed_window=failed)
            latency = await _median(tx, window, params, "latency_ms",
                                    "latency_ms IS NOT NULL")
            before = None
            if previous is not None:  # what the changes need: no medians, no reasons
                p_window, p_params = placed_sql(previous)
                before = await _figures(tx, p_window, p_params, headline=True,
                                        failed_window=p_window.replace(
                                            "call_id IS NOT NULL", "call_id IS NULL", 1))
            table: tuple[Breakdown, ...] = ()
            days: tuple[DayCounts, ...] = ()
            if days_in is not None:
                days = await _days(tx, window, params, days_in)
            if by == "day" and days_in is not None:
                table = await _by_day(tx, window, params, days_in)
            elif by in LABELS:
                table = await _breakdown(tx, window, params, LABELS[by])
            found = await _field_rows(tx, window, params) if with_fields else []
        summaries = await asyncio.to_thread(_summaries, found, fields) if found else ()
        return StatsReport(figures, latency, before, table, summaries, days)

    async def export_calls(self, flt: CallFilter, *, after_id: int = 0, limit: int = 1000,
                           transcripts: bool = False) -> list[CallRecord]:
        """The next `limit` calls `flt` picks with a row id above `after_id`, oldest first:
        an export reads page by page in constant memory."""
        window, params = placed_sql(flt)
        columns = _LIGHT_COLUMNS + ", summary" + (", transcript" if transcripts else "")
        rows = await self._read(
            f"SELECT {columns} FROM calls WHERE {window} AND id > :after ORDER BY id "
            "LIMIT :limit", {**params, "after": after_id, "limit": limit})
        return [_to_record(r) for r in rows]

    async def field_names(self, flt: CallFilter, limit: int = 100) -> list[str]:
        """The extracted fields the calls `flt` picks carry (an export's columns), in
        SQLite's order."""
        window, params = placed_sql(flt)
        async with self._snapshot() as tx:
            try:
                async with tx.conn.transaction():  # a savepoint: the snapshot outlives it
                    rows = await tx.fetch(
                        f"""SELECT DISTINCT j.key {_C} AS name FROM calls,
                                json_each(calls.extracted::json) AS j
                            WHERE {window} AND calls.extracted IS NOT NULL
                            ORDER BY 1 LIMIT :n""", {**params, "n": limit})
                return [str(r["name"]) for r in rows]
            except asyncpg.DataError:  # some call's fields are not a JSON object
                rows = await tx.fetch(
                    f"""SELECT DISTINCT j.key, j.idx FROM calls,
                            stats_json_each(calls.extracted) AS j
                        WHERE {window} AND calls.extracted IS NOT NULL""", params)
        keys = sorted(_key(r["key"], r["idx"]) for r in rows)
        return [name for _, name in keys[:limit]]


async def _figures(tx: Tx, window: str, params: dict[str, Any], *, failed_window: str,
                   headline: bool = False) -> CallStats:
    """The figures; `headline`: without the median and the reasons (what a comparison
    with the period before needs, for half the reading)."""
    agg = await tx.fetchrow(f"SELECT {FIGURES_SQL} FROM calls WHERE {window}", params)
    assert agg is not None  # an aggregate always has its row
    failed = await tx.fetchval(f"SELECT count(*) FROM calls WHERE {failed_window}", params)
    connected = int(agg["connected"])
    median = None if headline else await _median(
        tx, window, params, "duration_ms", "duration_ms > 0", connected)
    reason_rows = [] if headline else await tx.fetch(
        f"""SELECT disconnection_reason {_C} AS reason, count(*) AS n FROM calls
            WHERE {window} AND disconnection_reason IS NOT NULL
            GROUP BY 1 ORDER BY n DESC, reason LIMIT 5""", params)
    calls = int(agg["calls"])
    known = int(agg["positive"]) + int(agg["neutral"]) + int(agg["negative"])
    return CallStats(
        calls=calls,
        failed_attempts=int(failed),
        analyzed=int(agg["analyzed"]),
        successful=int(agg["successful"]),
        sentiments={"Positive": int(agg["positive"]), "Neutral": int(agg["neutral"]),
                    "Negative": int(agg["negative"]), "Unknown": calls - known},
        connected=connected,
        avg_duration_ms=_mean(agg["talk_ms"], connected),
        median_duration_ms=median,
        total_cost_cents=float(agg["cost"]),
        top_reasons=[(str(r["reason"]), int(r["n"])) for r in reason_rows],
    )


def _mean(total: Any, n: int) -> float | None:
    """SQLite's avg() of whole numbers: their exact sum as a float, over the count."""
    return float(total) / n if n else None


async def _median(tx: Tx, window: str, params: dict[str, Any], column: str, present: str,
                  n: int | None = None) -> float | None:
    """The exact median of `column` where `present`: the middle value, or the mean of the
    two middle ones for an even count, as SQLite's store computes it."""
    if n is None:
        n = int(await tx.fetchval(
            f"SELECT count(*) FROM calls WHERE {window} AND {present}", params))
    if n == 0:
        return None
    rows = await tx.fetch(
        f"SELECT {column} FROM calls WHERE {window} AND {present} "
        f"ORDER BY {column} LIMIT :take OFFSET :skip",
        {**params, "take": 2 - n % 2, "skip": (n - 1) // 2})
    return sum(float(r[0]) for r in rows) / len(rows) if rows else None


async def _breakdown(tx: Tx, window: str, params: dict[str, Any],
                     key: str) -> tuple[Breakdown, ...]:
    rows = await tx.fetch(
        f"""SELECT ({key}) {_C} AS k, count(*) AS calls,
                   count(CASE WHEN duration_ms > 0 THEN 1 END) AS connected,
                   count(successful) AS analyzed,
                   count(*) FILTER (WHERE successful = 1) AS successful,
                   coalesce(sum(CASE WHEN duration_ms > 0 THEN duration_ms END), 0) AS talk_ms,
                   coalesce(sum(cost_cents), 0) AS cost
            FROM calls WHERE {window} GROUP BY 1 ORDER BY calls DESC, k LIMIT 25""",
        params)
    return tuple(Breakdown(str(r["k"]), int(r["calls"]), int(r["connected"]),
                           int(r["analyzed"]), int(r["successful"]),
                           _mean(r["talk_ms"], int(r["connected"])), float(r["cost"]))
                 for r in rows)


async def _quarters(tx: Tx, window: str, params: dict[str, Any],
                    columns: str) -> list[asyncpg.Record]:
    """Sums per quarter hour, which the reader's days are made of (any zone's midnight
    falls on a quarter hour)."""
    return await tx.fetch(
        f"SELECT {_QUARTER} AS q, {columns} FROM calls WHERE {window} GROUP BY 1", params)


async def _days(tx: Tx, window: str, params: dict[str, Any],
                days_in: Callable[[float], str]) -> tuple[DayCounts, ...]:
    rows = await _quarters(tx, window, params, ", ".join(
        f"count(*) FILTER (WHERE ({OUTCOME_SQL}) = '{name}') AS {name}"
        for name in _OUTCOMES))
    found: dict[str, Counter[str]] = {}
    for r in rows:
        day = found.setdefault(days_in(float(r["q"]) * BUCKET_SECONDS), Counter())
        for name in _OUTCOMES:
            day[name] += int(r[name])
    return tuple(DayCounts(day, **dict(c)) for day, c in sorted(found.items()))


async def _by_day(tx: Tx, window: str, params: dict[str, Any],
                  days_in: Callable[[float], str]) -> tuple[Breakdown, ...]:
    rows = await _quarters(tx, window, params, """count(*) AS calls,
        count(CASE WHEN duration_ms > 0 THEN 1 END) AS connected,
        count(successful) AS analyzed, count(*) FILTER (WHERE successful = 1) AS successful,
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


async def _field_rows(tx: Tx, window: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Each extracted field's distinct values and how many of the newest FIELD_CALLS
    calls with any carry each, as SQLite's json_each gives them (name, type, value, n),
    in the order SQLite's GROUP BY gives them (which ties among the top values keep).

    Counted in SQL by json_each over each call's JSON, each value as written (unescaped
    here, so a string may hold what text cannot). Should a call's fields not be a JSON
    object (never written so, but a database copied from SQLite may hold anything), read
    again through stats_json_each, which reads any JSON as SQLite does and skips the rest,
    as SQLite's json_valid does."""
    calls = (f"SELECT extracted FROM calls WHERE {window} AND extracted IS NOT NULL "
             f"ORDER BY created_at DESC LIMIT {FIELD_CALLS}")
    try:
        async with tx.conn.transaction():  # a savepoint: the snapshot outlives it
            rows = await tx.fetch(
                f"""SELECT j.key, NULL::bigint AS idx, json_typeof(j.value) AS kind,
                           j.value::text AS value, count(*) AS n
                    FROM ({calls}) AS c, json_each(c.extracted::json) AS j
                    GROUP BY 1, 3, 4""", params)
    except asyncpg.DataError:
        rows = await tx.fetch(
            f"""SELECT j.key, j.idx, json_typeof(j.value) AS kind, j.value::text AS value,
                       count(*) AS n
                FROM ({calls}) AS c, stats_json_each(c.extracted) AS j
                GROUP BY 1, 2, 3, 4""", params)
    merged: Counter[tuple[tuple[int, Any], str, str, Any]] = Counter()
    for r in rows:
        kind, value = _as_sqlite(str(r["kind"]), str(r["value"]))
        order, name = _key(r["key"], r["idx"])
        merged[(order, name, kind, value)] += int(r["n"])
    return [{"name": name, "type": kind, "value": value, "n": n}
            for (_, name, kind, value), n in sorted(merged.items(), key=_sqlite_order)]


def _key(key: str | None, idx: int | None) -> tuple[tuple[int, Any], str]:
    """A json_each key as SQLite orders it (NULL, then array indexes, then names by code
    point) and as the summaries name it (str of SQLite's value)."""
    if key is not None:
        return (2, key), key
    if idx is not None:
        return (1, idx), str(idx)
    return (0, 0), "None"


def _sqlite_order(item: tuple[tuple[tuple[int, Any], str, str, Any], int]) -> tuple[Any, ...]:
    (order, _, kind, value), _ = item
    return order, kind, (value is not None, value)


def _as_sqlite(kind: str, text: str) -> tuple[str, Any]:
    """A JSON value (its json_typeof and its text as written) as SQLite's json_each gives
    it: its type name and its SQL value."""
    if kind == "string":
        return "text", json.loads(text)
    if kind == "boolean":
        return ("true", 1) if text == "true" else ("false", 0)
    if kind == "null":
        return "null", None
    if kind == "number":  # SQLite's integer is a number written without . or exponent
        if any(c in text for c in ".eE"):
            return "real", float(text)
        number = int(text)
        return "integer", number if number in _INT64 else float(text)
    return kind, _minified(text)  # object or array: SQLite writes it without spaces


def _minified(text: str) -> str:
    """JSON text without the spaces between tokens (strings kept as written)."""
    out: list[str] = []
    quoted = escaped = False
    for ch in text:
        if quoted:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
            out.append(ch)
        elif ch not in " \t\n\r":
            out.append(ch)
    return "".join(out)
