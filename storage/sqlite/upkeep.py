"""Retention, housekeeping and the health write check (Upkeep)."""

from __future__ import annotations

import time

from storage.models import STAGE_ANALYZED
from storage.sqlite.connection import _Connection
from storage.sqlite.rows import (
    PURGED_COLUMNS,
)


class UpkeepPart(_Connection):
    """Retention, housekeeping and the health write check (Upkeep)."""

    async def purge_before(self, cutoff: float, batch: int = 500) -> int:
        """Retention: drop the words of calls created before `cutoff`, keeping every figure
        /callstats reads. In batches, so a large purge never holds the writer for long."""
        has_any = " OR ".join(f"{c} IS NOT NULL" for c in PURGED_COLUMNS)
        cleared = ", ".join(f"{c} = NULL" for c in PURGED_COLUMNS)
        return await self._in_batches(
            f"UPDATE calls SET {cleared} WHERE id IN (SELECT id FROM calls "
            f"WHERE created_at < :cutoff AND ({has_any}) LIMIT :batch)",
            {"cutoff": cutoff, "batch": batch})

    async def prune(self, cutoff: float, batch: int = 500) -> dict[str, int]:
        """Delete bookkeeping older than `cutoff` that only grows: claims, received webhook
        events and finished outbox items, in batches so the writer is never held for long.

        Kept whatever dedupe still needs: the events of a call still polled or not yet
        analyzed and touched since `cutoff` (a late webhook must still be a duplicate), and
        transcript items (a transcript is posted once per call)."""
        deletes = {
            "claims": "DELETE FROM claims WHERE key IN (SELECT key FROM claims INDEXED BY "
                      "claims_at WHERE claimed_at < :cutoff LIMIT :batch)",
            "webhook_events": f"""DELETE FROM webhook_events WHERE (call_id, event) IN (
                SELECT e.call_id, e.event FROM webhook_events e INDEXED BY webhook_events_at
                WHERE e.received_at < :cutoff AND NOT EXISTS (
                    SELECT 1 FROM calls c WHERE c.call_id = e.call_id
                    AND (c.next_poll_at IS NOT NULL
                         OR (c.stage < {STAGE_ANALYZED} AND c.updated_at >= :cutoff)))
                LIMIT :batch)""",
            "outbox": "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox INDEXED BY "
                      "outbox_done WHERE done_at < :cutoff AND kind != 'transcript' "
                      "LIMIT :batch)",
        }
        params = {"cutoff": cutoff, "batch": batch}
        return {table: await self._in_batches(sql, params) for table, sql in deletes.items()}

    async def check_writable(self) -> None:
        """Raise unless a write really commits: a heartbeat row through the writer, so a
        database locked past its busy timeout or a full disk shows, as a read would not."""
        stamp = repr(time.time())
        await self._writer.write(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('health_heartbeat', ?)",
            (stamp,)))
