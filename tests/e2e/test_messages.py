"""`call ...` typed in a channel, a mention or a DM, end to end through the real server.

Events are sent signed as Slack sends them; every check is on what the Slack and Retell
stand-ins recorded. Where a test proves that something did NOT happen (no second call, no
reply), it first waits for a later "marker" call in another channel to be placed and its
card updated, so work the app would have done for the earlier event has had its turn.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import BOT_USER, CHANNEL, TEAM, USER, Server
from tests.support.messages import ephemerals, mention, message
from tests.support.waiting import eventually

DM = "D0ALICE"
MARKER = "C0MARKER"
MARKER_NUMBER = "+14155550188"


def creates(retell: RetellStandIn, channel: str | None = None) -> list[dict[str, Any]]:
    """Bodies of create-phone-call requests, optionally only for calls asked for in `channel`."""
    bodies: list[dict[str, Any]] = [
        cast(dict[str, Any], r.json) for r in retell.requests
        if r.path == "/v2/create-phone-call"
    ]
    return [b for b in bodies
            if channel is None or b["metadata"].get("slack_channel_id") == channel]


def posts(slack: SlackStandIn, channel: str) -> list[dict[str, Any]]:
    return [c.args for c in slack.calls_to("chat.postMessage") if c.args.get("channel") == channel]


def updates(slack: SlackStandIn, channel: str) -> list[dict[str, Any]]:
    return [c.args for c in slack.calls_to("chat.update") if c.args.get("channel") == channel]


async def card_in_thread(slack: SlackStandIn, channel: str, thread_ts: str) -> dict[str, Any]:
    """Wait for the call card posted under `thread_ts` to be updated to 'Dialing'."""
    await slack.wait_for(lambda: any(
        "Dialing" in str(m.get("blocks")) for m in slack.thread(channel, thread_ts)))
    [card] = slack.thread(channel, thread_ts)
    return card


async def marker(server: Server, slack: SlackStandIn, ts: str = "1732409999.000100") -> None:
    """A later call in another channel, waited for to its end: the app has caught up."""
    status, _ = await server.event(message(f"call {MARKER_NUMBER}", ts, channel=MARKER))
    assert status == 200
    await card_in_thread(slack, MARKER, ts)
    await eventually(server.outbox_idle)


# -- placing ----------------------------------------------------------------------------------


async def test_call_in_a_channel_places_the_call_with_the_card_in_the_thread(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    ts = "1732401000.000100"
    status, _ = await server.event(message("call +14155550123", ts))
    assert status == 200
    card = await card_in_thread(slack, CHANNEL, ts)

    [sent] = creates(retell)
    assert sent["to_number"] == "+14155550123"
    assert sent["from_number"] == retell.phone_numbers[0]["phone_number"]
    assert "override_agent_id" not in sent
    meta = sent["metadata"]
    assert meta["slack_channel_id"] == CHANNEL and meta["slack_user_id"] == USER
    assert meta["slack_team_id"] == TEAM
    assert meta["slack_thread_ts"] == ts
    assert meta["slack_message_ts"] == card["ts"] != ts
    assert card["thread_ts"] == ts
    [post] = posts(slack, CHANNEL)
    assert post["thread_ts"] == ts
    assert slack.messages(CHANNEL) == []  # nothing at the top level of the channel
    blocks = str(card["blocks"])
    assert "+1 415 ••• 0123" in blocks and "555-0123" not in blocks
    assert f"<@{USER}>" in blocks
    assert ephemerals(slack, CHANNEL) == []


@pytest.mark.parametrize(
    ("text", "agent_index", "variables"),
    [
        ("CALL +1 415 555 0123 sales customer_name=Ann", 0, {"customer_name": "Ann"}),
        ('Call (415) 555-0123 "Appointment Reminder" note="after 5"', 1, {"note": "after 5"}),
        ("cAlL <tel:+14155550123|+1 415 555 0123> Survey Bot", 2, {}),
    ],
    ids=["upper", "capitalised-quoted-agent", "slack-tel-link"],
)
@pytest.mark.slow
async def test_call_word_is_case_insensitive_and_takes_agent_and_variables(
    server: Server, slack: SlackStandIn, retell: RetellStandIn, text: str, agent_index: int,
    variables: dict[str, str],
) -> None:
    ts = "1732401001.000100"
    await server.event(message(text, ts))
    await card_in_thread(slack, CHANNEL, ts)
    [create] = creates(retell)
    assert create["to_number"] == "+14155550123"
    assert create["override_agent_id"] == retell.agents[agent_index]["agent_id"]
    assert create.get("retell_llm_dynamic_variables", {}) == variables


async def test_mention_with_call_places_the_call_in_its_thread(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    ts = "1732401002.000100"
    text = f"<@{BOT_USER}> call +1 415 555 0123 \"Survey Bot\" customer_name=Bo"
    status, _ = await server.event(mention(text, ts))
    assert status == 200
    card = await card_in_thread(slack, CHANNEL, ts)
    [create] = creates(retell)
    assert create["to_number"] == "+14155550123"
    assert create["override_agent_id"] == retell.agents[2]["agent_id"]
    assert create["retell_llm_dynamic_variables"] == {"customer_name": "Bo"}
    assert create["metadata"]["slack_thread_ts"] == ts
    assert card["thread_ts"] == ts


async def test_message_inside_a_thread_answers_in_that_thread(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    parent, ts = "1732401003.000100", "1732401003.000200"
    await server.event(message("call +14155550123", ts, thread_ts=parent))
    card = await card_in_thread(slack, CHANNEL, parent)
    assert card["thread_ts"] == parent
    assert slack.thread(CHANNEL, ts) == []
    [create] = creates(retell)
    assert create["metadata"]["slack_thread_ts"] == parent


async def test_direct_message_places_the_call_in_the_dm_thread(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    ts = "1732401004.000100"
    status, _ = await server.event(
        message("call +14155550123 customer_name=Ann", ts, channel=DM, channel_type="im"))
    assert status == 200
    card = await card_in_thread(slack, DM, ts)
    [create] = creates(retell)
    assert create["to_number"] == "+14155550123"
    assert create["retell_llm_dynamic_variables"] == {"customer_name": "Ann"}
    meta = create["metadata"]
    assert meta["slack_channel_id"] == DM and meta["slack_thread_ts"] == ts
    assert meta["slack_message_ts"] == card["ts"]
    assert posts(slack, CHANNEL) == []


async def test_direct_message_without_a_call_gets_the_usage_in_its_thread(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    ts = "1732401005.000100"
    await server.event(message("hello there", ts, channel=DM, channel_type="im"))
    await slack.wait_for(lambda: bool(slack.thread(DM, ts)))
    [reply] = slack.thread(DM, ts)
    assert "call <number> [agent] [name=value ...]" in reply["text"]
    assert creates(retell) == []


@pytest.mark.slow
async def test_summary_lands_in_the_thread_of_the_users_message(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    ts = "1732401006.000100"
    await server.event(message("call +14155550123 customer_name=Ann", ts))
    card = await card_in_thread(slack, CHANNEL, ts)
    [call_id] = list(retell.calls)
    url = server.url + "/retell/webhook"
    await retell.send_webhook(url, retell.event_body(call_id, "call_started"))
    await retell.send_webhook(url, retell.event_body(
        call_id, "call_ended", duration_ms=95_000, disconnection_reason="user_hangup"))
    status, _ = await retell.send_webhook(url, retell.event_body(
        call_id, "call_analyzed", duration_ms=95_000,
        call_analysis={"call_summary": "Ann booked Friday.", "user_sentiment": "Positive",
                       "call_successful": True}))
    assert status == 200

    await slack.wait_for(lambda: len(slack.thread(CHANNEL, ts)) == 2)
    await eventually(server.outbox_idle)
    first, summary = slack.thread(CHANNEL, ts)
    assert first["ts"] == card["ts"]
    assert summary["thread_ts"] == ts
    assert "Ann booked Friday." in json.dumps(summary["blocks"], ensure_ascii=False)
    assert slack.thread(CHANNEL, card["ts"]) == []  # not under the card's own ts
    assert slack.messages(CHANNEL) == []
    updated = slack.message(CHANNEL, card["ts"])
    assert updated is not None and "Successful" in str(updated["blocks"])
    summary_posts = [p for p in posts(slack, CHANNEL) if "Ann booked" in json.dumps(p)]
    assert [p["thread_ts"] for p in summary_posts] == [ts]


# -- never a second call ----------------------------------------------------------------------


@pytest.mark.slow
async def test_mention_delivered_as_app_mention_and_message_places_one_call(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    ts = "1732401007.000100"
    text = f"<@{BOT_USER}> call +14155550123"
    # Slack sends both events for the same message, each with its own event id, at once.
    results = await asyncio.gather(
        server.event(mention(text, ts), event_id="Ev0MENTION01"),
        server.event(message(text, ts), event_id="Ev0MESSAGE01"),
    )
    assert [status for status, _ in results] == [200, 200]
    await card_in_thread(slack, CHANNEL, ts)
    await marker(server, slack)
    assert len(creates(retell, CHANNEL)) == 1
    assert len(posts(slack, CHANNEL)) == 1
    assert len(slack.thread(CHANNEL, ts)) == 1
    assert ephemerals(slack, CHANNEL) == []


@pytest.mark.slow
async def test_mention_as_message_first_then_app_mention_places_one_call(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    ts = "1732401008.000100"
    text = f"<@{BOT_USER}> call +14155550123"
    await server.event(message(text, ts), event_id="Ev0MESSAGE02")
    await card_in_thread(slack, CHANNEL, ts)
    await server.event(mention(text, ts), event_id="Ev0MENTION02")
    await marker(server, slack)
    assert len(creates(retell, CHANNEL)) == 1
    assert len(posts(slack, CHANNEL)) == 1
    assert ephemerals(slack, CHANNEL) == []


@pytest.mark.slow
async def test_retried_delivery_places_no_second_call(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    ts = "1732401009.000100"
    event = message("call +14155550123", ts)
    assert (await server.event(event, event_id="Ev0RETRY01"))[0] == 200
    await card_in_thread(slack, CHANNEL, ts)
    for attempt in (1, 2, 3):
        status, _ = await server.event(event, event_id="Ev0RETRY01", retry_num=attempt)
        assert status == 200
    await marker(server, slack)
    assert len(creates(retell, CHANNEL)) == 1
    assert len(posts(slack, CHANNEL)) == 1
    assert ephemerals(slack, CHANNEL) == []


@pytest.mark.slow
async def test_retry_racing_the_first_delivery_places_one_call(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    ts = "1732401010.000100"
    event = mention(f"<@{BOT_USER}> call +14155550123", ts)
    retell.create_delay = 0.5  # Retell is slow while the retry comes in
    await asyncio.gather(
        server.event(event, event_id="Ev0RETRY02"),
        server.event(event, event_id="Ev0RETRY02", retry_num=1),
        server.event(event, event_id="Ev0RETRY02", retry_num=2),
    )
    await card_in_thread(slack, CHANNEL, ts)
    retell.create_delay = 0.0
    await marker(server, slack)
    assert len(creates(retell, CHANNEL)) == 1
    assert len(retell.created_calls()) == 2  # this call and the marker's
    assert len(posts(slack, CHANNEL)) == 1


@pytest.mark.slow
async def test_edit_never_places_a_call(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    ts, plain_ts = "1732401011.000100", "1732401011.000200"
    await server.event(message("call +14155550123", ts))
    await card_in_thread(slack, CHANNEL, ts)

    def edit(original_ts: str, old: str, new: str, edit_ts: str) -> dict[str, Any]:
        return message(
            "", edit_ts, user=None, subtype="message_changed", hidden=True,
            message={"type": "message", "user": USER, "text": new, "ts": original_ts,
                     "edited": {"user": USER, "ts": edit_ts}},
            previous_message={"type": "message", "user": USER, "text": old, "ts": original_ts},
        )

    # The call message edited to another number, and a plain message edited into a call.
    await server.event(edit(ts, "call +14155550123", "call +14155550199", "1732401011.000300"))
    await server.event(edit(plain_ts, "hello", "call +14155550124", "1732401011.000400"))
    await marker(server, slack)
    [create] = creates(retell, CHANNEL)
    assert create["to_number"] == "+14155550123"
    assert len(posts(slack, CHANNEL)) == 1
    assert slack.thread(CHANNEL, plain_ts) == []
    assert ephemerals(slack, CHANNEL) == []


@pytest.mark.parametrize(
    "extra",
    [
        {"user": "U0OTHERBOT", "bot_id": "B0OTHER", "app_id": "A0OTHER"},
        {"user": None, "subtype": "bot_message", "bot_id": "B0OTHER", "username": "relay"},
        {"user": BOT_USER, "bot_id": "B0BOT", "app_id": "A0APP"},
    ],
    ids=["other-app-bot", "legacy-bot-message", "our-own-bot"],
)
@pytest.mark.slow
async def test_bot_messages_never_place_a_call(
    server: Server, slack: SlackStandIn, retell: RetellStandIn, extra: dict[str, Any]
) -> None:
    ts = "1732401012.000100"
    fields = dict(extra)
    user = fields.pop("user")
    await server.event(message("call +14155550123", ts, user=user, **fields))
    await server.event(mention(f"<@{BOT_USER}> call +14155550123", "1732401012.000200",
                               user=user, **fields))
    await marker(server, slack)
    assert creates(retell, CHANNEL) == []
    assert posts(slack, CHANNEL) == [] and ephemerals(slack, CHANNEL) == []


# -- what is not a call -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["call me later", "Call me when you are back", "hello everyone",
     "please call +14155550123", "calling +14155550123"],
)
@pytest.mark.slow
async def test_channel_chatter_is_ignored(
    server: Server, slack: SlackStandIn, retell: RetellStandIn, text: str
) -> None:
    ts = "1732401013.000100"
    assert (await server.event(message(text, ts)))[0] == 200
    await marker(server, slack)
    assert creates(retell, CHANNEL) == []
    assert posts(slack, CHANNEL) == []
    assert ephemerals(slack, CHANNEL) == []


@pytest.mark.parametrize(
    "text", [f"<@{BOT_USER}> hello", f"<@{BOT_USER}> call me later", f"<@{BOT_USER}>"])
@pytest.mark.slow
async def test_mention_without_a_call_gets_usage_in_its_thread(
    server: Server, slack: SlackStandIn, retell: RetellStandIn, text: str
) -> None:
    ts = "1732401014.000100"
    await server.event(mention(text, ts))
    await slack.wait_for(lambda: bool(slack.thread(CHANNEL, ts)))
    [reply] = slack.thread(CHANNEL, ts)
    assert reply["thread_ts"] == ts
    assert "call <number> [agent] [name=value ...]" in reply["text"]
    assert "Usage: `/call <number>" in reply["text"]
    assert creates(retell) == []
    assert ephemerals(slack, CHANNEL) == []


@pytest.mark.parametrize(
    ("make", "text", "fragment"),
    [
        (message, "call 12345", "not a valid phone number"),
        (mention, f"<@{BOT_USER}> call +1 415 555", "not a valid phone number"),
        (message, 'call +14155550123 note="open', "quote is not closed"),
    ],
    ids=["message-short-number", "mention-incomplete-number", "unclosed-quote"],
)
async def test_bad_input_answers_ephemerally_in_the_thread_and_never_asks_retell(
    server: Server, slack: SlackStandIn, retell: RetellStandIn, make: Any, text: str,
    fragment: str,
) -> None:
    ts = "1732401015.000100"
    await server.event(make(text, ts))
    await slack.wait_for(lambda: bool(slack.ephemerals))
    [answer] = slack.ephemerals
    assert answer["to_user"] == USER
    assert answer["channel"] == CHANNEL and answer["thread_ts"] == ts
    assert fragment in answer["text"]
    assert "call <number> [agent] [name=value ...]" in answer["text"]
    assert creates(retell) == []
    assert slack.calls_to("chat.postMessage") == []  # no card, no public reply


async def test_unknown_agent_answers_ephemerally_and_places_nothing(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    ts = "1732401016.000100"
    await server.event(message("call +14155550123 Nobody Here", ts))
    await slack.wait_for(lambda: bool(slack.ephemerals))
    [answer] = slack.ephemerals
    assert answer["to_user"] == USER and answer["thread_ts"] == ts
    assert "No agent is called `Nobody Here`" in answer["text"]
    assert creates(retell) == []
    assert slack.calls_to("chat.postMessage") == []


async def test_retell_refusal_is_shown_on_the_card_and_to_the_user_in_the_thread(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    ts = "1732401017.000100"
    retell.fail_next("/v2/create-phone-call", 402, "Insufficient credit in account")
    await server.event(message("call +14155550123", ts))
    await slack.wait_for(lambda: bool(slack.ephemerals))
    [answer] = slack.ephemerals
    assert answer["to_user"] == USER and answer["channel"] == CHANNEL
    assert answer["thread_ts"] == ts
    assert "Retell refused the call: Insufficient credit in account" in answer["text"]
    [card] = slack.thread(CHANNEL, ts)
    assert "Not placed" in str(card["blocks"])
    assert len(creates(retell)) == 1 and retell.created_calls() == []
