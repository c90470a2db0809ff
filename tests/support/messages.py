"""Helpers first written for tests/e2e/test_messages.py, shared with the other suites."""

from __future__ import annotations

from typing import Any

from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, TEAM, USER


def message(
    text: str,
    ts: str,
    *,
    channel: str = CHANNEL,
    user: str | None = USER,
    channel_type: str = "channel",
    kind: str = "message",
    **extra: Any,
) -> dict[str, Any]:
    """A `message` or `app_mention` event as Slack puts it in an event_callback."""
    event: dict[str, Any] = {
        "type": kind,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "team": TEAM,
    }
    if kind == "message":
        event["channel_type"] = channel_type
    if user is not None:
        event["user"] = user
    event.update(extra)
    return event


def mention(text: str, ts: str, **extra: Any) -> dict[str, Any]:
    return message(text, ts, kind="app_mention", **extra)


def ephemerals(slack: SlackStandIn, channel: str) -> list[dict[str, Any]]:
    return [m for m in slack.ephemerals if m["channel"] == channel]
