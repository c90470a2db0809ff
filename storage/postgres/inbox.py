"""The webhook inbox (InboxStore)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from storage.models import InboxEntry
from storage.postgres.connection import Tx, _Connection
from storage.postgres.rows import _apply_entry
from storage.sqlite.rows import INBOX_MAX_ATTEMPTS, _upsert_params

# What one entry's data can make a write fail with: the database refusing a value (22xxx),
# a constraint (23xxx) or a statement (42xxx), or the driver unable to send a value. Any
# other error (a lock wait timed out, the connection, the server) is the moment's, not the
# entry's: the batch fails whole and is tried again later, no entry's attempts counted.
_ENTRY_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError,
                 asyncpg.SyntaxOrAccessError, ValueError, OverflowError)


class InboxPart(_Connection):
    """The webhook inbox (InboxStore)."""

    async def accept_webhook(self, call_id: str, event: str, body: str) -> tuple[str, int | None]:
        """Keep a verified webhook durably, deduplicated on (call id, event): the cheapest
        write that makes it safe to answer 2xx. Returns (`stored` | `duplicate`, inbox id);
        a duplicate of an event a poll saw first is kept too, for its fuller data."""
        now = time.time()

        async def accept(tx: Tx) -> tuple[str, int | None]:
            merge = False
            if not await tx.execute(
                "INSERT INTO webhook_events (call_id, event, received_at, source) "
                "VALUES (?, ?, ?, 'webhook') ON CONFLICT DO NOTHING", (call_id, event, now),
            ):
                merge = bool(await tx.execute(
                    "UPDATE webhook_events SET source = 'webhook' "
                    "WHERE call_id = ? AND event = ? AND source = 'poll'", (call_id, event),
                ))
                if not merge:
                    return "duplicate", None
            row_id = await tx.fetchval(
                "INSERT INTO webhook_inbox (received_at, call_id, event, merge, body) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id", (now, call_id, event, int(merge), body))
            return ("duplicate" if merge else "stored"), int(row_id)

        return await self._write(accept)

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
        them from the inbox. Returns those applied here: an entry another instance holds
        or took first is skipped (its row is locked with SKIP LOCKED, or gone), and one that
        fails is kept with its error (attempts bounded). Calls that post nowhere (no channel,
        no `default_channel`) queue no Slack work.

        The batch is tried whole first (a few round trips per entry); only if an entry
        fails is it done again entry by entry, each in a savepoint of its own."""
        now = time.time()
        prepared = [(e, _upsert_params(e.fields, now, e.poll_at) if e.fields else None)
                    for e in entries]

        async def held(tx: Tx) -> list[tuple[InboxEntry, dict[str, Any] | None]]:
            ids = {int(r[0]) for r in await tx.fetch(
                "SELECT id FROM webhook_inbox WHERE id = ANY(?::bigint[]) "
                "ORDER BY id FOR UPDATE SKIP LOCKED", ([e.inbox_id for e in entries],))}
            return [(e, params) for e, params in prepared if e.inbox_id in ids]

        async def apply(tx: Tx, entry: InboxEntry, params: dict[str, Any] | None) -> None:
            if entry.fields is not None and params is not None:
                await _apply_entry(tx, entry, entry.fields, params, now, default_channel,
                                   self._audit)

        async def whole(tx: Tx) -> list[InboxEntry]:
            mine = await held(tx)
            for entry, params in mine:
                await apply(tx, entry, params)
            await tx.execute("DELETE FROM webhook_inbox WHERE id = ANY(?::bigint[])",
                             ([e.inbox_id for e, _ in mine],))
            return [e for e, _ in mine]

        async def one_by_one(tx: Tx) -> list[InboxEntry]:
            applied: list[InboxEntry] = []
            for entry, params in await held(tx):
                try:
                    async with tx.conn.transaction():  # a savepoint: this entry alone
                        await apply(tx, entry, params)
                        await tx.execute("DELETE FROM webhook_inbox WHERE id = ?",
                                         (entry.inbox_id,))
                except _ENTRY_ERRORS as exc:
                    await tx.execute(
                        "UPDATE webhook_inbox SET attempts = attempts + 1, last_error = ? "
                        "WHERE id = ?", (type(exc).__name__ + ": " + str(exc)[:200],
                                         entry.inbox_id))
                else:
                    applied.append(entry)
            return applied

        try:
            return await self._write(whole)
        except _ENTRY_ERRORS:
            return await self._write(one_by_one)  # find the entry that fails, keep it
