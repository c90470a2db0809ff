"""`/callstats` through the real server, on calls that arrived as real webhooks."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import Server
from tests.support.db import db_execute, db_rows
from tests.support.waiting import eventually

OUTCOMES = [
    # duration_ms, sentiment, successful, cost cents, reason
    (60_000, "Positive", True, 10.0, "user_hangup"),
    (120_000, "Positive", True, 20.0, "user_hangup"),
    (30_000, "Negative", False, 5.0, "agent_hangup"),
    (0, "Unknown", False, 0.0, "dial_no_answer"),
]


async def fill(server: Server, retell: RetellStandIn) -> None:
    for ms, sentiment, ok, cost, reason in OUTCOMES:
        call_id = retell.new_inbound_call("+442079460123", "+14155550100")
        body = retell.event_body(
            call_id, "call_analyzed", duration_ms=ms, disconnection_reason=reason,
            call_cost={"combined_cost": cost},
            call_analysis={"user_sentiment": sentiment, "call_successful": ok},
        )
        assert (await retell.send_webhook(server.url + "/retell/webhook", body))[0] == 200
    # A 2xx means the body is kept; the calls are made from it a moment later (bot/calls/ingest.py).
    await eventually(lambda: _analyzed_calls(server) == len(OUTCOMES))


def _analyzed_calls(server: Server) -> int:
    return int(db_rows(server, "SELECT count(*) FROM calls WHERE successful IS NOT NULL")[0][0])


def text_of(body: object) -> str:
    return json.dumps(body, ensure_ascii=False)


async def test_callstats_default_period(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    await fill(server, retell)
    status, body = await server.slash("/callstats", "", response_url=slack.response_url("s"))
    assert status == 200
    rendered = text_of(body["blocks"])
    for part in ("Calls in the last 7 days", "*Calls*\\n4", "50% (2 of 4 analyzed)",
                 ":smiley: Positive 2", ":neutral_face: Neutral 0",
                 ":slightly_frowning_face: Negative 1", ":grey_question: Unknown 1",
                 "avg 1m 10s", "median 1m 00s", "$0.35", "Customer hung up: 2",
                 "No answer: 1"):
        assert part in rendered, part
    assert slack.responses_for("s") == []  # answered inside the ack


@pytest.mark.slow
async def test_callstats_periods_exclude_older_calls(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    await fill(server, retell)
    # Age two calls by ten days, from a thread: the server shares this event loop, so a
    # blocking wait for its write lock here would stall the very writer it waits for.
    def age_two_calls() -> None:
        db_execute(server, "UPDATE calls SET created_at = ? WHERE id IN (SELECT id FROM calls "
                           "ORDER BY id LIMIT 2)", time.time() - 10 * 86400)

    await asyncio.to_thread(age_two_calls)
    _, week = await server.slash("/callstats", "7d", response_url=slack.response_url("w"))
    _, month = await server.slash("/callstats", "30d", response_url=slack.response_url("m"))
    _, today = await server.slash("/callstats", "today", response_url=slack.response_url("t"))
    assert "*Calls*\\n2" in text_of(week["blocks"])
    assert "*Calls*\\n4" in text_of(month["blocks"])
    assert "Calls in today*" in text_of(today["blocks"])  # today in the reader's zone


async def test_callstats_empty_database(server: Server, slack: SlackStandIn) -> None:
    _, body = await server.slash("/callstats", "all", response_url=slack.response_url("e"))
    assert "No calls yet" in text_of(body["blocks"])


@pytest.mark.parametrize(("text", "word"), [("fortnight", "fortnight"), ("7", "7"),
                                            ("week please", "week")])
async def test_callstats_bad_period(server: Server, slack: SlackStandIn, text: str,
                                    word: str) -> None:
    status, body = await server.slash("/callstats", text, response_url=slack.response_url("b"))
    assert status == 200
    assert f"I don't know `{word}` here." in body
    assert "Usage: `/callstats [today|yesterday|7d|" in body
