"""Scheduled calls through the real server: `/call ... at <when>` / `in <duration>`, the card's
Call now and Cancel, firing by itself, `/callschedule`; across restarts: a call missed while
the app was down, one a little late placed on start, and one whose firing was cut short after
Retell accepted it, fired again with the same key and placed once."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.calls.scheduling import schedule_key
from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from storage.models import Scheduled
from tests.conftest import CHANNEL, USER, Server, StartServer, button
from tests.support.db import db_dicts, db_execute
from tests.support.guard import REFUSED, creates
from tests.support.stores import store_for
from tests.support.waiting import eventually

NUMBER = "+14155550123"
BOB = "U0BOB"
ADMIN = "U0ADMIN"


def schedules(server: Server) -> list[dict[str, Any]]:
    return db_dicts(server, "SELECT * FROM scheduled_calls ORDER BY id")


def card_text(slack: SlackStandIn) -> str:
    [message] = slack.messages(CHANNEL)
    return json.dumps(message, ensure_ascii=False)


async def press(server: Server, slack: SlackStandIn, action: str, value: str, *,
                user: str = USER, key: str = "btn") -> None:
    ts = slack.messages(CHANNEL)[0]["ts"]
    status, body = await server.interactive(button(action, value, user=user, message_ts=ts,
                                                   response_url=slack.response_url(key)))
    assert (status, body) == (200, None)


async def test_a_call_scheduled_for_later_posts_its_card_and_places_nothing_yet(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    _, ack = await server.slash(
        "/call", f'{NUMBER} customer_name=Ann note="bring the forms" at tomorrow 9am',
        response_url=slack.response_url("s"))
    assert ack is None
    await eventually(lambda: bool(slack.responses_for("s")))
    [answer] = slack.responses_for("s")
    assert answer["text"].startswith(":alarm_clock: Scheduled: <!date^")
    # 9am for the requester (New York, the stand-in's tz) is 06:00 for the callee (LA).
    assert " 06:00 their time)" in answer["text"]
    text = card_text(slack)
    assert "Scheduled call to +1 415 ••• 0123" in text and "it will be placed at" in text
    assert "schedule_now" in text and "schedule_cancel" in text
    assert creates(retell) == []
    [row] = schedules(server)
    assert row["status"] == "scheduled" and row["number"] == NUMBER
    assert json.loads(row["variables"]) == {"customer_name": "Ann", "note": "bring the forms"}
    assert row["card_ts"] == slack.messages(CHANNEL)[0]["ts"]
    # Tomorrow 9am in the requester's zone (the stand-in says America/New_York).
    due = row["due_at"]
    assert 0 < due - time.time() <= 2 * 86400
    assert time.strftime("%H:%M", time.gmtime(due)) in ("14:00", "13:00")  # 9am EST / EDT


async def test_cancel_is_for_the_requester_or_an_admin(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await start(CALLBOT_ADMINS=ADMIN)
    await server.slash("/call", f"{NUMBER} in 3 hours", response_url=slack.response_url("s"))
    await eventually(lambda: bool(schedules(server)) and bool(slack.messages(CHANNEL)))
    sid = str(schedules(server)[0]["id"])
    await press(server, slack, "schedule_cancel", sid, user=BOB, key="bob")
    await eventually(lambda: bool(slack.responses_for("bob")))
    assert f"Only <@{USER}> or an admin" in slack.responses_for("bob")[0]["text"]
    assert schedules(server)[0]["status"] == "scheduled"
    await press(server, slack, "schedule_cancel", sid, user=USER)
    await eventually(lambda: schedules(server)[0]["status"] == "cancelled")
    await eventually(lambda: "Cancelled" in card_text(slack))
    assert f"<@{USER}>" in card_text(slack) and "schedule_now" not in card_text(slack)
    await press(server, slack, "schedule_now", sid, user=ADMIN, key="late")
    await eventually(lambda: bool(slack.responses_for("late")))
    assert "no longer waiting" in slack.responses_for("late")[0]["text"]
    assert creates(retell) == []


@pytest.mark.slow
async def test_call_now_places_it_on_the_same_card_with_its_own_key(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    await server.slash("/call", f"{NUMBER} customer_name=Ann at friday 10:00",
                       response_url=slack.response_url("s"))
    await eventually(lambda: bool(schedules(server)) and bool(slack.messages(CHANNEL)))
    [row] = schedules(server)
    await press(server, slack, "schedule_now", str(row["id"]))
    await eventually(lambda: len(creates(retell)) == 1)
    [sent] = creates(retell)
    assert sent["idempotency_key"] == row["request_key"]
    variables = sent["retell_llm_dynamic_variables"]
    assert variables["customer_name"] == "Ann" and "scheduled_for" in variables
    await eventually(lambda: "Dialing" in card_text(slack))
    assert len(slack.messages(CHANNEL)) == 1  # the scheduled card became the call's card
    await eventually(lambda: schedules(server)[0]["status"] == "done")
    done = schedules(server)[0]
    assert done["outcome"] == "placed" and done["call_id"] in retell.calls


@pytest.mark.slow
async def test_a_call_fires_by_itself_at_its_time(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    await server.slash("/call", f"{NUMBER} in 2 seconds", response_url=slack.response_url("s"))
    await eventually(lambda: bool(schedules(server)))
    assert creates(retell) == []
    await eventually(lambda: len(creates(retell)) == 1, timeout=8.0)
    await eventually(lambda: schedules(server)[0]["outcome"] == "placed")
    assert time.time() >= schedules(server)[0]["due_at"]


async def test_times_that_cannot_be_used_get_a_clear_answer(
    server: Server, slack: SlackStandIn
) -> None:
    for key, when, says in (("a", "at banana 5", "can't read `banana 5` as a time"),
                            ("b", "at tuesday", "has no time of day"),
                            ("c", "at 2020-01-01 09:00", "is in the past"),
                            ("d", "in 400 days", "at most 90 days ahead")):
        await server.slash("/call", f"{NUMBER} {when}", response_url=slack.response_url(key))
        await eventually(lambda k=key: bool(slack.responses_for(k)))  # type: ignore[misc]
        assert says in slack.responses_for(key)[0]["text"], (when, slack.responses_for(key))
    assert schedules(server) == [] and slack.messages(CHANNEL) == []


async def test_a_number_on_the_do_not_call_list_is_refused_when_scheduled_and_when_fired(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await start(CALLBOT_ADMINS=ADMIN)
    await server.slash("/call", f"{NUMBER} in 3 hours", response_url=slack.response_url("s"))
    await eventually(lambda: bool(schedules(server)) and bool(slack.messages(CHANNEL)))
    await server.slash("/calldnc", f"add {NUMBER}", user=ADMIN, response_url=slack.response_url())
    await press(server, slack, "schedule_now", str(schedules(server)[0]["id"]), key="now")
    await eventually(lambda: schedules(server)[0]["status"] == "done")
    row = schedules(server)[0]
    assert (row["outcome"], row["detail"]) == ("refused", "do_not_call")
    await eventually(lambda: "Not placed at its time" in card_text(slack))
    assert creates(retell) == []
    # Asking again now is refused at once, nothing kept.
    await server.slash("/call", f"{NUMBER} in 3 hours", response_url=slack.response_url("again"))
    await eventually(lambda: bool(slack.responses_for("again")))
    assert slack.responses_for("again")[0]["text"].startswith(REFUSED)
    assert len(schedules(server)) == 1


async def test_callschedule_lists_the_persons_upcoming_calls(
    start: StartServer, slack: SlackStandIn
) -> None:
    server = await start(CALLBOT_ADMINS=ADMIN)
    await server.slash("/call", f"{NUMBER} in 3 hours", response_url=slack.response_url("a"))
    await server.slash("/call", "+14155550124 in 2 hours", user=BOB,
                       response_url=slack.response_url("b"))
    await eventually(lambda: len(schedules(server)) == 2)
    _, mine = await server.slash("/callschedule", "", response_url=slack.response_url())
    text = json.dumps(mine)
    assert "Your scheduled calls" in text and "0123" in text and "0124" not in text
    assert "schedule_cancel" in text
    _, refused = await server.slash("/callschedule", "all", response_url=slack.response_url())
    assert "Only admins" in json.dumps(refused)
    _, everyone = await server.slash("/callschedule", "all", user=ADMIN,
                                     response_url=slack.response_url())
    listed = json.dumps(everyone)
    assert listed.index("0124") < listed.index("0123")  # soonest first


async def _keep(db_path: Path, *, due_in: float, status: str = "scheduled",
                claimed_until: float | None = None, key: str = "k1") -> Scheduled:
    """A scheduled call stored while no server runs (as an earlier run left it)."""
    store = store_for(db_path)
    await store.open()
    try:
        entry = Scheduled(id=0, channel_id=CHANNEL, user_id=USER, number=NUMBER,
                          due_at=time.time() + due_in, request_key=schedule_key((key,)))
        sid = await store.schedule(entry, time.time())
    finally:
        await store.close()
    if status != "scheduled":
        db_execute(db_path, "UPDATE scheduled_calls SET status = ?, claimed_until = ? "
                            "WHERE id = ?", status, claimed_until, sid)
    return entry


async def test_after_a_restart_a_little_late_is_placed_and_too_late_is_missed(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    await _keep(db_path, due_in=-60, key="late")  # a minute late: within the grace
    await _keep(db_path, due_in=-3600, key="missed")  # an hour late: missed
    server = await start()
    # Settled: neither waiting nor being fired (a firing under way has no outcome yet).
    await eventually(lambda: all(r["status"] not in ("scheduled", "firing")
                                 for r in schedules(server)))
    late, missed = schedules(server)
    assert late["outcome"] == "placed" and missed["status"] == "missed"
    assert len(creates(retell)) == 1
    await eventually(lambda: any("was missed" in (c.args.get("text") or "")
                                 for c in slack.calls_to("chat.postMessage")
                                 if c.args.get("channel") == USER))


async def test_a_firing_cut_short_after_retell_accepted_places_the_call_once(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    """The process died after Retell accepted the call and before the schedule was marked
    done: the claim ran out, the call is fired again with the same key, Retell answers
    with the call it placed, and there is still one call."""
    entry = await _keep(db_path, due_in=-7200, status="firing", claimed_until=time.time() - 1,
                        key="crash")
    async with aiohttp.ClientSession() as http, http.post(
            retell.url + "/v2/create-phone-call",
            headers={"Authorization": f"Bearer {retell.api_key}"},
            json={"from_number": retell.phone_numbers[0]["phone_number"], "to_number": NUMBER,
                  "idempotency_key": entry.request_key}) as resp:
        assert resp.status == 201
        first = (await resp.json())["call_id"]  # what the process placed before it died
    server = await start()
    await eventually(lambda: schedules(server)[0]["status"] == "done")
    row = schedules(server)[0]
    assert row["outcome"] == "placed" and row["call_id"] == first
    assert len(retell.calls) == 1  # two more than two hours late, and still once


@pytest.mark.slow
async def test_outside_calling_hours_at_its_time_it_waits_for_the_opening(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    from tests.e2e.test_calling_hours import window_around

    server = await start(CALLBOT_CALLING_HOURS=window_around("America/Los_Angeles",
                                                             open_now=False))
    await server.slash("/call", f"{NUMBER} in 1 second", response_url=slack.response_url("s"))
    await eventually(lambda: bool(schedules(server)))
    first_due = schedules(server)[0]["due_at"]
    await eventually(lambda: schedules(server)[0]["due_at"] > first_due + 60, timeout=8.0)
    row = schedules(server)[0]
    assert row["status"] == "scheduled" and row["outcome"] is None  # waiting, not refused
    assert row["due_at"] - time.time() > 60  # the window opens later (in up to two hours)
    await eventually(lambda: "Waiting for calling hours" in card_text(slack))
    assert creates(retell) == []


async def test_the_modals_when_field_schedules_the_call(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    from tests.support.modal import open_modal, state_values, submission

    _, view = await open_modal(server, slack)
    when = int(time.time()) + 2 * 3600
    values = state_values(view, number="+1 415 555 0123", variables="customer_name=Ann",
                          note="VIP", when=when)
    status, body = await server.interactive(submission(view, values,
                                                       response_url=slack.response_url("m")))
    assert (status, body) == (200, None)
    await eventually(lambda: bool(schedules(server)) and bool(slack.messages(CHANNEL)))
    [row] = schedules(server)
    assert row["due_at"] == when and row["note"] == "VIP" and creates(retell) == []
    assert json.loads(row["variables"]) == {"customer_name": "Ann"}
    # A time already past is a field error; the modal stays open, nothing is kept.
    _, view = await open_modal(server, slack)
    past = state_values(view, number="+1 415 555 0123", when=int(time.time()) - 60)
    status, body = await server.interactive(submission(view, past))
    assert status == 200 and body["response_action"] == "errors"
    assert "That time has passed" in body["errors"]["when"]
    assert len(schedules(server)) == 1
