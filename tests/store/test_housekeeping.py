"""Housekeeping on a real database (the suite's SQLite file or PostgreSQL schema) through
the store: what only grows is pruned, in
batches, and what dedupe still needs stays; the daily pass runs once a day under a lease."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.calls.retention import DAY, Retention
from storage.base import Store
from storage.models import CallFields
from tests.support.db import db_execute, db_rows
from tests.support.stores import database_for, store_for

OLD = 40 * DAY


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    async with store_for(db_path) as s:
        yield s


def age(db_path: Path, sql: str, *args: object) -> None:
    """One write straight to the test's database (either backend), committed."""
    db_execute(db_path, sql, *args)


def count(db_path: Path, sql: str, *args: object) -> int:
    [(n,)] = db_rows(database_for(db_path), sql, *args)
    return int(n)


async def seed(store: Store, db_path: Path) -> None:
    """Old bookkeeping around four calls: analyzed, still polled, unfinished but touched
    lately, and unfinished and untouched for long; plus claims and delivered items."""
    now = time.time()
    for call_id, stage, poll in (("analyzed", 2, None), ("polled", 1, now + 60),
                                 ("recent", 1, None), ("stale", 1, None)):
        await store.record_events(
            [("call_started", ["card"]), ("call_ended", ["card", "summary"])],
            CallFields(call_id=call_id, status="ended", stage=stage), poll_at=poll)
    await store.enqueue_once("analyzed", "transcript")
    for n in range(7):
        assert await store.claim(f"message:C1:{n}", now)
    assert await store.claim("message:C1:new", now)
    old = now - OLD
    age(db_path, "UPDATE webhook_events SET received_at = ?", old)
    age(db_path, "UPDATE outbox SET done_at = ?, created_at = ?", old, old)
    age(db_path, "UPDATE claims SET claimed_at = ? WHERE key != 'message:C1:new'", old)
    age(db_path, "UPDATE calls SET updated_at = ? WHERE call_id IN ('analyzed', 'stale')", old)
    age(db_path, "UPDATE calls SET next_poll_at = NULL WHERE call_id != 'polled'")


async def test_prune_deletes_old_bookkeeping_in_batches_and_keeps_what_dedupe_needs(
    store: Store, db_path: Path
) -> None:
    await seed(store, db_path)
    writes_before = store.commits[1]

    pruned = await store.prune(time.time() - 30 * DAY, batch=2)

    # 7 claims, the events of 2 calls (2 each), 8 card/summary items; the transcript stays.
    assert pruned == {"claims": 7, "webhook_events": 4, "outbox": 8}
    assert store.commits[1] - writes_before >= 7 // 2 + 4 // 2 + 8 // 2  # in batches
    kept = {r for (r,) in db_rows(database_for(db_path),
                                  "SELECT DISTINCT call_id FROM webhook_events")}
    assert kept == {"polled", "recent"}
    assert count(db_path, "SELECT count(*) FROM claims") == 1
    assert count(db_path, "SELECT count(*) FROM outbox WHERE kind = 'transcript'") == 1
    # Dedupe still holds: a repeated webhook of a kept call is a duplicate, and the
    # transcript is still posted once per call.
    assert await store.record_events([("call_ended", ["summary"])],
                                     CallFields(call_id="polled", status="ended", stage=1)) == []
    assert await store.enqueue_once("analyzed", "transcript") is False
    assert await store.prune(time.time() - 30 * DAY) == dict.fromkeys(pruned, 0)


async def test_pending_outbox_items_and_recent_rows_are_never_pruned(
    store: Store, db_path: Path
) -> None:
    await store.record_events([("call_ended", ["card", "summary"])],
                              CallFields(call_id="c1", status="ended", stage=2))
    age(db_path, "UPDATE outbox SET created_at = ?", time.time() - OLD)  # old, undelivered
    assert await store.prune(time.time() - 30 * DAY) == {"claims": 0, "webhook_events": 0,
                                                         "outbox": 0}
    assert count(db_path, "SELECT count(*) FROM outbox WHERE done_at IS NULL") == 2


async def test_the_daily_pass_runs_once_a_day_across_processes(
    store: Store, db_path: Path
) -> None:
    await seed(store, db_path)
    clock = [time.time()]
    first = Retention(store, 0, housekeeping_days=30, owner="a", clock=lambda: clock[0])
    second = Retention(store, 0, housekeeping_days=30, owner="b", clock=lambda: clock[0])

    await first._once_a_day("housekeeping", first.prune)
    await second._once_a_day("housekeeping", second.prune)
    await first._once_a_day("housekeeping", first.prune)  # its own lease is not re-entered
    assert (first.prunes, second.prunes) == (1, 0)
    assert count(db_path, "SELECT count(*) FROM claims") == 1

    clock[0] += DAY + 1
    await second._once_a_day("housekeeping", second.prune)
    assert (first.prunes, second.prunes) == (1, 1)
