"""Helpers first written for tests/e2e/test_webhook.py, shared with the other suites."""

from __future__ import annotations

from typing import Any

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, Server


async def placed_call(server: Server, slack: SlackStandIn, retell: RetellStandIn) -> str:
    """A call placed from Slack, its card posted and updated to 'Dialing'."""
    await server.slash("/call", "+1 415 555 0123 customer_name=Ann",
                       response_url=slack.response_url("place"))
    await slack.wait_for(lambda: len(slack.calls_to("chat.update")) == 1)
    return next(iter(retell.calls))


async def send(server: Server, retell: RetellStandIn, call_id: str, event: str,
               **overrides: Any) -> tuple[int, Any]:
    body = retell.event_body(call_id, event, **overrides)
    return await retell.send_webhook(server.url + "/retell/webhook", body)


def card(slack: SlackStandIn) -> dict[str, Any]:
    [message] = slack.messages(CHANNEL)
    return message


def summaries(slack: SlackStandIn) -> list[dict[str, Any]]:
    return slack.thread(CHANNEL, card(slack)["ts"])
