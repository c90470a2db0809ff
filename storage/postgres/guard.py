"""Holds under the limits, the audit log, do-not-call (GuardStore).

SQLite keeps the limits exact through its single writer. Here several instances admit at
once, so every admission first takes one transaction-scoped advisory lock, the same in
every instance: admissions then run one at a time across all instances, each counting the
holds of those before it, as under SQLite's writer. One lock for all of admission rather
than one per person or number: the global cap reads every admission's hold anyway, and an
admission is a few indexed reads and one insert, so the lock is held for a moment."""

from __future__ import annotations

import time

from storage.models import Admission, AuditEntry, AuditRow, DncEntry, Limits
from storage.postgres.connection import Tx, _Connection
from storage.postgres.rows import _dnc_insert
from storage.sqlite.rows import _AUDIT_COLUMNS, _DNC_COLUMNS, HOLD_SECONDS, LIVE_SECONDS

# A hold still counts until it expires: SQLite deletes expired holds before counting; here
# the delete skips holds another transaction has locked, so the counts leave expired ones
# out themselves (the same answer as SQLite's, whatever the delete skipped).
_HOLD_LIVE = "coalesce(expires_at, created_at + :hold) >= :now"

LIVE_COUNT_SQL = (
    "SELECT (SELECT count(*) FROM calls "
    "WHERE call_id IS NOT NULL AND stage < 2 AND status IN ('registered', 'ongoing') "
    "AND created_at >= :since) "
    f"+ (SELECT count(*) FROM call_holds WHERE {_HOLD_LIVE})")

USER_RECENT_SQL = (
    "SELECT created_at FROM ((SELECT created_at FROM calls "
    "WHERE user_id = :user AND created_at >= :since AND call_id IS NOT NULL "
    "ORDER BY created_at DESC LIMIT :limit) "
    "UNION ALL (SELECT created_at FROM call_holds "
    f"WHERE user_id = :user AND {_HOLD_LIVE} ORDER BY created_at DESC LIMIT :limit)) recent "
    "ORDER BY 1 DESC LIMIT :limit")

NUMBER_RECENT_SQL = (
    "SELECT created_at FROM ((SELECT created_at FROM calls "
    "WHERE to_number = :number AND created_at >= :since AND call_id IS NOT NULL "
    "ORDER BY created_at DESC LIMIT :limit) "
    "UNION ALL (SELECT created_at FROM call_holds "
    f"WHERE to_number = :number AND {_HOLD_LIVE} ORDER BY created_at DESC LIMIT :limit)) "
    "recent ORDER BY 1 DESC LIMIT :limit")

# One key, the same in every instance: "cb:admit" as a 64-bit integer (positive, so it
# never equals connection.MIGRATION_LOCK or any other key of the app's).
ADMISSION_LOCK = int.from_bytes(b"cb:admit", "big")

_DELETE_EXPIRED_HOLDS = (
    "DELETE FROM call_holds WHERE id IN (SELECT id FROM call_holds "
    "WHERE coalesce(expires_at, created_at + :hold) < :now FOR UPDATE SKIP LOCKED)")


async def lock_admission(tx: Tx) -> None:
    """Wait for any admission in progress (in this instance or another); released when
    this transaction ends, whichever way it ends."""
    await tx.execute("SELECT pg_advisory_xact_lock(?::bigint)", (ADMISSION_LOCK,))



# `team_id` of a read or a removal: None, every workspace's rows (one workspace); else that
# workspace's and those kept before workspaces were told apart ("").
_IN_TEAM = "team_id IN ('', ?)"

