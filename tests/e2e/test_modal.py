"""The call modal end to end: `/call` with no text opens it, a submission places the call.

Every request goes through the real aiohttp server, signed as Slack signs it; what the app
asked of Slack and Retell is read back from the stand-ins.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, USER, Server
from tests.support.modal import modal_views, open_modal, state_values, submission
from tests.support.waiting import eventually

OTHER_CHANNEL = "C0SALES"
OWN_AGENT_LABEL = "The caller ID's own agent"


# -- helpers -------------------------------------------------------------------------------


def creates(retell: RetellStandIn) -> list[Any]:
    return [r for r in retell.requests if r.path == "/v2/create-phone-call"]


def retell_paths(retell: RetellStandIn) -> list[str]:
    return [r.path for r in retell.requests]


def by_block(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if "block_id" in b}


def option_labels(block: dict[str, Any]) -> list[str]:
    return [o["text"]["text"] for o in block["element"]["options"]]


def assert_full_modal(view: dict[str, Any], retell: RetellStandIn, channel: str) -> None:
    assert view["type"] == "modal" and view["callback_id"] == "call_modal"
    assert view["submit"]["text"] == "Call"
    blocks = by_block(view)
    assert {"number", "agent", "caller", "variables", "note", "channel"} <= set(blocks)
    assert blocks["number"]["element"]["type"] == "plain_text_input"
    agents = option_labels(blocks["agent"])
    assert agents[0] == OWN_AGENT_LABEL
    assert sorted(agents[1:]) == sorted(a["agent_name"] for a in retell.agents)
    agent_values = [o["value"] for o in blocks["agent"]["element"]["options"]]
    assert set(agent_values[1:]) == {a["agent_id"] for a in retell.agents}
    caller = blocks["caller"]["element"]
    assert caller["initial_option"]["value"] == retell.phone_numbers[0]["phone_number"]
    assert {o["value"] for o in caller["options"]} == {
        n["phone_number"] for n in retell.phone_numbers}
    assert "Sales line (+14155550100)" in option_labels(blocks["caller"])
    assert blocks["variables"]["element"]["multiline"] is True
    assert blocks["variables"]["optional"] is True and blocks["note"]["optional"] is True
    conv = blocks["channel"]["element"]
    assert conv["type"] == "conversations_select"
    assert conv["initial_conversation"] == channel
    assert conv["response_url_enabled"] is True


# -- opening the modal ---------------------------------------------------------------------


async def test_empty_call_opens_the_full_modal_at_once_then_from_the_cache(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    trigger, view = await open_modal(server, slack)
    [opened] = slack.calls_to("views.open")
    assert opened.args["trigger_id"] == trigger
    assert_full_modal(opened.args["view"], retell, CHANNEL)
    assert view["blocks"] == opened.args["view"]["blocks"]  # what Slack now shows
    assert slack.calls_to("views.update") == []  # Retell was quick: no loading step
    assert "/v2/list-agents" in retell_paths(retell)
    assert "/v2/list-phone-numbers" in retell_paths(retell)

    # Warm cache: a slow Retell no longer matters, the modal opens from what is known.
    asked = len(retell.requests)
    retell.hang_next("/v2/list-agents", 1.5)
    retell.hang_next("/v2/list-phone-numbers", 1.5)
    trigger2, _ = await open_modal(server, slack, channel=OTHER_CHANNEL)
    second = slack.calls_to("views.open")[1]
    assert second.args["trigger_id"] == trigger2
    assert_full_modal(second.args["view"], retell, OTHER_CHANNEL)
    assert len(retell.requests) == asked  # nothing asked of Retell
    assert slack.calls_to("views.update") == []


@pytest.mark.slow
async def test_slow_retell_opens_a_loading_view_then_updates_it_with_the_hash(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    retell.hang_next("/v2/list-agents", 1.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, body = await server.slash("/call", "", response_url=slack.response_url("cmd"))
    acked = loop.time() - started
    assert status == 200 and body is None
    assert acked < 1.5, f"ack took {acked:.2f} s, as long as Retell"

    await slack.wait_for(lambda: bool(slack.calls_to("views.open")))
    [opened] = slack.calls_to("views.open")
    loading = opened.args["view"]
    # Opened while Retell was still thinking: the trigger id would not have waited.
    assert slack.calls_to("views.update") == []
    assert "Loading" in str(loading["blocks"])
    assert "submit" not in loading
    assert not any(b.get("type") == "input" for b in loading["blocks"])
    assert loading["private_metadata"]
    [shown] = modal_views(slack)
    view_id, first_hash = shown["id"], shown["hash"]

    await slack.wait_for(lambda: bool(slack.calls_to("views.update")), timeout=5)
    [update] = slack.calls_to("views.update")
    assert update.args["view_id"] == view_id
    assert update.args["hash"] == first_hash
    assert_full_modal(update.args["view"], retell, CHANNEL)
    # Slack accepted the update: the view it shows is now the full modal.
    assert slack.views[view_id]["submit"]["text"] == "Call"
    assert update.args["view"]["private_metadata"] == loading["private_metadata"]
    assert len(slack.calls_to("views.open")) == 1


@pytest.mark.parametrize(
    ("status", "fragment"),
    [(500, "Retell had a server error (HTTP 500)"),
     (401, "Retell refused the list of agents: Invalid API key")],
)
@pytest.mark.slow
async def test_modal_opens_with_a_notice_when_retell_cannot_list_agents(
    server: Server, slack: SlackStandIn, retell: RetellStandIn, status: int, fragment: str
) -> None:
    retell.fail_next("/v2/list-agents", status)
    _, view = await open_modal(server, slack)
    [opened] = slack.calls_to("views.open")
    sent = opened.args["view"]
    notices = [b for b in sent["blocks"] if b["type"] == "context"]
    assert len(notices) == 1
    notice = notices[0]["elements"][0]["text"]
    assert notice.startswith(":warning:") and fragment in notice
    assert "caller ID's own agent" in notice
    blocks = by_block(sent)
    assert option_labels(blocks["agent"]) == [OWN_AGENT_LABEL]
    default_from = retell.phone_numbers[0]["phone_number"]
    assert blocks["caller"]["element"]["initial_option"]["value"] == default_from

    # The modal still places a call, with the caller ID's own agent.
    status_, ack = await server.interactive(submission(
        view, state_values(view, number="+1 415 555 0123"), slack.response_url("sub")))
    assert status_ == 200 and ack is None
    await eventually(lambda: len(creates(retell)) == 1)
    sent_call = creates(retell)[0].json
    assert "override_agent_id" not in sent_call
    assert sent_call["from_number"] == default_from


# -- submitting it -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "variables", "expected"),
    [
        ("12345", None, {"number": "not a valid phone number"}),
        ("+1 415 555 0123", "customer_name Ann", {"variables": "is not `name=value`"}),
        ("call me", "customer_name=Ann\n9lives=yes",
         {"number": "not a valid phone number", "variables": "not a valid variable name"}),
    ],
)
async def test_invalid_submission_is_answered_with_errors_under_the_fields(
    server: Server, slack: SlackStandIn, retell: RetellStandIn,
    number: str, variables: str | None, expected: dict[str, str],
) -> None:
    _, view = await open_modal(server, slack)
    payload = submission(view, state_values(view, number=number, variables=variables),
                         slack.response_url("sub"))
    status, ack = await server.interactive(payload)
    assert status == 200
    assert ack["response_action"] == "errors"
    assert set(ack["errors"]) == set(expected)
    for block_id, fragment in expected.items():
        assert block_id in by_block(view)  # Slack can only show errors under real blocks
        assert fragment in ack["errors"][block_id]
    assert creates(retell) == []
    assert slack.calls_to("chat.postMessage") == []
    assert slack.responses_for("sub") == []


@pytest.mark.slow
async def test_valid_submission_places_the_call_as_chosen(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    _, view = await open_modal(server, slack)
    agent = retell.agents[1]
    caller = retell.phone_numbers[1]["phone_number"]
    note = "VIP <b> & call after 5"
    values = state_values(
        view, number="(415) 555-0123", agent_label=agent["agent_name"], caller=caller,
        variables="customer_name=Ann Lee\n\n  appointment=Friday 3pm  \n",
        note=note, channel=OTHER_CHANNEL,
    )
    status, ack = await server.interactive(
        submission(view, values, slack.response_url("sub")))
    assert status == 200 and ack is None  # the modal closes

    await eventually(lambda: len(retell.created_calls()) == 1)
    [sent] = retell.created_calls()
    assert sent["to_number"] == "+14155550123"
    assert sent["override_agent_id"] == agent["agent_id"]
    assert sent["from_number"] == caller
    assert sent["retell_llm_dynamic_variables"] == {"customer_name": "Ann Lee",
                                                    "appointment": "Friday 3pm"}
    assert sent["metadata"]["slack_channel_id"] == OTHER_CHANNEL
    assert sent["metadata"]["slack_user_id"] == USER

    [posted] = slack.calls_to("chat.postMessage")
    assert posted.args["channel"] == OTHER_CHANNEL
    assert slack.messages(CHANNEL) == []
    [card] = slack.messages(OTHER_CHANNEL)
    assert sent["metadata"]["slack_message_ts"] == card["ts"]
    await slack.wait_for(lambda: bool(slack.calls_to("chat.update")))
    shown = str(slack.message(OTHER_CHANNEL, card["ts"])["blocks"])  # type: ignore[index]
    assert ":memo: VIP &lt;b&gt; &amp; call after 5" in shown
    assert "<b>" not in shown
    assert agent["agent_name"] in shown and "Dialing" in shown
    assert slack.responses_for("sub") == []  # nothing went wrong, nothing to say


@pytest.mark.slow
async def test_the_caller_ids_own_agent_sends_no_override(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    _, view = await open_modal(server, slack)
    values = state_values(view, number="+14155550123", agent_label=OWN_AGENT_LABEL)
    status, ack = await server.interactive(submission(view, values))
    assert status == 200 and ack is None
    await eventually(lambda: len(retell.created_calls()) == 1)
    [sent] = retell.created_calls()
    assert "override_agent_id" not in sent
    assert sent["from_number"] == retell.phone_numbers[0]["phone_number"]
    assert "retell_llm_dynamic_variables" not in sent
    [card] = slack.messages(CHANNEL)
    # Retell tells which agent answered; the card names it once the call is placed.
    await slack.wait_for(lambda: bool(slack.calls_to("chat.update")))
    shown = str(slack.message(CHANNEL, card["ts"])["blocks"])  # type: ignore[index]
    assert retell.agents[0]["agent_name"] in shown


async def test_retell_refusal_is_told_through_the_response_url(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    _, view = await open_modal(server, slack)
    retell.fail_next("/v2/create-phone-call", 402, "Insufficient credit in account")
    values = state_values(view, number="+14155550123", channel=OTHER_CHANNEL)
    status, ack = await server.interactive(
        submission(view, values, slack.response_url("sub")))
    assert status == 200 and ack is None
    await slack.wait_for(lambda: bool(slack.responses_for("sub")))
    [answer] = slack.responses_for("sub")
    assert answer["response_type"] == "ephemeral"
    assert "Retell refused the call: Insufficient credit in account" in answer["text"]
    [card] = slack.messages(OTHER_CHANNEL)
    assert "Not placed" in str(card["blocks"])
    assert retell.created_calls() == []
    # Answered in the channel: no direct message as well.
    assert [c for c in slack.calls_to("chat.postMessage") if c.args["channel"] == USER] == []


async def test_retell_refusal_is_told_by_dm_without_a_response_url(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    _, view = await open_modal(server, slack)
    retell.fail_next("/v2/create-phone-call", 402, "Insufficient credit in account")
    status, ack = await server.interactive(
        submission(view, state_values(view, number="+14155550123")))
    assert status == 200 and ack is None

    def dms() -> list[Any]:
        return [c for c in slack.calls_to("chat.postMessage") if c.args["channel"] == USER]

    await slack.wait_for(lambda: bool(dms()))
    [dm] = dms()
    assert "Retell refused the call: Insufficient credit in account" in dm.args["text"]
    assert slack.responses == []
    [card] = slack.messages(CHANNEL)
    assert "Not placed" in str(card["blocks"])


async def test_a_dead_response_url_falls_back_to_a_dm(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    _, view = await open_modal(server, slack)
    retell.fail_next("/v2/create-phone-call", 422)
    gone = f"{slack.url}/expired/response-url"  # the stand-in answers 404 here
    status, ack = await server.interactive(
        submission(view, state_values(view, number="+14155550123"), gone))
    assert status == 200 and ack is None

    def dms() -> list[Any]:
        return [c for c in slack.calls_to("chat.postMessage") if c.args["channel"] == USER]

    await slack.wait_for(lambda: bool(dms()))
    assert "Retell refused the call: Cannot find requested asset" in dms()[0].args["text"]


async def test_bot_not_in_the_chosen_channel_is_told_and_nothing_is_placed(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    _, view = await open_modal(server, slack)
    slack.fail("chat.postMessage", "not_in_channel", channel="G0SECRET")
    values = state_values(view, number="+14155550123", channel="G0SECRET")
    status, ack = await server.interactive(
        submission(view, values, slack.response_url("sub")))
    assert status == 200 and ack is None
    await slack.wait_for(lambda: bool(slack.responses_for("sub")))
    text = slack.responses_for("sub")[0]["text"]
    assert "not_in_channel" in text and "/invite" in text and "no call was placed" in text
    assert creates(retell) == []
