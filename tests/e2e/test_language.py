"""English and Thai end to end: each person's answers and App Home follow their Slack locale
(users.info with include_locale, asked once); channel posts follow CALLBOT_LANGUAGE and
CALLBOT_CHANNEL_LANGUAGES, whoever placed the call."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, StartServer
from tests.support.calls import creates
from tests.support.waiting import eventually

THAI = re.compile(r"[\u0e00-\u0e7f]")
SOMCHAI = "U0SOMCHAI"  # reads Slack in Thai
ANN = "U0ANN"  # reads Slack in English
OTHER_CHANNEL = "C0THAISALES"


def locales(slack: SlackStandIn) -> None:
    slack.users[SOMCHAI] = {"locale": "th-TH"}
    slack.users[ANN] = {"locale": "en-GB"}


def home_opened(user: str) -> dict[str, Any]:
    return {"type": "app_home_opened", "user": user, "channel": "D0" + user[2:], "tab": "home",
            "event_ts": f"{time.time():.6f}"}


def published(slack: SlackStandIn, user: str) -> str:
    views = [c.args["view"] for c in slack.calls_to("views.publish")
             if c.args.get("user_id") == user]
    return json.dumps(views[-1], ensure_ascii=False) if views else ""


async def test_answers_follow_each_persons_locale(
    start: StartServer, slack: SlackStandIn
) -> None:
    locales(slack)
    server = await start()
    _, thai = await server.slash("/call", "hello", user=SOMCHAI,
                                 response_url=slack.response_url("th"))
    _, english = await server.slash("/call", "hello", user=ANN,
                                    response_url=slack.response_url("en"))
    assert isinstance(thai, str) and THAI.search(thai), thai
    assert "ไม่ใช่เบอร์โทรศัพท์" in thai and "`hello`" in thai  # the fact, in Thai words
    assert "วิธีใช้: `/call" in thai  # and how to type it, in Thai
    assert isinstance(english, str) and not THAI.search(english)
    assert "`hello` is not a phone number" in english and "Usage: `/call" in english
    # One look-up per person, remembered: a second answer asks Slack nothing more.
    asked = len(slack.calls_to("users.info"))
    await server.slash("/callstats", "nonsense", user=SOMCHAI, response_url=slack.response_url())
    assert len(slack.calls_to("users.info")) == asked
    assert all(c.args.get("include_locale") in (True, "true", "1")
               for c in slack.calls_to("users.info"))


async def test_app_home_is_in_the_readers_language(
    start: StartServer, slack: SlackStandIn
) -> None:
    locales(slack)
    server = await start()
    for user in (SOMCHAI, ANN):
        status, _ = await server.event(home_opened(user))
        assert status == 200
    await eventually(lambda: bool(published(slack, SOMCHAI)) and bool(published(slack, ANN)))
    thai, english = published(slack, SOMCHAI), published(slack, ANN)
    assert "สายล่าสุดของคุณ" in thai and "โทรออก" in thai and "Your recent calls" not in thai
    assert "Your recent calls" in english and not THAI.search(english)


@pytest.mark.slow
async def test_channel_posts_follow_the_channel_not_the_person(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    """A Thai reader's call in an English channel gets an English card; a Thai channel
    (CALLBOT_CHANNEL_LANGUAGES) gets Thai cards and summaries whoever asked."""
    locales(slack)
    server = await start(CALLBOT_CHANNEL_LANGUAGES=f"{OTHER_CHANNEL}=th")
    await server.slash("/call", "+14155550123", user=SOMCHAI, channel=CHANNEL,
                       response_url=slack.response_url("a"))
    await server.slash("/call", "+14155550124", user=ANN, channel=OTHER_CHANNEL,
                       response_url=slack.response_url("b"))
    await eventually(lambda: len(creates(retell)) == 2)
    await eventually(lambda: len(slack.messages(CHANNEL)) == 1
                     and len(slack.messages(OTHER_CHANNEL)) == 1)
    english_card = json.dumps(slack.messages(CHANNEL)[0], ensure_ascii=False)
    thai_card = json.dumps(slack.messages(OTHER_CHANNEL)[0], ensure_ascii=False)
    assert "Call to" in english_card and not THAI.search(english_card)
    assert "โทรหา" in thai_card and "Call to" not in thai_card

    # The analysis lands in the Thai channel's thread in Thai, money and durations too.
    thai_call = next(r.json for r in creates(retell) if r.json["to_number"].endswith("0124"))
    call_id = next(cid for cid, call in retell.calls.items()
                   if call["to_number"] == thai_call["to_number"])
    body = retell.event_body(call_id, "call_analyzed", duration_ms=65_000,
                             call_cost={"combined_cost": 42.0},
                             call_analysis={"call_summary": "Booked for Tuesday.",
                                            "user_sentiment": "Positive",
                                            "call_successful": True})
    assert (await retell.send_webhook(server.url + "/retell/webhook", body))[0] == 200
    card_ts = slack.messages(OTHER_CHANNEL)[0]["ts"]
    await eventually(lambda: len(slack.thread(OTHER_CHANNEL, card_ts)) >= 1)
    summary = json.dumps(slack.thread(OTHER_CHANNEL, card_ts)[0], ensure_ascii=False)
    for part in ("สรุปการโทร", "Booked for Tuesday.", "1 นาที 5 วินาที", "เชิงบวก",
                 "US$0.42"):
        assert part in summary, part


@pytest.mark.slow
async def test_a_slow_locale_look_up_answers_in_the_default_language(
    start: StartServer, slack: SlackStandIn
) -> None:
    """An ack has 3 s: a look-up Slack is slow to answer gives the default language after
    a second, and the person's language once Slack has answered."""
    locales(slack)
    server = await start(CALLBOT_LANGUAGE="en")
    slack.delay(2.5, ["users.info"])
    started = time.monotonic()
    _, first = await server.slash("/call", "hello", user=SOMCHAI,
                                  response_url=slack.response_url())
    assert time.monotonic() - started < 2.5
    assert isinstance(first, str) and "is not a phone number" in first
    slack.clear_faults()
    await eventually(lambda: len(slack.calls_to("users.info")) == 1)

    async def thai_now() -> bool:
        _, answer = await server.slash("/call", "hello", user=SOMCHAI,
                                       response_url=slack.response_url())
        return isinstance(answer, str) and bool(THAI.search(answer))

    deadline = time.monotonic() + 5
    while not await thai_now():
        assert time.monotonic() < deadline, "the late answer was never used"
