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
