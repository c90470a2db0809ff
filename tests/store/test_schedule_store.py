"""Scheduled calls on a real database (the suite's SQLite file or PostgreSQL schema): a call
is claimed by one firing only, a claim that runs out is taken over, cancel only while
waiting, and due/next come from the index."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from storage.models import Scheduled
from storage.sqlite import NUMBER_RECENT_SQL, SQLiteStore
from tests.store.test_admission_scale import plan
from tests.support.stores import store_for


def entry(due_in: float, user: str = "U0A1") -> Scheduled:
    return Scheduled(id=0, channel_id="C0A1", user_id=user, number="+14155550123",
                     due_at=time.time() + due_in, request_key=f"k{due_in}{user}")


async def test_a_due_call_is_claimed_once_and_a_lapsed_claim_is_taken_over(
    tmp_path: Path
) -> None:
    async with store_for(tmp_path / "callbot.db") as store:
        now = time.time()
        sid = await store.schedule(entry(-1), now)
        later = await store.schedule(entry(3600), now)
        claims = await asyncio.gather(*(store.claim_schedule(sid, now, now + 60)
                                        for _ in range(10)))
        assert sum(c is not None for c in claims) == 1  # ten firings race: one wins
        assert await store.claim_schedule(later, now, now + 60) is None  # not due yet
        assert (await store.claim_schedule(later, now, now + 60, early=True)) is not None
        # The first firing died: once its claim runs out, the call is due again.
        assert await store.due_schedules(now + 30, 10) == []
        [again] = await store.due_schedules(now + 61, 10)
        assert again.id == sid and again.status == "firing"
        assert await store.claim_schedule(sid, now + 61, now + 121) is not None
        await store.finish_schedule(sid, "placed", now + 62, call_id="call_1")
        assert await store.due_schedules(now + 999, 10) == []
        done = await store.get_schedule(sid)
        assert done is not None and (done.status, done.outcome) == ("done", "placed")


async def test_cancel_only_while_waiting_and_the_upcoming_list(tmp_path: Path) -> None:
    async with store_for(tmp_path / "callbot.db") as store:
        now = time.time()
        first = await store.schedule(entry(7200), now)
        second = await store.schedule(entry(3600, user="U0B2"), now)
        assert [s.id for s in await store.upcoming_schedules(None, 10)] == [second, first]
        assert [s.id for s in await store.upcoming_schedules("U0A1", 10)] == [first]
        soonest = await store.get_schedule(second)
        assert soonest is not None and await store.next_due() == soonest.due_at
        cancelled = await store.cancel_schedule(first, "U0A1", now)
        assert cancelled is not None and cancelled.detail == "U0A1"
        assert await store.cancel_schedule(first, "U0A1", now) is None  # not waiting now
        assert [s.id for s in await store.upcoming_schedules(None, 10)] == [second]


@pytest.mark.sqlite_only("reads SQLite's own query plan (EXPLAIN QUERY PLAN) of its file")
async def test_the_per_number_count_uses_its_indexes(tmp_path: Path) -> None:
    db = tmp_path / "callbot.db"
    async with SQLiteStore(db):
        pass
    shown = plan(db, NUMBER_RECENT_SQL, {"number": "+1", "since": 0.0, "limit": 3})
    assert "calls_number" in shown and "call_holds_number" in shown
    assert "SCAN calls" not in shown
