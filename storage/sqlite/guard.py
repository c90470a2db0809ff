"""Holds under the limits, the audit log, do-not-call (GuardStore)."""

from __future__ import annotations

import sqlite3
import time

from storage.models import Admission, AuditEntry, AuditRow, DncEntry, Limits
from storage.sqlite.connection import _Connection
from storage.sqlite.rows import (
    _AUDIT_COLUMNS,
    _DNC_COLUMNS,
    HOLD_SECONDS,
    LIVE_COUNT_SQL,
    LIVE_SECONDS,
    NUMBER_RECENT_SQL,
    USER_RECENT_SQL,
    _dnc_insert,
)

# `team_id` of a read or a removal: None, every workspace's rows (one workspace); else that
# workspace's and those kept before workspaces were told apart ("").
_IN_TEAM = "team_id IN ('', ?)"

class GuardPart(_Connection):
    """Holds under the limits, the audit log, do-not-call (GuardStore)."""

    async def admit(self, user_id: str | None, limits: Limits, now: float, *,
                    request_key: str | None = None, number: str | None = None) -> Admission:
        """Check the limits and take a hold in one transaction, so no two requests can
        both take the last place (in this process or another, and across restarts)."""

        def admit(conn: sqlite3.Connection) -> Admission:
            # Each count reads only what it counts (calls still live through a partial
            # index; one user's latest calls up to the limit), never the whole history.
            conn.execute("DELETE FROM call_holds WHERE coalesce(expires_at, created_at + ?) < ?",
                         (HOLD_SECONDS, now))
            if limits.concurrent:
                live = int(conn.execute(LIVE_COUNT_SQL, (now - LIVE_SECONDS,)).fetchone()[0])
                if live >= limits.concurrent:
                    return Admission(None, "concurrent", live)
            for name, limit, window in (("per_hour", limits.per_hour, 3600.0),
                                        ("per_day", limits.per_day, 86400.0)):
                if not limit or not user_id:
                    continue
                # The newest `limit` calls and holds: if there are that many, the oldest of
                # them leaving the window is when a place frees up.
                times = [float(r[0]) for r in conn.execute(
                    USER_RECENT_SQL, {"user": user_id, "since": now - window, "limit": limit})]
                if len(times) >= limit:
                    return Admission(None, name, len(times), times[-1] + window)
            if limits.per_number_day and number:
                times = [float(r[0]) for r in conn.execute(NUMBER_RECENT_SQL, {
                    "number": number, "since": now - 86400.0,
                    "limit": limits.per_number_day})]
                if len(times) >= limits.per_number_day:
                    return Admission(None, "per_number", len(times), times[-1] + 86400.0)
            # The hold carries the create's key: whichever way the call is recorded (our own
            # save, its webhook, a poll) the hold gives way to it.
            cur = conn.execute(
                "INSERT INTO call_holds (user_id, created_at, request_key, to_number) "
                "VALUES (?, ?, ?, ?)", (user_id, now, request_key, number))
            return Admission(int(cur.lastrowid or 0))

        return await self._writer.write(admit)

    async def release_hold(self, hold_id: int, audit: AuditEntry | None = None) -> None:
        """An admitted attempt that never reached Retell (the card could not be posted)."""
        await self._writer.write(lambda conn: self._settle(conn, hold_id, audit, time.time()))

    async def uncertain_holds(self, created_before: float, limit: int) -> list[tuple[int, str]]:
        """Holds kept for creates whose outcome is unknown: (hold id, request key)."""
        rows = await self._read(
            "SELECT id, request_key FROM call_holds WHERE expires_at IS NOT NULL "
            "AND request_key IS NOT NULL AND created_at <= ? ORDER BY created_at LIMIT ?",
            (created_before, limit))
        return [(int(r[0]), str(r[1])) for r in rows]

    async def audit(self, entry: AuditEntry) -> None:
        await self._writer.write(lambda conn: self._audit(conn, entry, time.time()))

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

        def add(conn: sqlite3.Connection) -> bool:
            added = _dnc_insert(conn, entry)
            if audit is not None:
                self._audit(conn, audit, entry.added_at)
            return added

        return await self._writer.write(add)

    async def dnc_remove(self, number: str, audit: AuditEntry | None = None, *,
                         team_id: str | None = None) -> bool:
        where, params = _dnc_where(number, team_id)

        def remove(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(f"DELETE FROM dnc WHERE {where}", params)
            if audit is not None:
                self._audit(conn, audit, time.time())
            return bool(cur.rowcount)

        return await self._writer.write(remove)

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
