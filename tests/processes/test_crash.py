"""The server killed with SIGKILL in the middle of a burst of webhooks, then restarted.

Retell retries a webhook that got no 2xx, so the test does too. What must hold: every
webhook that got a 2xx leads to exactly one summary in the right thread, none that got
no answer is lost once retried, and the database is sound.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import TEAM, USER
from tests.support.db import db_integrity
from tests.support.db import db_rows as query
from tests.support.process import ServerProcess
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("sound_database")]

CALLS = 100
CHANNELS = ("C0SALES", "C0SUPPORT", "C0SURVEYS", "C0REMIND")
KILL_AFTER = 70  # 2xx answers before the kill: mid-burst, with deliveries in flight
SENDERS = 16


@pytest.fixture
async def server(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path, tmp_path: Path
) -> AsyncIterator[ServerProcess]:
    async with ServerProcess(slack, retell, db_path, tmp_path,
                             extra={"CALLBOT_SLACK_CHANNEL_RATE": "100",
                                    "CALLBOT_OUTBOX_RETRY_BASE": "0.05"}) as srv:
        yield srv


async def calls_with_cards(slack: SlackStandIn, retell: RetellStandIn) -> list[dict[str, str]]:
    """Calls as /call leaves them: a card in a channel, a Retell call whose metadata
    points at it. Made directly, so the burst below is the only thing the server does."""
    web = AsyncWebClient(token=slack.token, base_url=slack.api_url)
    calls = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {retell.api_key}"}) as http:
        for i in range(CALLS):
            channel = CHANNELS[i % len(CHANNELS)]
            posted = await web.chat_postMessage(channel=channel, text="Call to +1 415 ••• 0123")
            body = {
                "from_number": retell.phone_numbers[0]["phone_number"],
                "to_number": f"+1415555{i:04d}",
                "metadata": {"slack_team_id": TEAM, "slack_channel_id": channel,
                             "slack_user_id": USER, "slack_message_ts": posted["ts"]},
            }
            async with http.post(retell.url + "/v2/create-phone-call", json=body) as resp:
                assert resp.status == 201
                call_id = (await resp.json())["call_id"]
            calls.append({"call_id": call_id, "channel": channel, "ts": str(posted["ts"])})
    return calls


async def burst(server: ServerProcess, bodies: list[str], kill_after: int | None) -> list[bool]:
    """Send every body with SENDERS at once; SIGKILL the server after `kill_after` 2xx.
    Returns, per body, whether it got a 2xx."""
    got = [False] * len(bodies)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(bodies)):
        queue.put_nowait(i)
    answered = 0

    async def sender() -> None:
        nonlocal answered
        while not queue.empty():
            i = queue.get_nowait()
            try:
                status, _ = await server.webhook(bodies[i])
            except (aiohttp.ClientError, TimeoutError):
                continue  # no answer: Retell will retry it
            if 200 <= status < 300:
                got[i] = True
                answered += 1
                if kill_after is not None and answered == kill_after:
                    server.kill()

    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    return got


def summaries(slack: SlackStandIn, call: dict[str, str]) -> int:
    key = f"summary:{call['call_id']}"
    return sum(
        1 for m in slack.thread(call["channel"], call["ts"])
        if ((m.get("metadata") or {}).get("event_payload") or {}).get("key") == key
    )




async def test_sigkill_mid_burst_loses_nothing_and_doubles_nothing(
    server: ServerProcess, slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    calls = await calls_with_cards(slack, retell)
    bodies = [retell.event_body(c["call_id"], event)
              for c in calls for event in ("call_ended", "call_analyzed")]
    random.Random(5).shuffle(bodies)
    # Slack is slow to answer, so posts are in flight when the server dies.
    slack.delay(0.02, ["chat.postMessage", "chat.update"])
    await server.start()

    got = await burst(server, bodies, kill_after=KILL_AFTER)
    assert server.returncode == -9
    acked = sum(got)
    assert KILL_AFTER <= acked < len(bodies)  # the kill came mid-burst

    await server.start()
    # Retell retries what got no 2xx (and, being at-least-once, sends some of the rest again).
    retry = [b for b, ok in zip(bodies, got, strict=True) if not ok] + bodies[:20]
    assert all(await burst(server, retry, kill_after=None))
    await eventually(lambda: all(summaries(slack, c) >= 1 for c in calls), timeout=60)
    await eventually(lambda: query(db_path, "SELECT (SELECT count(*) FROM outbox WHERE "
                                   "done_at IS NULL) + (SELECT count(*) FROM webhook_inbox)")
                     == [(0,)], timeout=30)

    counts = [summaries(slack, c) for c in calls]
    assert counts == [1] * CALLS, [c["call_id"] for c, n in zip(calls, counts, strict=True)
                                   if n != 1]
    for c in calls:  # every card shows the end of its call
        card = slack.message(c["channel"], c["ts"])
        assert card is not None and "Ended" in str(card.get("blocks")), c
    assert query(db_path, "SELECT count(*) FROM webhook_events") == [(2 * CALLS,)]
    assert query(db_path, "SELECT count(*) FROM outbox WHERE last_error LIKE 'gave up%'") \
        == [(0,)]
    assert db_integrity(db_path) == "ok"
    assert "Traceback" not in server.log_text()
