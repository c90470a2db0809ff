"""Three real server processes on one PostgreSQL database, behind the tests as behind a
load balancer (requests spread round-robin): migrations run once when all three start
together, every outcome is delivered once and in order per call, limits stay exact, and
when one instance is SIGKILLed mid-burst the others take its leases over."""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from storage.postgres.schema import MIGRATIONS
from storage.sqlite import INBOX_MAX_ATTEMPTS
from tests.conftest import CHANNEL
from tests.support.db import db_rows as rows
from tests.support.process import ServerProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow  # processes

PER_HOUR = 9
EXTRA = {
    "CALLBOT_SLACK_CHANNEL_RATE": "500",
    "CALLBOT_OUTBOX_RETRY_BASE": "0.05",
    "CALLBOT_RETELL_RETRIES": "0",
    "CALLBOT_USER_CALLS_PER_HOUR": str(PER_HOUR),
    "CALLBOT_DATABASE_POOL": "4",
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


def idle(url: str) -> bool:
    return not rows(url, "SELECT 1 FROM outbox WHERE done_at IS NULL UNION ALL "
                         "SELECT 1 FROM webhook_inbox WHERE attempts < ?", INBOX_MAX_ATTEMPTS)


def out_of_order(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """The calls whose deliveries did not go out in the order they were queued (none).

    A card update renders the call as it stands, so one delivery settles every card item
    of the call queued by then, later ones too: a delivery counts at its first item."""
    first: dict[tuple[str, str, float], int] = {}
    for call_id, kind, done_at, item in rows(
            url, "SELECT call_id, kind, done_at, id FROM outbox ORDER BY id"):
        first.setdefault((call_id, kind, done_at), item)
    sent: dict[str, list[tuple[Any, ...]]] = {}
    for (call_id, kind, done_at), item in sorted(first.items(), key=lambda kv: kv[1]):
        sent.setdefault(call_id, []).append((item, kind, done_at))
    return {call: items for call, items in sent.items()
            if any(a[2] > b[2] for a, b in itertools.pairwise(items))}


async def test_three_instances_share_the_work_once_and_survive_one_killed(
    slack: SlackStandIn, retell: RetellStandIn, tmp_path: Path, pg_url: str
) -> None:
    servers = [ServerProcess(slack, retell, pg_url, tmp_path / name, extra=EXTRA)
               for name in "abc"]
    try:
        # All three start at once on an empty database: the schema is made once.
        await asyncio.gather(*(s.start() for s in servers))
        assert rows(pg_url, "SELECT version, count(*) FROM schema_version GROUP BY version "
                            "ORDER BY version") == [(n, 1) for n in range(1, len(MIGRATIONS) + 1)]
        turn = itertools.cycle(servers)

        # One person, fifteen /call at once, spread round-robin: the hourly limit is exact.
        answers = await asyncio.gather(*(
            next(turn).slash("/call", "+14155550123", response_url=slack.response_url(f"r{i}"))
            for i in range(15)))
        assert all(status == 200 for status, _ in answers)
        await eventually(lambda: rows(pg_url, "SELECT count(*) FROM audit WHERE action = 'call'")
                         == [(15,)], timeout=30)
        assert len(retell.calls) == PER_HOUR
        assert rows(pg_url, "SELECT outcome, count(*) FROM audit GROUP BY outcome "
                            "ORDER BY outcome") == [("placed", PER_HOUR), ("refused", 6)]
        victim_call, *others = sorted(retell.calls)

        # Every event of every call sent to every instance at once: each goes out once.
        for event in ("call_started", "call_ended", "call_analyzed"):
            await asyncio.gather(*(
                s.webhook(retell.event_body(c, event)) for c in others for s in servers))
        await asyncio.gather(*(s.webhook(retell.event_body(victim_call, e))
                               for s in servers for e in ("call_started", "call_ended")))
        await eventually(lambda: idle(pg_url), timeout=40)
        keys = delivery_keys(slack)
        assert {f"summary:{c}" for c in others} <= set(keys)
        assert max(keys.values()) == 1, keys
        assert not out_of_order(pg_url)

        # Mid-burst, the instance delivering a summary dies with the post in flight.
        slack.hold(["chat.postMessage"])
        await asyncio.gather(*(s.webhook(retell.event_body(victim_call, "call_analyzed"))
                               for s in servers))
        await slack.wait_for(lambda: any(
            ((c.args.get("metadata") or {}).get("event_payload") or {}).get("key")
            == f"summary:{victim_call}" for c in slack.calls_to("chat.postMessage")),
            timeout=30)
        [(owner,)] = rows(pg_url, "SELECT lease_owner FROM outbox WHERE call_id = ? "
                                  "AND kind = 'summary'", victim_call)
        dead = next(s for s in servers if f":{s.pid}:" in owner)
        alive = [s for s in servers if s is not dead]
        dead.signal(signal.SIGKILL)
        assert await dead.wait_exit(5) == -signal.SIGKILL
        slack.release()

        await eventually(lambda: idle(pg_url), timeout=60)
        keys = delivery_keys(slack)
        assert keys[f"summary:{victim_call}"] == 1
        assert max(keys.values()) == 1, keys
        [(new_owner, error)] = rows(pg_url, "SELECT lease_owner, last_error FROM outbox "
                                            "WHERE call_id = ? AND kind = 'summary'",
                                    victim_call)
        assert any(f":{s.pid}:" in new_owner for s in alive) and error is None
        # The poller's lease moves to a living instance once the dead one's runs out.
        await eventually(lambda: any(f":{s.pid}:" in str(
            rows(pg_url, "SELECT owner FROM leases WHERE name = 'poller'")) for s in alive),
            timeout=60)
    finally:
        for s in servers:
            await s.close()
