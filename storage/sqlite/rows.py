"""Columns, SQL shared by several parts, and the row helpers a transaction uses."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields as dc_fields
from dataclasses import replace
from typing import Any, Protocol

from storage.models import STAGE_ANALYZED, AuditEntry, CallFields, CallRecord, DncEntry, InboxEntry

_PRAGMAS = ["PRAGMA busy_timeout = 5000", "PRAGMA journal_mode = WAL", "PRAGMA foreign_keys = ON"]

SENTIMENTS = ("Positive", "Neutral", "Negative", "Unknown")

HOLD_SECONDS = 300.0

LIVE_SECONDS = 2 * 3600.0

UNCERTAIN_HOLD_SECONDS = 3600.0

INBOX_MAX_ATTEMPTS = 5

PURGED_COLUMNS = ("transcript", "raw_payload", "recording_url", "public_log_url")

_DNC_COLUMNS = "number, reason, added_by, call_id, added_at, team_id"  # DncEntry's fields, in order

_AUDIT_COLUMNS = ("id, at, action, outcome, user_id, channel_id, source, number, agent, reason, "
                  "call_id")

_DATA_COLUMNS = (
    "direction",
    "from_number",
    "to_number",
    "agent_id",
    "agent_name",
    "variables",
    "started_at",
    "ended_at",
    "duration_ms",
    "disconnection_reason",
    "sentiment",
    "successful",
    "in_voicemail",
    "cost_cents",
    "latency_ms",
    "summary",
    "extracted",
    "transcript",
    "recording_url",
    "public_log_url",
    "note",
)

JSON_COLUMNS = ("variables", "extracted")  # dicts, stored as JSON text

_ROUTING_COLUMNS = ("team_id", "channel_id", "user_id", "message_ts", "thread_ts", "request_key",
                    "campaign_id")

_RECORD_FIELDS = {f.name for f in dc_fields(CallRecord)}

_UPSERT_CALL = f"""
INSERT INTO calls (call_id, status, stage, created_at, updated_at, raw_payload, analyzed_at,
                   next_poll_at, {", ".join(_ROUTING_COLUMNS + _DATA_COLUMNS)})
VALUES (:call_id, :status, :stage, :now, :now, :raw_payload,
        CASE WHEN :stage >= {STAGE_ANALYZED} THEN :now END,
        CASE WHEN :stage < {STAGE_ANALYZED} THEN :poll_at END,
        {", ".join(":" + c for c in _ROUTING_COLUMNS + _DATA_COLUMNS)})
ON CONFLICT (call_id) DO UPDATE SET
    status = CASE WHEN excluded.stage >= calls.stage THEN excluded.status ELSE calls.status END,
    raw_payload = CASE WHEN excluded.stage >= calls.stage AND excluded.raw_payload IS NOT NULL
                       THEN excluded.raw_payload ELSE calls.raw_payload END,
    stage = max(calls.stage, excluded.stage),
    analyzed_at = coalesce(calls.analyzed_at, excluded.analyzed_at),
    next_poll_at = CASE WHEN max(calls.stage, excluded.stage) >= {STAGE_ANALYZED} THEN NULL
                        ELSE coalesce(excluded.next_poll_at, calls.next_poll_at) END,
    updated_at = excluded.updated_at,
    {", ".join(f"{c} = coalesce(calls.{c}, excluded.{c})" for c in _ROUTING_COLUMNS)},
    {", ".join(f"{c} = coalesce(excluded.{c}, calls.{c})" for c in _DATA_COLUMNS)}
