"""Retention, housekeeping and the health write check (Upkeep)."""

from __future__ import annotations

import time

from storage.models import STAGE_ANALYZED
from storage.postgres.connection import _Connection
from storage.sqlite.rows import PURGED_COLUMNS


class UpkeepPart(_Connection):
    """Retention, housekeeping and the health write check (Upkeep)."""

    async def purge_before(self, cutoff: float, batch: int = 500) -> int:
        """Retention: drop the words of calls created before `cutoff`, keeping every figure
        /callstats reads; in batches (rows another instance is purging are skipped)."""
        has_any = " OR ".join(f"{c} IS NOT NULL" for c in PURGED_COLUMNS)
        cleared = ", ".join(f"{c} = NULL" for c in PURGED_COLUMNS)
        return await self._in_batches(
            f"UPDATE calls SET {cleared} WHERE id IN (SELECT id FROM calls "
            f"WHERE created_at < :cutoff AND ({has_any}) LIMIT :batch FOR UPDATE SKIP LOCKED)",
            {"cutoff": cutoff, "batch": batch})

    async def prune(self, cutoff: float, batch: int = 500) -> dict[str, int]:
        """Delete bookkeeping older than `cutoff` that only grows: claims, received webhook
        events and finished outbox items, in batches.

        Kept whatever dedupe still needs: the events of a call still polled or not yet
        analyzed and touched since `cutoff` (a late webhook must still be a duplicate), and
        transcript items (a transcript is posted once per call)."""
        deletes = {
            "claims": "DELETE FROM claims WHERE key IN (SELECT key FROM claims "
                      "WHERE claimed_at < :cutoff LIMIT :batch)",
            "webhook_events": f"""DELETE FROM webhook_events WHERE (call_id, event) IN (
                SELECT e.call_id, e.event FROM webhook_events e
                WHERE e.received_at < :cutoff AND NOT EXISTS (
                    SELECT 1 FROM calls c WHERE c.call_id = e.call_id
                    AND (c.next_poll_at IS NOT NULL
                         OR (c.stage < {STAGE_ANALYZED} AND c.updated_at >= :cutoff)))
                LIMIT :batch)""",
            "outbox": "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox "
                      "WHERE done_at < :cutoff AND kind != 'transcript' LIMIT :batch)",
        }
        params = {"cutoff": cutoff, "batch": batch}
        return {table: await self._in_batches(sql, params) for table, sql in deletes.items()}

    async def check_writable(self) -> None:
        """Raise unless a write really commits: a heartbeat row, so a server that is down,
        read-only or out of disk shows, as a read from a pooled connection might not."""
        await self._execute(
            "INSERT INTO meta (key, value) VALUES ('health_heartbeat', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (repr(time.time()),))
