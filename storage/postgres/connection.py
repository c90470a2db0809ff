"""The pool every part shares: transactions with retry, reads, migrations, audit helpers.

Parts write their SQL as the SQLite parts do (`?` or `:name` parameters); `_sql` turns it
into PostgreSQL's `$n` once per statement and caches it, so the two stores read alike."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Self, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from storage.models import AuditEntry
from storage.postgres.schema import MIGRATIONS

T = TypeVar("T")
Params = Sequence[Any] | Mapping[str, Any]

# One key for the migration lock, the same in every instance: two starting together
# migrate once (the second waits, then finds nothing left to do).
MIGRATION_LOCK = 0x63616C6C626F74  # "callbot"
LOCK_TIMEOUT = "5s"
# Serialization failures and deadlocks are retried this often before the error stands.
RETRIES = 8
_RETRYABLE = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=1024)
def _positional(sql: str) -> str:
    """`?` placeholders as `$1, $2, ...` (outside string literals)."""
    out: list[str] = []
    n = 0
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        if ch == "?" and not quoted:
            n += 1
            out.append(f"${n}")
        else:
            out.append(ch)
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def _named(sql: str) -> tuple[str, tuple[str, ...]]:
    """`:name` placeholders as `$n`, and the names in their order (each named once)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _NAMED.sub(number, sql), tuple(names)


def _sql(sql: str, params: Params) -> tuple[str, list[Any]]:
    if isinstance(params, Mapping):
        text, names = _named(sql)
        return text, [storable(params[name]) for name in names]
    return _positional(sql), [storable(value) for value in params]


def storable(value: Any) -> Any:
    """PostgreSQL's text cannot hold NUL, which anyone may put in a Slack text or Retell in
    a transcript: it is dropped (it shows as nothing anywhere) rather than failing the write."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value


def _count(status: str) -> int:
    """The row count from a command's status ("UPDATE 3", "INSERT 0 1")."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class Tx:
    """One transaction's connection, with the SQLite parts' way of passing parameters."""

    def __init__(self, conn: asyncpg.Connection | PoolConnectionProxy) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a command; the rows it touched."""
        text, args = _sql(sql, params)
        return _count(await self.conn.execute(text, *args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self.conn.executemany(_positional(sql),
                                        [[storable(v) for v in row] for row in rows])

    async def fetch(self, sql: str, params: Params = ()) -> list[asyncpg.Record]:
        text, args = _sql(sql, params)
        return list(await self.conn.fetch(text, *args))

    async def fetchrow(self, sql: str, params: Params = ()) -> asyncpg.Record | None:
        text, args = _sql(sql, params)
        return await self.conn.fetchrow(text, *args)

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        text, args = _sql(sql, params)
        return await self.conn.fetchval(text, *args)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A connection goes back to the pool as it is, without asyncpg's reset (a round trip
    of four statements on every release, about a quarter of a short transaction's): nothing
    here leaves session state behind. Locks are transaction-scoped (`pg_advisory_xact_lock`)
    and settings `SET LOCAL`; the migration's session lock and timeout are undone where they
    are taken. asyncpg still rolls back a transaction left open (a cancelled request)."""


class _Connection:
    """The pool every part shares, migrations, and the helpers any transaction may need."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._salt = ""
        self._batches = 0
        self._writes = 0

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self.pool_size,
                # Statements are prepared per connection and cached; a schema changed by a
                # migration in another instance would invalidate them, hence the limit.
                max_inactive_connection_lifetime=300.0, command_timeout=60.0,
                # A lock held elsewhere (a long migration, an operator's LOCK TABLE) is an
                # error after LOCK_TIMEOUT, which callers answer as "the database is busy",
                # instead of a request that hangs; as SQLite's busy timeout does.
                server_settings={"lock_timeout": LOCK_TIMEOUT,
                                 "application_name": "callbot"},
                reset=_keep_session)
            await self._migrate()
        except BaseException:
            await self.close()
            raise

    async def _migrate(self) -> None:
        async with self._p.acquire() as conn:
            # A session lock, held across the transactions below: the second instance to
            # start waits here and then finds every step done.
            await conn.execute("SET lock_timeout = 0")  # migrations wait as long as they take
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
                version = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
                if version > len(MIGRATIONS):
                    raise RuntimeError(f"database schema v{version} is newer than this build "
                                       f"(v{len(MIGRATIONS)})")
                for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                    async with conn.transaction():
                        await conn.execute(script)
                        await conn.execute("INSERT INTO schema_version (version) VALUES ($1)",
                                           number)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
                await conn.execute("RESET lock_timeout")
            self._salt = str(await conn.fetchval(
                "SELECT value FROM meta WHERE key = 'number_key_salt'"))

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), 10)
            pool.terminate()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def commits(self) -> tuple[int, int]:
        """(transactions, writes): on PostgreSQL every write is its own transaction."""
        return self._batches, self._writes

    @property
    def _p(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    @contextlib.asynccontextmanager
    async def _tx(self, *, serializable: bool = False) -> AsyncIterator[Tx]:
        async with self._p.acquire() as conn, conn.transaction(
                isolation="serializable" if serializable else "read_committed"):
            yield Tx(conn)

    async def _write(self, op: Callable[[Tx], Awaitable[T]], *,
                     serializable: bool = False) -> T:
        """Run `op` in one transaction, again from the start if PostgreSQL could not
        serialize it (or found a deadlock), as SERIALIZABLE asks of its callers."""
        for attempt in range(RETRIES):
            try:
                async with self._tx(serializable=serializable) as tx:
                    result = await op(tx)
            except _RETRYABLE:
                if attempt == RETRIES - 1:
                    raise
                await asyncio.sleep(0.002 * (attempt + 1))
                continue
            self._batches += 1
            self._writes += 1
            return result
        raise AssertionError("unreachable")

    async def _read(self, sql: str, params: Params = ()) -> list[asyncpg.Record]:
        text, args = _sql(sql, params)
        async with self._p.acquire() as conn:
            return list(await conn.fetch(text, *args))

    async def _execute(self, sql: str, params: Params = ()) -> int:
        async def run(tx: Tx) -> int:
            return await tx.execute(sql, params)

        return await self._write(run)

    async def _in_batches(self, sql: str, params: dict[str, Any]) -> int:
        """Run `sql` (which touches at most :batch rows) until a run touches fewer, each
        run its own transaction, so a large clean-up never holds locks for long."""
        done = 0
        while True:
            count = await self._execute(sql, params)
            done += count
            if count < params["batch"]:
                return done

    def number_key(self, number: str) -> str:
        """A keyed hash of a number: finds its audit rows without keeping the number."""
        return hashlib.sha256(f"{self._salt}:{number}".encode()).hexdigest()[:32]

    async def _audit(self, tx: Tx, entry: AuditEntry, now: float) -> None:
        await tx.execute(
            "INSERT INTO audit (at, user_id, channel_id, action, source, number, number_key, "
            "agent, outcome, reason, call_id, team_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (now, entry.user_id, entry.channel_id, entry.action, entry.source,
             entry.number_masked, self.number_key(entry.number) if entry.number else None,
             entry.agent, entry.outcome, entry.reason, entry.call_id, entry.team_id),
        )

    async def _settle(self, tx: Tx, hold_id: int | None, audit: AuditEntry | None,
                      now: float) -> None:
        """The attempt is decided: its hold gives way to the call row, and it is audited."""
        if hold_id is not None:
            await tx.execute("DELETE FROM call_holds WHERE id = ?", (hold_id,))
        if audit is not None:
            await self._audit(tx, audit, now)
