"""Claims across app instances on one PostgreSQL database: two stores (two pools on one
schema, as two instances of the app) race for the same campaign rows and the same scheduled
call. A row is taken by one runner only, a campaign never has more calls under way than its
concurrency, a scheduled call fires once, and a campaign's results are posted once.

SQLite has one writer per file, so these races cannot happen there: PostgreSQL only, on
the `pg_url` fixture's fresh schema, whichever backend the rest of the suite runs on."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from storage.models import Campaign, CampaignRow, Scheduled
from tests.support.stores import store_for

CONCURRENCY = 5
ROWS = 60
CLAIM_FOR = 600.0  # no claim runs out during a test: a row taken twice is a real double


@pytest.fixture
async def instances(pg_url: str) -> AsyncIterator[tuple[Any, Any]]:
    """Two stores on one fresh PostgreSQL schema (`pg_url`: skipped, saying why, when no
    server answers), each with a pool of its own."""
    async with store_for(pg_url) as first, store_for(pg_url) as second:
        yield first, second


async def _campaign(store: Any, rows: int = ROWS, concurrency: int = CONCURRENCY) -> int:
    now = time.time()
    campaign = Campaign(id=0, name="Race", owner="U0A1", channel_id="C0A1", status="running",
                        concurrency=concurrency, attempts=1, retry_spacing=60.0,
                        created_at=now)
    listed = [CampaignRow(id=0, campaign_id=0, line=i + 2, number=f"+1415555{i:04d}",
                          status="waiting") for i in range(rows)]
    return int(await store.create_campaign(campaign, listed, now))


async def test_simultaneous_claims_from_two_instances_fill_the_room_once(
    instances: tuple[Any, Any]
) -> None:
    first, second = instances
    campaign_id = await _campaign(first)
    now = time.time()
    # Twenty claims at once, ten from each instance, none freeing anything: together they
    # may take the campaign's room and no more, each row once.
    claims = await asyncio.gather(*(
        store.claim_campaign_rows(campaign_id, CONCURRENCY, now, now + CLAIM_FOR)
        for _ in range(10) for store in (first, second)))
    taken = [row.id for rows in claims for row in rows]
    assert len(taken) == CONCURRENCY
    assert len(set(taken)) == len(taken)
    assert sum(1 for rows in claims if rows) >= 1
    placing = await second.campaign_rows(campaign_id, statuses=("placing",))
    assert sorted(r.id for r in placing) == sorted(taken)
    assert all(r.attempts == 1 for r in placing)  # each try begun once


async def test_runners_on_two_instances_never_share_a_row_or_pass_the_concurrency(
    instances: tuple[Any, Any]
) -> None:
    first, second = instances
    campaign_id = await _campaign(first)
    held: set[int] = set()  # rows some runner has claimed and not yet let go
    most = 0
    taken: list[int] = []
    rng = random.Random(7)

    async def runner(store: Any, name: str) -> None:
        nonlocal most
        while True:
            now = time.time()
            rows = await store.claim_campaign_rows(campaign_id, CONCURRENCY, now,
                                                   now + CLAIM_FOR, limit=2)
            if not rows:
                if not await store.campaign_rows(campaign_id, statuses=("waiting",), limit=1):
                    return
                await asyncio.sleep(0.002)
                continue
            for row in rows:
                assert row.id not in held, f"row {row.id} taken twice"
                held.add(row.id)
                taken.append(row.id)
            most = max(most, len(held))
            assert len(held) <= CONCURRENCY, f"{len(held)} under way, room {CONCURRENCY}"
            for row in rows:
                await store.row_placed(row.id, f"call_{name}_{row.id}")
            await asyncio.sleep(rng.uniform(0, 0.01))
            for row in rows:
                # Let go here first, then in the database: at every moment the rows held
                # here are ones the database still counts as under way.
                held.discard(row.id)
                await store.row_done(row.id, "connected", None)

    await asyncio.gather(*(runner(store, f"{tag}{i}") for i in range(4)
                           for tag, store in (("a", first), ("b", second))))
    assert sorted(taken) == sorted(set(taken)) and len(taken) == ROWS  # each row once
    assert most == CONCURRENCY  # the room was used, not just respected
    done = await first.campaign_rows(campaign_id, statuses=("done",), limit=ROWS)
    assert len(done) == ROWS and all(r.attempts == 1 for r in done)


async def test_two_instances_claim_one_campaign_each_within_its_own_room(
    instances: tuple[Any, Any]
) -> None:
    """The lock is the campaign's own: claims for another campaign neither wait for it nor
    count against it."""
    first, second = instances
    one = await _campaign(first, rows=10, concurrency=3)
    two = await _campaign(second, rows=10, concurrency=4)
    now = time.time()
    claims = await asyncio.gather(*(
        store.claim_campaign_rows(cid, room, now, now + CLAIM_FOR)
        for _ in range(6) for store in (first, second) for cid, room in ((one, 3), (two, 4))))
    by_campaign: dict[int, list[int]] = {one: [], two: []}
    for rows in claims:
        for row in rows:
            by_campaign[row.campaign_id].append(row.id)
    assert len(by_campaign[one]) == 3 and len(set(by_campaign[one])) == 3
    assert len(by_campaign[two]) == 4 and len(set(by_campaign[two])) == 4


async def test_a_finished_campaigns_results_are_claimed_once_across_instances(
    instances: tuple[Any, Any]
) -> None:
    first, second = instances
    campaign_id = await _campaign(first, rows=1)
    answers = await asyncio.gather(*(store.claim_results(campaign_id)
                                     for _ in range(10) for store in (first, second)))
    assert answers.count(True) == 1
    assert not await second.claim_results(campaign_id)


async def test_a_scheduled_call_is_claimed_by_one_instance_only(
    instances: tuple[Any, Any]
) -> None:
    first, second = instances
    now = time.time()
    for n in range(10):  # ten calls, each raced for by both instances at once
        schedule_id = await first.schedule(Scheduled(
            id=0, channel_id="C0A1", user_id="U0A1", number="+14155550123",
            due_at=now - 1, request_key=f"race{n}"), now)
        claims = await asyncio.gather(*(store.claim_schedule(schedule_id, now, now + 60)
                                        for _ in range(5) for store in (first, second)))
        won = [c for c in claims if c is not None]
        assert len(won) == 1, f"call {n} claimed {len(won)} times"
        assert won[0].id == schedule_id and won[0].status == "firing"
        # Still firing under a live claim: neither instance finds it due.
        assert await first.due_schedules(now + 30, 10) == []
        assert await second.claim_schedule(schedule_id, now + 30, now + 90) is None
        await second.finish_schedule(schedule_id, "placed", now, call_id=f"call_{n}")
