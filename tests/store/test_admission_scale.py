"""Admission never reads history: its queries touch only live calls and one user's latest.

Structural, not timed: the query plans must use the narrow indexes (no scan of `calls`),
and the work an admission takes (SQLite's VM steps, PostgreSQL's buffers touched) must
not grow with stored calls. Each database is asked in its own terms: SQLite's plan and
steps on an SQLite run, PostgreSQL's EXPLAIN on a PostgreSQL run.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from storage.models import Limits
from storage.postgres import guard as pg_guard
from storage.postgres.connection import _named
from storage.sqlite import LIVE_COUNT_SQL, USER_RECENT_SQL, SQLiteStore
from tests.support.stores import database_for, on_postgres, pg_fetch, store_for

SQLITE_PLAN = "reads SQLite's own query plan (EXPLAIN QUERY PLAN) of its file"
SQLITE_STEPS = "counts SQLite's VM steps on its file"
postgres_only = pytest.mark.skipif(
    not on_postgres(), reason="PostgreSQL's EXPLAIN: runs when the suite is on PostgreSQL "
    "(CALLBOT_TEST_DATABASE_URL); the SQLite run checks SQLite's plan instead")


def plan(db: Path, sql: str, params: object) -> str:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()  # type: ignore[arg-type]
    finally:
        conn.close()
    return "\n".join(str(r[-1]) for r in rows)


@pytest.mark.sqlite_only(SQLITE_PLAN)
async def test_admission_queries_use_the_narrow_indexes(tmp_path: Path) -> None:
    db = tmp_path / "callbot.db"
    async with SQLiteStore(db):
        pass
    live = plan(db, LIVE_COUNT_SQL, (0.0,))
    assert "calls_live" in live and "SCAN calls" not in live.replace("USING", ""), live
    recent = plan(db, USER_RECENT_SQL, {"user": "U1", "since": 0.0, "limit": 5})
    assert "calls_user" in recent and "call_holds_user" in recent, recent
    assert "SCAN calls\n" not in recent + "\n" and "SCAN calls " not in recent, recent


def steps(db: Path, sql: str, params: object) -> int:
    """SQLite VM instructions a query runs: a cost that does not depend on the machine."""
    conn = sqlite3.connect(db)
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    conn.set_progress_handler(tick, 1)
    try:
        conn.execute(sql, params).fetchall()  # type: ignore[arg-type]
    finally:
        conn.close()
    return count[0]


async def seed(store: SQLiteStore, db: Path, ended: int, user_calls: int) -> None:
    """Ended calls of many users, and `user_calls` recent calls of U1 (through the store
    for the schema, a direct insert for speed: this is a test's fixture, not the app)."""
    now = time.time()
    conn = sqlite3.connect(db)
    try:
        conn.executemany(
            "INSERT INTO calls (call_id, status, stage, created_at, updated_at, user_id) "
            "VALUES (?, 'ended', 3, ?, ?, ?)",
            [(f"c{i}", now - i % 3600, now, f"U{i % 50 + 2}") for i in range(ended)])
        conn.executemany(
            "INSERT INTO calls (call_id, status, stage, created_at, updated_at, user_id) "
            "VALUES (?, 'ended', 3, ?, ?, 'U1')",
            [(f"u{i}", now - i, now) for i in range(user_calls)])
        conn.commit()
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.sqlite_only(SQLITE_STEPS)
async def test_admission_cost_does_not_grow_with_history(tmp_path: Path) -> None:
    small, large = tmp_path / "small.db", tmp_path / "large.db"
    for db, ended in ((small, 1_000), (large, 100_000)):
        async with SQLiteStore(db) as store:
            await seed(store, db, ended, user_calls=200)
    now = time.time()
    params = {"user": "U1", "since": now - 3600, "limit": 5}
    for sql, args in ((LIVE_COUNT_SQL, (now - 7200,)), (USER_RECENT_SQL, params)):
        few, many = steps(small, sql, args), steps(large, sql, args)
        # 100 times the history; the same work give or take a B-tree level.
        assert many <= few * 1.5 + 50, (sql, few, many)


async def test_limits_still_count_exactly_after_the_rewrite(tmp_path: Path) -> None:
    async with store_for(tmp_path / "callbot.db") as store:
        limits = Limits(per_hour=3, concurrent=0)
        now = time.time()
        admitted = [await store.admit("U1", limits, now + i) for i in range(4)]
        assert [a.hold_id is not None for a in admitted] == [True, True, True, False]
        refused = admitted[-1]
        assert refused.limit == "per_hour" and refused.free_at == now + 3600


# -- the same on PostgreSQL -------------------------------------------------------------------

PG_PARAMS = {"hold": 300.0}


async def pg_explain(url: str, sql: str, params: dict[str, Any], *,
                     analyze: bool = False) -> dict[str, Any]:
    """PostgreSQL's plan for `sql` (named parameters), run too when `analyze`."""
    text, names = _named(sql)
    options = "ANALYZE, BUFFERS, " if analyze else ""
    [(doc,)] = await pg_fetch(url, f"EXPLAIN ({options}FORMAT JSON) {text}",
                              *(params[n] for n in names))
    plan: dict[str, Any] = (json.loads(doc) if isinstance(doc, str) else doc)[0]["Plan"]
    return plan


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in nodes(child))]


