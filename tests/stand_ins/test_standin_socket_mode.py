"""Self-test of the Socket Mode stand-in, driven by the real Bolt / slack_sdk clients.

Why: the stand-in is only useful if slack_sdk's ``SocketModeClient`` (under Bolt's
``AsyncSocketModeHandler``) accepts its frames exactly as it accepts Slack's, so every
test connects the real handler and dispatches through a real ``AsyncApp``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from standins.slack import SlackStandIn
from standins.socket_mode import SocketModeStandIn
from tests.support.waiting import eventually

TEAM = "T0TEST"
CHANNEL = "C0GENERAL"
USER = "U0ALICE"


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def sm(slack: SlackStandIn) -> AsyncIterator[SocketModeStandIn]:
    async with SocketModeStandIn(slack) as standin:
        yield standin


@pytest.fixture
def app(slack: SlackStandIn) -> AsyncApp:
    return AsyncApp(
        client=AsyncWebClient(token=slack.token, base_url=slack.api_url, retry_handlers=[]),
        signing_secret="x",
    )


@pytest.fixture
async def handler(app: AsyncApp, sm: SocketModeStandIn) -> AsyncIterator[AsyncSocketModeHandler]:
    """A connected handler; closed before the stand-ins so it never tries to reconnect."""
    socket_handler = AsyncSocketModeHandler(app, sm.app_token)
    await socket_handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        await sm.connected()
        yield socket_handler
    finally:
        await socket_handler.close_async()  # type: ignore[no-untyped-call]


def slash_form(text: str, response_key: str, slack: SlackStandIn) -> dict[str, str]:
    return {
        "token": "verification-token",
        "team_id": TEAM,
        "team_domain": "test",
        "channel_id": CHANNEL,
        "channel_name": "general",
        "user_id": USER,
        "user_name": "alice",
        "command": "/call",
        "text": text,
        "api_app_id": "A0APP",
        "is_enterprise_install": "false",
        "response_url": slack.response_url(response_key),
        "trigger_id": "1.2.abc",
    }


def event_body(event_id: str, text: str) -> dict[str, Any]:
    return {
        "token": "verification-token",
        "team_id": TEAM,
        "api_app_id": "A0APP",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1_732_400_100,
        "authorizations": [
            {"team_id": TEAM, "user_id": "U0BOT", "is_bot": True, "is_enterprise_install": False}
        ],
        "event": {
            "type": "app_mention",
            "user": USER,
            "text": text,
            "ts": "1732400100.000100",
            "channel": CHANNEL,
            "event_ts": "1732400100.000100",
        },
    }


async def test_connect_gets_hello_and_pings_are_answered(
    slack: SlackStandIn, sm: SocketModeStandIn, handler: AsyncSocketModeHandler
) -> None:
    client = handler.client

    assert sm.live == 1
    assert sm.connections == 1
    (call,) = slack.calls_to("apps.connections.open")
    assert call.headers["Authorization"] == "(redacted)"
    assert client.wss_uri == f"{sm.url}/link/?ticket={sm.tickets[0]}&app_id=A0APP"
    # slack_sdk pings right after connecting and reads its own timestamp back from the pong.
    await eventually(lambda: client.last_ping_pong_time is not None)
    assert sm.pings and sm.pings[0].startswith(b"sdk-ping-pong:")
    assert await client.is_connected()
    assert sm.unexpected == []


async def test_slash_command_ack_payload_comes_back(
    slack: SlackStandIn, app: AsyncApp, sm: SocketModeStandIn, handler: AsyncSocketModeHandler
) -> None:
    seen: list[dict[str, Any]] = []

    @app.command("/call")
    async def on_call(ack: AsyncAck, command: dict[str, Any]) -> None:
        seen.append(command)
        await ack("hello")

    payload = await sm.send_slash_command(slash_form("+15550100", "k1", slack))

    assert payload == {"text": "hello"}
    assert [c["text"] for c in seen] == ["+15550100"]
    assert seen[0]["user_id"] == USER
    (envelope,) = sm.envelopes
    assert envelope["type"] == "slash_commands"
    assert envelope["accepts_response_payload"] is True
    (ack,) = sm.acks
    assert ack == {"envelope_id": envelope["envelope_id"], "payload": {"text": "hello"}}


@pytest.mark.slow
async def test_slash_command_without_ack_times_out(
    slack: SlackStandIn, app: AsyncApp, sm: SocketModeStandIn, handler: AsyncSocketModeHandler
) -> None:
    # No listener for /other: Bolt answers 404 and sends no ack, as Slack would see it.
    with pytest.raises(TimeoutError):
        await sm.send_slash_command(
            {**slash_form("x", "k2", slack), "command": "/other"}, timeout=0.5
        )
    assert sm.acks == []
    assert len(sm.envelopes) == 1


async def test_event_reaches_listener_with_retry_headers(
    app: AsyncApp, sm: SocketModeStandIn, handler: AsyncSocketModeHandler
) -> None:
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], request: AsyncBoltRequest) -> None:
        seen.append((event, dict(request.headers)))

    first = await sm.send_event(event_body("Ev01", "<@U0BOT> first"))
    await eventually(lambda: len(seen) == 1)
    retried = await sm.send_event(
        event_body("Ev02", "<@U0BOT> again"), retry_attempt=1, retry_reason="timeout"
    )
    await eventually(lambda: len(seen) == 2)

    assert first is None
    assert retried is None
    assert [event["text"] for event, _ in seen] == ["<@U0BOT> first", "<@U0BOT> again"]
    assert seen[0][1].get("x-slack-retry-num") == ["0"]
    assert seen[1][1].get("x-slack-retry-num") == ["1"]
    assert seen[1][1].get("x-slack-retry-reason") == ["timeout"]
    assert [e["type"] for e in sm.envelopes] == ["events_api", "events_api"]
    assert all(e["accepts_response_payload"] is False for e in sm.envelopes)
    assert [a["envelope_id"] for a in sm.acks] == [e["envelope_id"] for e in sm.envelopes]


async def test_block_action_is_acked(
    slack: SlackStandIn, app: AsyncApp, sm: SocketModeStandIn, handler: AsyncSocketModeHandler
) -> None:
    clicked: list[str] = []

    @app.action("hangup")
    async def on_hangup(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        clicked.append(body["actions"][0]["value"])

    payload = await sm.send_interactive(
        {
            "type": "block_actions",
            "team": {"id": TEAM, "domain": "test"},
            "user": {"id": USER, "username": "alice", "team_id": TEAM},
            "api_app_id": "A0APP",
            "token": "verification-token",
            "container": {"type": "message", "channel_id": CHANNEL, "message_ts": "1.000100"},
            "trigger_id": "1.2.def",
            "channel": {"id": CHANNEL, "name": "general"},
            "message": {"type": "message", "ts": "1.000100", "text": "Calling..."},
            "response_url": slack.response_url("k3"),
            "actions": [
                {
                    "type": "button",
                    "action_id": "hangup",
                    "block_id": "b1",
                    "value": "call_1",
                    "action_ts": "1732400200.000200",
                }
            ],
        }
    )

    assert payload is None
    await eventually(lambda: clicked == ["call_1"])
    (envelope,) = sm.envelopes
    assert envelope["type"] == "interactive"
    assert [a["envelope_id"] for a in sm.acks] == [envelope["envelope_id"]]


async def test_wrong_tokens_are_refused(
    slack: SlackStandIn, app: AsyncApp, sm: SocketModeStandIn
) -> None:
    wrong = AsyncSocketModeHandler(app, "xapp-1-wrong")
    try:
        with pytest.raises(SlackApiError) as refused:
            await wrong.client.issue_new_wss_url()
    finally:
        await wrong.close_async()  # type: ignore[no-untyped-call]
    assert refused.value.response["error"] == "invalid_auth"

    web = AsyncWebClient(base_url=slack.api_url, retry_handlers=[])
    with pytest.raises(SlackApiError) as bot_token:
        await web.apps_connections_open(app_token=slack.token)
    assert bot_token.value.response["error"] == "not_allowed_token_type"

    opened = await web.apps_connections_open(app_token=sm.app_token)
    assert opened["url"].startswith(f"{sm.url}/link/?ticket=")
    assert sm.live == 0
    # The app token opens a socket, never other methods.
    with pytest.raises(SlackApiError) as other:
        await AsyncWebClient(token=sm.app_token, base_url=slack.api_url).auth_test()
    assert other.value.response["error"] == "invalid_auth"


async def test_server_side_disconnect_makes_the_client_reconnect(
    slack: SlackStandIn, app: AsyncApp, sm: SocketModeStandIn, handler: AsyncSocketModeHandler
) -> None:
    @app.command("/call")
    async def on_call(ack: AsyncAck) -> None:
        await ack("still here")

    await sm.disconnect_clients()
    await sm.connected()
    assert sm.connections == 2
    assert len(slack.calls_to("apps.connections.open")) == 2

    await sm.send_disconnect()
    await eventually(lambda: sm.connections == 3)
    await sm.connected()

    assert await sm.send_slash_command(slash_form("x", "k4", slack)) == {"text": "still here"}


async def test_close_unhooks_from_the_slack_standin(slack: SlackStandIn) -> None:
    web = AsyncWebClient(base_url=slack.api_url, retry_handlers=[])
    async with SocketModeStandIn(slack, app_token="xapp-1-other") as sm:
        opened = await web.apps_connections_open(app_token="xapp-1-other")
        assert opened["url"].startswith(sm.url)

    with pytest.raises(SlackApiError) as after:
        await web.apps_connections_open(app_token="xapp-1-other")
    assert after.value.response["error"] == "invalid_auth"
    assert "apps.connections.open" not in slack._handlers
    assert "_answer" not in vars(slack)
    # The bot token still works as before.
    assert (await AsyncWebClient(token=slack.token, base_url=slack.api_url).auth_test())["ok"]
