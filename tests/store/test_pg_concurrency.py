"""Several app instances on one PostgreSQL database: two stores (two pools on one schema, as
two instances have) admit and deliver at the same moment, and the limits and the outbox
leases hold as exactly as SQLite's single writer makes them hold in one process.

PostgreSQL itself is what is tested, whichever store the rest of the suite is on: each test
gets a fresh schema from `pg_url`, and is skipped, saying why, when no server answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from storage.base import Store
from storage.models import Admission, CallFields, Limits
from storage.postgres import PostgresStore
from tests.support.db import db_rows

ROUNDS = 10


@pytest.fixture
async def two(pg_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two instances' stores: each its own pool, both on the test's schema."""
    async with PostgresStore(pg_url, pool_size=4) as a, PostgresStore(pg_url, pool_size=4) as b:
        yield a, b


def holds(url: str) -> int:
    [(n,)] = db_rows(url, "SELECT count(*) FROM call_holds")
    return int(n)


async def admit_from_both(two: tuple[Store, Store], user: str | None, limits: Limits,
                          now: float, *, number: str | None = None,
                          each: int = 12) -> list[Admission]:
    """`each` admissions from each instance, all at once (they interleave on the pools)."""
    return await asyncio.gather(*(
        store.admit(user, limits, now, number=number, request_key=f"k{n}-{i}")
        for i in range(each) for n, store in enumerate(two)))


async def test_two_instances_admitting_at_once_never_pass_a_persons_limit(
    two: tuple[Store, Store], pg_url: str
) -> None:
    now = time.time()
    total = 0
    for round_ in range(ROUNDS):
        limit = 3
        answers = await admit_from_both(two, f"U{round_}", Limits(per_hour=limit), now)
        admitted = [a for a in answers if a.hold_id is not None]
        assert len(admitted) == limit, answers
        assert {a.limit for a in answers if a.hold_id is None} == {"per_hour"}
        total += limit
        assert holds(pg_url) == total
    # Either instance now refuses the same person, and counts the other's holds.
    for store in two:
        refusal = await store.admit("U0", Limits(per_hour=3), now)
        assert (refusal.limit, refusal.count) == ("per_hour", 3)


async def test_two_instances_share_the_number_and_concurrent_caps(
    two: tuple[Store, Store], pg_url: str
) -> None:
    now = time.time()
    # Different people calling one number: the number's daily cap is what counts.
    answers = await asyncio.gather(*(
        store.admit(f"U{n}{i}", Limits(per_number_day=2), now, number="+14155550123")
        for i in range(10) for n, store in enumerate(two)))
    assert sum(a.hold_id is not None for a in answers) == 2
    assert {a.limit for a in answers if a.hold_id is None} == {"per_number"}
    # Different people, different numbers: only the global cap (2 holds already count).
    answers = await asyncio.gather(*(
        store.admit(f"V{n}{i}", Limits(concurrent=5), now, number=f"+1415555{n}{i:03d}")
        for i in range(10) for n, store in enumerate(two)))
    assert sum(a.hold_id is not None for a in answers) == 3
    assert {a.limit for a in answers if a.hold_id is None} == {"concurrent"}
    assert holds(pg_url) == 5


async def test_two_instances_leasing_one_call_at_once_one_gets_its_items(
    two: tuple[Store, Store], pg_url: str
) -> None:
    a, b = two
    for round_ in range(ROUNDS):
        call_id = f"call{round_}"
        await a.record_events([("call_started", ["card"]), ("call_ended", ["card", "summary"])],
                              CallFields(call_id=call_id, status="ended", stage=1))
        now = time.time()
        got = await asyncio.gather(a.lease_outbox(call_id, "a", now, now + 60),
                                   b.lease_outbox(call_id, "b", now, now + 60))
        winners = [owner for owner, items in zip("ab", got, strict=True) if items]
        assert len(winners) == 1, got
        [items] = [items for items in got if items]
        assert [i.kind for i in items] == ["card", "summary"]  # kinds queued once each
        owners = db_rows(pg_url, "SELECT DISTINCT lease_owner FROM outbox WHERE call_id = ?",
                         call_id)
        assert owners == [(winners[0],)]
        # The loser's view: the call is not due before the winner's lease runs out.
        loser, loser_owner = (b, "b") if winners[0] == "a" else (a, "a")
        [head] = [h for h in await loser.outbox_heads(50, owner=loser_owner)
                  if h.call_id == call_id]
        assert head.next_attempt_at == pytest.approx(now + 60)


async def test_two_instances_queueing_a_transcript_at_once_queue_it_once(
    two: tuple[Store, Store], pg_url: str
) -> None:
    a, _ = two
    await a.record_events([("call_ended", ["card"])],
                          CallFields(call_id="c1", status="ended", stage=2))
    for round_ in range(ROUNDS):
        kind = f"transcript{round_}"
        queued = await asyncio.gather(*(store.enqueue_once("c1", kind)
                                        for _ in range(4) for store in two))
        assert sum(queued) == 1
    [(n,)] = db_rows(pg_url,
                     "SELECT count(*) FROM outbox WHERE kind LIKE 'transcript%'")
    assert n == ROUNDS


async def test_pooled_connections_come_back_with_no_session_state(pg_url: str) -> None:
    """The pool hands connections back without asyncpg's reset, so nothing may leave a lock
    or a setting on one: after migrating (a session lock, its own lock timeout) and after
    admissions and enqueues (transaction locks), every connection is as a new one."""
    async with PostgresStore(pg_url, pool_size=3) as store:
        await asyncio.gather(*(store.admit(f"U{n}", Limits(per_hour=5), time.time())
                               for n in range(6)))
        await asyncio.gather(*(store.enqueue_once(f"call_{n}", "transcript") for n in range(6)))
        pool = store._p  # the pool itself is what is checked
        conns = [await pool.acquire() for _ in range(3)]
        try:
            for conn in conns:
                state = await conn.fetchrow(
                    "SELECT current_setting('lock_timeout') AS timeout, "
                    "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    " AND pid = pg_backend_pid()) AS locks")
                assert dict(state) == {"timeout": "5s", "locks": 0}
        finally:
            for conn in conns:
                await pool.release(conn)
