"""The SQLite store on a real file: schema, WAL, merge rules, dedupe, stats queries."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from storage.migrations import MIGRATIONS
from storage.models import (
    STAGE_ANALYZED,
    STAGE_ENDED,
    STAGE_STARTED,
    Attempt,
    CallFields,
    OutboxItem,
    Route,
)
from storage.sqlite import SQLiteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "calls.db") as s:
        yield s


def ended(call_id: str = "call_1", **kw: object) -> CallFields:
    base = CallFields(call_id=call_id, status="ended", stage=STAGE_ENDED, to_number="+14155550123",
                      duration_ms=60_000, disconnection_reason="user_hangup",
                      transcript="Agent: hi", raw_payload='{"event":"call_ended"}')
    return replace(base, **kw)  # type: ignore[arg-type]


async def test_schema_is_migrated_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    async with SQLiteStore(path):
        pass
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"calls", "webhook_events", "outbox"} <= tables
    conn.close()
    async with SQLiteStore(path):  # a second start applies nothing twice
        pass


async def test_refuses_a_database_from_a_newer_build(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this build"):
        await SQLiteStore(path).open()


async def record_one(
    store: SQLiteStore, event: str, fields: CallFields, kinds: list[str]
) -> bool:
    return bool(await store.record_events([(event, kinds)], fields))


async def test_same_event_twice_is_recorded_once(store: SQLiteStore) -> None:
    assert await record_one(store, "call_ended", ended(), ["card"]) is True
    assert await record_one(store, "call_ended", ended(duration_ms=1), ["card"]) is False
    record = await store.get_call("call_1")
    assert record is not None and record.duration_ms == 60_000
    assert (await store.outbox_backlog())[0] == 1


async def test_out_of_order_events_end_in_the_right_state(store: SQLiteStore) -> None:
    analyzed = ended(stage=STAGE_ANALYZED, sentiment="Positive", successful=True,
                     summary="Booked.", raw_payload='{"event":"call_analyzed"}')
    await record_one(store, "call_analyzed", analyzed, ["card", "summary"])
    await record_one(store, "call_ended", ended(), ["card"])
    started = CallFields(call_id="call_1", status="ongoing", stage=STAGE_STARTED,
                         raw_payload='{"event":"call_started"}')
    await record_one(store, "call_started", started, ["card"])
    record = await store.get_call("call_1")
    assert record is not None
    assert (record.status, record.stage) == ("ended", STAGE_ANALYZED)
    assert (record.summary, record.sentiment, record.successful) == ("Booked.", "Positive", True)
    raw = await _raw(store, "call_1")
    assert "call_analyzed" in raw


async def test_placed_call_does_not_undo_a_faster_webhook(store: SQLiteStore) -> None:
    await record_one(store, "call_started",
        CallFields(call_id="call_9", status="ongoing", stage=STAGE_STARTED, channel_id="C1",
                   message_ts="1.2"),
        ["card"],
    )
    attempt = Attempt(route=Route(team_id="T", channel_id="C1", user_id="U1", message_ts="1.2"),
                      from_number="+14155550100", to_number="+14155550123", agent_id="agent_1",
                      agent_name="Sales", variables={"a": "b"})
    await store.save_placed_call(attempt, "call_9", "registered", None)
    record = await store.get_call("call_9")
    assert record is not None
    assert record.status == "ongoing" and record.user_id == "U1"
    assert record.variables == {"a": "b"} and record.agent_name == "Sales"


async def test_failed_attempts_are_kept_but_not_counted_as_calls(store: SQLiteStore) -> None:
    attempt = Attempt(route=Route(team_id="T", channel_id="C1", user_id="U1", message_ts=None),
                      from_number="+14155550100", to_number="+14155550123", agent_id=None,
                      agent_name=None, variables={})
    row_id = await store.record_failed_attempt(attempt, "Retell refused the call: no credit")
    assert row_id > 0
    stats = await store.stats(None)
    assert stats.calls == 0 and stats.failed_attempts == 1


async def test_stats_on_known_data(store: SQLiteStore) -> None:
    rows = [
        # duration_ms, sentiment, successful, cost, reason
        (30_000, "Positive", True, 10.0, "user_hangup"),
        (60_000, "Positive", True, 20.0, "user_hangup"),
        (90_000, "Negative", False, 30.0, "agent_hangup"),
        (120_000, "Neutral", None, 40.0, "user_hangup"),
        (0, None, None, 0.0, "dial_no_answer"),
    ]
    for i, (ms, sentiment, ok, cost, reason) in enumerate(rows):
        stage = STAGE_ANALYZED if ok is not None else STAGE_ENDED
        fields = ended(f"call_{i}", duration_ms=ms, sentiment=sentiment, successful=ok,
                       cost_cents=cost, disconnection_reason=reason, stage=stage)
        await record_one(store, "call_analyzed", fields, [])
    stats = await store.stats(time.time() - 3600)
    assert stats.calls == 5
    assert (stats.analyzed, stats.successful) == (3, 2)
    assert stats.success_rate == pytest.approx(2 / 3)
    assert stats.sentiments == {"Positive": 2, "Neutral": 1, "Negative": 1, "Unknown": 1}
    assert stats.connected == 4
    assert stats.avg_duration_ms == pytest.approx(75_000)
    assert stats.median_duration_ms == pytest.approx(75_000)  # even count: mean of middle two
    assert stats.total_cost_cents == pytest.approx(100.0)
    assert stats.top_reasons == [("user_hangup", 3), ("agent_hangup", 1), ("dial_no_answer", 1)]
    later = await store.stats(time.time() + 60)
    assert later.calls == 0 and later.median_duration_ms is None


async def test_stats_median_odd_count_and_window(store: SQLiteStore) -> None:
    for i, ms in enumerate((10_000, 50_000, 20_000)):
        await record_one(store, "call_ended", ended(f"c{i}", duration_ms=ms), [])
    stats = await store.stats(None)
    assert stats.median_duration_ms == 20_000


async def test_stats_use_the_covering_index(store: SQLiteStore) -> None:
    conn = sqlite3.connect(store.path)
    plan = " ".join(
        str(r[3]) for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT count(*), sum(cost_cents) FROM calls "
            "WHERE call_id IS NOT NULL AND created_at >= 0"
        )
    )
    conn.close()
    assert "COVERING INDEX calls_stats" in plan


async def _raw(store: SQLiteStore, call_id: str) -> str:
    conn = sqlite3.connect(store.path)
    try:
        return str(conn.execute("SELECT raw_payload FROM calls WHERE call_id = ?",
                                (call_id,)).fetchone()[0])
    finally:
        conn.close()


@pytest.mark.slow
async def test_reads_always_see_committed_writes_under_concurrent_reads(
    store: SQLiteStore,
) -> None:
    """A read left open across an await once hid a just-committed call from `get_call`."""
    stop = False

    async def busy_reader() -> None:
        while not stop:
            await store.outbox_heads(50)
            await store.stats(None)

    readers = [asyncio.create_task(busy_reader()) for _ in range(3)]
    try:
        for i in range(150):
            route = Route(team_id="T", channel_id="C1", user_id="U1", message_ts=f"{i}.0")
            attempt = Attempt(route=route,
                              from_number="+14155550100", to_number="+14155550123",
                              agent_id=None, agent_name=None, variables={})
            await store.save_placed_call(attempt, f"call_{i}", "registered", None)
            assert await store.get_call(f"call_{i}") is not None, i
    finally:
        stop = True
        await asyncio.gather(*readers)


async def test_concurrent_writes_share_one_commit_and_each_is_durable(
    store: SQLiteStore, tmp_path: Path
) -> None:
    before, _ = store.commits
    results = await asyncio.gather(
        *(record_one(store, "call_ended", ended(f"call_{i}"), ["card"]) for i in range(50))
    )
    assert results == [True] * 50
    transactions, writes = store.commits
    # All fifty were queued before the first commit began, so they went in one.
    assert transactions - before == 1 and writes >= 50
    conn = sqlite3.connect(tmp_path / "calls.db")  # another connection sees every one
    assert conn.execute("SELECT count(*) FROM webhook_events").fetchone()[0] == 50
    conn.close()


async def test_a_failing_write_in_a_batch_fails_alone(store: SQLiteStore) -> None:
    """One write breaking a constraint is rolled back to its savepoint; the rest commit."""
    bad = ended("call_bad")
    outcomes = await asyncio.gather(
        record_one(store, "call_ended", ended("call_a"), ["card"]),
        store.record_events([("call_ended", ["card"])], replace(bad, status=None)),  # type: ignore[arg-type]
        record_one(store, "call_ended", ended("call_b"), ["card"]),
        return_exceptions=True,
    )
    assert outcomes[0] is True and outcomes[2] is True
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert await store.get_call("call_a") is not None and await store.get_call("call_b")
    assert await store.get_call("call_bad") is None
    assert (await store.outbox_backlog())[0] == 2  # the bad write queued nothing either


async def test_outbox_heads_keep_each_calls_items_in_order(store: SQLiteStore) -> None:
    await store.record_events([("call_ended", ["card", "summary"])], ended("call_a"))
    await store.record_events([("call_ended", ["card"])], ended("call_b"))
    heads = await store.outbox_heads(10)
    assert [(h.call_id, h.kind) for h in heads] == [("call_a", "card"), ("call_b", "card")]
    # call_a's card waits for a retry: its summary must wait too; call_b goes on.
    await store.retry_outbox(heads[0].id, time.time() + 60, "HTTP 500")
    await store.complete_outbox([heads[1].id], time.time())
    [head] = await store.outbox_heads(10)
    assert (head.call_id, head.kind) == ("call_a", "card") and head.next_attempt_at > time.time()
    count, oldest = await store.outbox_backlog()
    assert count == 2 and oldest is not None and oldest <= time.time()


async def test_outbox_heads_leave_out_the_channels_with_enough_in_hand(
    store: SQLiteStore,
) -> None:
    """A worker with a full lane for a channel asks for the others' heads only, so a deep
    backlog in one channel neither crowds out another nor piles up in memory."""
    await store.record_events([("call_ended", ["card"])], ended("call_a1", channel_id="C1"))
    await store.record_events([("call_ended", ["card"])], ended("call_a2", channel_id="C1"))
    await store.record_events([("call_ended", ["card"])], ended("call_b", channel_id="C2"))
    await store.record_events([("call_ended", ["card"])], ended("call_nowhere"))

    def calls(heads: list[OutboxItem]) -> list[str]:
        return [h.call_id for h in heads]

    assert calls(await store.outbox_heads(10)) == ["call_a1", "call_a2", "call_b",
                                                   "call_nowhere"]
    assert calls(await store.outbox_heads(1, skip_channels={"C1"})) == ["call_b"]
    assert calls(await store.outbox_heads(10, skip_channels={"C1", ""})) == ["call_b"]
    assert calls(await store.outbox_heads(10, skip={"call_b"}, skip_channels={"C1"})) == [
        "call_nowhere"]
