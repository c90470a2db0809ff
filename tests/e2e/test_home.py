"""The App Home tab end to end: `app_home_opened`, re-publishing after a call, the button.

Home views are checked as the Slack stand-in received them in `views.publish`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import USER, Server, button
from tests.support.db import db_execute
from tests.support.db import db_rows as rows
from tests.support.waiting import eventually

CAROL = "U0CAROL"  # never placed a call
BOB = "U0BOB"
DAVE = "U0DAVE"
MASKED = re.compile(r"\+1 415 ••• (\d{4})")
# Inbound calls analyzed by Retell: (duration_ms, sentiment, successful).
OUTCOMES = [
    (60_000, "Positive", True),
    (120_000, "Positive", True),
    (30_000, "Negative", False),
    (0, "Unknown", False),
]


def home_opened(user: str, tab: str = "home") -> dict[str, Any]:
    return {
        "type": "app_home_opened",
        "user": user,
        "channel": "D0" + user[2:],
        "tab": tab,
        "event_ts": f"{time.time():.6f}",
    }


def publishes(slack: SlackStandIn, user: str) -> list[dict[str, Any]]:
    """The views published to `user`'s Home, oldest first."""
    return [c.args["view"] for c in slack.calls_to("views.publish")
            if c.args.get("user_id") == user]


def text_of(view: dict[str, Any]) -> str:
    return json.dumps(view, ensure_ascii=False)


def call_lines(view: dict[str, Any]) -> list[str]:
    """The markdown of each recent-call line (a section showing a masked number)."""
    return [b["text"]["text"] for b in view["blocks"]
            if b["type"] == "section" and "text" in b and MASKED.search(b["text"]["text"])]


def place_button(view: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        e for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]
        if e.get("action_id") == "home_place_call"]
    [element] = found
    return element



def creates(retell: RetellStandIn) -> list[Any]:
    return [r for r in retell.requests if r.path == "/v2/create-phone-call"]


async def place(server: Server, slack: SlackStandIn, retell: RetellStandIn, number: str,
                user: str = USER) -> None:
    """One /call, waited for until Retell was asked (so calls are created in order)."""
    before = len(creates(retell))
    status, body = await server.slash("/call", number, user=user,
                                      response_url=slack.response_url(f"{user}-{number}"))
    assert status == 200 and body is None
    await eventually(lambda: len(creates(retell)) == before + 1)


async def fill_inbound(server: Server, retell: RetellStandIn) -> None:
    for ms, sentiment, ok in OUTCOMES:
        call_id = retell.new_inbound_call("+442079460123", "+14155550100")
        body = retell.event_body(
            call_id, "call_analyzed", duration_ms=ms,
            call_analysis={"user_sentiment": sentiment, "call_successful": ok},
        )
        assert (await retell.send_webhook(server.url + "/retell/webhook", body))[0] == 200


