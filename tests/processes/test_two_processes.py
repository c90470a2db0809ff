"""Two real server processes on one SQLite file and one Slack (a rolling deploy): every
outbox item is delivered by exactly one of them, limits stay exact, and when one dies
mid-delivery the other takes its leases over once they run out."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from storage.sqlite import INBOX_MAX_ATTEMPTS
from tests.conftest import CHANNEL
from tests.support.db import db_rows as rows
from tests.support.process import ServerProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow  # processes, faults with waits, or many examples

PER_HOUR = 6
EXTRA = {
    "CALLBOT_SLACK_CHANNEL_RATE": "500",
    "CALLBOT_OUTBOX_RETRY_BASE": "0.05",
    "CALLBOT_RETELL_RETRIES": "0",
    "CALLBOT_USER_CALLS_PER_HOUR": str(PER_HOUR),
}




def delivery_keys(slack: SlackStandIn) -> Counter[str]:
    """Every delivery marker in the channel and its threads: each must appear once."""
    keys: Counter[str] = Counter()
    for card in slack.messages(CHANNEL):
        for message in [card, *slack.thread(CHANNEL, card["ts"])]:
            key = ((message.get("metadata") or {}).get("event_payload") or {}).get("key")
            if key:
                keys[key] += 1
    return keys


def idle(db_path: Path) -> bool:
    """Every webhook answered is applied and every item it queued is delivered."""
    return not rows(db_path, "SELECT 1 FROM outbox WHERE done_at IS NULL UNION ALL "
                             "SELECT 1 FROM webhook_inbox WHERE attempts < ?", INBOX_MAX_ATTEMPTS)


async def send(server: ServerProcess, retell: RetellStandIn, call_id: str, event: str) -> None:
    status, _ = await server.webhook(retell.event_body(call_id, event))
    assert status == 200


async def test_two_processes_share_the_work_once_and_take_over_from_a_dead_one(
    slack: SlackStandIn, retell: RetellStandIn, tmp_path: Path
) -> None:
    db_path = tmp_path / "callbot.db"
    async with (
        ServerProcess(slack, retell, db_path, tmp_path / "a", extra=EXTRA) as a,
        ServerProcess(slack, retell, db_path, tmp_path / "b", extra=EXTRA) as b,
    ):
        await a.start()
        await b.start()
        servers = [a, b]

        # One person, ten /call at once, split across both: the hourly limit holds exactly.
        answers = await asyncio.gather(*(
            servers[i % 2].slash("/call", "+14155550123", response_url=slack.response_url(f"r{i}"))
            for i in range(10)))
        assert all(status == 200 for status, _ in answers)
        await eventually(lambda: rows(db_path, "SELECT count(*) FROM audit WHERE action = 'call'")
                         == [(10,)], timeout=20)
        assert len(retell.calls) == PER_HOUR
        assert rows(db_path, "SELECT outcome, count(*) FROM audit GROUP BY outcome "
                             "ORDER BY outcome") == [("placed", PER_HOUR), ("refused", 4)]
        call_ids = sorted(retell.calls)
        survivor_call, *others = call_ids

        # Every event sent to both processes at once; each goes out once.
        for event in ("call_started", "call_ended", "call_analyzed"):
            await asyncio.gather(*(send(s, retell, c, event) for c in others for s in servers))
        await asyncio.gather(*(send(s, retell, survivor_call, e) for s in servers
                               for e in ("call_started", "call_ended")))
        await eventually(lambda: idle(db_path), timeout=30)
        keys = delivery_keys(slack)
        assert {f"summary:{c}" for c in others} <= set(keys)
        assert max(keys.values()) == 1, keys

        # One process dies while its post is in flight (Slack does it, the answer is lost).
        slack.hold(["chat.postMessage"])
        await asyncio.gather(*(send(s, retell, survivor_call, "call_analyzed")
                               for s in servers))
        await slack.wait_for(lambda: any(
            ((c.args.get("metadata") or {}).get("event_payload") or {}).get("key")
            == f"summary:{survivor_call}" for c in slack.calls_to("chat.postMessage")),
            timeout=20)
        [(owner,)] = rows(db_path, "SELECT lease_owner FROM outbox WHERE call_id = ? "
                                   "AND kind = 'summary'", survivor_call)
        dead = next(s for s in servers if f":{s.pid}:" in owner)
        alive = b if dead is a else a
        dead.signal(signal.SIGKILL)
        assert await dead.wait_exit(5) == -signal.SIGKILL
        slack.release()

        try:
            await eventually(lambda: idle(db_path), timeout=40)
        except AssertionError:
            print(rows(db_path, "SELECT * FROM outbox WHERE done_at IS NULL"), time.time())
            print(alive.log_tail(60))
            raise
        keys = delivery_keys(slack)
        assert keys[f"summary:{survivor_call}"] == 1
        assert max(keys.values()) == 1, keys
        [(new_owner, error)] = rows(db_path, "SELECT lease_owner, last_error FROM outbox "
                                             "WHERE call_id = ? AND kind = 'summary'",
                                    survivor_call)
        assert f":{alive.pid}:" in new_owner and error is None
        # The poller runs in the survivor now, whichever process had it.
        await eventually(lambda: f":{alive.pid}:" in str(
            rows(db_path, "SELECT owner FROM leases WHERE name = 'poller'")), timeout=40)
        assert "found summary" in alive.log_text() or "already posted" in alive.log_text()
