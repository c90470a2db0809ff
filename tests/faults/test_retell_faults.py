"""Retell failing under a call: timeouts, 5xx and 429, through the real server.

What must hold: the person always gets a clear answer, and however the create is retried
(by our client, or by the person pressing *Try again*) Retell never places a second call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.render.blocks import ACTION_CALL_AGAIN
from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, Server, button, make_settings
from tests.support.db import db_rows
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("sound_database")]

CREATE = "/v2/create-phone-call"


@pytest.fixture
async def server(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> AsyncIterator[Server]:
    """Production-like retries (two), with a short timeout so timeouts are quick."""
    srv = Server(make_settings(slack, retell, db_path, CALLBOT_RETELL_TIMEOUT=0.4,
                               CALLBOT_RETELL_RETRIES=2))
    await srv.start()
    yield srv
    await srv.stop()


def creates(retell: RetellStandIn) -> list[Any]:
    return [r for r in retell.requests if r.path == CREATE]


def cards(slack: SlackStandIn) -> list[dict[str, Any]]:
    return slack.messages(CHANNEL)


def failed_rows(server: Server) -> list[tuple[Any, ...]]:
    return db_rows(server, "SELECT id, error_kind, request_key FROM calls "
                           "WHERE call_id IS NULL ORDER BY id")


async def try_again(server: Server, slack: SlackStandIn, card: dict[str, Any]) -> None:
    """Press the failed card's *Try again*, as the person would."""
    [value] = [
        e["value"] for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]
        if e["action_id"] == ACTION_CALL_AGAIN
    ]
    payload = button(ACTION_CALL_AGAIN, value, message_ts=card["ts"],
                     response_url=slack.response_url("again"))
    assert await server.interactive(payload) == (200, None)


async def test_a_create_that_times_out_is_retried_with_the_same_key_and_places_one_call(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    # Retell finishes the first create after our client gave up on it (0.4 s).
    retell.hang_next(CREATE, 0.6)
    await server.slash("/call", "+14155550123", response_url=slack.response_url("r"))
    await slack.wait_for(lambda: "Dialing" in str(cards(slack)[0]["blocks"]), timeout=10)

    assert len(creates(retell)) == 2
    assert len({r.json["idempotency_key"] for r in creates(retell)}) == 1
    assert len(retell.created_calls()) == 1  # the retry got the same call back
    assert slack.responses_for("r") == []  # nothing went wrong, as far as the person sees
    assert failed_rows(server) == []


async def test_a_create_that_keeps_failing_says_so_and_try_again_reuses_the_key(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    retell.fail_next(CREATE, 500, "internal error", times=3)
    await server.slash("/call", "+14155550123", response_url=slack.response_url("r"))
    await eventually(lambda: bool(slack.responses_for("r")), timeout=10)

    [answer] = slack.responses_for("r")
    assert "server error" in answer["text"] and "will not call twice" in answer["text"]
    [card] = cards(slack)
    assert "Not placed" in str(card["blocks"])
    assert len(creates(retell)) == 3 and retell.created_calls() == []
    [(_, kind, key)] = failed_rows(server)
    assert kind == "server_error" and key == creates(retell)[0].json["idempotency_key"]

    await try_again(server, slack, card)
    await eventually(lambda: len(retell.created_calls()) == 1)
    assert creates(retell)[-1].json["idempotency_key"] == key


async def test_try_again_after_a_timeout_that_did_place_the_call_does_not_call_twice(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    # Every try times out on our side, but Retell does place the call (once: same key).
    retell.hang_next(CREATE, 1.5, times=3)
    await server.slash("/call", "+14155550123", response_url=slack.response_url("r"))
    await eventually(lambda: bool(slack.responses_for("r")), timeout=10)
    assert "did not answer in time" in slack.responses_for("r")[0]["text"]
    await eventually(lambda: len(retell.created_calls()) == 1, timeout=5)
    [failed] = cards(slack)
    assert "Not placed" in str(failed["blocks"])

    # The call's first webhook finds the card through the call's metadata.
    [call_id] = retell.calls
    body = retell.event_body(call_id, "call_started")
    assert (await retell.send_webhook(server.url + "/retell/webhook", body))[0] == 200
    await slack.wait_for(lambda: "In progress" in str(cards(slack)[0]["blocks"]))

    # The person presses *Try again* on the card as it was when they looked.
    await try_again(server, slack, failed)
    await slack.wait_for(lambda: len(cards(slack)) == 2 and "already placed"
                         in str(cards(slack)[1]["blocks"]), timeout=5)
    assert len(retell.created_calls()) == 1 and len(retell.calls) == 1
    assert creates(retell)[-1].json["idempotency_key"] == creates(retell)[0].json[
        "idempotency_key"]


async def test_reads_are_retried_honouring_retry_after(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    await server.slash("/call", "+14155550123", response_url=slack.response_url("r"))
    await slack.wait_for(lambda: "Dialing" in str(cards(slack)[:1]))
    [call_id] = retell.calls
    retell.fail_next("/v2/get-call/", 429, "rate limited", times=2, retry_after=0)
    payload = button("call_refresh", call_id, message_ts=cards(slack)[0]["ts"],
                     response_url=slack.response_url("refresh"))
    assert await server.interactive(payload) == (200, None)
    await eventually(lambda: len([r for r in retell.requests
                                  if r.path.startswith("/v2/get-call/")]) == 3)
    await eventually(server.outbox_idle)
    assert slack.responses_for("refresh") == []  # the third try worked: nothing to report


async def test_metrics_count_retell_errors_by_operation(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    retell.fail_next(CREATE, 500, times=3)
    await server.slash("/call", "+14155550123", response_url=slack.response_url("r"))
    await eventually(lambda: bool(slack.responses_for("r")), timeout=10)
    assert server.http is not None
    async with server.http.get(server.url + "/metrics") as resp:
        text = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/plain"
    assert ('callbot_retell_errors_total{kind="server_error",operation="create-phone-call"} 3.0'
            in text)
