"""The connection every part shares: the group-committed writer, the reader,"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self, TypeVar

import aiosqlite

from storage.migrations import MIGRATIONS
from storage.models import AuditEntry
from storage.sqlite.rows import (
    _PRAGMAS,
    _rowcount,
)
from storage.writer import GroupWriter

T = TypeVar("T")


class _Connection:
    """The connection every part shares: the group-committed writer, the reader,
migrations, and the helpers one transaction of any part may need (holds, audit rows)."""

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

    async def __aenter__(self) -> Self:
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

    async def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(sql, params)

        await self._writer.write(run)

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

    def number_key(self, number: str) -> str:
        """A keyed hash of a number: finds its audit rows without keeping the number."""
        return hashlib.sha256(f"{self._salt}:{number}".encode()).hexdigest()[:32]

    def _audit(self, conn: sqlite3.Connection, entry: AuditEntry, now: float) -> None:
        conn.execute(
            "INSERT INTO audit (at, user_id, channel_id, action, source, number, number_key, "
            "agent, outcome, reason, call_id, team_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (now, entry.user_id, entry.channel_id, entry.action, entry.source,
             entry.number_masked, self.number_key(entry.number) if entry.number else None,
             entry.agent, entry.outcome, entry.reason, entry.call_id, entry.team_id),
        )

    def _settle(self, conn: sqlite3.Connection, hold_id: int | None,
                audit: AuditEntry | None, now: float) -> None:
        """The attempt is decided: its hold gives way to the call row, and it is audited."""
        if hold_id is not None:
            conn.execute("DELETE FROM call_holds WHERE id = ?", (hold_id,))
        if audit is not None:
            self._audit(conn, audit, now)


class _HeavyReader:
    """One read-only connection owned by one thread, for queries that scan history."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-heavy")
        self._conn: sqlite3.Connection | None = None

    async def read(self, sql: str, params: dict[str, Any]) -> list[sqlite3.Row]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, sql, params)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` with the connection, in its thread: several reads, one snapshot (fn's)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._connection()))

    def _run(self, sql: str, params: dict[str, Any]) -> list[sqlite3.Row]:
        return self._connection().execute(sql, params).fetchall()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA query_only = ON")
            self._conn = conn
        return self._conn

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)
