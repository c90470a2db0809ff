"""The webhook inbox (InboxStore)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from storage.models import InboxEntry
from storage.sqlite.connection import _Connection
from storage.sqlite.rows import (
    INBOX_MAX_ATTEMPTS,
    _apply_entry,
    _upsert_params,
)

# What one entry's data can make a write fail with; any other error (the disk, a lock) is
# the moment's: the batch fails whole and is tried again later, no entry's attempts counted.
_ENTRY_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError,
                 sqlite3.InterfaceError, ValueError, OverflowError)


class InboxPart(_Connection):
    """The webhook inbox (InboxStore)."""

    async def accept_webhook(self, call_id: str, event: str, body: str) -> tuple[str, int | None]:
        """Keep a verified webhook durably, deduplicated on (call id, event): the cheapest
        write that makes it safe to answer 2xx. Returns (`stored` | `duplicate`, inbox id);
        a duplicate of an event a poll saw first is kept too, for its fuller data."""
        now = time.time()

        def accept(conn: sqlite3.Connection) -> tuple[str, int | None]:
            merge = False
            if not conn.execute(
                "INSERT OR IGNORE INTO webhook_events (call_id, event, received_at, source) "
                "VALUES (?, ?, ?, 'webhook')", (call_id, event, now),
            ).rowcount:
                merge = bool(conn.execute(
                    "UPDATE webhook_events SET source = 'webhook' "
                    "WHERE call_id = ? AND event = ? AND source = 'poll'", (call_id, event),
                ).rowcount)
                if not merge:
                    return "duplicate", None
            cur = conn.execute(
                "INSERT INTO webhook_inbox (received_at, call_id, event, merge, body) "
                "VALUES (?, ?, ?, ?, ?)", (now, call_id, event, int(merge), body))
            return ("duplicate" if merge else "stored"), int(cur.lastrowid or 0)

        return await self._writer.write(accept)

    async def inbox_rows(self, limit: int, *, received_before: float | None = None
                         ) -> list[tuple[int, str, bool, str]]:
        """Webhooks kept but not yet turned into calls: (id, event, merge, body), oldest
        first. Rows that failed INBOX_MAX_ATTEMPTS times stay for an operator to read."""
        rows = await self._read(
            "SELECT id, event, merge, body FROM webhook_inbox WHERE attempts < ? "
            "AND received_at <= ? ORDER BY id LIMIT ?",
            (INBOX_MAX_ATTEMPTS,
             received_before if received_before is not None else float("inf"), limit))
        return [(int(r[0]), str(r[1]), bool(r[2]), str(r[3])) for r in rows]

    async def apply_inbox(self, entries: Sequence[InboxEntry], *,
                          default_channel: bool) -> list[InboxEntry]:
        """Turn kept webhooks into call rows and Slack work, in one transaction, and drop
        them from the inbox. Returns those applied here: an entry another process took
        first is skipped, and one that fails is kept with its error (attempts bounded).
        Calls that post nowhere (no channel, no `default_channel`) queue no Slack work."""
        now = time.time()
        prepared = [(e, _upsert_params(e.fields, now, e.poll_at) if e.fields else None)
                    for e in entries]

        def apply(conn: sqlite3.Connection) -> list[InboxEntry]:
            applied: list[InboxEntry] = []
            for entry, params in prepared:
                if not conn.execute("SELECT 1 FROM webhook_inbox WHERE id = ?",
                                    (entry.inbox_id,)).fetchone():
                    continue  # another process applied it
                conn.execute("SAVEPOINT entry")
                try:
                    if entry.fields is not None and params is not None:
                        _apply_entry(conn, entry, entry.fields, params, now, default_channel,
                                     self._audit)
                    conn.execute("DELETE FROM webhook_inbox WHERE id = ?", (entry.inbox_id,))
                except _ENTRY_ERRORS as exc:
                    conn.execute("ROLLBACK TO entry")
                    conn.execute(
                        "UPDATE webhook_inbox SET attempts = attempts + 1, last_error = ? "
                        "WHERE id = ?", (type(exc).__name__ + ": " + str(exc)[:200],
                                         entry.inbox_id))
                else:
                    applied.append(entry)
                conn.execute("RELEASE entry")
            return applied

        return await self._writer.write(apply)
