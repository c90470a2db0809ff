"""Calling hours in the callee's local time, and the cap on calls to one number, through the
real server: a /call outside the window is refused with the callee's time and when the
window opens (nothing reaches Retell, the refusal is audited); a state override wins over
the default; the per-number cap counts every person's calls.

The windows are set around the moment the test runs (in the callee's zone), so the real
clock decides, as in production; bot/guard/hours.py's unit tests pin the clock instead."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import USER, StartServer, button
from tests.support.db import db_rows
from tests.support.guard import REFUSED, assert_refusal_row, audit, creates
from tests.support.hours import window_around
from tests.support.waiting import eventually

SAN_FRANCISCO = "+14155550123"  # America/Los_Angeles
MIAMI = "+13055550123"  # Florida: America/New_York
NEW_YORK = "+12125550123"  # America/New_York
BOB = "U0BOB"
ADMIN = "U0ADMIN"


async def test_a_call_outside_the_callees_hours_is_refused_with_their_time(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    zone = "America/Los_Angeles"
    server = await start(CALLBOT_CALLING_HOURS=window_around(zone, open_now=False))
    _, _ = await server.slash("/call", SAN_FRANCISCO, response_url=slack.response_url("sf"))
    await eventually(lambda: bool(slack.responses_for("sf")))
    [answer] = slack.responses_for("sf")
    text = answer["text"]
    local = datetime.now(UTC).astimezone(ZoneInfo(zone))
    assert text.startswith(REFUSED), text
    assert f"{local:%H}:" in text and zone in text  # their local time, named
    assert "outside its calling hours" in text and "Calls to it can go from <!date^" in text
    assert "555 0123" not in text and "+1 415 ••• 0123" in text
    assert creates(retell) == [] and slack.messages("C0GENERAL") == []  # no card, no call
    assert_refusal_row(audit(server)[-1], "calling_hours")


@pytest.mark.slow
async def test_inside_the_window_the_call_goes_and_a_state_override_wins(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    zone = "America/New_York"
    server = await start(
        CALLBOT_CALLING_HOURS=window_around(zone, open_now=True),
        CALLBOT_CALLING_HOURS_OVERRIDES=f"US-FL={window_around(zone, open_now=False)}")
    await server.slash("/call", NEW_YORK, response_url=slack.response_url("ny"))
    await server.slash("/call", MIAMI, response_url=slack.response_url("fl"))
    await eventually(lambda: len(creates(retell)) == 1 and bool(slack.responses_for("fl")))
    assert creates(retell)[0]["to_number"] == NEW_YORK
    [refusal] = slack.responses_for("fl")
    assert refusal["text"].startswith(REFUSED) and "outside its calling hours" in refusal["text"]
    assert slack.responses_for("ny") == []  # placed: the card says it all


async def test_the_per_number_cap_counts_everyones_calls(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await start(CALLBOT_NUMBER_CALLS_PER_DAY=2)
    await server.slash("/call", SAN_FRANCISCO, response_url=slack.response_url("a"))
    await server.slash("/call", SAN_FRANCISCO, user=BOB, response_url=slack.response_url("b"))
    await eventually(lambda: len(creates(retell)) == 2)
    await server.slash("/call", "(415) 555-0123", user=BOB,  # the same number, spelled
                       response_url=slack.response_url("c"))  # another way
    await eventually(lambda: bool(slack.responses_for("c")))
    [answer] = slack.responses_for("c")
    assert answer["text"].startswith(REFUSED)
    assert "has been called 2 times in the last 24 hours" in answer["text"]
    assert "You can call again <!date^" in answer["text"]
    assert len(creates(retell)) == 2
    assert_refusal_row(audit(server)[-1], "limit_per_number", user=BOB)
    # Another number is not held back by it.
    await server.slash("/call", NEW_YORK, user=BOB, response_url=slack.response_url("d"))
    await eventually(lambda: len(creates(retell)) == 3)


def _buttons(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for b in answer.get("blocks") or [] if b["type"] == "actions"
            for e in b["elements"]}


async def _press(server: Any, slack: SlackStandIn, element: dict[str, Any], user: str,
                 key: str) -> None:
    payload = button(element["action_id"], element["value"], user=user,
                     response_url=slack.response_url(key))
    assert await server.interactive(payload) == (200, None)


async def test_outside_hours_the_answer_offers_to_schedule_it_for_the_opening(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await start(CALLBOT_CALLING_HOURS=window_around("America/Los_Angeles",
                                                             open_now=False))
    await server.slash("/call", f"{SAN_FRANCISCO} customer_name=Ann",
                       response_url=slack.response_url("sf"))
    await eventually(lambda: bool(slack.responses_for("sf")))
    buttons = _buttons(slack.responses_for("sf")[0])
    assert set(buttons) == {"hours_schedule"}  # no override for someone not an admin
    assert buttons["hours_schedule"]["text"]["text"].startswith("Schedule for ")
    await _press(server, slack, buttons["hours_schedule"], USER, "press")
    await eventually(lambda: bool(slack.responses_for("press")))
    assert slack.responses_for("press")[0]["text"].startswith(":alarm_clock: Scheduled: ")
    [(due, variables)] = db_rows(server, "SELECT due_at, variables FROM scheduled_calls")
    assert due == json.loads(buttons["hours_schedule"]["value"])["o"] > time.time()
    assert json.loads(variables) == {"customer_name": "Ann"}
    assert creates(retell) == []


async def test_an_admin_can_call_anyway_and_the_override_is_audited(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await start(CALLBOT_ADMINS=ADMIN, CALLBOT_CALLING_HOURS=window_around(
        "America/Los_Angeles", open_now=False))
    await server.slash("/call", SAN_FRANCISCO, user=ADMIN, response_url=slack.response_url("a"))
    await eventually(lambda: bool(slack.responses_for("a")))
    buttons = _buttons(slack.responses_for("a")[0])
    assert set(buttons) == {"hours_schedule", "hours_override"}
    assert buttons["hours_override"]["confirm"]["title"]["text"] == \
        "Call outside calling hours?"
    # Someone else replaying the admin's button is refused, and that is audited too.
    await _press(server, slack, buttons["hours_override"], BOB, "bob")
    await eventually(lambda: bool(slack.responses_for("bob")))
    assert "Only admins" in slack.responses_for("bob")[0]["text"]
    assert creates(retell) == []
    await _press(server, slack, buttons["hours_override"], ADMIN, "go")
    await eventually(lambda: len(creates(retell)) == 1)
    await eventually(lambda: audit(server)[-1]["outcome"] == "placed")
    placed = audit(server)[-1]
    assert placed["reason"] == "calling_hours_override" and placed["user_id"] == ADMIN
    assert any(r["reason"] == "not_admin" and r["user_id"] == BOB for r in audit(server))
