"""Claims and named leases (ClaimStore, LeaseStore)."""

from __future__ import annotations

from storage.postgres.connection import Tx, _Connection


class LeasesPart(_Connection):
    """Claims and named leases (ClaimStore, LeaseStore)."""

    async def claim(self, key: str, now: float, window: float | None = None) -> bool:
        """True for the first claim of `key` (or the first since `window` seconds passed):
        one statement, so two instances claiming at once cannot both win."""

        async def claim(tx: Tx) -> bool:
            return bool(await tx.execute(
                "INSERT INTO claims (key, claimed_at) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET claimed_at = excluded.claimed_at "
                "WHERE ?::double precision IS NOT NULL "
                "AND excluded.claimed_at - claims.claimed_at >= ?::double precision",
                (key, now, window, window)))

        return await self._write(claim)

    async def acquire_lease(self, name: str, owner: str, now: float, until: float, *,
                            reentrant: bool = True) -> bool:
        """Hold `name` until `until` if it is free or has run out (or is ours already and
        `reentrant`): work that must run in one instance at a time."""

        async def acquire(tx: Tx) -> bool:
            return bool(await tx.execute(
                "INSERT INTO leases (name, owner, until) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "until = excluded.until "
                "WHERE leases.until <= ? OR (?::boolean AND leases.owner = excluded.owner)",
                (name, owner, until, now, reentrant)))

        return await self._write(acquire)

    async def release_lease(self, name: str, owner: str) -> None:
        await self._execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))

    async def take_slot(self, channel: str, interval: float, now: float) -> float:
        """One statement (the row locked while it runs): two instances taking a slot at
        once get two slots, `interval` apart."""

        async def take(tx: Tx) -> float:
            return float(await tx.fetchval(
                "INSERT INTO channel_pace (channel, next_at) "
                "VALUES (:channel, :now::double precision + :interval::double precision) "
                "ON CONFLICT (channel) DO UPDATE SET next_at = "
                "greatest(channel_pace.next_at, :now::double precision) "
                "+ :interval::double precision "
                "RETURNING next_at - :interval::double precision",
                {"channel": channel, "interval": interval, "now": now}))

        return await self._write(take)

    async def hold_channel(self, channel: str, until: float) -> None:
        await self._execute(
            "INSERT INTO channel_pace (channel, next_at) VALUES (?, ?) "
            "ON CONFLICT (channel) DO UPDATE SET "
            "next_at = greatest(channel_pace.next_at, excluded.next_at)", (channel, until))
