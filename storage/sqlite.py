"""SQLite store: WAL, one writer connection behind a lock, one reader for queries."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields as dc_fields
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosqlite

from storage.migrations import MIGRATIONS
from storage.models import (
    STAGE_ANALYZED,
    Admission,
    Attempt,
    AuditEntry,
    AuditRow,
    CallFields,
    CallRecord,
    CallStats,
    DncEntry,
    InboxEntry,
    Limits,
    OutboxItem,
)
from storage.writer import GroupWriter

_PRAGMAS = ["PRAGMA busy_timeout = 5000", "PRAGMA journal_mode = WAL", "PRAGMA foreign_keys = ON"]
SENTIMENTS = ("Positive", "Neutral", "Negative", "Unknown")
# A hold a crash left behind stops counting against the limits after this long (a create,
# with its retries, has long been answered by then).
HOLD_SECONDS = 300.0
# A call still "live" after this long lost its end to webhooks and polls: stop counting it.
LIVE_SECONDS = 2 * 3600.0
# A create whose outcome is unknown (timeout, lost connection) keeps its hold this long at
# most: Retell's idempotency window, after which the same key could place a new call.
UNCERTAIN_HOLD_SECONDS = 3600.0
# A kept webhook whose applying failed this many times is left in the inbox for an operator.
INBOX_MAX_ATTEMPTS = 5
# What retention removes: the words of the call and where they can be fetched again.
PURGED_COLUMNS = ("transcript", "raw_payload", "recording_url", "public_log_url")
_DNC_COLUMNS = "number, reason, added_by, call_id, added_at"  # DncEntry's fields, in order
_AUDIT_COLUMNS = ("id, at, action, outcome, user_id, channel_id, source, number, agent, reason, "
                  "call_id")

# Columns a newer, non-empty value overwrites; routing and status follow their own rules.
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
    "summary",
    "transcript",
    "recording_url",
    "public_log_url",
    "note",
)
_ROUTING_COLUMNS = ("team_id", "channel_id", "user_id", "message_ts", "thread_ts", "request_key")
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
# Admission reads only what it counts, however long the history: calls still on the line
# (through a partial index that holds nothing else) and one user's newest calls up to the
# limit. Module-level so a test can check their query plans.
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
# Everything but the large text columns: for lists, where transcripts would only cost memory.
_LIGHT_COLUMNS = ", ".join(
    c for c in ("id", "call_id", "direction", "status", "stage", "created_at", "updated_at",
                "analyzed_at", *_ROUTING_COLUMNS, *_DATA_COLUMNS, "error")
    if c not in ("transcript", "summary")
)


class SQLiteStore:
    """The embedded default store.

    Writes go through one connection in its own thread with group commit (see
    storage/writer.py), so concurrent webhooks share an fsync; reads use a second
    connection so `/callstats` never waits behind writes (WAL allows it).
    """

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self._writer = GroupWriter(self.path, [*_PRAGMAS, f"PRAGMA synchronous = {synchronous}"])
        self._reader: aiosqlite.Connection | None = None
        self._open = False
        self._salt = ""  # for audit lookup keys; per database, set by migration 4
        self._heavy: _HeavyReader | None = None  # opened on the first heavy query

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            await self._writer.open()
            await self._migrate()
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            self._reader.row_factory = sqlite3.Row
            for pragma in _PRAGMAS:
                await self._reader.execute(pragma)
            self._open = True
        except BaseException:
            await self.close()
            raise

    async def _migrate(self) -> None:
        version = await self._writer.write(
            lambda conn: int(conn.execute("PRAGMA user_version").fetchone()[0])
        )
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"database schema v{version} is newer than this build (v{len(MIGRATIONS)})"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await self._writer.run_script(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;"
            )
        self._salt = await self._writer.write(lambda conn: str(conn.execute(
            "SELECT value FROM meta WHERE key = 'number_key_salt'").fetchone()[0]))

    async def close(self) -> None:
        self._open = False
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.close()
        if self._heavy is not None:
            heavy, self._heavy = self._heavy, None
            await heavy.close()
        await self._writer.close()

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def commits(self) -> tuple[int, int]:
        """(transactions, writes) so far: how well group commit is batching."""
        return self._writer.batches, self._writer.writes

    @property
    def _r(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("store is not open")
        return self._reader

    async def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        """One query, run and fetched in a single step on the reader connection.

        A cursor left open across an await would keep that connection's read snapshot
        alive, and another coroutine's query would then miss rows committed since.
        """
        return list(await self._r.execute_fetchall(sql, params))

    # -- calls ---------------------------------------------------------------------------

    async def record_failed_attempt(
        self, attempt: Attempt, error: str, *, error_kind: str | None = None,
        request_key: str | None = None, hold_id: int | None = None,
        audit: AuditEntry | None = None, uncertain: bool = False,
    ) -> int:
        """`uncertain`: Retell may have placed it, so its hold keeps counting against the
        limits until a webhook, a poll or expiry settles it (by its request key)."""
        now = time.time()
        params = (
            now, now, error, error_kind, request_key, attempt.team_id, attempt.channel_id,
            attempt.user_id, attempt.message_ts, attempt.thread_ts, attempt.from_number,
            attempt.to_number, attempt.agent_id, attempt.agent_name,
            json.dumps(attempt.variables), attempt.note,
        )

        def insert(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                """INSERT INTO calls (status, stage, created_at, updated_at, error, error_kind,
                       request_key, team_id, channel_id, user_id, message_ts, thread_ts,
                       from_number, to_number, agent_id, agent_name, variables, note)
                   VALUES ('failed', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
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
            team_id=attempt.team_id,
            channel_id=attempt.channel_id,
            user_id=attempt.user_id,
            message_ts=attempt.message_ts,
            thread_ts=attempt.thread_ts,
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

    def _settle(self, conn: sqlite3.Connection, hold_id: int | None,
                audit: AuditEntry | None, now: float) -> None:
        """The attempt is decided: its hold gives way to the call row, and it is audited."""
        if hold_id is not None:
            conn.execute("DELETE FROM call_holds WHERE id = ?", (hold_id,))
        if audit is not None:
            self._audit(conn, audit, now)

    async def release_hold(self, hold_id: int, audit: AuditEntry | None = None) -> None:
        """An admitted attempt that never reached Retell (the card could not be posted)."""
        await self._writer.write(lambda conn: self._settle(conn, hold_id, audit, time.time()))

    async def admit(self, user_id: str | None, limits: Limits, now: float, *,
                    request_key: str | None = None) -> Admission:
        """Check the limits and take a hold in one transaction, so no two requests can
        both take the last place (in this process or another, and across restarts)."""

        def admit(conn: sqlite3.Connection) -> Admission:
            # Each count reads only what it counts (calls still live through a partial
            # index; one user's latest calls up to the limit), never the whole history.
            conn.execute("DELETE FROM call_holds WHERE coalesce(expires_at, created_at + ?) < ?",
                         (HOLD_SECONDS, now))
            if limits.concurrent:
                live = int(conn.execute(LIVE_COUNT_SQL, (now - LIVE_SECONDS,)).fetchone()[0])
                if live >= limits.concurrent:
                    return Admission(None, "concurrent", live)
            for name, limit, window in (("per_hour", limits.per_hour, 3600.0),
                                        ("per_day", limits.per_day, 86400.0)):
                if not limit or not user_id:
                    continue
                # The newest `limit` calls and holds: if there are that many, the oldest of
                # them leaving the window is when a place frees up.
                times = [float(r[0]) for r in conn.execute(
                    USER_RECENT_SQL, {"user": user_id, "since": now - window, "limit": limit})]
                if len(times) >= limit:
                    return Admission(None, name, len(times), times[-1] + window)
            # The hold carries the create's key: whichever way the call is recorded (our own
            # save, its webhook, a poll) the hold gives way to it.
            cur = conn.execute(
                "INSERT INTO call_holds (user_id, created_at, request_key) VALUES (?, ?, ?)",
                (user_id, now, request_key))
            return Admission(int(cur.lastrowid or 0))

        return await self._writer.write(admit)

    # -- audit and the do-not-call list ----------------------------------------------------

    def number_key(self, number: str) -> str:
        """A keyed hash of a number: finds its audit rows without keeping the number."""
        return hashlib.sha256(f"{self._salt}:{number}".encode()).hexdigest()[:32]

    def _audit(self, conn: sqlite3.Connection, entry: AuditEntry, now: float) -> None:
        conn.execute(
            "INSERT INTO audit (at, user_id, channel_id, action, source, number, number_key, "
            "agent, outcome, reason, call_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (now, entry.user_id, entry.channel_id, entry.action, entry.source,
             entry.number_masked, self.number_key(entry.number) if entry.number else None,
             entry.agent, entry.outcome, entry.reason, entry.call_id),
        )

    async def audit(self, entry: AuditEntry) -> None:
        await self._writer.write(lambda conn: self._audit(conn, entry, time.time()))

    async def audit_rows(self, limit: int, *, user_id: str | None = None,
                         number: str | None = None) -> list[AuditRow]:
        """Newest first; all of them (oldest first) when `limit` is 0, for an export."""
        where, params = "", []
        if user_id is not None:
            where, params = "WHERE user_id = ?", [user_id]
        elif number is not None:
            where, params = "WHERE number_key = ?", [self.number_key(number)]
        order = "ORDER BY id DESC LIMIT ?" if limit else "ORDER BY id"
        rows = await self._read(f"SELECT {_AUDIT_COLUMNS} FROM audit {where} {order}",
                                [*params, limit] if limit else params)
        return [AuditRow(*tuple(r)) for r in rows]

    async def dnc_add(self, entry: DncEntry, audit: AuditEntry | None = None) -> bool:
        """False if the number was on the list already (the list is left as it was)."""

        def add(conn: sqlite3.Connection) -> bool:
            added = _dnc_insert(conn, entry)
            if audit is not None:
                self._audit(conn, audit, entry.added_at)
            return added

        return await self._writer.write(add)

    async def dnc_remove(self, number: str, audit: AuditEntry | None = None) -> bool:
        def remove(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM dnc WHERE number = ?", (number,))
            if audit is not None:
                self._audit(conn, audit, time.time())
            return bool(cur.rowcount)

        return await self._writer.write(remove)

    async def dnc_get(self, number: str) -> DncEntry | None:
        rows = await self._read(f"SELECT {_DNC_COLUMNS} FROM dnc WHERE number = ?", (number,))
        return DncEntry(*tuple(rows[0])) if rows else None

    async def dnc_list(self, limit: int) -> tuple[list[DncEntry], int]:
        """The newest entries, and how many there are in all."""
        rows = await self._read(f"SELECT {_DNC_COLUMNS} FROM dnc ORDER BY added_at DESC LIMIT ?",
                                (limit,))
        total = await self._read("SELECT count(*) FROM dnc")
        return [DncEntry(*tuple(r)) for r in rows], int(total[0][0])

    async def purge_before(self, cutoff: float, batch: int = 500) -> int:
        """Retention: drop the words of calls created before `cutoff`, keeping every figure
        /callstats reads. In batches, so a large purge never holds the writer for long."""
        has_any = " OR ".join(f"{c} IS NOT NULL" for c in PURGED_COLUMNS)
        cleared = ", ".join(f"{c} = NULL" for c in PURGED_COLUMNS)
        return await self._in_batches(
            f"UPDATE calls SET {cleared} WHERE id IN (SELECT id FROM calls "
            f"WHERE created_at < :cutoff AND ({has_any}) LIMIT :batch)",
            {"cutoff": cutoff, "batch": batch})

    async def _in_batches(self, sql: str, params: dict[str, Any]) -> int:
        """Run `sql` (which touches at most :batch rows) until a run touches fewer, each
        run its own write, so a large clean-up never holds the writer for long."""
        done = 0
        run = functools.partial(_rowcount, sql, params)
        while True:
            count = await self._writer.write(run)
            done += count
            if count < params["batch"]:
                return done

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

    # -- the webhook inbox -------------------------------------------------------------------

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

    async def uncertain_holds(self, created_before: float, limit: int) -> list[tuple[int, str]]:
        """Holds kept for creates whose outcome is unknown: (hold id, request key)."""
        rows = await self._read(
            "SELECT id, request_key FROM call_holds WHERE expires_at IS NOT NULL "
            "AND request_key IS NOT NULL AND created_at <= ? ORDER BY created_at LIMIT ?",
            (created_before, limit))
        return [(int(r[0]), str(r[1])) for r in rows]

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
                except sqlite3.Error as exc:
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

    async def _execute(self, sql: str, params: Sequence[Any]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(sql, params)

        await self._writer.write(run)

    # -- polling and claims ----------------------------------------------------------------

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

    async def claim(self, key: str, now: float, window: float | None = None) -> bool:
        """True for the first claim of `key` (or the first since `window` seconds passed)."""

        def claim(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT claimed_at FROM claims WHERE key = ?", (key,)).fetchone()
            if row and (window is None or now - float(row[0]) < window):
                return False
            conn.execute("INSERT OR REPLACE INTO claims (key, claimed_at) VALUES (?, ?)",
                         (key, now))
            return True

        return await self._writer.write(claim)

    async def enqueue_once(self, call_id: str, kind: str) -> bool:
        """Queue Slack work that must happen at most once per call (a transcript post)."""

        def enqueue(conn: sqlite3.Connection) -> bool:
            if conn.execute(
                "SELECT 1 FROM outbox WHERE call_id = ? AND kind = ? LIMIT 1", (call_id, kind)
            ).fetchone():
                return False
            _enqueue(conn, call_id, (kind,), time.time())
            return True

        return await self._writer.write(enqueue)

    # -- outbox --------------------------------------------------------------------------

    async def outbox_heads(
        self, limit: int, skip: Collection[str] = (), *, owner: str | None = None,
        now: float | None = None, skip_channels: Collection[str] = (),
    ) -> list[OutboxItem]:
        """The oldest pending item of each call (a call's items go out together, in order),
        soonest due first, with the channel it goes to; calls in `skip` (already in hand)
        are left out, so they never crowd out the others.

        A call is due when none of its items waits for a retry, and not before another
        process's lease on it (`owner` is ours) runs out: `next_attempt_at` says when."""
        rows = await self._read(
            """SELECT o.id, o.call_id, o.kind, o.attempts, h.due, o.posting_since, c.channel_id
               FROM (SELECT call_id, min(id) AS id,
                            max(max(next_attempt_at), coalesce(max(CASE
                                WHEN lease_owner IS NOT :owner AND lease_until > :now
                                THEN lease_until END), 0)) AS due
                     FROM outbox INDEXED BY outbox_call_pending
                     WHERE done_at IS NULL GROUP BY call_id) h
               JOIN outbox o ON o.id = h.id
               LEFT JOIN calls c ON c.call_id = h.call_id
               WHERE h.call_id NOT IN (SELECT value FROM json_each(:skip))
                 AND coalesce(c.channel_id, '')
                     NOT IN (SELECT value FROM json_each(:skip_channels))
               ORDER BY h.due, h.id LIMIT :limit""",
            {"limit": limit, "skip": json.dumps(list(skip)), "owner": owner,
             "now": time.time() if now is None else now,
             "skip_channels": json.dumps(list(skip_channels))},
        )
        return [OutboxItem(*r) for r in rows]

    async def lease_outbox(
        self, call_id: str, owner: str, now: float, until: float
    ) -> list[OutboxItem]:
        """Take every pending item of a due call for one delivery turn, unless another
        process holds it: its items are then delivered by this process alone until `until`
        (a dead process's lease runs out and another takes the call over)."""

        def lease(conn: sqlite3.Connection) -> list[OutboxItem]:
            rows = conn.execute(
                "SELECT id, kind, attempts, next_attempt_at, posting_since, lease_owner, "
                "lease_until FROM outbox INDEXED BY outbox_call_pending "
                "WHERE call_id = ? AND done_at IS NULL ORDER BY id", (call_id,)).fetchall()
            if not rows or any(
                r["next_attempt_at"] > now
                or (r["lease_owner"] not in (None, owner) and (r["lease_until"] or 0) > now)
                for r in rows
            ):
                return []
            conn.execute("UPDATE outbox SET lease_owner = ?, lease_until = ? "
                         "WHERE call_id = ? AND done_at IS NULL", (owner, until, call_id))
            found = conn.execute("SELECT channel_id FROM calls WHERE call_id = ?",
                                 (call_id,)).fetchone()
            channel = found[0] if found else None
            return [OutboxItem(r["id"], call_id, r["kind"], r["attempts"], r["next_attempt_at"],
                               r["posting_since"], channel) for r in rows]

        return await self._writer.write(lease)

    async def renew_outbox_leases(
        self, call_ids: Collection[str], owner: str, until: float
    ) -> set[str]:
        """Extend our leases on calls still being delivered; returns the calls still ours."""

        def renew(conn: sqlite3.Connection) -> set[str]:
            ids = json.dumps(list(call_ids))
            conn.execute(
                "UPDATE outbox SET lease_until = ? WHERE done_at IS NULL AND lease_owner = ? "
                "AND call_id IN (SELECT value FROM json_each(?))", (until, owner, ids))
            return {str(r[0]) for r in conn.execute(
                "SELECT DISTINCT call_id FROM outbox INDEXED BY outbox_call_pending "
                "WHERE done_at IS NULL AND lease_owner = ? "
                "AND call_id IN (SELECT value FROM json_each(?))", (owner, ids))}

        return await self._writer.write(renew)

    async def release_outbox(self, call_id: str, owner: str) -> None:
        """End a turn that left items pending: whoever is due next may take them."""
        await self._execute(
            "UPDATE outbox SET lease_owner = NULL, lease_until = NULL "
            "WHERE call_id = ? AND done_at IS NULL AND lease_owner = ?", (call_id, owner))

    async def outbox_outcomes(self, call_ids: Collection[str]) -> set[str]:
        """Which of these calls have a summary waiting: their turn comes first."""
        rows = await self._read(
            "SELECT DISTINCT call_id FROM outbox INDEXED BY outbox_call "
            "WHERE call_id IN (SELECT value FROM json_each(?)) AND kind = 'summary' "
            "AND done_at IS NULL", (json.dumps(list(call_ids)),))
        return {str(r[0]) for r in rows}

    async def outbox_backlog(self) -> tuple[int, float | None]:
        """How many items wait for Slack, and when the oldest of them was queued."""
        [row] = await self._read(
            "SELECT count(*), min(created_at) FROM outbox INDEXED BY outbox_pending "
            "WHERE done_at IS NULL"
        )
        return int(row[0]), float(row[1]) if row[1] is not None else None

    async def mark_posting(self, item_id: int, now: float) -> None:
        """Before a post whose answer could be lost: a retry must look before posting."""
        await self._execute(
            "UPDATE outbox SET posting_since = coalesce(posting_since, ?) WHERE id = ?",
            (now, item_id),
        )

    async def complete_outbox(self, item_ids: Sequence[int], now: float) -> None:
        def complete(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE outbox SET done_at = ?, attempts = attempts + 1, last_error = NULL "
                "WHERE id = ? AND done_at IS NULL",
                [(now, item_id) for item_id in item_ids],
            )

        await self._writer.write(complete)

    async def retry_outbox(
        self, item_id: int, next_attempt_at: float, error: str, *, uncertain: bool = True
    ) -> None:
        """Try again later; `uncertain` False when Slack's answer proves nothing was posted."""
        await self._execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, "
            "posting_since = CASE WHEN ? THEN posting_since END WHERE id = ?",
            (next_attempt_at, error, uncertain, item_id),
        )

    async def fail_outbox(self, item_id: int, now: float, error: str) -> None:
        """Give up on an item (a permanent Slack error); kept with its reason for operators."""
        await self._execute(
            "UPDATE outbox SET done_at = ?, attempts = attempts + 1, last_error = ? WHERE id = ?",
            (now, "gave up: " + error, item_id),
        )

    # -- leases and housekeeping -----------------------------------------------------------

    async def acquire_lease(self, name: str, owner: str, now: float, until: float, *,
                            reentrant: bool = True) -> bool:
        """Hold `name` until `until` if it is free or has run out (or is ours already and
        `reentrant`): work that must run in one process at a time, across processes."""

        def acquire(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT INTO leases (name, owner, until) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "until = excluded.until "
                "WHERE leases.until <= ? OR (? AND leases.owner = excluded.owner)",
                (name, owner, until, now, reentrant))
            return bool(cur.rowcount)

        return await self._writer.write(acquire)

    async def release_lease(self, name: str, owner: str) -> None:
        await self._execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))

    async def prune(self, cutoff: float, batch: int = 500) -> dict[str, int]:
        """Delete bookkeeping older than `cutoff` that only grows: claims, received webhook
        events and finished outbox items, in batches so the writer is never held for long.

        Kept whatever dedupe still needs: the events of a call still polled or not yet
        analyzed and touched since `cutoff` (a late webhook must still be a duplicate), and
        transcript items (a transcript is posted once per call)."""
        deletes = {
            "claims": "DELETE FROM claims WHERE key IN (SELECT key FROM claims INDEXED BY "
                      "claims_at WHERE claimed_at < :cutoff LIMIT :batch)",
            "webhook_events": f"""DELETE FROM webhook_events WHERE (call_id, event) IN (
                SELECT e.call_id, e.event FROM webhook_events e INDEXED BY webhook_events_at
                WHERE e.received_at < :cutoff AND NOT EXISTS (
                    SELECT 1 FROM calls c WHERE c.call_id = e.call_id
                    AND (c.next_poll_at IS NOT NULL
                         OR (c.stage < {STAGE_ANALYZED} AND c.updated_at >= :cutoff)))
                LIMIT :batch)""",
            "outbox": "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox INDEXED BY "
                      "outbox_done WHERE done_at < :cutoff AND kind != 'transcript' "
                      "LIMIT :batch)",
        }
        params = {"cutoff": cutoff, "batch": batch}
        return {table: await self._in_batches(sql, params) for table, sql in deletes.items()}

    # -- health and heavy reads ------------------------------------------------------------

    async def check_writable(self) -> None:
        """Raise unless a write really commits: a heartbeat row through the writer, so a
        database locked past its busy timeout or a full disk shows, as a read would not."""
        stamp = repr(time.time())
        await self._writer.write(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('health_heartbeat', ?)",
            (stamp,)))

    async def _stats_read(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """A heavy query (stats over all history) on a read-only connection of its own, in
        a thread of its own, one at a time: the shared reader, which health checks, the
        outbox and the Home tab use, never waits behind it. The connection is kept (its page
        cache makes the next query several times faster than a fresh connection's)."""
        if not self._open:
            raise RuntimeError("store is not open")
        if self._heavy is None:
            self._heavy = _HeavyReader(self.path)
        return await self._heavy.read(sql, params)

    # -- stats ---------------------------------------------------------------------------

    async def stats(self, since: float | None) -> CallStats:
        lower = since if since is not None else float("-inf")
        window = "call_id IS NOT NULL AND created_at >= :since"
        params = {"since": lower}
        [agg] = await self._stats_read(
            f"""SELECT count(*) AS calls,
                       count(successful) AS analyzed,
                       coalesce(sum(successful = 1), 0) AS successful,
                       coalesce(sum(sentiment = 'Positive'), 0) AS positive,
                       coalesce(sum(sentiment = 'Neutral'), 0) AS neutral,
                       coalesce(sum(sentiment = 'Negative'), 0) AS negative,
                       count(CASE WHEN duration_ms > 0 THEN 1 END) AS connected,
                       avg(CASE WHEN duration_ms > 0 THEN duration_ms END) AS avg_ms,
                       coalesce(sum(cost_cents), 0) AS cost
                FROM calls INDEXED BY calls_stats WHERE {window}""",
            params,
        )
        [failed_row] = await self._stats_read(
            "SELECT count(*) FROM calls INDEXED BY calls_failed "
            "WHERE call_id IS NULL AND created_at >= :since",
            params,
        )
        median = await self._median_duration(window, params, int(agg["connected"]))
        reason_rows = await self._stats_read(
            f"""SELECT disconnection_reason AS reason, count(*) AS n
                FROM calls INDEXED BY calls_stats
                WHERE {window} AND disconnection_reason IS NOT NULL
                GROUP BY disconnection_reason ORDER BY n DESC, reason LIMIT 5""",
            params,
        )
        reasons = [(str(r["reason"]), int(r["n"])) for r in reason_rows]
        calls = int(agg["calls"])
        known = int(agg["positive"]) + int(agg["neutral"]) + int(agg["negative"])
        return CallStats(
            calls=calls,
            failed_attempts=int(failed_row[0]),
            analyzed=int(agg["analyzed"]),
            successful=int(agg["successful"]),
            sentiments={
                "Positive": int(agg["positive"]),
                "Neutral": int(agg["neutral"]),
                "Negative": int(agg["negative"]),
                "Unknown": calls - known,
            },
            connected=int(agg["connected"]),
            avg_duration_ms=float(agg["avg_ms"]) if agg["avg_ms"] is not None else None,
            median_duration_ms=median,
            total_cost_cents=float(agg["cost"]),
            top_reasons=reasons,
        )

    async def _median_duration(
        self, window: str, params: dict[str, Any], n: int
    ) -> float | None:
        if n == 0:
            return None
        rows = await self._stats_read(
            f"""SELECT duration_ms FROM calls INDEXED BY calls_stats
                WHERE {window} AND duration_ms > 0
                ORDER BY duration_ms LIMIT :take OFFSET :skip""",
            {**params, "take": 2 - n % 2, "skip": (n - 1) // 2},
        )
        if not rows:  # calls were deleted between the count and this query
            return None
        return sum(float(r[0]) for r in rows) / len(rows)

    # -- bulk seeding --------------------------------------------------------------------

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
                if column == "variables":
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


class _HeavyReader:
    """One read-only connection owned by one thread, for queries that scan history."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-heavy")
        self._conn: sqlite3.Connection | None = None

    async def read(self, sql: str, params: dict[str, Any]) -> list[sqlite3.Row]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, sql, params)

    def _run(self, sql: str, params: dict[str, Any]) -> list[sqlite3.Row]:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA query_only = ON")
            self._conn = conn
        return self._conn.execute(sql, params).fetchall()

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)

def _rowcount(sql: str, params: dict[str, Any], conn: sqlite3.Connection) -> int:
    return int(conn.execute(sql, params).rowcount)


def _dnc_insert(conn: sqlite3.Connection, entry: DncEntry) -> bool:
    cur = conn.execute(
        "INSERT OR IGNORE INTO dnc (number, reason, added_by, call_id, added_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (entry.number, entry.reason, entry.added_by, entry.call_id, entry.added_at))
    return bool(cur.rowcount)


def _enqueue(conn: sqlite3.Connection, call_id: str, kinds: Sequence[str], now: float) -> None:
    """Queue Slack work inside the caller's transaction, due at once."""
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
        if column == "variables" and value is not None:
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = int(value)
        params[column] = value
    return params


def _to_record(row: sqlite3.Row) -> CallRecord:
    data = {key: row[key] for key in row.keys() if key in _RECORD_FIELDS}
    data["variables"] = json.loads(data["variables"]) if data.get("variables") else {}
    for flag in ("successful", "in_voicemail"):
        if data.get(flag) is not None:
            data[flag] = bool(data[flag])
    return CallRecord(**data)
