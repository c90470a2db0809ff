"""What a test reads straight from the app's database: one query, one short connection."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Protocol

from bot.config import Settings
from tests.support.stores import pg_fetch, run_sync


class HasDatabase(Protocol):
    """A server under test (in process or a child process): its settings name the database."""

    @property
    def settings(self) -> Settings: ...


def db_rows(where: Path | str | HasDatabase, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """The rows `sql` (with `?` parameters) returns from the database, read while the app
    may be writing (SQLite in WAL: a reader never waits for the writer; 10 s for a
    checkpoint). `where` is a server, an SQLite file, or a DATABASE_URL."""
    if not isinstance(where, Path | str):
        where = where.settings.database_url
    if isinstance(where, str) and where.startswith(("postgresql://", "postgres://")):
        return run_sync(pg_fetch(where, sql, *args))  # type: ignore[no-any-return]
    path = Path(str(where).removeprefix("sqlite:///"))
    conn = sqlite3.connect(path, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()
