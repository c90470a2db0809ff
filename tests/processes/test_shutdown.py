"""Shutdown of the real server process: SIGTERM stops accepting requests, finishes what is in
flight, stops the outbox worker cleanly, closes the database and exits 0 within seconds.

The server runs as `python -m bot serve` (tests/process.py); Slack and Retell are the
stand-ins, running in this test's event loop. Tests wait on observable effects (a request
the stand-in received, a row in the database), never on fixed sleeps.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.support.db import db_integrity
from tests.support.db import db_rows as query
from tests.support.process import ServerProcess, connection_refused
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("sound_database")]

CREATE = "/v2/create-phone-call"
NUMBER = "+14155550123"


@pytest.fixture
async def server(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path, tmp_path: Path
) -> AsyncIterator[ServerProcess]:
    async with ServerProcess(slack, retell, db_path, tmp_path,
                             extra={"CALLBOT_RETELL_TIMEOUT": "5"}) as srv:
        await srv.start()
        yield srv


# -- helpers ------------------------------------------------------------------------------------




def integrity(db_path: Path) -> str:
    return db_integrity(db_path)


def wal_bytes(db_path: Path) -> int:
    """Size of the write-ahead log; SQLite removes it when the last connection closes."""
    wal = db_path.with_name(db_path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def create_requests(retell: RetellStandIn) -> int:
    return sum(1 for r in retell.requests if r.path == CREATE)


async def call_in_flight(
    server: ServerProcess, slack: SlackStandIn, retell: RetellStandIn, hang: float, key: str
) -> None:
    """Send `/call` and return once Retell has received the create request (hanging `hang` s)."""
    retell.hang_next(CREATE, hang)
    before = create_requests(retell)
    status, body = await server.slash("/call", NUMBER, response_url=slack.response_url(key))
    assert (status, body) == (200, None), server.log_tail()
    await eventually(lambda: create_requests(retell) > before, timeout=5)


async def probe(server: ServerProcess) -> str:
    """One new connection to GET /healthz: "200", "503", ... or "refused" (no hang allowed)."""
    try:
        status, _ = await server.get("/healthz", timeout=2.0)
    except TimeoutError:
        raise AssertionError(
            f"a request sent after SIGTERM hung for 2 s\n{server.log_tail()}"
        ) from None
    except aiohttp.ClientConnectionError:
        return "refused"
    return str(status)


# -- tests --------------------------------------------------------------------------------------


async def test_idle_server_exits_0_on_sigterm_and_closes_the_database(
    server: ServerProcess, db_path: Path
) -> None:
    mark = server.log_size()
    server.signal(signal.SIGTERM)
    code = await server.wait_exit(5)

    assert code == 0, server.log_tail()
    after = server.log_text(since=mark)
    assert "Traceback" not in after, f"shutdown was not clean:\n{after}"
    assert wal_bytes(db_path) == 0, "the -wal file was left behind: the store was not closed"
    assert integrity(db_path) == "ok"
    assert await connection_refused(server.port)


async def test_sigterm_during_a_call_finishes_placing_it_before_the_store_closes(
    server: ServerProcess, slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    await call_in_flight(server, slack, retell, hang=1.5, key="inflight")

    server.signal(signal.SIGTERM)
    code = await server.wait_exit(6)

    assert code == 0, server.log_tail()
    recorded = [row[0] for row in query(db_path, "SELECT call_id FROM calls")]
    created = list(retell.calls)  # the stand-in has answered by now if the app waited for it
    assert len(created) == 1 and recorded == created, (
        f"Retell created {created}; the database has calls {recorded}\n{server.log_tail()}"
    )
    assert len(retell.created_calls()) == 1
    assert slack.responses_for("inflight") == [], "the person was told the call failed"
    assert integrity(db_path) == "ok"


async def test_sigterm_stops_accepting_connections_and_frees_the_port(
    server: ServerProcess, slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    await call_in_flight(server, slack, retell, hang=2.0, key="socket")
    loop = asyncio.get_running_loop()

    server.signal(signal.SIGTERM)
    signalled = loop.time()
    seen: list[str] = []
    # Poll until the server turns new requests away; each probe must answer (no hang), and a
    # server that saw the signal must not accept work for long while the /call still runs.
    while True:
        outcome = await probe(server)
        seen.append(outcome)
        if outcome in ("refused", "503"):
            break
        assert outcome == "200", f"unexpected answer during shutdown: {seen}"
        assert loop.time() - signalled < 1.0, (
            f"still accepting requests 1 s after SIGTERM: {seen}\n{server.log_tail()}"
        )
        await asyncio.sleep(0.02)

    code = await server.wait_exit(6)
    assert code == 0, server.log_tail()
    assert await connection_refused(server.port), "the port still accepts connections"
    assert integrity(db_path) == "ok"


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "call-in-flight"])
@pytest.mark.parametrize(
    ("first", "second"),
    [(signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGTERM)],
    ids=["TERM-TERM", "INT-TERM"],
)
async def test_a_second_signal_does_not_hang_shutdown(
    server: ServerProcess,
    slack: SlackStandIn,
    retell: RetellStandIn,
    db_path: Path,
    first: signal.Signals,
    second: signal.Signals,
    busy: bool,
) -> None:
    if busy:
        await call_in_flight(server, slack, retell, hang=1.5, key="double")

    server.signal(first)
    await asyncio.sleep(0.01)  # deliberately: the second signal lands mid-shutdown
    server.signal(second)
    code = await server.wait_exit(6)

    assert code == 0, server.log_tail()
    assert integrity(db_path) == "ok"
    assert await connection_refused(server.port)


async def test_sigterm_while_the_outbox_delivers_never_loses_or_repeats_a_summary(
    server: ServerProcess, slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    # One call per channel: the app may pace its posts per channel, as Slack limits them.
    channels = ("C0GENERAL", "C0SALES", "C0SUPPORT")
    for i, channel in enumerate(channels):
        status, _ = await server.slash("/call", f"+1415555013{i}", channel=channel,
                                       response_url=slack.response_url(f"c{i}"))
        assert status == 200
    # Placed, saved and their cards updated by the outbox: the outbox is idle again.
    await slack.wait_for(lambda: len(slack.calls_to("chat.update")) == len(channels),
                         timeout=10)
    await eventually(
        lambda: not query(db_path, "SELECT 1 FROM outbox WHERE done_at IS NULL"), timeout=5)
    cards = {call_id: (channel, ts) for call_id, channel, ts
             in query(db_path, "SELECT call_id, channel_id, message_ts FROM calls")}
    assert sorted(cards) == sorted(retell.calls)
    assert sorted(c for c, _ in cards.values()) == sorted(channels)
    assert all(ts for _, ts in cards.values())

    # Slack now answers each post 0.4 s late, so delivering them all takes a while.
    slack.delay(0.4, ["chat.postMessage"])
    posted_before = len(slack.calls_to("chat.postMessage"))
    for call_id in cards:
        answer = await server.webhook(retell.event_body(call_id, "call_analyzed"))
        assert answer == (200, {"status": "stored"}), server.log_tail()
    await slack.wait_for(lambda: len(slack.calls_to("chat.postMessage")) > posted_before)

    server.signal(signal.SIGTERM)  # Slack has a summary, the app still waits for the answer
    code = await server.wait_exit(6)
    assert code == 0, server.log_tail()
    assert integrity(db_path) == "ok"

    def summaries(call_id: str) -> int:
        return len(slack.thread(*cards[call_id]))

    def summary_done(call_id: str) -> bool:
        rows = query(db_path, "SELECT done_at FROM outbox WHERE call_id = ? AND kind = 'summary'",
                     call_id)
        return bool(rows) and all(done_at is not None for (done_at,) in rows)

    # Nothing is marked delivered that Slack does not have (that summary would be lost).
    state = {c: (summaries(c), summary_done(c)) for c in cards}
    assert not [c for c, (posted, done) in state.items() if done and not posted], (
        f"(summaries at Slack, outbox done) per call after SIGTERM: {state}\n{server.log_tail()}"
    )

    slack.delay(0)
    await server.restart()
    await eventually(lambda: not query(
        db_path, "SELECT 1 FROM outbox WHERE done_at IS NULL UNION ALL "
                 "SELECT 1 FROM webhook_inbox"), timeout=10)
    assert {c: summaries(c) for c in cards} == dict.fromkeys(cards, 1), server.log_tail()

    server.signal(signal.SIGTERM)
    assert await server.wait_exit(5) == 0, server.log_tail()
