"""Guardrails end to end: who may call, which numbers, how many, and the audit of it all.

The guard is the one thing between a Slack request and a real phone ringing, so it is tested
through the real server on every surface that places calls (`/call`, the modal, a message or
mention, "Call again"), with requests fired at once where a race could let one too many
through, and across restarts. Each refusal must reach the person, reach neither Slack's
channel (no card) nor Retell, and leave exactly one audit row that never holds a full number.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import BOT_USER, CHANNEL, USER, Server, StartServer
from tests.support.buttons import press
from tests.support.db import db_rows
from tests.support.guard import (
    MASKED,
    REFUSED,
    assert_no_full_number_audited,
    assert_refusal_row,
    audit,
    creates,
    outcomes,
)
from tests.support.messages import ephemerals, mention, message
from tests.support.modal import open_modal, state_values, submission
from tests.support.waiting import eventually
from tests.support.webhooks import placed_call, send

NUMBER = "+14155550123"
ADMIN = "U0ADMIN"
BOB = "U0BOB"
CALLS_CHANNEL = "C0CALLS"


# -- helpers -----------------------------------------------------------------------------------


def assert_creates_honor_dnc(retell: RetellStandIn) -> None:
    for body in creates(retell):
        assert body.get("honor_internal_dnc") is True, body


async def refused(srv: Server, slack: SlackStandIn, text: str, key: str, **kw: Any) -> str:
    """`/call text`; returns the ephemeral refusal that came back by response_url."""
    status, body = await srv.slash("/call", text, response_url=slack.response_url(key), **kw)
    assert (status, body) == (200, None)
    await eventually(lambda: bool(slack.responses_for(key)))
    [answer] = slack.responses_for(key)
    assert answer["response_type"] == "ephemeral"
    assert answer["text"].startswith(REFUSED), answer["text"]
    return str(answer["text"])


async def placed(srv: Server, slack: SlackStandIn, text: str, key: str,
                 **kw: Any) -> dict[str, Any]:
    """`/call text` that must go through; returns its 'placed' audit row."""
    before = len([r for r in audit(srv) if r["outcome"] == "placed"])
    status, body = await srv.slash("/call", text, response_url=slack.response_url(key), **kw)
    assert (status, body) == (200, None)
    await eventually(lambda: len([r for r in audit(srv) if r["outcome"] == "placed"]) > before)
    assert slack.responses_for(key) == []  # nothing went wrong, nothing to say
    return [r for r in audit(srv) if r["outcome"] == "placed"][-1]


async def fire(srv: Server, slack: SlackStandIn, keys: list[str]) -> None:
    """Send `/call NUMBER` once per key, all at once."""
    answers = await asyncio.gather(*(
        srv.slash("/call", NUMBER, response_url=slack.response_url(k)) for k in keys))
    assert all(a == (200, None) for a in answers), answers


# -- who may call ------------------------------------------------------------------------------


async def test_user_not_allowed_is_refused_and_audited_but_an_admin_may_call(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    srv = await start(CALLBOT_ALLOWED_USERS=BOB, CALLBOT_ADMINS=ADMIN)
    text = await refused(srv, slack, f"{NUMBER} customer_name=Ann", "alice")
    assert "You are not allowed to place calls" in text and f"<@{ADMIN}>" in text
    assert creates(retell) == [] and slack.calls_to("chat.postMessage") == []
    [row] = audit(srv)
    assert_refusal_row(row, "user_not_allowed")
    assert row["number_key"]  # found again by number without keeping it

    row = await placed(srv, slack, NUMBER, "admin", user=ADMIN)
    assert row["user_id"] == ADMIN and row["call_id"] in retell.calls
    [sent] = creates(retell)
    assert sent["to_number"] == NUMBER and sent["metadata"]["slack_user_id"] == ADMIN
    assert outcomes(srv) == [("refused", "user_not_allowed"), ("placed", None)]
    assert_no_full_number_audited(srv)
    assert_creates_honor_dnc(retell)


async def test_channel_rule_holds_for_everyone_and_the_allowed_channel_works(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    srv = await start(CALLBOT_ALLOWED_CHANNELS=CALLS_CHANNEL, CALLBOT_ADMINS=ADMIN)
    text = await refused(srv, slack, NUMBER, "general")
    assert "Calls can't be placed from this channel" in text and f"<#{CALLS_CHANNEL}>" in text
    await refused(srv, slack, NUMBER, "admin", user=ADMIN)  # admins too
    assert creates(retell) == [] and slack.calls_to("chat.postMessage") == []
    first, second = audit(srv)
    assert_refusal_row(first, "channel_not_allowed")
    assert_refusal_row(second, "channel_not_allowed", user=ADMIN)

    row = await placed(srv, slack, NUMBER, "calls", channel=CALLS_CHANNEL)
    [sent] = creates(retell)
    assert sent["metadata"]["slack_channel_id"] == CALLS_CHANNEL
    assert row["channel_id"] == CALLS_CHANNEL and row["call_id"] in retell.calls
    [post] = slack.calls_to("chat.postMessage")
    assert post.args["channel"] == CALLS_CHANNEL
    assert_no_full_number_audited(srv)
    assert_creates_honor_dnc(retell)


# -- which numbers -----------------------------------------------------------------------------


@pytest.mark.slow
async def test_other_countries_and_special_numbers_are_refused(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    srv = await start(CALLBOT_ALLOWED_COUNTRIES="US,CA")
    text = await refused(srv, slack, "+44 20 7946 0123", "gb")
    assert "Calls to `GB` numbers are not allowed here" in text and "CA, US" in text
    text = await refused(srv, slack, "+1 900 555 1234", "premium")
    assert "+1 900 ••• 1234 is a premium-rate number" in text
    assert "CALLBOT_ALLOW_SPECIAL_NUMBERS" in text and "5551234" not in text
    text = await refused(srv, slack, "+1 800 555 1234", "free")
    assert "is a toll-free number" in text
    assert creates(retell) == [] and slack.calls_to("chat.postMessage") == []

    gb, premium, free = audit(srv)
    assert_refusal_row(gb, "country_not_allowed", masked="+44 20 ••• 0123")
    assert_refusal_row(premium, "special_number", masked="+1 900 ••• 1234")
    assert_refusal_row(free, "special_number", masked="+1 800 ••• 1234")
    assert_no_full_number_audited(srv)


@pytest.mark.slow
async def test_satellite_and_other_non_geographic_numbers_are_special(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    """+881 and +870 read as mobiles to phonenumbers, but cost satellite rates."""
    srv = await start()
    text = await refused(srv, slack, "+881 6 123 45678", "iridium")
    assert "+881 6 ••• 5678 is a satellite phone number" in text
    assert "CALLBOT_ALLOW_SPECIAL_NUMBERS" in text and "12345678" not in text
    text = await refused(srv, slack, "+870 301 234 567", "inmarsat")
    assert "is a satellite phone number (Inmarsat)" in text
    assert creates(retell) == [] and slack.calls_to("chat.postMessage") == []
    iridium, inmarsat = audit(srv)
    assert_refusal_row(iridium, "special_number", masked="+881 6 ••• 5678")
    assert_refusal_row(inmarsat, "special_number", masked="+870 301 ••• 4567")
    assert_no_full_number_audited(srv)
    await srv.stop()

    srv = await start(CALLBOT_ALLOW_SPECIAL_NUMBERS="true")
    row = await placed(srv, slack, "+881 6 123 45678", "allowed")
    [sent] = creates(retell)
    assert sent["to_number"] == "+881612345678" and row["call_id"] in retell.calls


async def test_special_numbers_are_placed_when_the_operator_allows_them(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    srv = await start(CALLBOT_ALLOWED_COUNTRIES="US", CALLBOT_ALLOW_SPECIAL_NUMBERS="true")
    row = await placed(srv, slack, "+1 900 555 1234", "premium")
    [sent] = creates(retell)
    assert sent["to_number"] == "+19005551234"
    assert row["number"] == "+1 900 ••• 1234" and row["call_id"] in retell.calls
    # The country rule still holds with special numbers allowed.
    await refused(srv, slack, "+44 20 7946 0123", "gb")
    assert len(creates(retell)) == 1
    assert outcomes(srv) == [("placed", None), ("refused", "country_not_allowed")]
    assert_no_full_number_audited(srv)
    assert_creates_honor_dnc(retell)


async def test_a_number_on_the_do_not_call_list_is_refused_until_removed(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    srv = await start(CALLBOT_ADMINS=ADMIN)
    status, body = await srv.slash("/calldnc", f"add {NUMBER} asked by email", user=ADMIN,
                                   response_url=slack.response_url("dnc"))
    assert status == 200 and "is now on the do-not-call list" in str(body)
    text = await refused(srv, slack, NUMBER, "listed")
    assert f"{MASKED} is on the do-not-call list (asked by email)" in text
    assert creates(retell) == [] and slack.calls_to("chat.postMessage") == []
    assert_refusal_row(audit(srv)[-1], "do_not_call")

    status, body = await srv.slash("/calldnc", f"remove {NUMBER}", user=ADMIN,
                                   response_url=slack.response_url("dnc"))
    assert status == 200 and "is off the do-not-call list" in str(body)
    await placed(srv, slack, NUMBER, "unlisted")
    assert len(creates(retell)) == 1
    assert_no_full_number_audited(srv)
    assert_creates_honor_dnc(retell)


# -- every surface -----------------------------------------------------------------------------


async def test_modal_submission_is_refused(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    srv = await start(CALLBOT_ALLOWED_USERS=BOB)
    _, view = await open_modal(srv, slack)  # opening is harmless; placing is guarded
    values = state_values(view, number="(415) 555-0123")
    status, ack = await srv.interactive(submission(view, values, slack.response_url("sub")))
    assert status == 200 and ack is None
    await eventually(lambda: bool(slack.responses_for("sub")))
    [answer] = slack.responses_for("sub")
    assert answer["text"].startswith(REFUSED + "You are not allowed to place calls")
    assert creates(retell) == [] and slack.calls_to("chat.postMessage") == []
    [row] = audit(srv)
    assert_refusal_row(row, "user_not_allowed", source="modal")


async def test_message_and_mention_triggers_are_refused(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    srv = await start(CALLBOT_ALLOWED_USERS=BOB)
    status, _ = await srv.event(message(f"call {NUMBER}", "1732401000.000100"))
    assert status == 200
    await eventually(lambda: len(ephemerals(slack, CHANNEL)) == 1)
    status, _ = await srv.event(mention(f"<@{BOT_USER}> call {NUMBER}", "1732401001.000100"))
    assert status == 200
    await eventually(lambda: len(ephemerals(slack, CHANNEL)) == 2)

    for shown in ephemerals(slack, CHANNEL):
        assert shown["to_user"] == USER
        assert shown["text"].startswith(REFUSED + "You are not allowed to place calls")
    assert creates(retell) == [] and slack.calls_to("chat.postMessage") == []
    from_message, from_mention = audit(srv)
    assert_refusal_row(from_message, "user_not_allowed", source="message")
    assert_refusal_row(from_mention, "user_not_allowed", source="mention")


@pytest.mark.slow
async def test_call_again_is_refused_after_the_rules_tighten(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    open_server = await start()
    call_id = await placed_call(open_server, slack, retell)
    await send(open_server, retell, call_id, "call_ended", disconnection_reason="dial_no_answer")
    await eventually(lambda: "Ended" in str(slack.messages(CHANNEL)[0]["blocks"]))
    await eventually(open_server.outbox_idle)
    await open_server.stop()

    srv = await start(CALLBOT_ALLOWED_USERS=BOB)
    await press(srv, slack, "call_again", call_id, key="again")
    await eventually(lambda: bool(slack.responses_for("again")))
    [answer] = slack.responses_for("again")
    assert answer["text"].startswith(REFUSED + "You are not allowed to place calls")
    assert len(creates(retell)) == 1  # only the first call, placed before
    assert len(slack.messages(CHANNEL)) == 1  # no new card
    assert outcomes(srv) == [("placed", None), ("refused", "user_not_allowed")]
    assert_refusal_row(audit(srv)[-1], "user_not_allowed", source="call again")
    assert_no_full_number_audited(srv)
    assert_creates_honor_dnc(retell)


# -- how many ----------------------------------------------------------------------------------


@pytest.mark.slow
async def test_hourly_limit_lets_exactly_one_of_a_burst_through_and_holds_after_restart(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    settings = {"CALLBOT_USER_CALLS_PER_HOUR": 1}
    srv = await start(**settings)
    retell.create_delay = 0.3  # the one admitted is still with Retell as the others arrive
    keys = [f"burst{i}" for i in range(5)]
    await fire(srv, slack, keys)
    await eventually(lambda: sum(r["outcome"] != "refused" for r in audit(srv)) == 1
                     and sum(bool(slack.responses_for(k)) for k in keys) == 4)

    assert len(creates(retell)) == 1
    answers = [a["text"] for k in keys for a in slack.responses_for(k)]
    assert len(answers) == 4
    for text in answers:
        assert text.startswith(REFUSED + "You have placed 1 calls in the last hour, your limit.")
        assert "You can call again <!date^" in text
    assert sorted(outcomes(srv)) == [("placed", None)] + [("refused", "limit_per_hour")] * 4
    [placed_row] = [r for r in audit(srv) if r["outcome"] == "placed"]
    assert placed_row["call_id"] in retell.calls

    await srv.stop()  # the limit is in the database, not in memory
    again = await start(**settings)
    text = await refused(again, slack, NUMBER, "after-restart")
    assert "your limit" in text
    assert len(creates(retell)) == 1
    assert outcomes(again)[-1] == ("refused", "limit_per_hour")
    assert_no_full_number_audited(again)
    assert_creates_honor_dnc(retell)


@pytest.mark.slow
async def test_concurrent_cap_admits_exactly_the_cap_and_frees_a_place_when_a_call_ends(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    srv = await start(CALLBOT_MAX_CONCURRENT_CALLS=2)
    retell.create_delay = 0.3  # the admitted ones hold their places while Retell thinks
    keys = [f"cap{i}" for i in range(4)]
    await fire(srv, slack, keys)
    await eventually(lambda: sum(r["outcome"] == "placed" for r in audit(srv)) == 2
                     and sum(bool(slack.responses_for(k)) for k in keys) == 2)

    assert len(creates(retell)) == 2
    answers = [a["text"] for k in keys for a in slack.responses_for(k)]
    for text in answers:
        assert text == (REFUSED + "2 calls are in progress, the most allowed at once. "
                        "Try again when one of them ends.")
    assert sorted(outcomes(srv)) == [("placed", None)] * 2 + [("refused", "limit_concurrent")] * 2

    # Both calls still live: a fifth is refused too, even with Retell quick again.
    retell.create_delay = 0.0
    await refused(srv, slack, NUMBER, "still-full")
    assert len(creates(retell)) == 2

    first = next(r["call_id"] for r in audit(srv) if r["outcome"] == "placed")
    status, _ = await send(srv, retell, first, "call_ended")
    assert status == 200
    # The 2xx says the webhook is kept; the call counts as ended once it is applied.
    await eventually(lambda: db_rows(srv, "SELECT status FROM calls WHERE call_id = ?",
                                     first) == [("ended",)])
    await placed(srv, slack, NUMBER, "freed")
    assert len(creates(retell)) == 3
    assert_no_full_number_audited(srv)
    assert_creates_honor_dnc(retell)


# -- what goes to Retell -----------------------------------------------------------------------


@pytest.mark.slow
async def test_every_create_asks_retell_to_honor_its_own_dnc_list(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    srv = await start()
    await placed(srv, slack, f"{NUMBER} customer_name=Ann", "cmd")
    _, view = await open_modal(srv, slack)
    status, ack = await srv.interactive(
        submission(view, state_values(view, number="+1 415 555 0124"), None))
    assert status == 200 and ack is None
    await srv.event(message("call +1 415 555 0125", "1732401000.000100"))
    await eventually(lambda: len(creates(retell)) == 3)
    assert {b["to_number"] for b in creates(retell)} == {
        NUMBER, "+14155550124", "+14155550125"}
    assert_creates_honor_dnc(retell)
