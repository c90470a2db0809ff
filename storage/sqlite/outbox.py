"""Slack work and its delivery leases (OutboxStore)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Sequence

from storage.models import OutboxItem
from storage.sqlite.connection import _Connection
from storage.sqlite.rows import (
    _enqueue,
)


class OutboxPart(_Connection):
    """Slack work and its delivery leases (OutboxStore)."""

    async def enqueue_once(self, call_id: str, kind: str) -> bool:
        """Queue Slack work that must happen at most once per call (a transcript post)."""

        def enqueue(conn: sqlite3.Connection) -> bool:
            if conn.execute(
                "SELECT 1 FROM outbox WHERE call_id = ? AND kind = ? LIMIT 1", (call_id, kind)
            ).fetchone():
                return False
            _enqueue(conn, call_id, (kind,), time.time())
            return True

        return await self._writer.write(enqueue)

    async def outbox_heads(
        self, limit: int, skip: Collection[str] = (), *, owner: str | None = None,
        now: float | None = None, skip_channels: Collection[str] = (),
    ) -> list[OutboxItem]:
        """The oldest pending item of each call (a call's items go out together, in order),
        soonest due first, with the channel it goes to; calls in `skip` (already in hand)
        are left out, so they never crowd out the others.

        A call is due when none of its items waits for a retry, and not before another
        process's lease on it (`owner` is ours) runs out: `next_attempt_at` says when."""
        rows = await self._read(
            """SELECT o.id, o.call_id, o.kind, o.attempts, h.due, o.posting_since, c.channel_id
               FROM (SELECT call_id, min(id) AS id,
                            max(max(next_attempt_at), coalesce(max(CASE
                                WHEN lease_owner IS NOT :owner AND lease_until > :now
                                THEN lease_until END), 0)) AS due
                     FROM outbox INDEXED BY outbox_call_pending
                     WHERE done_at IS NULL GROUP BY call_id) h
               JOIN outbox o ON o.id = h.id
               LEFT JOIN calls c ON c.call_id = h.call_id
               WHERE h.call_id NOT IN (SELECT value FROM json_each(:skip))
                 AND coalesce(c.channel_id, '')
                     NOT IN (SELECT value FROM json_each(:skip_channels))
               ORDER BY h.due, h.id LIMIT :limit""",
            {"limit": limit, "skip": json.dumps(list(skip)), "owner": owner,
             "now": time.time() if now is None else now,
             "skip_channels": json.dumps(list(skip_channels))},
        )
        return [OutboxItem(*r) for r in rows]

    async def lease_outbox(
        self, call_id: str, owner: str, now: float, until: float
    ) -> list[OutboxItem]:
        """Take every pending item of a due call for one delivery turn, unless another
        process holds it: its items are then delivered by this process alone until `until`
        (a dead process's lease runs out and another takes the call over)."""

        def lease(conn: sqlite3.Connection) -> list[OutboxItem]:
            rows = conn.execute(
                "SELECT id, kind, attempts, next_attempt_at, posting_since, lease_owner, "
                "lease_until FROM outbox INDEXED BY outbox_call_pending "
                "WHERE call_id = ? AND done_at IS NULL ORDER BY id", (call_id,)).fetchall()
            if not rows or any(
                r["next_attempt_at"] > now
                or (r["lease_owner"] not in (None, owner) and (r["lease_until"] or 0) > now)
                for r in rows
            ):
                return []
            conn.execute("UPDATE outbox SET lease_owner = ?, lease_until = ? "
                         "WHERE call_id = ? AND done_at IS NULL", (owner, until, call_id))
            found = conn.execute("SELECT channel_id FROM calls WHERE call_id = ?",
                                 (call_id,)).fetchone()
            channel = found[0] if found else None
            return [OutboxItem(r["id"], call_id, r["kind"], r["attempts"], r["next_attempt_at"],
                               r["posting_since"], channel) for r in rows]

        return await self._writer.write(lease)

    async def renew_outbox_leases(
        self, call_ids: Collection[str], owner: str, until: float
    ) -> set[str]:
        """Extend our leases on calls still being delivered; returns the calls still ours."""

        def renew(conn: sqlite3.Connection) -> set[str]:
            ids = json.dumps(list(call_ids))
            conn.execute(
                "UPDATE outbox SET lease_until = ? WHERE done_at IS NULL AND lease_owner = ? "
                "AND call_id IN (SELECT value FROM json_each(?))", (until, owner, ids))
            return {str(r[0]) for r in conn.execute(
                "SELECT DISTINCT call_id FROM outbox INDEXED BY outbox_call_pending "
                "WHERE done_at IS NULL AND lease_owner = ? "
                "AND call_id IN (SELECT value FROM json_each(?))", (owner, ids))}

        return await self._writer.write(renew)

    async def release_outbox(self, call_id: str, owner: str) -> None:
        """End a turn that left items pending: whoever is due next may take them."""
        await self._execute(
            "UPDATE outbox SET lease_owner = NULL, lease_until = NULL "
            "WHERE call_id = ? AND done_at IS NULL AND lease_owner = ?", (call_id, owner))

    async def outbox_outcomes(self, call_ids: Collection[str]) -> set[str]:
        """Which of these calls have a summary waiting: their turn comes first."""
        rows = await self._read(
            "SELECT DISTINCT call_id FROM outbox INDEXED BY outbox_call "
            "WHERE call_id IN (SELECT value FROM json_each(?)) AND kind = 'summary' "
            "AND done_at IS NULL", (json.dumps(list(call_ids)),))
        return {str(r[0]) for r in rows}

    async def outbox_backlog(self) -> tuple[int, float | None]:
        """How many items wait for Slack, and when the oldest of them was queued."""
        [row] = await self._read(
            "SELECT count(*), min(created_at) FROM outbox INDEXED BY outbox_pending "
            "WHERE done_at IS NULL"
        )
        return int(row[0]), float(row[1]) if row[1] is not None else None

    async def mark_posting(self, item_id: int, now: float) -> None:
        """Before a post whose answer could be lost: a retry must look before posting."""
        await self._execute(
            "UPDATE outbox SET posting_since = coalesce(posting_since, ?) WHERE id = ?",
            (now, item_id),
        )

    async def complete_outbox(self, item_ids: Sequence[int], now: float) -> None:
        def complete(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE outbox SET done_at = ?, attempts = attempts + 1, last_error = NULL "
                "WHERE id = ? AND done_at IS NULL",
                [(now, item_id) for item_id in item_ids],
            )

        await self._writer.write(complete)

    async def retry_outbox(
        self, item_id: int, next_attempt_at: float, error: str, *, uncertain: bool = True
    ) -> None:
        """Try again later; `uncertain` False when Slack's answer proves nothing was posted."""
        await self._execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, "
            "posting_since = CASE WHEN ? THEN posting_since END WHERE id = ?",
            (next_attempt_at, error, uncertain, item_id),
        )

    async def fail_outbox(self, item_id: int, now: float, error: str) -> None:
        """Give up on an item (a permanent Slack error); kept with its reason for operators."""
        await self._execute(
            "UPDATE outbox SET done_at = ?, attempts = attempts + 1, last_error = ? WHERE id = ?",
            (now, "gave up: " + error, item_id),
        )
