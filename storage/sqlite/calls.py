"""Calls and attempts (CallStore)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import fields as dc_fields
from dataclasses import replace
from typing import Any

from storage.models import STAGE_ANALYZED, Attempt, AuditEntry, CallFields, CallRecord, DncEntry
from storage.sqlite.connection import _Connection
from storage.sqlite.rows import (
    _LIGHT_COLUMNS,
    _UPSERT_CALL,
    JSON_COLUMNS,
    UNCERTAIN_HOLD_SECONDS,
    _dnc_insert,
    _enqueue,
    _resolve_holds,
    _to_record,
    _upsert_params,
)


class CallsPart(_Connection):
    """Calls and attempts (CallStore)."""

    async def record_failed_attempt(
        self, attempt: Attempt, error: str, *, error_kind: str | None = None,
        request_key: str | None = None, hold_id: int | None = None,
        audit: AuditEntry | None = None, uncertain: bool = False,
    ) -> int:
        """`uncertain`: Retell may have placed it, so its hold keeps counting against the
        limits until a webhook, a poll or expiry settles it (by its request key)."""
        now = time.time()
        route = attempt.route
        params = (
            now, now, error, error_kind, request_key, route.team_id, route.channel_id,
            route.user_id, route.message_ts, route.thread_ts, attempt.from_number,
            attempt.to_number, attempt.agent_id, attempt.agent_name,
            json.dumps(attempt.variables), attempt.note, route.campaign_id,
        )

        def insert(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                """INSERT INTO calls (status, stage, created_at, updated_at, error, error_kind,
                       request_key, team_id, channel_id, user_id, message_ts, thread_ts,
                       from_number, to_number, agent_id, agent_name, variables, note,
                       campaign_id)
                   VALUES ('failed', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                params,
            )
            release = hold_id
            if uncertain and hold_id is not None:  # the hold carries the key since admission
                conn.execute("UPDATE call_holds SET expires_at = ? WHERE id = ?",
                             (now + UNCERTAIN_HOLD_SECONDS, hold_id))
                release = None
            self._settle(conn, release, audit, now)
            return int(cur.lastrowid or 0)

        return await self._writer.write(insert)

    async def save_placed_call(
        self,
        attempt: Attempt,
        call_id: str,
        status: str,
        raw_payload: str | None,
        poll_at: float | None = None,
        *,
        hold_id: int | None = None,
        audit: AuditEntry | None = None,
        request_key: str | None = None,
    ) -> None:
        fields = CallFields(
            call_id=call_id,
            status=status,
            stage=0,
            team_id=attempt.route.team_id,
            channel_id=attempt.route.channel_id,
            user_id=attempt.route.user_id,
            message_ts=attempt.route.message_ts,
            thread_ts=attempt.route.thread_ts,
            campaign_id=attempt.route.campaign_id,
            from_number=attempt.from_number,
            to_number=attempt.to_number,
            agent_id=attempt.agent_id,
            agent_name=attempt.agent_name,
            variables=attempt.variables,
            note=attempt.note,
            raw_payload=raw_payload,
            request_key=request_key,
        )
        now = time.time()
        params = _upsert_params(fields, now, poll_at)

        def save(conn: sqlite3.Connection) -> None:
            conn.execute(_UPSERT_CALL, params)
            # The card is then updated by the outbox worker alone, so it never shows an
            # older state than a webhook that raced ahead of this answer.
            _enqueue(conn, call_id, ("card",), now)
            _resolve_holds(conn, request_key)
            self._settle(conn, hold_id, audit, now)

        await self._writer.write(save)

    async def record_events(
        self,
        events: Sequence[tuple[str, Sequence[str]]],
        fields: CallFields,
        *,
        source: str = "webhook",
        poll_at: float | None = None,
        always: Sequence[str] = (),
        dnc: tuple[DncEntry, AuditEntry] | None = None,
    ) -> list[str]:
        """Store new events with the call's changes and their Slack work, in one transaction;
        `dnc` (the callee asked not to be called) is added with them, once."""
        now = time.time()
        params = _upsert_params(fields, now, poll_at)

        def record(conn: sqlite3.Connection) -> list[str]:
            new: list[str] = []
            kinds: list[str] = []
            merge = False
            for event, event_kinds in events:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO webhook_events (call_id, event, received_at, source) "
                    "VALUES (?, ?, ?, ?)",
                    (fields.call_id, event, now, source),
                )
                if cur.rowcount:
                    new.append(event)
                    kinds += [k for k in event_kinds if k not in kinds]
                elif source == "webhook":
                    # The real webhook after a poll saw the call: keep its fuller data.
                    cur = conn.execute(
                        "UPDATE webhook_events SET source = 'webhook' "
                        "WHERE call_id = ? AND event = ? AND source = 'poll'",
                        (fields.call_id, event),
                    )
                    merge = merge or bool(cur.rowcount)
            if new or merge or always:
                conn.execute(_UPSERT_CALL, params)
                _resolve_holds(conn, fields.request_key)
            kinds += [k for k in always if k not in kinds]
            if kinds:
                _enqueue(conn, fields.call_id, kinds, now)
            if new and dnc is not None:
                entry, audit = dnc
                if _dnc_insert(conn, replace(entry, added_at=now)):
                    self._audit(conn, audit, now)
            return new

        return await self._writer.write(record)

    async def get_call(self, call_id: str) -> CallRecord | None:
        rows = await self._read("SELECT * FROM calls WHERE call_id = ?", (call_id,))
        return _to_record(rows[0]) if rows else None

    async def get_call_by_row(self, row_id: int) -> CallRecord | None:
        rows = await self._read("SELECT * FROM calls WHERE id = ?", (row_id,))
        return _to_record(rows[0]) if rows else None

    async def recent_calls(self, user_id: str, limit: int) -> list[CallRecord]:
        rows = await self._read(
            f"SELECT {_LIGHT_COLUMNS} FROM calls WHERE user_id = ? "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            (user_id, limit),
        )
        return [_to_record(r) for r in rows]

    async def set_card(self, call_id: str, channel_id: str, message_ts: str) -> None:
        await self._execute(
            "UPDATE calls SET channel_id = ?, message_ts = ?, updated_at = ? WHERE call_id = ?",
            (channel_id, message_ts, time.time(), call_id),
        )

    async def calls_due_for_poll(self, now: float, limit: int) -> list[CallRecord]:
        rows = await self._read(
            f"SELECT {_LIGHT_COLUMNS}, poll_attempts FROM calls INDEXED BY calls_poll "
            "WHERE next_poll_at <= ? ORDER BY next_poll_at LIMIT ?",
            (now, limit),
        )
        return [_to_record(r) for r in rows]

    async def schedule_poll(self, call_id: str, next_poll_at: float | None) -> None:
        """After a poll: when to look again (None: never), counting the attempt."""
        await self._execute(
            "UPDATE calls SET next_poll_at = CASE WHEN stage >= ? THEN NULL ELSE ? END, "
            "poll_attempts = poll_attempts + 1 WHERE call_id = ?",
            (STAGE_ANALYZED, next_poll_at, call_id),
        )

    async def import_calls(self, records: Iterable[CallRecord], batch: int = 20_000) -> int:
        """Bulk-load calls as they stand (bench history, imports): plain inserts, `batch`
        rows per transaction through the group writer, no outbox work and no events. A call
        id already stored is skipped; `id` is assigned here. Returns the rows added."""
        columns = [f.name for f in dc_fields(CallRecord) if f.name != "id"]
        sql = (f"INSERT OR IGNORE INTO calls ({', '.join(columns)}) "
               f"VALUES ({', '.join('?' * len(columns))})")

        def values(record: CallRecord) -> tuple[Any, ...]:
            out: list[Any] = []
            for column in columns:
                value = getattr(record, column)
                if column in JSON_COLUMNS:
                    value = json.dumps(value) if value else None
                elif isinstance(value, bool):
                    value = int(value)
                out.append(value)
            return tuple(out)

        async def insert(rows: list[CallRecord]) -> int:
            def run(conn: sqlite3.Connection) -> int:
                return int(conn.executemany(sql, map(values, rows)).rowcount)

            return await self._writer.write(run)

        added = 0
        chunk: list[CallRecord] = []
        for record in records:
            chunk.append(record)
            if len(chunk) >= batch:
                added += await insert(chunk)
                chunk = []
        if chunk:
            added += await insert(chunk)
        return added
