"""Slack failing under the outbox, through the real server: every outcome lands once.

The Slack stand-in answers 429 with Retry-After, 500, cuts connections after doing the
work, or refuses a channel for good; the outbox must neither lose nor repeat a post.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, MakeServer, Server
from tests.support.db import db_integrity
from tests.support.db import db_rows as rows
from tests.support.delivery import place, posts_with_key, webhook
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("sound_database")]

OTHER = "C0OTHER"
GONE = "C0GONE"


def integrity(server: Server) -> str:
    return db_integrity(server)


async def test_every_outcome_lands_exactly_once_through_429s_500s_and_dropped_answers(
    make_server: MakeServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await make_server()
    calls = [await place(server, slack, retell, CHANNEL if i % 2 else OTHER)
             for i in range(16)]
    await eventually(server.outbox_idle)

    slack.faults(rate_limited=0.08, server_error=0.15, drop_after=0.2, retry_after=1, seed=4)
    for event in ("call_started", "call_ended", "call_analyzed"):
        await asyncio.gather(*(webhook(server, retell, call_id, event) for call_id, _ in calls))
    await eventually(server.outbox_idle, timeout=60)
    slack.clear_faults()

    assert all(slack.fault_counts[k] > 0 for k in ("rate_limited", "server_error",
                                                   "drop_after"))
    for i, (call_id, ts) in enumerate(calls):
        channel = CHANNEL if i % 2 else OTHER
        assert posts_with_key(slack, channel, ts, f"summary:{call_id}") == 1, call_id
        card = slack.message(channel, ts)
        assert card is not None and "Call summary" not in str(card["blocks"])
        assert "Ended" in str(card["blocks"]) or "ended" in card["text"].lower()
    # Only the cards are top-level: no summary went astray out of its thread.
    assert len(slack.messages(CHANNEL)) + len(slack.messages(OTHER)) == len(calls)
    assert rows(server, "SELECT count(*) FROM outbox WHERE last_error LIKE 'gave up%'") \
        == [(0,)]
    assert integrity(server) == "ok"
    assert server.http is not None
    async with server.http.get(server.url + "/metrics") as resp:
        metrics = await resp.text()
    recovered = next(line for line in metrics.splitlines()
                     if line.startswith("callbot_outbox_recovered_total"))
    assert float(recovered.split()[-1]) >= 1  # a dropped answer was found, not reposted


async def test_a_permanent_error_is_recorded_once_and_holds_up_no_other_call(
    make_server: MakeServer, slack: SlackStandIn, retell: RetellStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await make_server()
    gone_call, _ = await place(server, slack, retell, GONE)
    ok_call, ok_ts = await place(server, slack, retell, CHANNEL)
    await eventually(server.outbox_idle)

    slack.fail("chat.postMessage", "channel_not_found", channel=GONE)
    slack.fail("chat.update", "channel_not_found", channel=GONE)
    with caplog.at_level(logging.ERROR, logger="bot.slack.outbox"):
        await webhook(server, retell, gone_call, "call_analyzed")
        await webhook(server, retell, ok_call, "call_analyzed")
        await slack.wait_for(
            lambda: posts_with_key(slack, CHANNEL, ok_ts, f"summary:{ok_call}") == 1)
        await eventually(server.outbox_idle)

    errors = rows(server, "SELECT kind, last_error FROM outbox WHERE call_id = ? "
                           "AND last_error IS NOT NULL ORDER BY id", gone_call)
    assert errors == [("card", "gave up: chat_update: channel_not_found"),
                      ("summary", "gave up: chat_postMessage: channel_not_found")]
    gave_up = [r for r in caplog.records if "gave up" in r.getMessage()]
    assert len(gave_up) == 2 and all(gone_call in r.getMessage() for r in gave_up)


async def test_a_429_waits_for_retry_after_before_posting_again(
    make_server: MakeServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await make_server()
    call_id, ts = await place(server, slack, retell, CHANNEL)
    await eventually(server.outbox_idle)
    loop = asyncio.get_running_loop()
    posts = lambda: len(slack.calls_to("chat.postMessage"))  # noqa: E731
    before = posts()

    slack.http_error("chat.postMessage", 429, retry_after=1)
    await webhook(server, retell, call_id, "call_analyzed")
    await slack.wait_for(lambda: posts() == before + 1)
    refused_at = loop.time()
    await slack.wait_for(lambda: posts() == before + 2, timeout=5)
    assert loop.time() - refused_at >= 0.95
    assert posts_with_key(slack, CHANNEL, ts, f"summary:{call_id}") == 1


async def test_each_channel_is_paced_and_a_busy_channel_does_not_hold_up_another(
    make_server: MakeServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await make_server(CALLBOT_SLACK_CHANNEL_RATE=5)
    busy = [await place(server, slack, retell, CHANNEL) for _ in range(5)]
    quiet_call, quiet_ts = await place(server, slack, retell, OTHER)
    await eventually(server.outbox_idle, timeout=10)

    loop = asyncio.get_running_loop()
    seen: list[tuple[float, str]] = []  # (when, channel) of each card update or summary

    def watch() -> bool:
        writes = [c for c in slack.calls
                  if c.method in ("chat.postMessage", "chat.update")][start:]
        seen.extend((loop.time(), str(c.args.get("channel"))) for c in writes[len(seen):])
        return len(seen) >= 2 * (len(busy) + 1)

    start = len([c for c in slack.calls if c.method in ("chat.postMessage", "chat.update")])
    await asyncio.gather(*(webhook(server, retell, c, "call_analyzed") for c, _ in busy))
    await webhook(server, retell, quiet_call, "call_analyzed")
    await slack.wait_for(watch, timeout=15)

    busy_times = [t for t, channel in seen if channel == CHANNEL]
    gaps = [b - a for a, b in itertools.pairwise(busy_times)]
    assert len(busy_times) == 2 * len(busy) and min(gaps) >= 0.15  # 5 a second, less jitter
    other_times = [t for t, channel in seen if channel == OTHER]
    assert len(other_times) == 2 and max(other_times) < busy_times[-1]
    assert posts_with_key(slack, OTHER, quiet_ts, f"summary:{quiet_call}") == 1


async def test_the_pace_of_a_channel_holds_across_instances(
    make_server: MakeServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    """Two instances on one database deliver to one channel: together they keep its pace
    (the slot is taken in the database), not one pace each."""
    one = await make_server(CALLBOT_SLACK_CHANNEL_RATE=5)
    two = await make_server(CALLBOT_SLACK_CHANNEL_RATE=5)
    calls = [await place(one if i % 2 else two, slack, retell, CHANNEL) for i in range(6)]
    await eventually(one.outbox_idle, timeout=10)

    loop = asyncio.get_running_loop()
    seen: list[float] = []
    start = len(slack.calls)

    def watch() -> bool:
        writes = [c for c in slack.calls[start:]
                  if c.method in ("chat.postMessage", "chat.update")
                  and c.args.get("channel") == CHANNEL]
        seen.extend(loop.time() for _ in writes[len(seen):])
        return len(seen) >= 2 * len(calls)

    # Each call's analysis goes to one instance or the other, all at once.
    await asyncio.gather(*(webhook(one if i % 2 else two, retell, c, "call_analyzed")
                           for i, (c, _) in enumerate(calls)))
    await slack.wait_for(watch, timeout=20)
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert min(gaps) >= 0.15, gaps  # 5 a second between both, less jitter
    for call_id, ts in calls:
        assert posts_with_key(slack, CHANNEL, ts, f"summary:{call_id}") == 1
