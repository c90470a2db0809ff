"""Group commit: concurrent writes share one transaction, so they share one fsync.

One thread owns the write connection. Writes queue up while a batch is being committed
and go together in the next one, each inside its own savepoint: a write that fails is
rolled back alone, and every caller is answered only after the COMMIT that made its own
write durable. Under load this turns N fsyncs into one; alone, a write waits for nothing.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
# Enough to amortise the fsync, small enough that one batch never holds the lock for long.
MAX_BATCH = 256


class GroupWriter:
    def __init__(self, path: Path, pragmas: list[str]) -> None:
        self.path = path
        self._pragmas = pragmas
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0  # how many commits, for tests and metrics
        self.writes = 0

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._conn = await self._in_thread(self._connect)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in self._pragmas:
            conn.execute(pragma)
        return conn

    async def run_script(self, script: str) -> None:
        """A whole script as it stands (migrations), outside the batching."""
        await self._drain()
        conn = self._c
        await self._in_thread(conn.executescript, script)

    async def close(self) -> None:
        await self._drain()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._in_thread(conn.close)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run `op` in a transaction; returns once that transaction is committed."""
        self._c  # noqa: B018 - fail here, in the caller, when the store is closed
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="sqlite-group-commit")
        # Shielded: a caller that gives up must not cancel a batch other callers are in.
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                outcomes = await self._in_thread(_commit, self._c, [op for op, _ in batch])
            except BaseException as exc:  # the COMMIT itself failed: nobody's write holds
                for _, future in batch:
                    if not future.done():
                        future.set_exception(_copy(exc))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            self.batches += 1
            self.writes += len(batch)
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    async def _drain(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    @property
    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store is not open")
        return self._conn

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)


def _commit(conn: sqlite3.Connection, ops: list[Op]) -> list[tuple[bool, Any]]:
    """One transaction for the batch; each op in a savepoint so its failure stays its own."""
    outcomes: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for op in ops:
            conn.execute("SAVEPOINT op")
            try:
                outcomes.append((True, op(conn)))
            except Exception as exc:
                conn.execute("ROLLBACK TO op")
                outcomes.append((False, exc))
            conn.execute("RELEASE op")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _copy(exc: BaseException) -> BaseException:
    """Each waiting caller gets its own exception object (tracebacks are per raise)."""
    if isinstance(exc, asyncio.CancelledError):
        return RuntimeError("the store was closed while this write was pending")
    return type(exc)(*exc.args) if isinstance(exc, sqlite3.Error) else exc
