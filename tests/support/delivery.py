"""Helpers first written for tests/faults/test_slack_faults.py, shared with the other suites."""

from __future__ import annotations

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import Server
from tests.support.db import db_rows as rows
from tests.support.waiting import eventually


async def place(server: Server, slack: SlackStandIn, retell: RetellStandIn,
                channel: str) -> tuple[str, str]:
    """A call placed with /call in `channel`; returns (call id, card ts)."""
    before = set(retell.calls)
    await server.slash("/call", "+14155550123", channel=channel,
                       response_url=slack.response_url(channel))
    await eventually(lambda: len(set(retell.calls) - before) == 1)
    [call_id] = set(retell.calls) - before
    await eventually(lambda: bool(rows(server, "SELECT 1 FROM calls WHERE call_id = ?",
                                         call_id)))
    [(ts,)] = rows(server, "SELECT message_ts FROM calls WHERE call_id = ?", call_id)
    return call_id, ts


def posts_with_key(slack: SlackStandIn, channel: str, thread_ts: str, key: str) -> int:
    return sum(
        1 for m in slack.thread(channel, thread_ts)
        if ((m.get("metadata") or {}).get("event_payload") or {}).get("key") == key
    )


async def webhook(server: Server, retell: RetellStandIn, call_id: str, event: str) -> None:
    status, _ = await retell.send_webhook(server.url + "/retell/webhook",
                                          retell.event_body(call_id, event))
    assert status == 200
