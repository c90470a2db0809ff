"""`/healthz` tells the truth about the database, through the real server.

A database that answers reads but cannot take a write (another connection holds the write
lock past the busy timeout, or the disk is full) is unhealthy: calls could not be recorded.
Heavy `/callstats` over a long history must not make health (or acks) wait: the queries run
one at a time on a connection of their own, and a burst of them is bounded.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from storage.models import CallRecord
from tests.conftest import HEALTHY_IDLE, Server
from tests.support.process import ServerProcess, get

pytestmark = pytest.mark.slow  # processes, faults with waits, or many examples

HISTORY = 200_000
BURST = 40


async def health_until(server: Server, done: Any, attempts: int = 20) -> tuple[int, Any]:
    """GET /healthz until `done(status, body)`; each answer takes at most its own budget."""
    answer: tuple[int, Any] = (0, None)
    for _ in range(attempts):
        answer = await server.get("/healthz")
        if done(*answer):
            return answer
    raise AssertionError(f"health never reached the expected state; last: {answer}")


@pytest.mark.sqlite_only("holds SQLite's file write lock from a side connection")
@pytest.mark.parametrize("lock", ["IMMEDIATE", "EXCLUSIVE"])
async def test_a_held_write_lock_is_unhealthy_until_released(
    server: Server, db_path: Path, lock: str
) -> None:
    assert await server.get("/healthz") == HEALTHY_IDLE
    side = sqlite3.connect(db_path, isolation_level=None, timeout=5)
    try:
        side.execute(f"BEGIN {lock}")
        status, body = await server.get("/healthz")
        assert status == 503, body
        assert body["status"] == "unavailable" and body["error"].startswith("database ")
        assert body["slack"] == "ok"  # the rest of the report is still given
        # Once the writer's busy timeout has passed, SQLite's own words say why.
        status, body = await health_until(
            server, lambda s, b: "database is locked" in b.get("error", ""))
        assert status == 503
        assert body["error"] == "database cannot be written: database is locked"
    finally:
        side.execute("ROLLBACK")
        side.close()
    assert await health_until(server, lambda s, b: s == 200) == HEALTHY_IDLE


@pytest.mark.sqlite_only("holds SQLite's file write lock from a side connection")
async def test_reads_alone_do_not_make_it_healthy(server: Server, db_path: Path) -> None:
    """The lock test above, seen from the other side: reads still work while it is 503."""
    side = sqlite3.connect(db_path, isolation_level=None, timeout=5)
    try:
        side.execute("BEGIN IMMEDIATE")
        assert side.execute("SELECT count(*) FROM calls").fetchone() == (0,)
        assert server.http is not None
        async with server.http.get(server.url + "/metrics") as resp:
            text = await resp.text()
        # The outbox backlog (a read) still answers, and the token check is reported too.
        assert resp.status == 200 and "callbot_outbox_backlog 0.0" in text
        assert "callbot_slack_auth_ok 1.0" in text
        status, body = await server.get("/healthz")
        assert status == 503 and body["error"].startswith("database "), body
    finally:
        side.execute("ROLLBACK")
        side.close()


@pytest.mark.sqlite_only("the file-size limit stands for a full disk under SQLite's file")
async def test_a_full_disk_is_unhealthy_until_space_comes_back(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path, tmp_path: Path
) -> None:
    """A real write failure in a real process: its file-size limit is lowered to one byte
    (prlimit), so every write past the start of a file fails as on a full disk (SQLite gets
    EFBIG, not ENOSPC: a real full disk needs a filesystem of its own, which tests cannot
    mount here). Python ignores SIGXFSZ, so the process lives on and answers."""
    async with ServerProcess(slack, retell, db_path, tmp_path) as proc:
        await proc.start()
        assert proc.proc is not None
        pid = proc.proc.pid
        status, body = await get(proc.url + "/healthz", timeout=5.0)
        assert (status, body) == HEALTHY_IDLE
        before = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, before[1]))
        try:
            status, body = await get(proc.url + "/healthz", timeout=5.0)
            assert status == 503, body
            assert body["error"].startswith("database cannot be written: "), body
        finally:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, before)
        status, body = await get(proc.url + "/healthz", timeout=5.0)
        assert (status, body) == HEALTHY_IDLE
        assert proc.proc.poll() is None


def history(count: int, now: float) -> Iterator[CallRecord]:
    """`count` ended calls over the last two years, as Retell's webhooks would leave them."""
    rng = random.Random(7)
    for i in range(count):
        at = now - rng.uniform(60, 2 * 365 * 86400)
        yield CallRecord(
            id=0, call_id=f"call_hist_{i:07d}", direction="outbound", status="ended",
            stage=3, created_at=at, updated_at=at, team_id="T0TEST", channel_id="C0HIST",
            user_id="U0HIST", to_number="+14155550123",
            duration_ms=rng.choice((0, 30_000, 60_000, 95_000)),
            sentiment=rng.choice(("Positive", "Neutral", "Negative")),
            successful=rng.random() < 0.5, cost_cents=12.0,
            disconnection_reason=rng.choice(("user_hangup", "agent_hangup")),
        )


async def test_forty_heavy_stats_at_once_leave_health_and_acks_answering(
    server: Server, slack: SlackStandIn
) -> None:
    added = await server.ctx.store.import_calls(history(HISTORY, time.time()))
    assert added == HISTORY
    users = [f"U0S{i:03d}" for i in range(BURST)]
    health: list[tuple[int, str, float]] = []
    stop = asyncio.Event()

    async def probe() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            status, body = await server.get("/healthz")
            health.append((status, body["status"], time.perf_counter() - started))

    async def stats(user: str) -> tuple[int, Any, float]:
        started = time.perf_counter()
        status, body = await server.slash("/callstats", "all", user=user,
                                          response_url=slack.response_url(user))
        return status, body, time.perf_counter() - started

    prober = asyncio.create_task(probe())
    try:
        answers = await asyncio.gather(*(stats(u) for u in users))
        # Stats still counting after the ack answer through response_url.
        pending = [u for (_, body, _), u in zip(answers, users, strict=True)
                   if "Counting calls" in json.dumps(body)]
        for user in pending:
            await slack.wait_for(lambda u=user: bool(slack.responses_for(u)), timeout=60)
    finally:
        stop.set()
        await prober
    assert all(status == 200 for status, _, _ in answers)
    full, busy = 0, 0
    for (_, body, _), user in zip(answers, users, strict=True):
        text = json.dumps(body, ensure_ascii=False)
        if "Counting calls" in text:
            [later] = slack.responses_for(user)
            text = json.dumps(later, ensure_ascii=False)
        if "Stats are busy" in text:
            busy += 1
            assert "Try again in " in text
        else:
            assert "*Calls*\\n200,000" in text, text[:300]
            full += 1
    assert full >= 1 and full + busy == BURST and busy >= BURST - 4
    assert health and all(h[:2] == (200, "ok") for h in health), health
    # The figures for the report (no target here: timing is not asserted).
    acks = sorted(a[2] for a in answers)
    print(f"\nhealthz during the burst: {len(health)} answers, max "
          f"{max(h[2] for h in health) * 1000:.0f} ms; ack p50 {acks[len(acks) // 2] * 1000:.0f}"
          f" ms, max {acks[-1] * 1000:.0f} ms; full answers {full}, busy {busy}")
