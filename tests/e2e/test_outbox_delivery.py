"""The outbox through the real server: poison items, bursts into one channel, and the
lost-post look-up in a public channel the bot has not joined.

Slack is the stand-in; faults come from it (answers the app does not expect, held
requests, cut connections) or from what Retell sends, never from patching our code.
"""

from __future__ import annotations

import logging

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, MakeServer
from tests.support.db import db_rows as rows
from tests.support.delivery import place, posts_with_key, webhook
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("sound_database")

ODD = "C0ODD"
PUBLIC = "C0PUBLIC"


def tracebacks(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.name == "bot.slack.outbox" and r.exc_info)


@pytest.mark.slow
async def test_a_poison_answer_is_retried_a_few_times_then_given_up_and_others_flow(
    make_server: MakeServer, slack: SlackStandIn, retell: RetellStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await make_server()
    odd_call, _ = await place(server, slack, retell, ODD)
    ok_call, ok_ts = await place(server, slack, retell, CHANNEL)
    await eventually(server.outbox_idle)
    # Slack says ok but gives no ts: our code cannot go on with that answer.
    slack.answer("chat.postMessage", {"ok": True}, channel=ODD)
    key = {"event_type": "callbot_delivery", "event_payload": {"key": f"summary:{odd_call}"}}
    posts = lambda: len([c for c in slack.calls_to("chat.postMessage")  # noqa: E731
                         if c.args.get("metadata") == key])

    with caplog.at_level(logging.INFO, logger="bot.slack.outbox"):
        await webhook(server, retell, odd_call, "call_analyzed")
        await webhook(server, retell, ok_call, "call_analyzed")
        await slack.wait_for(
            lambda: posts_with_key(slack, CHANNEL, ok_ts, f"summary:{ok_call}") == 1)
        await eventually(server.outbox_idle, timeout=20)

    [(attempts, error)] = rows(server, "SELECT attempts, last_error FROM outbox "
                                       "WHERE call_id = ? AND kind = 'summary'", odd_call)
    assert attempts == 5 and error.startswith("gave up: KeyError")
    assert posts() == 5  # bounded: one post per attempt, then never again
    assert tracebacks(caplog) == 1
    about_odd = [r for r in caplog.records if odd_call in r.getMessage()
                 and r.levelno >= logging.WARNING]
    assert len(about_odd) == 5  # one line per attempt, the last saying it gave up
    assert "gave up" in about_odd[-1].getMessage()


@pytest.mark.slow
async def test_a_card_that_cannot_be_rendered_holds_up_nothing_for_long(
    make_server: MakeServer, slack: SlackStandIn, retell: RetellStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 4,000-character disconnection reason: whether or not the card can show it, the
    summary lands, the items end, and the log gets at most one traceback."""
    server = await make_server()
    odd_call, odd_ts = await place(server, slack, retell, CHANNEL)
    ok_call, ok_ts = await place(server, slack, retell, CHANNEL)
    await eventually(server.outbox_idle)

    with caplog.at_level(logging.INFO, logger="bot.slack.outbox"):
        body = retell.event_body(odd_call, "call_ended", disconnection_reason="x" * 4000)
        status, _ = await retell.send_webhook(server.url + "/retell/webhook", body)
        assert status == 200
        await webhook(server, retell, odd_call, "call_analyzed")
        await webhook(server, retell, ok_call, "call_analyzed")
        await slack.wait_for(
            lambda: posts_with_key(slack, CHANNEL, ok_ts, f"summary:{ok_call}") == 1)
        await eventually(server.outbox_idle, timeout=20)

    assert posts_with_key(slack, CHANNEL, odd_ts, f"summary:{odd_call}") == 1
    for attempts, error in rows(server, "SELECT attempts, last_error FROM outbox "
                                        "WHERE call_id = ?", odd_call):
        assert attempts <= 5 and (error is None or error.startswith("gave up"))
    assert tracebacks(caplog) <= 1


@pytest.mark.slow
async def test_a_burst_into_one_channel_goes_call_by_call_outcomes_first(
    make_server: MakeServer, slack: SlackStandIn, retell: RetellStandIn,
) -> None:
    server = await make_server()
    blocker, _ = await place(server, slack, retell, CHANNEL)
    live = [(await place(server, slack, retell, CHANNEL))[0] for _ in range(3)]
    done = [(await place(server, slack, retell, CHANNEL))[0] for _ in range(6)]
    await eventually(server.outbox_idle)

    # The lane is busy with one card update while the burst piles up behind it.
    slack.hold(["chat.update"])
    await webhook(server, retell, blocker, "call_started")
    await slack.wait_for(lambda: any(c.args.get("ts") and c.method == "chat.update"
                                     for c in slack.calls[-3:]))
    start = len(slack.calls)
    for call_id in live:  # card-only updates, queued first
        await webhook(server, retell, call_id, "call_started")
    for call_id in done:  # two card updates and a summary each
        await webhook(server, retell, call_id, "call_ended")
        await webhook(server, retell, call_id, "call_analyzed")
    pending = len(live) + 3 * len(done)
    await eventually(lambda: rows(server, "SELECT count(*) FROM outbox WHERE done_at IS NULL "
                                          "AND call_id != ?", blocker) == [(pending,)])
    slack.release()
    await eventually(server.outbox_idle, timeout=20)

    ts_to_call = {ts: c for c, ts in rows(server, "SELECT call_id, message_ts FROM calls")}
    writes = [(c.method, ts_to_call.get(str(c.args.get("ts") or c.args.get("thread_ts"))))
              for c in slack.calls[start:] if c.method in ("chat.update", "chat.postMessage")]
    writes = [(m, c) for m, c in writes if c != blocker]
    order = [c for _, c in writes]
    # One coalesced card update and one summary per finished call, side by side.
    for call_id in done:
        assert [m for m, c in writes if c == call_id] == ["chat.update", "chat.postMessage"]
        first = order.index(call_id)
        assert order[first + 1] == call_id
    assert all(order.count(c) == 1 for c in live)
    # Outcomes before the card-only updates that were queued ahead of them.
    assert max(order.index(c) for c in done) < min(order.index(c) for c in live)


@pytest.mark.slow
async def test_a_lost_post_is_found_in_a_public_channel_the_bot_has_not_joined(
    make_server: MakeServer, slack: SlackStandIn, retell: RetellStandIn,
) -> None:
    server = await make_server()
    slack.not_member(PUBLIC)  # it posts there through chat:write.public only
    call_id, ts = await place(server, slack, retell, PUBLIC)
    await eventually(server.outbox_idle)

    # Every post is made, then its answer is lost: the retry must look before posting.
    slack.faults(methods=["chat.postMessage"], drop_after=1.0)
    await webhook(server, retell, call_id, "call_analyzed")
    await eventually(server.outbox_idle, timeout=20)
    slack.clear_faults()

    assert slack.fault_counts["drop_after"] >= 1
    assert posts_with_key(slack, PUBLIC, ts, f"summary:{call_id}") == 1
    assert rows(server, "SELECT last_error FROM outbox WHERE call_id = ? AND kind = 'summary'",
                call_id) == [(None,)]
    assert [c.args.get("channel") for c in slack.calls_to("conversations.join")] == [PUBLIC]
    assert slack.is_member(PUBLIC)
