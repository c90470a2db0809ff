"""SQL shared by several parts, and the row helpers one transaction uses (PostgreSQL).

The columns and the conversions between rows and records are the SQLite store's
(storage/sqlite/rows.py): both stores keep the same columns with the same meanings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from storage.models import STAGE_ANALYZED, AuditEntry, CallFields, DncEntry, InboxEntry
from storage.postgres.connection import Tx
from storage.sqlite.rows import _DATA_COLUMNS, _ROUTING_COLUMNS

_UPSERT_CALL = f"""
INSERT INTO calls (call_id, status, stage, created_at, updated_at, raw_payload, analyzed_at,
                   next_poll_at, {", ".join(_ROUTING_COLUMNS + _DATA_COLUMNS)})
VALUES (:call_id, :status, :stage, :now, :now, :raw_payload,
        CASE WHEN :stage::integer >= {STAGE_ANALYZED} THEN :now::double precision END,
        CASE WHEN :stage::integer < {STAGE_ANALYZED} THEN :poll_at::double precision END,
        {", ".join(":" + c for c in _ROUTING_COLUMNS + _DATA_COLUMNS)})
ON CONFLICT (call_id) DO UPDATE SET
    status = CASE WHEN excluded.stage >= calls.stage THEN excluded.status ELSE calls.status END,
    raw_payload = CASE WHEN excluded.stage >= calls.stage AND excluded.raw_payload IS NOT NULL
                       THEN excluded.raw_payload ELSE calls.raw_payload END,
    stage = greatest(calls.stage, excluded.stage),
    analyzed_at = coalesce(calls.analyzed_at, excluded.analyzed_at),
    next_poll_at = CASE WHEN greatest(calls.stage, excluded.stage) >= {STAGE_ANALYZED}
                        THEN NULL ELSE coalesce(excluded.next_poll_at, calls.next_poll_at) END,
    updated_at = excluded.updated_at,
    {", ".join(f"{c} = coalesce(calls.{c}, excluded.{c})" for c in _ROUTING_COLUMNS)},
    {", ".join(f"{c} = coalesce(excluded.{c}, calls.{c})" for c in _DATA_COLUMNS)}
"""
# What applying a webhook needs next from the row it just wrote, without asking again; one
# statement for every caller, so each connection prepares (and caches) it once.
_UPSERT_CALL += "RETURNING channel_id IS NOT NULL, campaign_id"

Audit = Callable[[Tx, AuditEntry, float], Awaitable[None]]


async def _apply_entry(tx: Tx, entry: InboxEntry, fields: CallFields, params: dict[str, Any],
                       now: float, default_channel: bool, audit: Audit) -> None:
    """One webhook's writes, in as few round trips as the database allows: the row's
    channel and campaign come back from the upsert itself."""
    row = await tx.fetchrow(_UPSERT_CALL, params)
    assert row is not None  # an upsert that updates on conflict returns its row either way
    has_channel, campaign_id = row
    await _resolve_holds(tx, fields.request_key)
    if entry.merge:
        return  # the event was recorded (and its Slack work queued) when a poll saw it
    if entry.kinds and (default_channel or has_channel) and campaign_id is None:
        await _queue(tx, fields.call_id, entry.kinds, now)
    if entry.dnc is not None:
        dnc, dnc_audit = entry.dnc
        if await _dnc_insert(tx, replace(dnc, added_at=now)):
            await audit(tx, dnc_audit, now)


async def _resolve_holds(tx: Tx, request_key: str | None) -> None:
    """The create a hold was kept for turned out to be placed: the call row counts now."""
    if request_key:
        await tx.execute("DELETE FROM call_holds WHERE request_key = ?", (request_key,))


async def _dnc_insert(tx: Tx, entry: DncEntry) -> bool:
    return bool(await tx.execute(
        "INSERT INTO dnc (number, reason, added_by, call_id, added_at, team_id) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (team_id, number) DO NOTHING",
        (entry.number, entry.reason, entry.added_by, entry.call_id, entry.added_at,
         entry.team_id)))


async def _enqueue(tx: Tx, call_id: str, kinds: Sequence[str], now: float) -> None:
    """Queue Slack work inside the caller's transaction, due at once; none for a campaign's
    call, whose outcome the campaign's own card and results carry."""
    if await tx.fetchval("SELECT campaign_id FROM calls WHERE call_id = ?", (call_id,)) is not None:
        return
    await _queue(tx, call_id, kinds, now)


async def _queue(tx: Tx, call_id: str, kinds: Sequence[str], now: float) -> None:
    """Slack work due at once, in one statement whatever the number of kinds."""
    await tx.execute(
        "INSERT INTO outbox (call_id, kind, created_at, next_attempt_at) "
        "SELECT ?, kind, ?, ? FROM unnest(?::text[]) WITH ORDINALITY AS k(kind, n) ORDER BY n",
        (call_id, now, now, list(kinds)))
