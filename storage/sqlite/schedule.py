"""Scheduled calls (ScheduleStore): kept until their time, then claimed and fired once."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from storage.models import Scheduled
from storage.sqlite.connection import _Connection

_COLUMNS = ("id, channel_id, user_id, number, due_at, request_key, status, team_id, "
            "thread_ts, card_ts, agent, variables, note, from_number, outcome, detail, "
            "call_id, created_at")


def _scheduled(row: Any) -> Scheduled:
    values = list(row)
    values[11] = json.loads(values[11]) if values[11] else {}
    return Scheduled(*values)


def _changed(conn: sqlite3.Connection, cur: sqlite3.Cursor,
             schedule_id: int) -> Scheduled | None:
    """The row an UPDATE just changed (in its transaction), or None if it changed none."""
    if not cur.rowcount:
        return None
    row = conn.execute(f"SELECT {_COLUMNS} FROM scheduled_calls WHERE id = ?",
                       (schedule_id,)).fetchone()
    return _scheduled(row)


class SchedulePart(_Connection):
    """Scheduled calls (ScheduleStore)."""

    async def schedule(self, entry: Scheduled, now: float) -> int:
        def insert(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO scheduled_calls (team_id, channel_id, user_id, thread_ts, number, "
                "agent, variables, note, from_number, due_at, status, request_key, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'scheduled', ?, ?, ?)",
                (entry.team_id, entry.channel_id, entry.user_id, entry.thread_ts, entry.number,
                 entry.agent, json.dumps(entry.variables), entry.note, entry.from_number,
                 entry.due_at, entry.request_key, now, now))
            return int(cur.lastrowid or 0)

        return await self._writer.write(insert)

    async def set_schedule_card(self, schedule_id: int, card_ts: str) -> None:
        await self._execute("UPDATE scheduled_calls SET card_ts = ? WHERE id = ?",
                            (card_ts, schedule_id))

    async def get_schedule(self, schedule_id: int) -> Scheduled | None:
        rows = await self._read(f"SELECT {_COLUMNS} FROM scheduled_calls WHERE id = ?",
                                (schedule_id,))
        return _scheduled(rows[0]) if rows else None

    async def due_schedules(self, now: float, limit: int) -> list[Scheduled]:
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM scheduled_calls INDEXED BY scheduled_due "
            "WHERE status IN ('scheduled', 'firing') AND due_at <= ? "
            "AND (status = 'scheduled' OR claimed_until < ?) ORDER BY due_at LIMIT ?",
            (now, now, limit))
        return [_scheduled(r) for r in rows]

    async def next_due(self) -> float | None:
        rows = await self._read(
            "SELECT min(due_at) FROM scheduled_calls INDEXED BY scheduled_due "
            "WHERE status IN ('scheduled', 'firing')")
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    async def claim_schedule(self, schedule_id: int, now: float, until: float, *,
                             early: bool = False) -> Scheduled | None:
        def claim(conn: sqlite3.Connection) -> Scheduled | None:
            cur = conn.execute(
                "UPDATE scheduled_calls SET status = 'firing', claimed_until = ?, "
                "updated_at = ? WHERE id = ? AND (due_at <= ? OR ?) AND "
                "(status = 'scheduled' OR (status = 'firing' AND claimed_until < ?))",
                (until, now, schedule_id, now, early, now))
            return _changed(conn, cur, schedule_id)

        return await self._writer.write(claim)

    async def finish_schedule(self, schedule_id: int, outcome: str, now: float, *,
                              detail: str | None = None, call_id: str | None = None,
                              status: str = "done") -> None:
        await self._execute(
            "UPDATE scheduled_calls SET status = ?, outcome = ?, detail = ?, call_id = ?, "
            "claimed_until = NULL, updated_at = ? WHERE id = ?",
            (status, outcome, detail, call_id, now, schedule_id))

    async def reschedule(self, schedule_id: int, due_at: float, now: float) -> None:
        await self._execute(
            "UPDATE scheduled_calls SET status = 'scheduled', due_at = ?, claimed_until = NULL, "
            "updated_at = ? WHERE id = ?", (due_at, now, schedule_id))

    async def cancel_schedule(self, schedule_id: int, by: str, now: float) -> Scheduled | None:
        def cancel(conn: sqlite3.Connection) -> Scheduled | None:
            cur = conn.execute(
                "UPDATE scheduled_calls SET status = 'cancelled', outcome = 'cancelled', "
                "detail = ?, updated_at = ? WHERE id = ? AND status = 'scheduled'",
                (by, now, schedule_id))
            return _changed(conn, cur, schedule_id)

        return await self._writer.write(cancel)

    async def upcoming_schedules(self, user_id: str | None, limit: int) -> list[Scheduled]:
        if user_id is None:
            rows = await self._read(
                f"SELECT {_COLUMNS} FROM scheduled_calls INDEXED BY scheduled_due "
                "WHERE status IN ('scheduled', 'firing') AND status = 'scheduled' "
                "ORDER BY due_at LIMIT ?", (limit,))
        else:
            rows = await self._read(
                f"SELECT {_COLUMNS} FROM scheduled_calls INDEXED BY scheduled_user "
                "WHERE user_id = ? AND status = 'scheduled' ORDER BY due_at LIMIT ?",
                (user_id, limit))
        return [_scheduled(r) for r in rows]
