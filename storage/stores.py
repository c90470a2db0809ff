"""Which store a DATABASE_URL names: an SQLite file (the embedded default) or a
PostgreSQL server (several instances, one database)."""

from __future__ import annotations

from pathlib import Path

from storage.base import Store

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def make_store(url: str, *, pool_size: int = 10) -> Store:
    """The store for `url` (not yet open: `await store.open()` or `async with`)."""
    if url.startswith(POSTGRES_SCHEMES):
        from storage.postgres import PostgresStore  # asyncpg only where it is used

        return PostgresStore(url, pool_size=pool_size)
    if url.startswith("sqlite:///"):
        from storage.sqlite import SQLiteStore

        return SQLiteStore(Path(url.removeprefix("sqlite:///")))
    raise ValueError("DATABASE_URL must start with sqlite:/// or postgresql://")