@pytest.mark.slow
async def test_home_tab_publishes_the_home_view_for_that_user(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    await fill_inbound(server, retell)
    await place(server, slack, retell, "+14155550177", user=BOB)  # someone else's call
    # Retell was asked; its answer is recorded a moment later.
    await eventually(lambda: rows(server, "SELECT count(*) FROM calls") == [(5,)])
    await eventually(server.outbox_idle)

    status, _ = await server.event(home_opened(CAROL))
    assert status == 200
    await slack.wait_for(lambda: bool(publishes(slack, CAROL)))
    [view] = publishes(slack, CAROL)
    assert view["type"] == "home"
    rendered = text_of(view)
    assert "No calls yet" in rendered  # Bob's call is not Carol's
    assert call_lines(view) == [] and "0177" not in rendered
    for part in ("Team, last 7 days", "*Calls*\\n5", "50% (2 of 4 analyzed)",
                 ":smiley: Positive 2", ":neutral_face: Neutral 0",
                 ":slightly_frowning_face: Negative 1", ":grey_question: Unknown 2"):
        assert part in rendered, part
    assert place_button(view)["text"]["text"] == "Place a call"


@pytest.mark.slow
async def test_home_shows_the_ten_most_recent_calls_masked(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    numbers = [f"+1415555{n:04d}" for n in range(101, 113)]  # twelve calls
    for number in numbers:
        await place(server, slack, retell, number)
    await place(server, slack, retell, "+14155550199", user=BOB)
    await eventually(server.outbox_idle)

    already = len(publishes(slack, USER))
    await server.event(home_opened(USER))
    await slack.wait_for(lambda: len(publishes(slack, USER)) > already)
    view = publishes(slack, USER)[-1]
    lines = call_lines(view)
    shown = [MASKED.search(line).group(1) for line in lines]  # type: ignore[union-attr]
    assert shown == [f"{n:04d}" for n in range(112, 102, -1)]  # newest first, ten of them
    assert all("Dialing" in line for line in lines)
    rendered = text_of(view)
    for number in numbers:
        assert number not in rendered and number[2:] not in rendered
    assert "555-01" not in rendered and "555 01" not in rendered and "0199" not in rendered
    assert "*Calls*\\n13" in rendered  # the team figure counts Bob's call too
    assert place_button(view)["action_id"] == "home_place_call"


async def test_team_figures_leave_out_calls_older_than_a_week(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    await fill_inbound(server, retell)
    # Stored once the webhooks are applied (the inbox answers first): age one only then.
    await eventually(lambda: rows(server, "SELECT count(*) FROM calls") == [(4,)])

    def age_first_call() -> None:
        db_execute(server, "UPDATE calls SET created_at = ? WHERE id = (SELECT min(id) FROM "
                           "calls)", time.time() - 8 * 86400)

    await asyncio.to_thread(age_first_call)  # the first call: Positive and successful
    await server.event(home_opened(CAROL))
    await slack.wait_for(lambda: bool(publishes(slack, CAROL)))
    rendered = text_of(publishes(slack, CAROL)[0])
    assert "*Calls*\\n3" in rendered
    assert "33% (1 of 3 analyzed)" in rendered
    assert ":smiley: Positive 1" in rendered


async def test_messages_tab_publishes_nothing(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    assert (await server.event(home_opened(CAROL, tab="messages")))[0] == 200
    # A later Home opening by someone else: once it is published, Carol's would have been.
    await server.event(home_opened(DAVE))
    await slack.wait_for(lambda: bool(publishes(slack, DAVE)))
    assert publishes(slack, CAROL) == []
    assert len(slack.calls_to("views.publish")) == 1


@pytest.mark.slow
async def test_home_is_republished_after_the_user_places_a_call(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    await server.event(home_opened(USER))
    await slack.wait_for(lambda: bool(publishes(slack, USER)))
    [first] = publishes(slack, USER)
    assert "No calls yet" in text_of(first)

    await place(server, slack, retell, "+14155550123")
    # The publisher waits a second for more changes before it publishes.
    await eventually(lambda: any("+1 415 ••• 0123" in text_of(v)
                                 for v in publishes(slack, USER)), timeout=6)
    latest = publishes(slack, USER)[-1]
    [line] = call_lines(latest)
    assert "+1 415 ••• 0123" in line and "No calls yet" not in text_of(latest)
    assert "+14155550123" not in text_of(latest)
    assert "*Calls*\\n1" in text_of(latest)
    assert publishes(slack, CAROL) == []


async def test_place_a_call_button_in_home_opens_the_modal(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    payload = button("home_place_call", "", channel=None)
    status, _ = await server.interactive(payload)
    assert status == 200
    await slack.wait_for(lambda: bool(slack.calls_to("views.open")))
    [opened] = slack.calls_to("views.open")
    assert opened.args["trigger_id"] == payload["trigger_id"]
    view = opened.args["view"]
    assert view["type"] == "modal" and view["callback_id"] == "call_modal"
    assert json.loads(view["private_metadata"]) == {}  # opened from Home: no channel

    def shown() -> dict[str, Any]:
        [stored] = [v for v in slack.views.values() if v.get("callback_id") == "call_modal"]
        return stored

    # The modal may open as "Loading…" and be filled in by views.update.
    await eventually(lambda: any(b.get("block_id") == "number" for b in shown()["blocks"]))
    rendered = text_of(shown())
    for agent in retell.agents:
        assert agent["agent_name"] in rendered
    assert creates(retell) == [] and slack.calls_to("chat.postMessage") == []


async def test_home_shows_the_teams_calls_per_day_chart_the_app_uploaded(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    status, _ = await server.event(home_opened(USER))
    assert status == 200
    await slack.wait_for(lambda: bool(publishes(slack, USER)), timeout=20)
    [view] = publishes(slack, USER)[-1:]
    [image] = [b for b in view["blocks"] if b["type"] == "image"]
    file_id = image["slack_file"]["id"]
    [upload] = [c for c in slack.calls_to("files.completeUploadExternal")
                if any(f.get("id") == file_id for f in c.args["files"])]
    assert upload.args.get("channel_id") is None  # shown on Home only, shared nowhere
    png = slack.files[file_id]["content"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and image["alt_text"]