async def pg_seed(url: str, ended: int, user_calls: int) -> None:
    """The SQLite seed's rows, inserted in one statement each, and the planner's
    statistics brought up to date (as autovacuum would)."""
    now = time.time()
    await pg_fetch(url, "INSERT INTO calls (call_id, status, stage, created_at, updated_at, "
                        "user_id) SELECT 'c' || i, 'ended', 3, ? - i % 3600, ?, "
                        "'U' || (i % 50 + 2) FROM generate_series(0, ? - 1) i",
                   now, now, ended)
    await pg_fetch(url, "INSERT INTO calls (call_id, status, stage, created_at, updated_at, "
                        "user_id) SELECT 'u' || i, 'ended', 3, ? - i, ?, 'U1' "
                        "FROM generate_series(0, ? - 1) i", now, now, user_calls)
    await pg_fetch(url, "ANALYZE calls")
    await pg_fetch(url, "ANALYZE call_holds")


def pg_queries(now: float) -> list[tuple[str, dict[str, Any]]]:
    return [(pg_guard.LIVE_COUNT_SQL, {**PG_PARAMS, "since": now - 7200, "now": now}),
            (pg_guard.USER_RECENT_SQL, {**PG_PARAMS, "user": "U1", "since": now - 3600,
                                        "limit": 5, "now": now})]


@postgres_only
async def test_admission_queries_use_the_narrow_indexes_on_postgres(tmp_path: Path) -> None:
    async with store_for(tmp_path / "callbot.db"):
        pass
    url = database_for(tmp_path / "callbot.db")
    await pg_seed(url, 5_000, user_calls=200)
    (live_sql, live_args), (recent_sql, recent_args) = pg_queries(time.time())
    for sql, args, index in ((live_sql, live_args, "calls_live"),
                             (recent_sql, recent_args, "calls_user")):
        shown = nodes(await pg_explain(url, sql, args))
        assert index in {n.get("Index Name") for n in shown}, shown
        assert not [n for n in shown if n["Node Type"] == "Seq Scan"
                    and n.get("Relation Name") == "calls"], shown


@pytest.mark.slow
@postgres_only
async def test_admission_cost_does_not_grow_with_history_on_postgres(tmp_path: Path) -> None:
    urls = {}
    for name, ended in (("small.db", 1_000), ("large.db", 100_000)):
        async with store_for(tmp_path / name):
            pass
        urls[name] = database_for(tmp_path / name)
        await pg_seed(urls[name], ended, user_calls=200)

    def touched(plan: dict[str, Any]) -> int:
        """Buffers the run read (from cache or disk): a cost that does not depend on the
        machine's speed."""
        return int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])

    for sql, args in pg_queries(time.time()):
        few = touched(await pg_explain(urls["small.db"], sql, args, analyze=True))
        many = touched(await pg_explain(urls["large.db"], sql, args, analyze=True))
        # 100 times the history; the same pages give or take a B-tree level.
        assert many <= few * 1.5 + 5, (sql, few, many)
