"""Socket Mode end to end: the real server with SLACK_APP_TOKEN and no signing secret.

Slack's side is the Socket Mode stand-in (a WebSocket speaking Slack's envelopes) wired into
the Slack Web API stand-in. The server is stopped (closing its socket handler) before the
stand-ins close, or slack_sdk would keep reconnecting to a server that is gone.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from standins.socket_mode import SocketModeStandIn
from tests.conftest import (
    BOT_USER,
    CHANNEL,
    HEALTHY_IDLE,
    TEAM,
    USER,
    Server,
    button,
    command_form,
    make_settings,
    slack_headers,
)
from tests.support.waiting import eventually

APP_TOKEN = "xapp-1-test"


@pytest.fixture
async def sm(slack: SlackStandIn) -> AsyncIterator[SocketModeStandIn]:
    async with SocketModeStandIn(slack, app_token=APP_TOKEN) as standin:
        yield standin


@pytest.fixture
async def socket_server(
    slack: SlackStandIn, retell: RetellStandIn, sm: SocketModeStandIn, db_path: Path
) -> AsyncIterator[Server]:
    """The real server in Socket Mode, connected; stopped before `sm` and `slack` close."""
    settings = make_settings(slack, retell, db_path, SLACK_APP_TOKEN=APP_TOKEN,
                             SLACK_SIGNING_SECRET=None)
    assert settings.slack_signing_secret is None and settings.slack_app_token == APP_TOKEN
    srv = Server(settings)
    await srv.start()
    try:
        await sm.connected()
        yield srv
    finally:
        await srv.stop()


def slash_form(slack: SlackStandIn, text: str, key: str = "r") -> dict[str, str]:
    return command_form("/call", text, response_url=slack.response_url(key))


def creates(retell: RetellStandIn) -> list[Any]:
    return [r for r in retell.requests if r.path == "/v2/create-phone-call"]



async def test_connects_with_the_app_token(
    socket_server: Server, slack: SlackStandIn, sm: SocketModeStandIn
) -> None:
    assert sm.live == 1 and sm.connections == 1
    # One apps.connections.open (which the stand-in answers only for the xapp- token), no
    # reconnect loop, and no frame the stand-in could not read.
    assert len(slack.calls_to("apps.connections.open")) == 1
    assert sm.unexpected == []


@pytest.mark.slow
async def test_slash_command_over_the_socket_places_the_call_and_posts_the_card(
    socket_server: Server, slack: SlackStandIn, retell: RetellStandIn, sm: SocketModeStandIn
) -> None:
    payload = await sm.send_slash_command(slash_form(slack, "+14155550123 customer_name=Ann"))
    assert payload is None  # acked at once with nothing to say
    await slack.wait_for(lambda: "Dialing" in str(slack.messages(CHANNEL)))

    [create] = creates(retell)
    assert create.json["to_number"] == "+14155550123"
    assert create.json["retell_llm_dynamic_variables"] == {"customer_name": "Ann"}
    [card] = slack.messages(CHANNEL)
    assert create.json["metadata"]["slack_message_ts"] == card["ts"]
    assert create.json["metadata"]["slack_user_id"] == USER
    assert "+1 415 ••• 0123" in str(card["blocks"])
    [envelope] = sm.envelopes
    assert [a["envelope_id"] for a in sm.acks] == [envelope["envelope_id"]]


@pytest.mark.slow
async def test_bad_slash_text_answers_with_usage_in_the_ack(
    socket_server: Server, slack: SlackStandIn, retell: RetellStandIn, sm: SocketModeStandIn
) -> None:
    payload = await sm.send_slash_command(slash_form(slack, "12345"))
    assert payload is not None
    assert "not a valid phone number" in payload["text"]
    assert "Usage: `/call <number>" in payload["text"]
    # A later, valid command is handled to its end: the bad one had its turn before it.
    assert await sm.send_slash_command(slash_form(slack, "+14155550124")) is None
    await slack.wait_for(lambda: "Dialing" in str(slack.messages(CHANNEL)))
    [create] = creates(retell)
    assert create.json["to_number"] == "+14155550124"
    assert len(slack.messages(CHANNEL)) == 1


@pytest.mark.slow
async def test_http_route_for_slack_is_not_mounted_but_health_and_webhook_work(
    socket_server: Server, slack: SlackStandIn, retell: RetellStandIn, sm: SocketModeStandIn
) -> None:
    # Even a request that looks signed is not taken over HTTP in Socket Mode.
    body = urlencode(slash_form(slack, "+14155550123")).encode()
    status, _ = await socket_server.post("/slack/events", body, slack_headers(body))
    assert status == 404
    event = json.dumps({"type": "url_verification", "challenge": "abc"}).encode()
    status, _ = await socket_server.post("/slack/events", event,
                                         {"Content-Type": "application/json"})
    assert status == 404

    assert await socket_server.get("/healthz") == HEALTHY_IDLE

    assert await sm.send_slash_command(slash_form(slack, "+14155550123")) is None
    await slack.wait_for(lambda: "Dialing" in str(slack.messages(CHANNEL)))
    [call_id] = list(retell.calls)
    url = socket_server.url + "/retell/webhook"
    assert await retell.send_webhook(url, retell.event_body(call_id, "call_started")) == (
        200, {"status": "stored"})
    await slack.wait_for(lambda: "In progress" in str(slack.messages(CHANNEL)))
    status, _ = await retell.send_webhook(url, retell.event_body(
        call_id, "call_analyzed", call_analysis={"call_summary": "Booked for Friday."}))
    assert status == 200
    [card] = slack.messages(CHANNEL)
    await slack.wait_for(lambda: len(slack.thread(CHANNEL, card["ts"])) == 1)
    assert "Booked for Friday." in json.dumps(slack.thread(CHANNEL, card["ts"]))
    assert len(creates(retell)) == 1  # the refused HTTP request placed nothing


@pytest.mark.slow
async def test_message_event_over_the_socket_and_its_retry_place_one_call(
    socket_server: Server, slack: SlackStandIn, retell: RetellStandIn, sm: SocketModeStandIn
) -> None:
    ts = "1732402000.000100"

    def callback(text: str, ts: str, channel: str = CHANNEL) -> dict[str, Any]:
        return {
            "token": "legacy-verification-token",
            "team_id": TEAM,
            "api_app_id": "A0CALLBOT",
            "type": "event_callback",
            "event_id": f"Ev{ts.replace('.', '')}",
            "event_time": 1_732_402_000,
            "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True,
                                "is_enterprise_install": False}],
            "event": {"type": "message", "channel_type": "channel", "user": USER,
                      "text": text, "ts": ts, "channel": channel, "event_ts": ts},
        }

    assert await sm.send_event(callback("call +14155550123", ts)) is None
    await slack.wait_for(lambda: "Dialing" in str(slack.thread(CHANNEL, ts)))
    await sm.send_event(callback("call +14155550123", ts), retry_attempt=1,
                        retry_reason="timeout")
    # A later call elsewhere, handled to its end, before counting.
    marker = "1732402000.000900"
    await sm.send_event(callback("call +14155550188", marker, channel="C0MARKER"))
    await slack.wait_for(lambda: "Dialing" in str(slack.thread("C0MARKER", marker)))
    await eventually(socket_server.outbox_idle)
    assert [r.json["to_number"] for r in creates(retell)] == ["+14155550123", "+14155550188"]
    assert len(slack.thread(CHANNEL, ts)) == 1


async def test_home_button_over_the_socket_opens_the_modal(
    socket_server: Server, slack: SlackStandIn, sm: SocketModeStandIn
) -> None:
    payload = button("home_place_call", "", channel=None)
    assert await sm.send_interactive(payload) is None
    await slack.wait_for(lambda: bool(slack.calls_to("views.open")))
    [opened] = slack.calls_to("views.open")
    assert opened.args["trigger_id"] == payload["trigger_id"]
    assert opened.args["view"]["callback_id"] == "call_modal"


async def test_stopping_the_server_closes_the_socket(
    slack: SlackStandIn, retell: RetellStandIn, sm: SocketModeStandIn, db_path: Path
) -> None:
    srv = Server(make_settings(slack, retell, db_path, SLACK_APP_TOKEN=APP_TOKEN,
                               SLACK_SIGNING_SECRET=None))
    await srv.start()
    try:
        await sm.connected()
    finally:
        await srv.stop()
    await eventually(lambda: sm.live == 0)
    assert sm.connections == 1
    assert len(slack.calls_to("apps.connections.open")) == 1
