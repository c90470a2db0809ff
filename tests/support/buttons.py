"""Helpers first written for tests/e2e/test_buttons.py, shared with the other suites."""

from __future__ import annotations

from typing import Any

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, Server, button
from tests.support.webhooks import card


def requests_to(retell: RetellStandIn, prefix: str) -> list[Any]:
    return [r for r in retell.requests if r.path.startswith(prefix)]


def action_ids(message: dict[str, Any]) -> list[str]:
    return [
        element["action_id"]
        for block in message.get("blocks") or []
        if block["type"] == "actions"
        for element in block["elements"]
    ]


async def press(
    server: Server, slack: SlackStandIn, action: str, value: str, key: str = "btn", **kw: Any
) -> None:
    """Press a button on the channel card; the ack must be immediate and empty."""
    ts = card(slack)["ts"] if slack.messages(CHANNEL) else "1.0"
    payload = button(action, value, message_ts=ts, response_url=slack.response_url(key), **kw)
    status, body = await server.interactive(payload)
    assert (status, body) == (200, None)
