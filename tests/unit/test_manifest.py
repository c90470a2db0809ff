"""manifest.yml against Slack's own schema and against what the code registers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.render.blocks import ACTION_CALL_AGAIN, ACTION_HANG_UP, ACTION_REFRESH, ACTION_TRANSCRIPT
from bot.render.views import ACTION_OPEN_MODAL
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, TEAM, Server, button, slack_headers

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT.parent / "shared" / "slack-manifest.schema.json"


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "manifest.yml").read_text()))


def test_manifest_is_valid_per_slacks_schema(manifest: dict[str, Any]) -> None:
    if not SCHEMA.exists():
        pytest.skip("../shared/slack-manifest.schema.json is not beside the checkout")
    jsonschema.validate(manifest, json.loads(SCHEMA.read_text()))


def test_every_url_is_the_bolt_endpoint(manifest: dict[str, Any]) -> None:
    urls = [c["url"] for c in manifest["features"]["slash_commands"]]
    urls.append(manifest["settings"]["interactivity"]["request_url"])
    urls.append(manifest["settings"]["event_subscriptions"]["request_url"])
    assert urls and all(u.endswith("/slack/events") for u in urls)


async def test_every_declared_command_and_event_is_handled(
    manifest: dict[str, Any], server: Server, slack: SlackStandIn
) -> None:
    """Bolt answers 404 to requests no listener takes: the manifest must not promise them."""
    for command in manifest["features"]["slash_commands"]:
        status, _ = await server.slash(command["command"], "help",
                                       response_url=slack.response_url("m"))
        assert status == 200, command["command"]
    for event in manifest["settings"]["event_subscriptions"]["bot_events"]:
        status, _ = await post_event(server, event)
        assert status == 200, event
    assert (await server.slash("/undeclared", "", response_url=slack.response_url("u")))[0] == 404
    assert (await post_event(server, "reaction_added"))[0] == 404


def test_scopes_cover_what_the_app_calls(manifest: dict[str, Any]) -> None:
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    # files:write for long transcripts (files_upload_v2); channels:join so the outbox can
    # look for a lost post in a public channel it posts to through chat:write.public.
    assert {"commands", "chat:write", "chat:write.public", "files:write",
            "channels:join", "channels:history"} <= scopes
    needs = {"app_mention": "app_mentions:read", "message.channels": "channels:history",
             "message.groups": "groups:history", "message.im": "im:history"}
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    for event, scope in needs.items():
        assert event in events, event
        assert scope in scopes, scope
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["settings"]["interactivity"]["is_enabled"] is True


async def test_every_button_the_app_renders_is_handled(server: Server) -> None:
    for action in (ACTION_HANG_UP, ACTION_REFRESH, ACTION_TRANSCRIPT, ACTION_CALL_AGAIN,
                   ACTION_OPEN_MODAL):
        status, _ = await server.interactive(button(action, "call_unknown", channel=None))
        assert status == 200, action
    assert (await server.interactive(button("not_ours", "x", channel=None)))[0] == 404


async def post_event(server: Server, name: str) -> tuple[int, Any]:
    """An event as subscribed in the manifest: `message.im` arrives as type `message`."""
    event_type, _, kind = name.partition(".")
    channel_type = {"channels": "channel", "groups": "group", "im": "im"}.get(kind)
    payload = {
        "token": "legacy",
        "team_id": TEAM,
        "api_app_id": "A0CALLBOT",
        "type": "event_callback",
        "event_id": f"Ev{name.upper()}",
        "event_time": int(time.time()),
        "event": {"type": event_type, "user": "U0ALICE", "channel": CHANNEL,
                  "text": "<@U0BOT> hello", "ts": "1732400000.000001",
                  "event_ts": "1732400000.000001"},
    }
    if channel_type:
        payload["event"]["channel_type"] = channel_type  # type: ignore[index]
    body = json.dumps(payload).encode()
    headers = {**slack_headers(body), "Content-Type": "application/json"}
    return await server.post("/slack/events", body, headers)


async def test_mention_gets_usage_in_its_thread(server: Server, slack: SlackStandIn) -> None:
    assert (await post_event(server, "app_mention"))[0] == 200
    await slack.wait_for(lambda: bool(slack.thread(CHANNEL, "1732400000.000001")))
    [reply] = slack.thread(CHANNEL, "1732400000.000001")
    assert "/call <number>" in reply["text"]


def test_the_redirect_url_is_the_install_flows_own(manifest: dict[str, Any]) -> None:
    """Several workspaces: Slack sends the installer back to Bolt's redirect path, on the
    host every other URL names."""
    from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings

    [redirect] = manifest["oauth_config"]["redirect_urls"]
    host = manifest["settings"]["event_subscriptions"]["request_url"].removesuffix(
        "/slack/events")
    assert redirect == host + AsyncOAuthSettings(client_id="x", client_secret="y"
                                                 ).redirect_uri_path
