"""Files people download: the audit log as CSV (later, calls as CSV and JSON lines)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence

from storage.models import AuditRow

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
