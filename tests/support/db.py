"""What a test reads from (or, to set a scene, writes to) the app's database straight: one
statement, one short connection, on SQLite or PostgreSQL alike."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Protocol

from bot.config import Settings
from tests.support.stores import database_for, run_sync


class HasDatabase(Protocol):
    """A server under test (in process or a child process): its settings name the database."""

    @property
    def settings(self) -> Settings: ...


Where = Path | str | HasDatabase


def _url(where: Where) -> str:
    if not isinstance(where, Path | str):
        where = where.settings.database_url
    return database_for(where)  # a test's file stands for a schema on PostgreSQL


def _on_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


async def _pg(url: str, sql: str, args: tuple[Any, ...], kind: str) -> Any:
    import asyncpg

    from storage.postgres.connection import _positional

    conn = await asyncpg.connect(url)
    try:
        if kind == "execute":
            return await conn.execute(_positional(sql), *args)
        rows = await conn.fetch(_positional(sql), *args)
        return [dict(r) if kind == "dicts" else tuple(r) for r in rows]
    finally:
        await conn.close()


def _sqlite(url: str, sql: str, args: tuple[Any, ...], kind: str) -> Any:
    # WAL: a reader never waits for the writer; 10 s for a checkpoint or a writer's lock.
    conn = sqlite3.connect(Path(url.removeprefix("sqlite:///")), timeout=10)
    if kind == "dicts":
        conn.row_factory = sqlite3.Row
    try:
        if kind == "execute":
            with conn:
                return conn.execute(sql, args).rowcount
        rows = conn.execute(sql, args).fetchall()
        return [dict(r) for r in rows] if kind == "dicts" else rows
    finally:
        conn.close()


def _run(where: Where, sql: str, args: tuple[Any, ...], kind: str) -> Any:
    url = _url(where)
    if _on_postgres(url):
        return run_sync(_pg(url, sql, args, kind))
    return _sqlite(url, sql, args, kind)


def db_rows(where: Where, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """The rows `sql` (with `?` parameters, in SQL both databases accept) returns, read
    while the app may be writing. `where`: a server, a test's database file, or a URL."""
    return _run(where, sql, args, "rows")  # type: ignore[no-any-return]


def db_dicts(where: Where, sql: str, *args: Any) -> list[dict[str, Any]]:
    """The same, each row as {column: value}."""
    return _run(where, sql, args, "dicts")  # type: ignore[no-any-return]


def db_execute(where: Where, sql: str, *args: Any) -> None:
    """One write, committed, to set a scene the app then finds (times moved back, ...)."""
    _run(where, sql, args, "execute")


def db_integrity(where: Where) -> str:
    """"ok" when the database is sound: SQLite's integrity_check (every page, index and
    constraint); on PostgreSQL, which keeps its own pages, every table of the app's schema
    read through and its indexes answering (amcheck is not always installed)."""
    url = _url(where)
    if not _on_postgres(url):
        return "; ".join(str(r[0]) for r in _sqlite(url, "PRAGMA integrity_check", (), "rows"))
    tables = _run(where, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
                  (), "rows")
    if not tables:
        return "no tables"
    for (table,) in tables:
        _run(where, f'SELECT count(*) FROM "{table}"', (), "rows")
    return "ok"
