"""RETELL_MODE=simulate end to end: the real server with Retell simulated inside it, its
webhooks signed and POSTed to the server's own /retell/webhook, Slack the stand-in."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.app import create_app
from bot.config import Settings
from bot.http.edge import make_runner
from bot.render.words import reason_words
from bot.retell.simulator import Timings
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, SIGNING_SECRET, TEAM, USER, Server, button
from tests.support.buttons import action_ids
from tests.support.db import db_rows as rows
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow  # calls take their (short) simulated time

FAST = Timings(ring=0.2, no_answer=0.3, talk=0.5, analysis=0.1)


class SimulatedServer(Server):
    """The real server on a port bound first, as `callbot serve` binds it, so that the
    simulator knows its own webhook URL from HOST and PORT."""

    def __init__(self, settings: Settings, sock: socket.socket, timings: Timings) -> None:
        super().__init__(settings)
        self.sock = sock
        self.timings = timings

    async def start(self) -> None:
        app = create_app(self.settings, simulation=self.timings)
        self.runner = make_runner(app, self.settings)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()
        self.url = f"http://127.0.0.1:{self.settings.port}"
        self.http = aiohttp.ClientSession()


async def simulated(slack: SlackStandIn, db_path: Path, timings: Timings = FAST,
                    **extra: Any) -> SimulatedServer:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "RETELL_MODE": "simulate",  # no Retell key, no caller number: both simulated
        "DATABASE_URL": f"sqlite:///{db_path}",
        "HOST": "127.0.0.1",
        "PORT": sock.getsockname()[1],
        "CALLBOT_SLACK_CHANNEL_RATE": 500,
        "CALLBOT_OUTBOX_RETRY_BASE": 0.05,
        "CALLBOT_CALLING_HOURS": "any",
        **extra,
    }
    srv = SimulatedServer(Settings(_env_file=None, **values), sock, timings)
    await srv.start()
    return srv


@pytest.fixture
async def sim(slack: SlackStandIn, db_path: Path) -> AsyncIterator[SimulatedServer]:
    srv = await simulated(slack, db_path)
    yield srv
    await srv.stop()


def card_of(slack: SlackStandIn, number_tail: str) -> dict[str, Any]:
    """The channel card of the call to the number ending in `number_tail` (masked)."""
    [found] = [m for m in slack.messages(CHANNEL) if f"••• {number_tail}" in str(m["blocks"])]
    return found


def call_row(srv: Server, number: str) -> dict[str, Any]:
    conn_rows = rows(srv, "SELECT call_id, status, disconnection_reason, successful, summary, "
                     "transcript, in_voicemail, sentiment, cost_cents, duration_ms, raw_payload "
                     "FROM calls WHERE to_number = ?", number)
    [row] = conn_rows
    keys = ("call_id", "status", "reason", "successful", "summary", "transcript",
            "in_voicemail", "sentiment", "cost_cents", "duration_ms", "raw_payload")
    return dict(zip(keys, row, strict=True))


def events_by_webhook(srv: Server, call_id: str) -> list[str]:
    return [e for (e,) in rows(srv, "SELECT event FROM webhook_events WHERE call_id = ? "
                               "AND source = 'webhook' ORDER BY received_at", call_id)]


async def test_a_conversation_is_answered_ended_and_analysed_with_the_variables(
    sim: SimulatedServer, slack: SlackStandIn
) -> None:
    text = '+1 415 555 0125 "Appointment Reminder" customer_name=Ann appointment="Tuesday 3pm"'
    status, _ = await sim.slash("/call", text, response_url=slack.response_url("c"))
    assert status == 200
    await slack.wait_for(lambda: bool(slack.thread(CHANNEL, card_of(slack, "0125")["ts"])),
                         timeout=10)
    await eventually(sim.outbox_idle)

    row = call_row(sim, "+14155550125")
    assert (row["status"], row["reason"], row["successful"]) == ("ended", "agent_hangup", 1)
    assert "Ann" in row["summary"] and "Tuesday 3pm" in row["summary"]
    assert row["transcript"].startswith("Agent: Hi Ann,") and "Tuesday 3pm" in row["transcript"]
    assert row["sentiment"] == "Positive" and row["cost_cents"] > 0 and row["duration_ms"] > 0
    # Every step came as a signed webhook through the edge, in Retell's order, with the
    # metadata the app gave Retell echoed back.
    assert events_by_webhook(sim, row["call_id"]) == [
        "call_started", "call_ended", "call_analyzed"]
    metadata = json.loads(row["raw_payload"])["metadata"]
    card = card_of(slack, "0125")
    assert metadata["slack_channel_id"] == CHANNEL and metadata["slack_team_id"] == TEAM
    assert metadata["slack_user_id"] == USER and metadata["slack_message_ts"] == card["ts"]

    # The card went through every state, and the summary is in its thread.
    updates = [c.args for c in slack.calls_to("chat.update") if c.args.get("ts") == card["ts"]]
    assert len(updates) >= 3
    assert "call_hang_up" not in action_ids(card)
    assert "call_transcript" in action_ids(card)
    [summary] = slack.thread(CHANNEL, card["ts"])
    assert "Tuesday 3pm" in summary["text"] and "Ann" in summary["text"]
    # The agent is the one asked for, from the simulated account.
    assert "Appointment Reminder" in str(card["blocks"])


@pytest.mark.parametrize(
    ("number", "status", "reason", "voicemail"),
    [
        ("+14155550130", "not_connected", "dial_no_answer", 0),
        ("+14155550131", "ended", "voicemail_reached", 1),
        ("+14155550132", "not_connected", "dial_busy", 0),
    ],
)
async def test_the_last_digit_steers_the_outcome(
    sim: SimulatedServer, slack: SlackStandIn, number: str, status: str, reason: str,
    voicemail: int,
) -> None:
    await sim.slash("/call", f"{number} customer_name=Bo", response_url=slack.response_url("c"))
    tail = number[-4:]
    await slack.wait_for(lambda: bool(slack.thread(CHANNEL, card_of(slack, tail)["ts"])),
                         timeout=10)
    await eventually(sim.outbox_idle)
    row = call_row(sim, number)
    assert (row["status"], row["reason"], row["successful"]) == (status, reason, 0)
    assert row["in_voicemail"] == voicemail
    assert reason_words(reason) in str(card_of(slack, tail)["blocks"])
    connected = status == "ended"
    expected = ["call_started"] if connected else []  # a call that never connects: no start
    assert events_by_webhook(sim, row["call_id"]) == [*expected, "call_ended", "call_analyzed"]
    if connected:
        assert "voicemail" in row["summary"] and "Bo" in row["transcript"]
    else:
        assert row["transcript"] in (None, "") and row["duration_ms"] == 0


@pytest.mark.parametrize(
    ("when", "timings", "status", "events"),
    [
        # A long conversation, still going when the button is pressed.
        ("talking", Timings(ring=0.1, talk=30.0, analysis=0.1), "ongoing",
         ["call_started", "call_ended", "call_analyzed"]),
        # A phone that rings and rings: stopped before anyone answered.
        ("ringing", Timings(ring=30.0, talk=1.0, analysis=0.1), "registered",
         ["call_ended", "call_analyzed"]),
    ],
)
async def test_hang_up_ends_a_simulated_call(
    slack: SlackStandIn, db_path: Path, when: str, timings: Timings, status: str,
    events: list[str],
) -> None:
    srv = await simulated(slack, db_path, timings)
    try:
        await srv.slash("/call", "+14155550127 customer_name=Cy",
                        response_url=slack.response_url("c"))
        await slack.wait_for(lambda: "call_hang_up" in action_ids(card_of(slack, "0127"))
                             and rows(srv, "SELECT 1 FROM calls WHERE status = ?", status)
                             != [], timeout=10)
        card = card_of(slack, "0127")
        call_id = call_row(srv, "+14155550127")["call_id"]
        payload = button("call_hang_up", call_id, message_ts=card["ts"],
                         response_url=slack.response_url("hang"))
        assert await srv.interactive(payload) == (200, None)

        await slack.wait_for(lambda: bool(slack.thread(CHANNEL, card["ts"])), timeout=10)
        await eventually(srv.outbox_idle)
        row = call_row(srv, "+14155550127")
        assert (row["status"], row["reason"], row["successful"]) == (
            "ended", "manual_stopped", 0)
        assert row["duration_ms"] < 30_000  # ended by the button, long before its time
        assert bool(row["transcript"]) is (when == "talking")  # words only once answered
        assert "call_hang_up" not in action_ids(card_of(slack, "0127"))
        assert reason_words("manual_stopped") in str(card_of(slack, "0127")["blocks"])
        assert events_by_webhook(srv, call_id) == events
        assert slack.responses_for("hang") == []  # nothing went wrong to tell about
    finally:
        await srv.stop()


async def test_the_simulated_account_offers_plausible_agents_and_numbers(
    sim: SimulatedServer, slack: SlackStandIn
) -> None:
    await sim.slash("/call", "+14155550123 Nobody", response_url=slack.response_url("who"))
    await eventually(lambda: bool(slack.responses_for("who")))
    answer = slack.responses_for("who")[0]["text"]
    for name in ("Appointment Reminder", "Sales Follow-up", "Customer Survey"):
        assert name in answer
    numbers = await sim.ctx.calls.caller_numbers()
    assert numbers[0].phone_number == "+14155550100" and numbers[0].outbound_agent_id
