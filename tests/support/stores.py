"""Which database the suite runs against, and a fresh one for each test.

By default every test gets its own SQLite file. With CALLBOT_TEST_DATABASE_URL set to a
PostgreSQL database (`.ci/run` creates one per run), every test gets its own schema in it
instead, so the same tests hold the PostgreSQL store to the same behaviour."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

TEST_DATABASE_ENV = "CALLBOT_TEST_DATABASE_URL"
# Where tests that need PostgreSQL itself (several instances, migrate-db) look for a server
# when the suite runs on SQLite: the machine's own, if one answers.
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
# Set by .ci/run: the run's own database, for those tests in both runs.
POSTGRES_ENV = "CALLBOT_TEST_POSTGRES"


def postgres_server() -> str:
    """The database tests that need PostgreSQL itself use, whichever store the suite is on."""
    return os.environ.get(POSTGRES_ENV) or postgres_base() or LOCAL_POSTGRES


def postgres_base() -> str | None:
    """The PostgreSQL database the whole suite runs against, or None (SQLite)."""
    return os.environ.get(TEST_DATABASE_ENV) or None


def on_postgres() -> bool:
    return postgres_base() is not None


def with_schema(base: str, schema: str) -> str:
    """`base` with its connections' search_path set to `schema` (then public, where
    extensions live)."""
    parts = urlsplit(base)
    query = "&".join(q for q in (parts.query, urlencode({"search_path": f"{schema},public"}))
                     if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _without_query(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    schema = None
    kept = []
    for pair in parts.query.split("&") if parts.query else []:
        key, _, value = pair.partition("=")
        if key == "search_path":
            schema = value.split(",")[0].split("%2C")[0]
        else:
            kept.append(pair)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(kept),
                       parts.fragment)), schema


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code that may be inside a running loop
    (a test's helper): in a thread of its own, with a loop of its own."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = asyncio.run(coro)
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


async def pg_fetch(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    import asyncpg

    from storage.postgres.connection import _positional

    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(_positional(sql), *args)]
    finally:
        await conn.close()


async def pg_execute(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


# pg_trgm made once, where every test's schema sees it: made by the first test's migration
# it would live in that test's schema, out of the others' sight and dropped with it.
TRIGRAMS = "CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public"


@asynccontextmanager
async def fresh_database(tmp_path: Path, base: str | None = None) -> AsyncIterator[str]:
    """A DATABASE_URL naming an empty database of the suite's kind (or on `base`)."""
    base = base or postgres_base()
    if base is None:
        yield f"sqlite:///{tmp_path / 'callbot.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    await pg_execute(base, f"{TRIGRAMS}; CREATE SCHEMA {schema}")
    try:
        yield with_schema(base, schema)
    finally:
        await pg_execute(base, f"DROP SCHEMA {schema} CASCADE")


def drop_schema_of(url: str) -> None:
    base, schema = _without_query(url)
    if schema:
        run_sync(pg_execute(base, f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


async def postgres_answers(url: str) -> str | None:
    """None if a PostgreSQL server answers at `url`, else why not."""
    import asyncpg

    try:
        conn = await asyncio.wait_for(asyncpg.connect(url), 5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


_created: list[str] = []  # schemas made for the running test, dropped after it


def database_for(path: Path | str) -> str:
    """The DATABASE_URL a test's database file stands for: the file itself, or (on
    PostgreSQL) a schema named after it, made on first use, so a server restarted on the
    same file finds the same data and another file is another, empty database."""
    if isinstance(path, str) and "://" in path:
        return path
    base = postgres_base()
    if base is None:
        return f"sqlite:///{path}"
    import hashlib

    schema = "t_" + hashlib.sha1(str(path).encode()).hexdigest()[:20]
    if schema not in _created:
        run_sync(pg_execute(base, f"{TRIGRAMS}; CREATE SCHEMA IF NOT EXISTS {schema}"))
        _created.append(schema)
    return with_schema(base, schema)


def created() -> int:
    """How many schemas `database_for` has made so far (a mark for `drop_created`)."""
    return len(_created)


def drop_created(since: int = 0) -> None:
    """Drop the schemas `database_for` made after the mark `since` (a test's own; those of
    longer-lived fixtures are dropped at the end of the session)."""
    base = postgres_base()
    while base is not None and len(_created) > since:
        schema = _created.pop()
        run_sync(pg_execute(base, f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


def store_for(path: Path | str) -> Any:
    """The store (not yet open) for a test's database file: SQLite, or PostgreSQL's schema
    standing for it."""
    from storage.stores import make_store

    return make_store(database_for(path), pool_size=4)
