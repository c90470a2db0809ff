"""Slack work and its delivery leases (OutboxStore).

Several instances deliver from one outbox. A call's items go to one instance at a time:
`lease_outbox` locks the call's pending rows (FOR UPDATE) while it checks and takes them,
so of two instances leasing one call at once the second waits, then sees the first's lease
and gets nothing, just as SQLite's single writer orders them."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

from storage.models import OutboxItem
from storage.postgres.connection import Tx, _Connection
from storage.postgres.rows import _enqueue

# enqueue_once's lock: this constant class and a hash of (call, kind), in PostgreSQL's
# two-integer advisory key space (apart from the one-bigint keys of admission and
# migrations). Two instances queueing the same work wait for each other; a hash collision
# between two calls only makes one wait a moment for the other.
ONCE_LOCK = int.from_bytes(b"cbq1", "big")


class OutboxPart(_Connection):
    """Slack work and its delivery leases (OutboxStore)."""

    async def enqueue_once(self, call_id: str, kind: str) -> bool:
        """Queue Slack work that must happen at most once per call (a transcript post).

        An advisory lock on (call, kind) orders two instances queueing it at once: the
        second then sees the first's row (there is no unique key on the pair to lean on)."""

        async def enqueue(tx: Tx) -> bool:
            await tx.execute("SELECT pg_advisory_xact_lock(?::integer, hashtext(?::text))",
                             (ONCE_LOCK, f"{call_id}\x1f{kind}"))
            if await tx.fetchrow(
                "SELECT 1 FROM outbox WHERE call_id = ? AND kind = ? LIMIT 1", (call_id, kind)
            ):
                return False
            await _enqueue(tx, call_id, (kind,), time.time())
            return True

        return await self._write(enqueue)

    async def outbox_heads(
        self, limit: int, skip: Collection[str] = (), *, owner: str | None = None,
        now: float | None = None, skip_channels: Collection[str] = (),
    ) -> list[OutboxItem]:
        """The oldest pending item of each call (a call's items go out together, in order),
        soonest due first, with the channel it goes to; calls in `skip` (already in hand)
        are left out, so they never crowd out the others.

        A call is due when none of its items waits for a retry, and not before another
        instance's lease on it (`owner` is ours) runs out: `next_attempt_at` says when."""
        rows = await self._read(
            """SELECT o.id, o.call_id, o.kind, o.attempts, h.due, o.posting_since, c.channel_id
               FROM (SELECT call_id, min(id) AS id,
                            greatest(max(next_attempt_at), coalesce(max(CASE
                                WHEN lease_owner IS DISTINCT FROM :owner::text
                                     AND lease_until > :now::double precision
                                THEN lease_until END), 0)) AS due
                     FROM outbox WHERE done_at IS NULL GROUP BY call_id) h
               JOIN outbox o ON o.id = h.id
               LEFT JOIN calls c ON c.call_id = h.call_id
               WHERE h.call_id <> ALL(:skip::text[])
                 AND coalesce(c.channel_id, '') <> ALL(:skip_channels::text[])
               ORDER BY h.due, h.id LIMIT :limit""",
            {"limit": limit, "skip": list(skip), "owner": owner,
             "now": float(time.time() if now is None else now),
             "skip_channels": list(skip_channels)},
        )
        return [OutboxItem(int(r[0]), r[1], r[2], int(r[3]), float(r[4]), r[5], r[6])
                for r in rows]

    async def lease_outbox(
        self, call_id: str, owner: str, now: float, until: float
    ) -> list[OutboxItem]:
        """Take every pending item of a due call for one delivery turn, unless another
        instance holds it: its items are then delivered by this instance alone until `until`
        (a dead instance's lease runs out and another takes the call over).

        The rows are locked (in id order) before they are checked: an instance leasing the
        same call at the same moment waits for this transaction, then reads the rows as it
        left them (PostgreSQL re-reads a locked row once its locker commits), sees the lease
        and takes nothing. SKIP LOCKED would not do here: a call's items go together, and
        skipping some of them would hand out part of a call."""

        async def lease(tx: Tx) -> list[OutboxItem]:
            rows = await tx.fetch(
                "SELECT id, kind, attempts, next_attempt_at, posting_since, lease_owner, "
                "lease_until FROM outbox WHERE call_id = ? AND done_at IS NULL "
                "ORDER BY id FOR UPDATE", (call_id,))
            if not rows or any(
                r["next_attempt_at"] > now
                or (r["lease_owner"] not in (None, owner) and (r["lease_until"] or 0) > now)
                for r in rows
            ):
                return []
            # Exactly the rows checked: an item queued since is left to the next turn, as
            # it would be under SQLite (it is still held back by this lease on the others).
            await tx.execute("UPDATE outbox SET lease_owner = ?, lease_until = ? "
                             "WHERE id = ANY(?::bigint[])",
                             (owner, float(until), [r["id"] for r in rows]))
            channel = await tx.fetchval("SELECT channel_id FROM calls WHERE call_id = ?",
                                        (call_id,))
            return [OutboxItem(int(r["id"]), call_id, r["kind"], int(r["attempts"]),
                               float(r["next_attempt_at"]), r["posting_since"], channel)
                    for r in rows]

        return await self._write(lease)

    async def renew_outbox_leases(
        self, call_ids: Collection[str], owner: str, until: float
    ) -> set[str]:
        """Extend our leases on calls still being delivered; returns the calls still ours
        (the rows the renewal touched: pending, leased by us, among `call_ids`)."""

        async def renew(tx: Tx) -> set[str]:
            rows = await tx.fetch(
                "UPDATE outbox SET lease_until = ? WHERE done_at IS NULL AND lease_owner = ? "
                "AND call_id = ANY(?::text[]) RETURNING call_id",
                (float(until), owner, list(call_ids)))
            return {str(r[0]) for r in rows}

        return await self._write(renew)

    async def release_outbox(self, call_id: str, owner: str) -> None:
        """End a turn that left items pending: whoever is due next may take them."""
        await self._execute(
            "UPDATE outbox SET lease_owner = NULL, lease_until = NULL "
            "WHERE call_id = ? AND done_at IS NULL AND lease_owner = ?", (call_id, owner))

    async def outbox_outcomes(self, call_ids: Collection[str]) -> set[str]:
        """Which of these calls have a summary waiting: their turn comes first."""
        rows = await self._read(
            "SELECT DISTINCT call_id FROM outbox WHERE call_id = ANY(?::text[]) "
            "AND kind = 'summary' AND done_at IS NULL", (list(call_ids),))
        return {str(r[0]) for r in rows}

    async def outbox_backlog(self) -> tuple[int, float | None]:
        """How many items wait for Slack, and when the oldest of them was queued."""
        [row] = await self._read(
            "SELECT count(*), min(created_at) FROM outbox WHERE done_at IS NULL")
        return int(row[0]), float(row[1]) if row[1] is not None else None

    async def mark_posting(self, item_id: int, now: float) -> None:
        """Before a post whose answer could be lost: a retry must look before posting."""
        await self._execute(
            "UPDATE outbox SET posting_since = coalesce(posting_since, ?::double precision) "
            "WHERE id = ?", (float(now), item_id))

    async def complete_outbox(self, item_ids: Sequence[int], now: float) -> None:
        async def complete(tx: Tx) -> None:
            await tx.execute(
                "UPDATE outbox SET done_at = ?, attempts = attempts + 1, last_error = NULL "
                "WHERE id = ANY(?::bigint[]) AND done_at IS NULL",
                (float(now), list(item_ids)))

        await self._write(complete)

    async def retry_outbox(
        self, item_id: int, next_attempt_at: float, error: str, *, uncertain: bool = True
    ) -> None:
        """Try again later; `uncertain` False when Slack's answer proves nothing was posted."""
        await self._execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, "
            "posting_since = CASE WHEN ?::boolean THEN posting_since END WHERE id = ?",
            (float(next_attempt_at), error, bool(uncertain), item_id))

    async def fail_outbox(self, item_id: int, now: float, error: str) -> None:
        """Give up on an item (a permanent Slack error); kept with its reason for operators."""
        await self._execute(
            "UPDATE outbox SET done_at = ?, attempts = attempts + 1, last_error = ? WHERE id = ?",
            (float(now), "gave up: " + error, item_id))
