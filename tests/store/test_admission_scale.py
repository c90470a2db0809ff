"""Admission never reads history: its queries touch only live calls and one user's latest.

Structural, not timed: the query plans must use the narrow indexes (no scan of `calls`),
and the number of SQLite VM steps an admission takes must not grow with stored calls.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from storage.models import Limits
from storage.sqlite import LIVE_COUNT_SQL, USER_RECENT_SQL, SQLiteStore


def plan(db: Path, sql: str, params: object) -> str:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()  # type: ignore[arg-type]
    finally:
        conn.close()
    return "\n".join(str(r[-1]) for r in rows)


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
    db = tmp_path / "callbot.db"
    async with SQLiteStore(db) as store:
        limits = Limits(per_hour=3, concurrent=0)
        now = time.time()
        admitted = [await store.admit("U1", limits, now + i) for i in range(4)]
        assert [a.hold_id is not None for a in admitted] == [True, True, True, False]
        refused = admitted[-1]
        assert refused.limit == "per_hour" and refused.free_at == now + 3600