"""

LIVE_COUNT_SQL = (
    "SELECT (SELECT count(*) FROM calls INDEXED BY calls_live "
    "WHERE call_id IS NOT NULL AND stage < 2 AND status IN ('registered', 'ongoing') "
    "AND created_at >= ?) + (SELECT count(*) FROM call_holds)")

USER_RECENT_SQL = (
    "SELECT created_at FROM (SELECT created_at FROM calls INDEXED BY calls_user "
    "WHERE user_id = :user AND created_at >= :since AND call_id IS NOT NULL "
    "ORDER BY created_at DESC LIMIT :limit) "
    "UNION ALL SELECT created_at FROM (SELECT created_at FROM call_holds INDEXED BY "
    "call_holds_user WHERE user_id = :user ORDER BY created_at DESC LIMIT :limit) "
    "ORDER BY 1 DESC LIMIT :limit")

NUMBER_RECENT_SQL = (
    "SELECT created_at FROM (SELECT created_at FROM calls INDEXED BY calls_number "
    "WHERE to_number = :number AND created_at >= :since AND call_id IS NOT NULL "
    "ORDER BY created_at DESC LIMIT :limit) "
    "UNION ALL SELECT created_at FROM (SELECT created_at FROM call_holds INDEXED BY "
    "call_holds_number WHERE to_number = :number ORDER BY created_at DESC LIMIT :limit) "
    "ORDER BY 1 DESC LIMIT :limit")

_LIGHT_COLUMNS = ", ".join(
    c for c in ("id", "call_id", "direction", "status", "stage", "created_at", "updated_at",
                "analyzed_at", *_ROUTING_COLUMNS, *_DATA_COLUMNS, "error")
    if c not in ("transcript", "summary")
)

def _apply_entry(conn: sqlite3.Connection, entry: InboxEntry, fields: CallFields,
                 params: dict[str, Any], now: float, default_channel: bool,
                 audit: Callable[[sqlite3.Connection, AuditEntry, float], None]) -> None:
    conn.execute(_UPSERT_CALL, params)
    _resolve_holds(conn, fields.request_key)
    if entry.merge:
        return  # the event was recorded (and its Slack work queued) when a poll saw it
    if entry.kinds and (default_channel or conn.execute(
            "SELECT channel_id IS NOT NULL FROM calls WHERE call_id = ?",
            (fields.call_id,)).fetchone()[0]):
        _enqueue(conn, fields.call_id, entry.kinds, now)
    if entry.dnc is not None:
        dnc, dnc_audit = entry.dnc
        if _dnc_insert(conn, replace(dnc, added_at=now)):
            audit(conn, dnc_audit, now)

def _resolve_holds(conn: sqlite3.Connection, request_key: str | None) -> None:
    """The create a hold was kept for turned out to be placed: the call row counts now."""
    if request_key:
        conn.execute("DELETE FROM call_holds WHERE request_key = ?", (request_key,))

def _rowcount(sql: str, params: dict[str, Any], conn: sqlite3.Connection) -> int:
    return int(conn.execute(sql, params).rowcount)

def _dnc_insert(conn: sqlite3.Connection, entry: DncEntry) -> bool:
    cur = conn.execute(
        "INSERT OR IGNORE INTO dnc (number, reason, added_by, call_id, added_at, team_id) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (entry.number, entry.reason, entry.added_by, entry.call_id, entry.added_at,
         entry.team_id))
    return bool(cur.rowcount)

def _enqueue(conn: sqlite3.Connection, call_id: str, kinds: Sequence[str], now: float) -> None:
    """Queue Slack work inside the caller's transaction, due at once; none for a campaign's
    call, whose outcome the campaign's own card and results carry."""
    row = conn.execute("SELECT campaign_id FROM calls WHERE call_id = ?", (call_id,)).fetchone()
    if row is not None and row[0] is not None:
        return
    conn.executemany(
        "INSERT INTO outbox (call_id, kind, created_at, next_attempt_at) VALUES (?, ?, ?, ?)",
        [(call_id, kind, now, now) for kind in kinds],
    )

def _upsert_params(fields: CallFields, now: float, poll_at: float | None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "call_id": fields.call_id,
        "status": fields.status,
        "stage": fields.stage,
        "now": now,
        "raw_payload": fields.raw_payload,
        "poll_at": poll_at,
    }
    for column in _ROUTING_COLUMNS + _DATA_COLUMNS:
        value = getattr(fields, column)
        if column in JSON_COLUMNS and value is not None:
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = int(value)
        elif isinstance(value, str) and "\x00" in value:
            value = value.replace("\x00", "")  # PostgreSQL cannot keep it: the same on both
        params[column] = value
    return params

class RowLike(Protocol):
    """A result row of either database (sqlite3.Row, asyncpg.Record): names and values."""

    def keys(self) -> Iterable[str]: ...

    def __getitem__(self, key: str, /) -> Any: ...


def _to_record(row: RowLike | Mapping[str, Any]) -> CallRecord:
    data = {key: row[key] for key in row.keys() if key in _RECORD_FIELDS}
    for column in JSON_COLUMNS:
        if column in data:
            data[column] = json.loads(data[column]) if data[column] else {}
    for flag in ("successful", "in_voicemail"):
        if data.get(flag) is not None:
            data[flag] = bool(data[flag])
    return CallRecord(**data)
