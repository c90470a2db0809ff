"""Figures over the history, on a read-only connection of their own (StatsStore)."""

from __future__ import annotations

from typing import Any

from storage.models import CallStats
from storage.sqlite.connection import _Connection, _HeavyReader


class StatsPart(_Connection):
    """Figures over the history, on a read-only connection of their own (StatsStore)."""

    async def _stats_read(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """A heavy query (stats over all history) on a read-only connection of its own, in
        a thread of its own, one at a time: the shared reader, which health checks, the
        outbox and the Home tab use, never waits behind it. The connection is kept (its page
        cache makes the next query several times faster than a fresh connection's)."""
        if not self._open:
            raise RuntimeError("store is not open")
        if self._heavy is None:
            self._heavy = _HeavyReader(self.path)
        return await self._heavy.read(sql, params)

    async def stats(self, since: float | None) -> CallStats:
        lower = since if since is not None else float("-inf")
        window = "call_id IS NOT NULL AND created_at >= :since"
        params = {"since": lower}
        [agg] = await self._stats_read(
            f"""SELECT count(*) AS calls,
                       count(successful) AS analyzed,
                       coalesce(sum(successful = 1), 0) AS successful,
                       coalesce(sum(sentiment = 'Positive'), 0) AS positive,
                       coalesce(sum(sentiment = 'Neutral'), 0) AS neutral,
                       coalesce(sum(sentiment = 'Negative'), 0) AS negative,
                       count(CASE WHEN duration_ms > 0 THEN 1 END) AS connected,
                       avg(CASE WHEN duration_ms > 0 THEN duration_ms END) AS avg_ms,
                       coalesce(sum(cost_cents), 0) AS cost
                FROM calls INDEXED BY calls_stats WHERE {window}""",
            params,
        )
        [failed_row] = await self._stats_read(
            "SELECT count(*) FROM calls INDEXED BY calls_failed "
            "WHERE call_id IS NULL AND created_at >= :since",
            params,
        )
        median = await self._median_duration(window, params, int(agg["connected"]))
        reason_rows = await self._stats_read(
            f"""SELECT disconnection_reason AS reason, count(*) AS n
                FROM calls INDEXED BY calls_stats
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
            f"""SELECT duration_ms FROM calls INDEXED BY calls_stats
                WHERE {window} AND duration_ms > 0
                ORDER BY duration_ms LIMIT :take OFFSET :skip""",
            {**params, "take": 2 - n % 2, "skip": (n - 1) // 2},
        )
        if not rows:  # calls were deleted between the count and this query
            return None
        return sum(float(r[0]) for r in rows) / len(rows)
