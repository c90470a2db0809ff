"""Card buttons end to end: block_actions signed as Slack signs them, through the real server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, USER, Server, button, make_settings
from tests.support.buttons import action_ids, press, requests_to
from tests.support.db import db_rows as rows
from tests.support.waiting import eventually
from tests.support.webhooks import card, placed_call, send, summaries

BOB = "U0BOB"


async def idle(server: Server) -> None:
    """The outbox has delivered everything queued so far."""
    await eventually(server.outbox_idle)


@pytest.mark.slow
async def test_card_shows_only_buttons_that_fit_the_state(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    assert action_ids(card(slack)) == ["call_hang_up", "call_refresh"]
    await send(server, retell, call_id, "call_ended")
    await slack.wait_for(lambda: "Ended" in str(card(slack)["blocks"]))
    assert action_ids(card(slack)) == ["call_refresh", "call_transcript", "call_again"]
    await send(server, retell, call_id, "call_analyzed")
    await slack.wait_for(lambda: len(summaries(slack)) == 1)
    await idle(server)
    assert action_ids(card(slack)) == ["call_transcript", "call_again"]


@pytest.mark.slow
async def test_hang_up_by_the_caller_stops_the_call_and_updates_the_card(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    await send(server, retell, call_id, "call_started")
    await slack.wait_for(lambda: "In progress" in str(card(slack)["blocks"]))

    await press(server, slack, "call_hang_up", call_id)
    await slack.wait_for(lambda: "Hung up from Slack" in str(card(slack)["blocks"]))
    assert len(requests_to(retell, f"/v2/stop-call/{call_id}")) == 1
    assert "call_hang_up" not in action_ids(card(slack))

    # A second press (a double click, or a stale card) is answered, and Retell not asked.
    await press(server, slack, "call_hang_up", call_id, key="again")
    await eventually(lambda: bool(slack.responses_for("again")))
    [answer] = slack.responses_for("again")
    assert "already ended" in answer["text"]
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    assert len(requests_to(retell, "/v2/stop-call/")) == 1


@pytest.mark.slow
async def test_only_the_caller_may_hang_up(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    await press(server, slack, "call_hang_up", call_id, key="bob", user=BOB)
    await eventually(lambda: bool(slack.responses_for("bob")))
    [answer] = slack.responses_for("bob")
    assert f"Only <@{USER}> or an admin can hang up" in answer["text"]
    assert answer["response_type"] == "ephemeral"
    assert requests_to(retell, "/v2/stop-call/") == []
    assert retell.calls[call_id]["call_status"] == "registered"


@pytest.mark.slow
async def test_refresh_reads_retell_when_webhooks_never_come(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    retell.event_body(call_id, "call_analyzed")  # Retell knows the outcome; no webhook sent

    await press(server, slack, "call_refresh", call_id)
    await slack.wait_for(lambda: len(summaries(slack)) == 1)
    await idle(server)
    assert len(requests_to(retell, f"/v2/get-call/{call_id}")) == 1
    assert ":white_check_mark: Successful" in str(card(slack)["blocks"])

    # Pressing again, and the late webhooks, change nothing visible: one summary.
    await press(server, slack, "call_refresh", call_id)
    for event in ("call_ended", "call_analyzed"):
        status, body = await send(server, retell, call_id, event)
        assert (status, body) == (200, {"status": "duplicate"})
    await eventually(lambda: len(requests_to(retell, f"/v2/get-call/{call_id}")) == 2)
    await idle(server)
    assert len(summaries(slack)) == 1
    assert rows(server, "SELECT source FROM webhook_events WHERE event = 'call_analyzed'") == [
        ("webhook",)]


@pytest.mark.slow
async def test_refresh_when_retell_fails_says_so(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    retell.fail_next("/v2/get-call/", 500, "database unavailable")
    await press(server, slack, "call_refresh", call_id, key="fail")
    await eventually(lambda: bool(slack.responses_for("fail")))
    assert "server error" in slack.responses_for("fail")[0]["text"]
    assert "database unavailable" in slack.responses_for("fail")[0]["text"]


@pytest.mark.slow
async def test_transcript_goes_into_the_thread_once(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    for event in ("call_started", "call_ended", "call_analyzed"):
        await send(server, retell, call_id, event)
    await slack.wait_for(lambda: len(summaries(slack)) == 1)

    await press(server, slack, "call_transcript", call_id)
    await slack.wait_for(lambda: len(summaries(slack)) == 2)
    transcript = summaries(slack)[1]
    text = json.dumps(transcript["blocks"], ensure_ascii=False)
    assert "*Agent:* Hi Ann" in text and "*User:* Yes, sure." in text and "café" in text
    assert "+1 415 ••• 0123" in transcript["text"]

    await press(server, slack, "call_transcript", call_id, key="twice")
    await eventually(lambda: bool(slack.responses_for("twice")))
    assert "already in the card's thread" in slack.responses_for("twice")[0]["text"]
    await idle(server)
    assert len(summaries(slack)) == 2


@pytest.mark.slow
async def test_long_transcript_is_uploaded_as_a_file_in_the_thread(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    turns = [f"{'Agent' if i % 2 else 'User'}: turn {i} " + "words " * 40 for i in range(60)]
    await send(server, retell, call_id, "call_ended", transcript="\n".join(turns))
    await slack.wait_for(lambda: "call_transcript" in action_ids(card(slack)))

    await press(server, slack, "call_transcript", call_id)
    await eventually(lambda: any(f["completed"] for f in slack.files.values()))
    [upload] = [f for f in slack.files.values() if f["completed"]]
    assert upload["channel"] == CHANNEL and upload["thread_ts"] == card(slack)["ts"]
    content = upload["content"].decode()
    assert all(f"turn {i} " in content for i in range(60))
    assert upload["filename"] == f"transcript-{call_id}.txt"
    assert [m for m in summaries(slack) if not m.get("files")] == []  # no wall of messages


@pytest.mark.slow
async def test_call_again_places_the_same_call_with_a_new_card(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    await server.slash("/call", "+1 415 555 0123 Sales customer_name=Ann",
                       response_url=slack.response_url("place"))
    await slack.wait_for(lambda: len(slack.calls_to("chat.update")) == 1)
    first_id = next(iter(retell.calls))
    await send(server, retell, first_id, "call_ended", disconnection_reason="dial_no_answer")
    await slack.wait_for(lambda: "call_again" in action_ids(card(slack)))

    first_card = card(slack)
    await asyncio.gather(
        press(server, slack, "call_again", first_id, user=BOB),
        press(server, slack, "call_again", first_id, user=BOB, key="double"),
    )
    await eventually(lambda: len(slack.messages(CHANNEL)) == 2)
    await eventually(lambda: bool(slack.responses_for("double") or slack.responses_for("btn")))
    await eventually(lambda: len(retell.created_calls()) >= 2)  # the new card's create
    await idle(server)
    first, second = retell.created_calls()
    assert len(retell.created_calls()) == 2  # the double click placed one call
    for key in ("to_number", "from_number", "override_agent_id", "retell_llm_dynamic_variables"):
        assert second[key] == first[key], key
    assert second["metadata"]["slack_user_id"] == BOB
    new_card = next(m for m in slack.messages(CHANNEL) if m["ts"] != first_card["ts"])
    assert f"<@{BOB}>" in str(new_card["blocks"])


async def test_try_again_after_retell_refused(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    retell.fail_next("/v2/create-phone-call", 402, "Trial ended")
    await server.slash("/call", "+1 415 555 0123", response_url=slack.response_url("place"))
    await slack.wait_for(lambda: "Not placed" in str(card(slack)["blocks"]))
    [(row_id,)] = rows(server, "SELECT id FROM calls WHERE status = 'failed'")
    [element] = [e for b in card(slack)["blocks"] if b["type"] == "actions"
                 for e in b["elements"]]
    assert (element["action_id"], element["value"]) == ("call_again", f"#{row_id}")

    await press(server, slack, "call_again", f"#{row_id}")
    await eventually(lambda: len(retell.created_calls()) == 1)
    assert retell.created_calls()[0]["to_number"] == "+14155550123"


@pytest.mark.slow
async def test_buttons_pressed_in_app_home_answer_by_direct_message(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    status, _ = await server.interactive(button("call_hang_up", call_id, user=BOB, channel=None))
    assert status == 200
    await eventually(lambda: bool(slack.messages(BOB)))
    assert f"Only <@{USER}> or an admin can hang up" in slack.messages(BOB)[0]["text"]

    retell.event_body(call_id, "call_started")
    status, _ = await server.interactive(button("call_refresh", call_id, channel=None))
    assert status == 200
    await slack.wait_for(lambda: "In progress" in str(card(slack)["blocks"]))


@pytest.mark.slow
async def test_inbound_calls_get_the_same_card_and_anyone_may_hang_up(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    server = Server(make_settings(slack, retell, db_path, CALLBOT_NOTIFY_CHANNEL="C0CALLS"))
    await server.start()
    try:
        call_id = retell.new_inbound_call("+442071838750", retell.phone_numbers[0]["phone_number"])
        await send(server, retell, call_id, "call_started")
        await slack.wait_for(lambda: len(slack.messages("C0CALLS")) == 1)
        [inbound] = slack.messages("C0CALLS")
        assert "Inbound call from" in inbound["text"]
        assert action_ids(inbound) == ["call_hang_up", "call_refresh"]

        payload = button("call_hang_up", call_id, user=BOB, channel="C0CALLS",
                         message_ts=inbound["ts"], response_url=slack.response_url("in"))
        assert await server.interactive(payload) == (200, None)
        await eventually(lambda: len(requests_to(retell, f"/v2/stop-call/{call_id}")) == 1)
        await slack.wait_for(
            lambda: "Hung up from Slack" in str(slack.messages("C0CALLS")[0]["blocks"]))
        assert "call_again" in action_ids(slack.messages("C0CALLS")[0])
    finally:
        await server.stop()
