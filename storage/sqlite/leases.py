"""Claims and named leases (ClaimStore, LeaseStore)."""

from __future__ import annotations

import sqlite3

from storage.sqlite.connection import _Connection


class LeasesPart(_Connection):
    """Claims and named leases (ClaimStore, LeaseStore)."""

    async def claim(self, key: str, now: float, window: float | None = None) -> bool:
        """True for the first claim of `key` (or the first since `window` seconds passed)."""

        def claim(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT claimed_at FROM claims WHERE key = ?", (key,)).fetchone()
            if row and (window is None or now - float(row[0]) < window):
                return False
            conn.execute("INSERT OR REPLACE INTO claims (key, claimed_at) VALUES (?, ?)",
                         (key, now))
            return True

        return await self._writer.write(claim)

    async def acquire_lease(self, name: str, owner: str, now: float, until: float, *,
                            reentrant: bool = True) -> bool:
        """Hold `name` until `until` if it is free or has run out (or is ours already and
        `reentrant`): work that must run in one process at a time, across processes."""

        def acquire(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT INTO leases (name, owner, until) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "until = excluded.until "
                "WHERE leases.until <= ? OR (? AND leases.owner = excluded.owner)",
                (name, owner, until, now, reentrant))
            return bool(cur.rowcount)

        return await self._writer.write(acquire)

    async def release_lease(self, name: str, owner: str) -> None:
        await self._execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))

    async def take_slot(self, channel: str, interval: float, now: float) -> float:
        """One statement: two processes taking a slot at once get two slots."""

        def take(conn: sqlite3.Connection) -> float:
            return float(conn.execute(_TAKE_SLOT, {"channel": channel, "interval": interval,
                                                   "now": now}).fetchone()[0])

        return await self._writer.write(take)

    async def hold_channel(self, channel: str, until: float) -> None:
        await self._execute(_HOLD_CHANNEL, {"channel": channel, "until": until})


_TAKE_SLOT = (
    "INSERT INTO channel_pace (channel, next_at) VALUES (:channel, :now + :interval) "
    "ON CONFLICT (channel) DO UPDATE SET "
    "next_at = CASE WHEN channel_pace.next_at > :now THEN channel_pace.next_at ELSE :now END "
    "+ :interval RETURNING next_at - :interval")
_HOLD_CHANNEL = (
    "INSERT INTO channel_pace (channel, next_at) VALUES (:channel, :until) "
    "ON CONFLICT (channel) DO UPDATE SET next_at = CASE WHEN channel_pace.next_at > :until "
    "THEN channel_pace.next_at ELSE :until END")