class GuardPart(_Connection):
    """Holds under the limits, the audit log, do-not-call (GuardStore)."""

    async def admit(self, user_id: str | None, limits: Limits, now: float, *,
                    request_key: str | None = None, number: str | None = None) -> Admission:
        """Check the limits and take a hold in one transaction, so no two requests can
        both take the last place (in this instance or another, and across restarts)."""
        now = float(now)

        async def admit(tx: Tx) -> Admission:
            await lock_admission(tx)
            # Read committed: every statement from here on sees the holds and calls of the
            # admissions that held the lock before us (each statement takes a new snapshot).
            await tx.execute(_DELETE_EXPIRED_HOLDS, {"hold": HOLD_SECONDS, "now": now})
            if limits.concurrent:
                live = int(await tx.fetchval(LIVE_COUNT_SQL, {
                    "since": now - LIVE_SECONDS, "hold": HOLD_SECONDS, "now": now}))
                if live >= limits.concurrent:
                    return Admission(None, "concurrent", live)
            for name, limit, window in (("per_hour", limits.per_hour, 3600.0),
                                        ("per_day", limits.per_day, 86400.0)):
                if not limit or not user_id:
                    continue
                # The newest `limit` calls and holds: if there are that many, the oldest of
                # them leaving the window is when a place frees up.
                times = [float(r[0]) for r in await tx.fetch(USER_RECENT_SQL, {
                    "user": user_id, "since": now - window, "limit": limit,
                    "hold": HOLD_SECONDS, "now": now})]
                if len(times) >= limit:
                    return Admission(None, name, len(times), times[-1] + window)
            if limits.per_number_day and number:
                times = [float(r[0]) for r in await tx.fetch(NUMBER_RECENT_SQL, {
                    "number": number, "since": now - 86400.0,
                    "limit": limits.per_number_day, "hold": HOLD_SECONDS, "now": now})]
                if len(times) >= limits.per_number_day:
                    return Admission(None, "per_number", len(times), times[-1] + 86400.0)
            # The hold carries the create's key: whichever way the call is recorded (our own
            # save, its webhook, a poll) the hold gives way to it.
            hold_id = await tx.fetchval(
                "INSERT INTO call_holds (user_id, created_at, request_key, to_number) "
                "VALUES (?, ?, ?, ?) RETURNING id", (user_id, now, request_key, number))
            return Admission(int(hold_id))

        return await self._write(admit)

    async def release_hold(self, hold_id: int, audit: AuditEntry | None = None) -> None:
        """An admitted attempt that never reached Retell (the card could not be posted)."""
        now = time.time()

        async def release(tx: Tx) -> None:
            await self._settle(tx, hold_id, audit, now)

        await self._write(release)

    async def uncertain_holds(self, created_before: float, limit: int) -> list[tuple[int, str]]:
        """Holds kept for creates whose outcome is unknown: (hold id, request key)."""
        rows = await self._read(
            "SELECT id, request_key FROM call_holds WHERE expires_at IS NOT NULL "
            "AND request_key IS NOT NULL AND created_at <= ? ORDER BY created_at LIMIT ?",
            (float(created_before), limit))
        return [(int(r[0]), str(r[1])) for r in rows]

    async def audit(self, entry: AuditEntry) -> None:
        now = time.time()

        async def write(tx: Tx) -> None:
            await self._audit(tx, entry, now)

        await self._write(write)

    async def audit_rows(self, limit: int, *, user_id: str | None = None,
                         number: str | None = None,
                         team_id: str | None = None) -> list[AuditRow]:
        """Newest first; all of them (oldest first) when `limit` is 0, for an export;
        `team_id`: that workspace's only."""
        where, params = "", []
        if user_id is not None:
            where, params = "WHERE user_id = ?", [user_id]
        elif number is not None:
            where, params = "WHERE number_key = ?", [self.number_key(number)]
        if team_id is not None:
            where = f"{where} AND team_id = ?" if where else "WHERE team_id = ?"
            params.append(team_id)
        order = "ORDER BY id DESC LIMIT ?" if limit else "ORDER BY id"
        rows = await self._read(f"SELECT {_AUDIT_COLUMNS} FROM audit {where} {order}",
                                [*params, limit] if limit else params)
        return [AuditRow(*tuple(r)) for r in rows]

    async def dnc_add(self, entry: DncEntry, audit: AuditEntry | None = None) -> bool:
        """False if the number was on the list already (the list is left as it was)."""

        async def add(tx: Tx) -> bool:
            added = await _dnc_insert(tx, entry)
            if audit is not None:
                await self._audit(tx, audit, entry.added_at)
            return added

        return await self._write(add)

    async def dnc_remove(self, number: str, audit: AuditEntry | None = None, *,
                         team_id: str | None = None) -> bool:
        now = time.time()
        where, params = _dnc_where(number, team_id)

        async def remove(tx: Tx) -> bool:
            removed = await tx.execute(f"DELETE FROM dnc WHERE {where}", params)
            if audit is not None:
                await self._audit(tx, audit, now)
            return bool(removed)

        return await self._write(remove)

    async def dnc_get(self, number: str, *, team_id: str | None = None) -> DncEntry | None:
        where, params = _dnc_where(number, team_id)
        rows = await self._read(f"SELECT {_DNC_COLUMNS} FROM dnc WHERE {where} "
                                "ORDER BY added_at LIMIT 1", params)
        return DncEntry(*tuple(rows[0])) if rows else None

    async def dnc_list(self, limit: int, *,
                       team_id: str | None = None) -> tuple[list[DncEntry], int]:
        """The newest entries, and how many there are in all."""
        where, params = ("", []) if team_id is None else (f"WHERE {_IN_TEAM}", [team_id])
        rows = await self._read(f"SELECT {_DNC_COLUMNS} FROM dnc {where} "
                                "ORDER BY added_at DESC LIMIT ?", [*params, limit])
        total = await self._read(f"SELECT count(*) FROM dnc {where}", params)
        return [DncEntry(*tuple(r)) for r in rows], int(total[0][0])


def _dnc_where(number: str, team_id: str | None) -> tuple[str, list[str]]:
    if team_id is None:
        return "number = ?", [number]
    return f"number = ? AND {_IN_TEAM}", [number, team_id]
