"""Scheduled calls (ScheduleStore): kept until their time, then claimed and fired once."""

from __future__ import annotations

import json
from typing import Any

from storage.models import Scheduled
from storage.postgres.connection import Tx, _Connection
from storage.sqlite.schedule import _COLUMNS, _scheduled


class SchedulePart(_Connection):
    """Scheduled calls (ScheduleStore)."""

    async def _changed(self, sql: str, params: tuple[Any, ...]) -> Scheduled | None:
        """The row one conditional `UPDATE ... RETURNING` changed, committed; None if its
        WHERE held for no row (another instance got there first)."""
        async def run(tx: Tx) -> Scheduled | None:
            row = await tx.fetchrow(sql, params)
            return _scheduled(row) if row is not None else None

        return await self._write(run)

    async def schedule(self, entry: Scheduled, now: float) -> int:
        async def insert(tx: Tx) -> int:
            return int(await tx.fetchval(
                "INSERT INTO scheduled_calls (team_id, channel_id, user_id, thread_ts, number, "
                "agent, variables, note, from_number, due_at, status, request_key, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'scheduled', ?, ?, ?) "
                "RETURNING id",
                (entry.team_id, entry.channel_id, entry.user_id, entry.thread_ts, entry.number,
                 entry.agent, json.dumps(entry.variables), entry.note, entry.from_number,
                 entry.due_at, entry.request_key, now, now)))

        return await self._write(insert)

    async def set_schedule_card(self, schedule_id: int, card_ts: str) -> None:
        await self._execute("UPDATE scheduled_calls SET card_ts = ? WHERE id = ?",
                            (card_ts, schedule_id))

    async def get_schedule(self, schedule_id: int) -> Scheduled | None:
        rows = await self._read(f"SELECT {_COLUMNS} FROM scheduled_calls WHERE id = ?",
                                (schedule_id,))
        return _scheduled(rows[0]) if rows else None

    async def due_schedules(self, now: float, limit: int) -> list[Scheduled]:
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM scheduled_calls "
            "WHERE status IN ('scheduled', 'firing') AND due_at <= ? "
            "AND (status = 'scheduled' OR claimed_until < ?) ORDER BY due_at LIMIT ?",
            (now, now, limit))
        return [_scheduled(r) for r in rows]

    async def next_due(self) -> float | None:
        rows = await self._read(
            "SELECT min(due_at) FROM scheduled_calls WHERE status IN ('scheduled', 'firing')")
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    async def claim_schedule(self, schedule_id: int, now: float, until: float, *,
                             early: bool = False) -> Scheduled | None:
        """One conditional UPDATE: of two instances claiming at once, the second finds the
        row already firing (its WHERE no longer holds once the first commits)."""
        return await self._changed(
            "UPDATE scheduled_calls SET status = 'firing', claimed_until = ?, "
            "updated_at = ? WHERE id = ? AND (due_at <= ? OR ?::boolean) AND "
            "(status = 'scheduled' OR (status = 'firing' AND claimed_until < ?)) "
            f"RETURNING {_COLUMNS}", (until, now, schedule_id, now, bool(early), now))

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
        return await self._changed(
            "UPDATE scheduled_calls SET status = 'cancelled', outcome = 'cancelled', "
            "detail = ?, updated_at = ? WHERE id = ? AND status = 'scheduled' "
            f"RETURNING {_COLUMNS}", (by, now, schedule_id))

    async def upcoming_schedules(self, user_id: str | None, limit: int) -> list[Scheduled]:
        if user_id is None:
            rows = await self._read(
                f"SELECT {_COLUMNS} FROM scheduled_calls WHERE status = 'scheduled' "
                "ORDER BY due_at LIMIT ?", (limit,))
        else:
            rows = await self._read(
                f"SELECT {_COLUMNS} FROM scheduled_calls "
                "WHERE user_id = ? AND status = 'scheduled' ORDER BY due_at LIMIT ?",
                (user_id, limit))
        return [_scheduled(r) for r in rows]
