"""Calls and attempts (CallStore)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import fields as dc_fields
from dataclasses import replace
from typing import Any

from storage.models import STAGE_ANALYZED, Attempt, AuditEntry, CallFields, CallRecord, DncEntry
from storage.postgres.connection import Tx, _Connection
from storage.postgres.rows import _UPSERT_CALL, _dnc_insert, _enqueue, _resolve_holds
from storage.sqlite.rows import (
    _LIGHT_COLUMNS,
    JSON_COLUMNS,
    UNCERTAIN_HOLD_SECONDS,
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

        async def insert(tx: Tx) -> int:
            row_id = await tx.fetchval(
                """INSERT INTO calls (status, stage, created_at, updated_at, error, error_kind,
                       request_key, team_id, channel_id, user_id, message_ts, thread_ts,
                       from_number, to_number, agent_id, agent_name, variables, note,
                       campaign_id)
                   VALUES ('failed', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   RETURNING id""",
                params,
            )
            release = hold_id
            if uncertain and hold_id is not None:  # the hold carries the key since admission
                await tx.execute("UPDATE call_holds SET expires_at = ? WHERE id = ?",
                                 (now + UNCERTAIN_HOLD_SECONDS, hold_id))
                release = None
            await self._settle(tx, release, audit, now)
            return int(row_id)

        return await self._write(insert)

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

        async def save(tx: Tx) -> None:
            await tx.execute(_UPSERT_CALL, params)
            # The card is then updated by the outbox worker alone, so it never shows an
            # older state than a webhook that raced ahead of this answer.
            await _enqueue(tx, call_id, ("card",), now)
            await _resolve_holds(tx, request_key)
            await self._settle(tx, hold_id, audit, now)

        await self._write(save)

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

        async def record(tx: Tx) -> list[str]:
            new: list[str] = []
            kinds: list[str] = []
            merge = False
            for event, event_kinds in events:
                if await tx.execute(
                    "INSERT INTO webhook_events (call_id, event, received_at, source) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (fields.call_id, event, now, source),
                ):
                    new.append(event)
                    kinds += [k for k in event_kinds if k not in kinds]
                elif source == "webhook":
                    # The real webhook after a poll saw the call: keep its fuller data.
                    merge = bool(await tx.execute(
                        "UPDATE webhook_events SET source = 'webhook' "
                        "WHERE call_id = ? AND event = ? AND source = 'poll'",
                        (fields.call_id, event),
                    )) or merge
            if new or merge or always:
                await tx.execute(_UPSERT_CALL, params)
                await _resolve_holds(tx, fields.request_key)
            kinds += [k for k in always if k not in kinds]
            if kinds:
                await _enqueue(tx, fields.call_id, kinds, now)
            if new and dnc is not None:
                entry, audit = dnc
                if await _dnc_insert(tx, replace(entry, added_at=now)):
                    await self._audit(tx, audit, now)
            return new

        return await self._write(record)

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
            f"SELECT {_LIGHT_COLUMNS}, poll_attempts FROM calls "
            "WHERE next_poll_at <= ? ORDER BY next_poll_at LIMIT ?",
            (now, limit),
        )
        return [_to_record(r) for r in rows]

    async def schedule_poll(self, call_id: str, next_poll_at: float | None) -> None:
        """After a poll: when to look again (None: never), counting the attempt."""
        await self._execute(
            "UPDATE calls SET next_poll_at = CASE WHEN stage >= ? THEN NULL "
            "ELSE ?::double precision END, "
            "poll_attempts = poll_attempts + 1 WHERE call_id = ?",
            (STAGE_ANALYZED, next_poll_at, call_id),
        )

    async def import_calls(self, records: Iterable[CallRecord], batch: int = 20_000) -> int:
        """Bulk-load calls as they stand (bench history, imports), `batch` rows per
        transaction, no outbox work and no events. A call id already stored is skipped;
        `id` is assigned here. Returns the rows added."""
        columns = [f.name for f in dc_fields(CallRecord) if f.name != "id"]
        arrays_sql = ", ".join(f"?::{_ARRAY_TYPES.get(c, 'text[]')}" for c in columns)
        # One statement per batch: each column as an array, unnested into rows.
        sql = (f"INSERT INTO calls ({', '.join(columns)}) "
               f"SELECT * FROM unnest({arrays_sql}) ON CONFLICT DO NOTHING")

        def value(column: str, record: CallRecord) -> Any:
            value = getattr(record, column)
            if column in JSON_COLUMNS:
                return json.dumps(value) if value else None
            if isinstance(value, bool):
                return int(value)
            return value

        async def insert(rows: list[CallRecord]) -> int:
            arrays = [[value(c, r) for r in rows] for c in columns]

            async def run(tx: Tx) -> int:
                return await tx.execute(sql, arrays)

            return await self._write(run)

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


_FLOAT = "double precision[]"
_ARRAY_TYPES = {
    "stage": "integer[]", "poll_attempts": "integer[]", "successful": "integer[]",
    "in_voicemail": "integer[]", "duration_ms": "bigint[]", "campaign_id": "bigint[]",
    "created_at": _FLOAT, "updated_at": _FLOAT, "started_at": _FLOAT, "ended_at": _FLOAT,
    "analyzed_at": _FLOAT, "next_poll_at": _FLOAT, "cost_cents": _FLOAT, "latency_ms": _FLOAT,
}
