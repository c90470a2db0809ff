"""`/callstats` from the per-day sums gives the very answer reading every call gives: on a
random history, for every period, slice, breakdown and zone asked; after calls change
(their days marked, read from the calls until summed again); medians found through the
per-second counts and read exactly from one bucket. And the marks: what changes a figure
marks its day, what does not (retention clearing words) does not.

On PostgreSQL there are no sums: `report` always reads the calls, so the first test holds
there too (both ways are the plain one), and the tests of the marks are SQLite's own."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.calls.insights import day_in
from storage.base import Store
from storage.models import STAGE_ANALYZED, STAGE_ENDED, CallFilter, CallRecord, StatsReport
from storage.sqlite import SQLiteStore, rollup
from tests.support.stores import on_postgres, store_for

DAY = 86400.0
NOW = datetime(2026, 11, 20, 15, 7, 30, tzinfo=UTC).timestamp()
AGENTS = [("agent_a", "Sales"), ("agent_b", "Survey"), ("agent_c", None), (None, None)]
REASONS = ["user_hangup", "agent_hangup", "dial_no_answer", "dial_busy", "voicemail_reached",
           "error_retell", None]


def history(n: int, seed: int = 7) -> list[CallRecord]:
    rng = random.Random(seed)
    calls = []
    for i in range(n):
        at = NOW - rng.random() * 40 * DAY
        agent_id, agent_name = rng.choice(AGENTS)
        refused = rng.random() < 0.08
        connected = rng.random() < 0.8
        analyzed = connected and rng.random() < 0.85
        calls.append(CallRecord(
            id=0, call_id=None if refused else f"call_{i}",
            direction=rng.choice(["outbound"] * 5 + ["inbound"]),
            status=rng.choice(["ended", "ended", "error", "not_connected"]),
            stage=STAGE_ANALYZED if analyzed else STAGE_ENDED, created_at=at, updated_at=at,
            user_id=rng.choice(["U1", "U2", "U3", None]), channel_id=rng.choice(["C1", "C2"]),
            agent_id=agent_id, agent_name=agent_name,
            campaign_id=rng.choice([None, None, 3, 4]), to_number=f"+1415555{i % 10000:04d}",
            duration_ms=rng.choice([0, rng.randint(1, 900_000), rng.randint(1000, 3000)])
            if connected else 0,
            disconnection_reason=rng.choice(REASONS),
            sentiment=rng.choice(["Positive", "Neutral", "Negative", None]) if analyzed
            else None,
            successful=rng.choice([True, False]) if analyzed else None,
            cost_cents=round(rng.random() * 50, 2) if rng.random() < 0.9 else None,
            latency_ms=rng.choice([None, rng.uniform(400, 2500), rng.randint(0, 30),
                                   float(rng.randint(900, 905))])))
    return calls


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with store_for(tmp_path / "sums.db") as s:
        await s.import_calls(history(3000))
        yield s


async def summed(store: Store) -> int:
    total = 0
    while done := await store.refresh_stats(NOW):
        total += done
    return total


def same(a: StatsReport, b: StatsReport) -> None:
    """Equal, cost sums aside (added in another order: equal to the cent)."""
    def norm(r: StatsReport) -> Any:
        s = r.stats
        prev = r.previous
        return (replace(s, total_cost_cents=round(s.total_cost_cents, 6),
                        avg_duration_ms=None if s.avg_duration_ms is None
                        else round(s.avg_duration_ms, 6)),
                r.latency_p50_ms,
                None if prev is None else replace(
                    prev, total_cost_cents=round(prev.total_cost_cents, 6),
                    avg_duration_ms=None if prev.avg_duration_ms is None
                    else round(prev.avg_duration_ms, 6)),
                [replace(b, cost_cents=round(b.cost_cents, 6),
                         avg_duration_ms=None if b.avg_duration_ms is None
                         else round(b.avg_duration_ms, 6)) for b in r.breakdown],
                r.days)
    assert norm(a) == norm(b)


PERIODS = [(NOW - 30 * DAY, None), (NOW - 7 * DAY, NOW), (None, None),
           (NOW - 90 * DAY, NOW - 3 * DAY), (NOW - 2.5 * DAY, NOW - 0.5 * DAY),
           (datetime(2026, 11, 1, tzinfo=UTC).timestamp(),
            datetime(2026, 11, 15, tzinfo=UTC).timestamp())]
SLICES = [{}, {"agent": "agent_a"}, {"agent": "survey"}, {"user_id": "U2"},
          {"channel_id": "C1"}, {"campaign_id": 3}, {"direction": "inbound"},
          {"agent": "nobody"}]


async def answers(store: Store, flt: CallFilter, **kw: Any) -> None:
    since, until = flt.since, flt.until
    previous = None
    if since is not None:
        end = until if until is not None else NOW
        previous = replace(flt, since=since - (end - since), until=since)
    for by in (None, "agent", "user", "campaign", "day"):
        for zone in ("UTC", "Asia/Kathmandu"):
            days = day_in(zone) if by == "day" or zone == "UTC" else None
            args = dict(previous=previous, by=by, with_fields=False, days_in=days)
            same(await store.report(flt, **args, **kw),
                 await store.report(flt, **args, sums=False))


@pytest.mark.slow  # hundreds of reports, each read twice
async def test_the_sums_answer_as_the_calls_do(store: Store) -> None:
    # forty days of history, the settled ones summed (none on PostgreSQL: no sums there)
    done = await summed(store)
    assert done == 0 if on_postgres() else done >= 35
    for since, until in PERIODS:
        for piece in SLICES:
            await answers(store, CallFilter(since=since, until=until, **piece))


@pytest.mark.sqlite_only("SQLite's per-day sums: a changed day is read from the calls "
                         "until summed again")
async def test_a_changed_call_is_read_from_the_calls_until_its_day_is_summed_again(
        store: SQLiteStore) -> None:
    await summed(store)
    flt = CallFilter(since=NOW - 30 * DAY, until=NOW)
    before = await store.report(flt, with_fields=False)
    # Every call of one old day becomes a long successful call, one is deleted.
    day = int((NOW - 10 * DAY) // DAY)
    conn = sqlite3.connect(store.path)
    with conn:
        changed = conn.execute(
            "UPDATE calls SET duration_ms = 3600000, successful = 1, cost_cents = 99 "
            "WHERE created_at >= ? AND created_at < ? AND call_id IS NOT NULL",
            (day * DAY, (day + 1) * DAY)).rowcount
        conn.execute("DELETE FROM calls WHERE id = (SELECT min(id) FROM calls WHERE "
                     "created_at >= ? AND created_at < ?)", (day * DAY, (day + 1) * DAY))
    conn.close()
    assert changed > 10
    after = await store.report(flt, with_fields=False)
    same(after, await store.report(flt, with_fields=False, sums=False))
    assert after.stats.calls == before.stats.calls - 1
    assert after.stats.total_cost_cents > before.stats.total_cost_cents
    assert await summed(store) == 1  # that day, once
    same(await store.report(flt, with_fields=False),
         await store.report(flt, with_fields=False, sums=False))


@pytest.mark.sqlite_only("SQLite's per-day sums: which writes mark a day as changed (its triggers)")
async def test_what_marks_a_day_and_what_does_not(store: SQLiteStore) -> None:
    await summed(store)
    conn = sqlite3.connect(store.path)

    def marked() -> set[int]:
        return {r[0] for r in conn.execute("SELECT day FROM stats_dirty")}

    settled = {d for d in marked() if d < rollup.settled_before(NOW)}
    assert settled == set()  # every day that is over is summed
    today = marked()
    old = conn.execute("SELECT id, created_at FROM calls WHERE created_at < ? LIMIT 1",
                       (NOW - 20 * DAY,)).fetchone()
    old_day = int(old[1]) // 86400
    with conn:  # words only (what retention clears): no figure changes
        conn.execute("UPDATE calls SET transcript = 'x', summary = 'y', raw_payload = NULL "
                     "WHERE id = ?", (old[0],))
        conn.execute("UPDATE calls SET sentiment = sentiment WHERE id = ?", (old[0],))
    assert marked() == today
    with conn:
        conn.execute("UPDATE calls SET sentiment = 'Zany' WHERE id = ?", (old[0],))
    assert marked() == today | {old_day}
    with conn:  # moved to another day: both are marked
        conn.execute("UPDATE calls SET created_at = created_at - 3 * 86400 WHERE id = ?",
                     (old[0],))
    assert marked() == today | {old_day, old_day - 3}
    conn.close()
    assert await summed(store) == 2


@pytest.mark.sqlite_only("SQLite's per-day sums: the worker that sums the days")
async def test_the_background_worker_sums_every_day_that_is_over_and_then_rests(
        store: SQLiteStore) -> None:
    from bot.calls.sums import BATCH, StatsSums

    sums = StatsSums(store, clock=lambda: NOW)
    assert await sums.catch_up() > BATCH  # more than one batch: it goes on to the end
    assert await sums.catch_up() == 0
    conn = sqlite3.connect(store.path)
    left = [r[0] for r in conn.execute("SELECT day FROM stats_dirty")]
    conn.close()
    assert left and min(left) >= rollup.settled_before(NOW)  # only days not over yet


@pytest.mark.sqlite_only("SQLite's per-day sums: a day changed while it is summed stays marked")
async def test_a_call_changed_while_its_day_is_summed_leaves_the_day_marked(
        store: SQLiteStore) -> None:
    await summed(store)
    day = int((NOW - 12 * DAY) // DAY)
    conn = sqlite3.connect(store.path)
    with conn:
        conn.execute("UPDATE calls SET cost_cents = 1234 WHERE id = (SELECT min(id) FROM calls "
                     "WHERE created_at >= ? AND created_at < ?)", (day * DAY, (day + 1) * DAY))
    sums = rollup.read_day(store.path, day)
    assert sums is not None
    with conn:  # a webhook lands between the read and the write
        conn.execute("UPDATE calls SET cost_cents = 5678 WHERE id = (SELECT max(id) FROM calls "
                     "WHERE created_at >= ? AND created_at < ?)", (day * DAY, (day + 1) * DAY))
        assert rollup.write_day(conn, sums) is False
    assert conn.execute("SELECT count(*) FROM stats_dirty WHERE day = ?", (day,)).fetchone() \
        == (1,)
    conn.close()
    flt = CallFilter(since=NOW - 30 * DAY, until=NOW)
    same(await store.report(flt, with_fields=False),
         await store.report(flt, with_fields=False, sums=False))
    assert await summed(store) == 1
    assert rollup.read_day(store.path, day) is None  # summed: no longer marked
