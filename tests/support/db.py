"""What a test reads straight from the app's SQLite file: one query, one short connection."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Protocol

from bot.config import Settings


class HasDatabase(Protocol):
    """A server under test (in process or a child process): its settings name the file."""

    @property
    def settings(self) -> Settings: ...


def db_rows(where: Path | str | HasDatabase, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """The rows `sql` returns from the database file (or the server's), read while the app
    may be writing (WAL: a reader never waits for the writer; 10 s for a checkpoint)."""
    path = where if isinstance(where, Path | str) else where.settings.database_path
    conn = sqlite3.connect(path, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()
