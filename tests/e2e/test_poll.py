"""The poll fallback: no webhook ever arrives, yet the channel gets each outcome once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import Server, make_settings
from tests.support.db import db_rows as rows
from tests.support.waiting import eventually
from tests.support.webhooks import card, placed_call, send, summaries

POLL_AFTER = 0.3


@pytest.fixture
async def polling(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> AsyncIterator[Server]:
    server = Server(make_settings(slack, retell, db_path, CALLBOT_POLL_AFTER_SECONDS=POLL_AFTER))
    await server.start()
    yield server
    await server.stop()


def polls(retell: RetellStandIn, call_id: str) -> list[Any]:
    return [r for r in retell.requests if r.path == f"/v2/get-call/{call_id}"]


@pytest.mark.slow
async def test_outcome_arrives_once_by_polling_and_late_webhooks_change_nothing(
    polling: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(polling, slack, retell)
    await eventually(lambda: len(polls(retell, call_id)) >= 1)
    assert "Dialing" in str(card(slack)["blocks"])  # polled, nothing new to show

    retell.event_body(call_id, "call_started")
    await slack.wait_for(lambda: "In progress" in str(card(slack)["blocks"]), timeout=10)

    retell.event_body(call_id, "call_analyzed", duration_ms=95_000)
    await slack.wait_for(lambda: len(summaries(slack)) == 1, timeout=10)
    await eventually(polling.outbox_idle)
    blocks = str(card(slack)["blocks"])
    assert ":white_check_mark: Successful" in blocks and "1m 35s" in blocks
    assert rows(polling, "SELECT next_poll_at FROM calls WHERE call_id = ?", call_id) == [
        (None,)]  # analyzed: never polled again

    for event in ("call_started", "call_ended", "call_analyzed"):
        assert await send(polling, retell, call_id, event) == (200, {"status": "duplicate"})
    await eventually(polling.outbox_idle)
    assert len(summaries(slack)) == 1
    assert len(slack.messages("C0GENERAL")) == 1


@pytest.mark.slow
async def test_polling_survives_retell_errors_and_backs_off(
    polling: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    retell.fail_next("/v2/get-call/", 503, "try later", times=2)
    call_id = await placed_call(polling, slack, retell)
    retell.event_body(call_id, "call_analyzed")
    await slack.wait_for(lambda: len(summaries(slack)) == 1, timeout=10)
    # Two failures, then the answer (one more if a poll came before the outcome existed).
    assert len(polls(retell, call_id)) >= 3
    [(attempts,)] = rows(polling, "SELECT poll_attempts FROM calls WHERE call_id = ?", call_id)
    assert attempts == len(polls(retell, call_id))


@pytest.mark.slow
async def test_calls_reported_by_webhooks_are_not_polled(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    [(due,)] = rows(server, "SELECT next_poll_at FROM calls WHERE call_id = ?", call_id)
    [(created,)] = rows(server, "SELECT created_at FROM calls WHERE call_id = ?", call_id)
    assert due == pytest.approx(created + 120, abs=5)  # the default CALLBOT_POLL_AFTER_SECONDS
    for event in ("call_started", "call_ended", "call_analyzed"):
        await send(server, retell, call_id, event)
    await slack.wait_for(lambda: len(summaries(slack)) == 1)
    assert rows(server, "SELECT next_poll_at FROM calls WHERE call_id = ?", call_id) == [(None,)]
    assert polls(retell, call_id) == []


@pytest.mark.slow
async def test_one_malformed_get_call_answer_does_not_stop_polling_the_others(
    polling: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    for i in range(2):
        await polling.slash("/call", f"+1415555012{i}", response_url=slack.response_url(f"p{i}"))
    await eventually(lambda: len(retell.calls) == 2)
    first, second = retell.calls
    # The first call's get-call answers come back unreadable (no call id) every time.
    retell.answer_next(f"/v2/get-call/{first}", 200, {"call_status": "ended"}, times=1000)
    # The second ends, and Retell reports its duration as a float.
    retell.event_body(second, "call_analyzed", duration_ms=95_000.4)
    await eventually(lambda: rows(polling, "SELECT stage, duration_ms FROM calls "
                                  "WHERE call_id = ?", second) == [(3, 95_000)], timeout=10)
    await eventually(lambda: len(polls(retell, first)) >= 2, timeout=10)  # still tried
    assert rows(polling, "SELECT stage FROM calls WHERE call_id = ?", first) == [(0,)]
