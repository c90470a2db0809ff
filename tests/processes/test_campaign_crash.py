"""A campaign's server process SIGKILLed mid-run, while Retell has placed calls whose answers
the process never got (the crash between Retell's answer and our commit), then restarted.

What must hold: every row is called, none twice (one call per number at Retell: the tries
cut short go again with the same idempotency keys and Retell answers with the calls it had
placed), and the campaign finishes with its results."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, USER, button, slack_headers, view_submission
from tests.support.campaigns import Callees, contacts_csv, modal_values
from tests.support.db import db_rows as db
from tests.support.process import ServerProcess, post
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("sound_database")]

ROWS = 40
CONCURRENCY = 5
CREATE = "/v2/create-phone-call"


@pytest.fixture
async def server(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path, tmp_path: Path
) -> AsyncIterator[ServerProcess]:
    extra = {"CALLBOT_RETELL_CALLS_PER_SECOND": "50", "CALLBOT_CAMPAIGN_CARD_SECONDS": "0.2",
             "CALLBOT_SLACK_CHANNEL_RATE": "100"}
    async with ServerProcess(slack, retell, db_path, tmp_path, extra=extra) as srv:
        yield srv


async def interactive(server: ServerProcess, payload: dict[str, Any]) -> int:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    status, _ = await post(server.url + "/slack/events", body, slack_headers(body))
    return status




async def test_a_campaign_killed_mid_run_calls_every_row_once_after_a_restart(
    server: ServerProcess, slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    await server.start()
    status, _ = await server.slash("/callcampaign", "", trigger_id="1.abc",
                                   response_url=slack.response_url("cc"))
    assert status == 200
    await slack.wait_for(lambda: bool(slack.calls_to("views.open")))
    view = dict(slack.calls_to("views.open")[-1].args["view"])
    content, numbers = contacts_csv(ROWS)
    file = slack.add_file("contacts.csv", content, user=USER)
    assert await interactive(server, view_submission(
        view, modal_values(file, concurrency=CONCURRENCY),
        metadata=view.get("private_metadata"))) == 200
    await slack.wait_for(lambda: bool(slack.messages(CHANNEL)), timeout=10)
    card = slack.messages(CHANNEL)[0]
    [campaign_id] = [e["value"] for b in card["blocks"] if b.get("type") == "actions"
                     for e in b["elements"] if e.get("action_id") == "campaign_start"]
    assert await interactive(server, button("campaign_start", campaign_id,
                                            message_ts=card["ts"])) == 200

    callees = Callees(server.url, retell, lambda to, attempt: None)

    async def end_calls() -> None:
        """Callees hang up, whatever state the server is in (webhooks to a dead server
        are sent again, as Retell does)."""
        while True:
            with contextlib.suppress(aiohttp.ClientError, AssertionError, OSError):
                await callees.end_all()
            await asyncio.sleep(0.05)

    ender = asyncio.create_task(end_calls())
    try:
        # A first stretch runs normally.
        await eventually(lambda: len(retell.created_calls()) >= 12, timeout=20)
        # Then Retell places calls but holds its answers: the process dies not knowing.
        retell.answer_late_next(CREATE, 60, times=ROWS)
        before = len(retell.created_calls())
        await eventually(lambda: len(retell.created_calls()) >= before + 3, timeout=20)
        held = db(db_path, "SELECT count(*) FROM campaign_rows WHERE status = 'placing'")[0][0]
        assert held >= 3  # tries Retell has placed, unknown to the database
        server.signal(signal.SIGKILL)
        assert await server.wait_exit(5) == -signal.SIGKILL
        retell.clear_rules()
        await server.restart()
        await eventually(lambda: db(db_path, "SELECT status FROM campaigns")[0][0] == "done",
                         timeout=60)
    finally:
        ender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ender
    per_number = Counter(c["to_number"] for c in retell.calls.values())
    assert sorted(per_number) == sorted(numbers)  # none skipped
    assert set(per_number.values()) == {1}  # none twice
    assert retell.max_live <= CONCURRENCY
    outcomes = db(db_path, "SELECT status, outcome, attempts, count(*) FROM campaign_rows "
                           "GROUP BY 1, 2, 3")
    assert outcomes == [("done", "connected", 1, ROWS)]
    # The restarted process resumed the held tries with their keys: Retell replayed them.
    keys = [r.json.get("idempotency_key") for r in retell.requests
            if r.path == CREATE and isinstance(r.json, dict)]
    assert len(keys) > len(set(keys))
    assert "campaign tries resumed after a stop" in server.log_text()
    await slack.wait_for(lambda: any(u["name"].endswith("-results.csv")
                                     for u in slack.uploaded(CHANNEL)), timeout=10)
