"""Files people download: the audit log, calls (CSV and JSON lines), a campaign's results.

Every text cell is guarded against spreadsheet formulas, and numbers inside text are masked
unless full numbers are allowed."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from bot.input.phones import mask_numbers, mask_phone
from storage.models import AuditRow, CallRecord

AUDIT_COLUMNS = ("time_utc", "user", "channel", "action", "source", "number", "agent",
                 "outcome", "reason", "call_id")


def audit_csv(rows: Sequence[AuditRow]) -> str:
    """One row per audit entry; numbers are the masked ones the log keeps."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(AUDIT_COLUMNS)
    for r in rows:
        writer.writerow([
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.at)), r.user_id or "",
            r.channel_id or "", r.action, r.source or "", r.number or "", r.agent or "",
            r.outcome, r.reason or "", r.call_id or "",
        ])
    return out.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def guarded(text: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_cell(value: Any, full: bool) -> str:
    """A value from the input or the call, as a results cell: booleans true/false,
    structures as JSON, text guarded (and its numbers masked unless shown in full)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, dict | list | tuple):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    else:
        text = str(value)
    return guarded(text if full else mask_numbers(text))


def decimal_text(value: float | None, places: int) -> str:
    if value is None or not math.isfinite(value):
        return ""
    text = f"{value:.{places}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


CALL_COLUMNS = ("time_utc", "call_id", "direction", "number", "user", "channel", "agent",
                "campaign", "status", "duration_s", "cost_usd", "sentiment", "successful",
                "reason", "summary")


def _utc(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else ""


def call_header(fields: Sequence[str]) -> list[str]:
    """The CSV header: our columns, then one `field:<name>` per extracted field."""
    return [*CALL_COLUMNS, *(f"field:{name}" for name in fields)]


def call_cells(call: CallRecord, *, fields: Sequence[str], full: bool) -> list[str]:
    """One call as a CSV row (numbers masked unless `full`)."""
    number = call.other_number
    shown = (number or "") if full else mask_phone(number) if number else ""
    cells = [_utc(call.created_at), csv_cell(call.call_id, True), call.direction,
             guarded(shown), csv_cell(call.user_id, True), csv_cell(call.channel_id, True),
             csv_cell(call.agent_name or call.agent_id, full),
             str(call.campaign_id or ""), call.status,
             decimal_text(call.duration_ms / 1000 if call.duration_ms is not None else None, 3),
             decimal_text(call.cost_cents / 100 if call.cost_cents is not None else None, 4),
             csv_cell(call.sentiment, full), csv_cell(call.successful, full),
             csv_cell(call.disconnection_reason, full), csv_cell(call.summary, full)]
    return cells + [csv_cell(call.extracted.get(name), full) for name in fields]


def export_header(fields: Sequence[str]) -> list[str]:
    """`callbot export`'s CSV header: the Slack export's columns, then the transcript (a
    file on disk has room for it; a Slack download keeps to `call_header`)."""
    return [*call_header(fields), "transcript"]


def export_cells(call: CallRecord, *, fields: Sequence[str], full: bool) -> list[str]:
    """One call as a `callbot export` CSV row: `call_cells` and its transcript (numbers in
    it masked unless `full`)."""
    return [*call_cells(call, fields=fields, full=full), csv_cell(call.transcript, full)]


def calls_csv(calls: Iterable[CallRecord], *, fields: Sequence[str], full: bool) -> str:
    """Calls as a CSV file (UTF-8; the caller adds a BOM where a spreadsheet wants it)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(call_header(fields))
    for call in calls:
        writer.writerow(call_cells(call, fields=fields, full=full))
    return out.getvalue()


def call_json(call: CallRecord, *, full: bool, source: str = "slack-callbot",
              transcript: bool = False) -> str:
    """One call as a JSON line, for a knowledge base or a warehouse."""
    number = call.other_number
    record: dict[str, Any] = {
        "source": source, "call_id": call.call_id, "created_at": _utc(call.created_at),
        "started_at": _utc(call.started_at), "ended_at": _utc(call.ended_at),
        "direction": call.direction, "agent_id": call.agent_id, "agent": call.agent_name,
        "number": (number if full else mask_phone(number)) if number else None,
        "user": call.user_id, "channel": call.channel_id, "campaign": call.campaign_id,
        "status": call.status, "duration_ms": call.duration_ms,
        "cost_usd": call.cost_cents / 100 if call.cost_cents is not None else None,
        "sentiment": call.sentiment, "successful": call.successful,
        "reason": call.disconnection_reason,
        "summary": call.summary if full or call.summary is None else mask_numbers(call.summary),
        "fields": call.extracted or {},
    }
    if transcript:
        record["transcript"] = (call.transcript if full or call.transcript is None
                                else mask_numbers(call.transcript))
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))
