"""Every way a step on the way to a call can fail, through the real server.

What must hold whatever fails (Slack, the database, Retell): the person gets an answer in
words that fit the cause, the card (if one was posted) ends in a final state, the hold on
the limits is settled, and the attempt is audited. Nothing is acked and then forgotten.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, MakeServer, Server
from tests.support.db import db_rows as rows
from tests.support.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("sound_database")]
CREATE = "/v2/create-phone-call"
NUMBER = "+14155550123"


def creates(retell: RetellStandIn) -> list[Any]:
    return [r for r in retell.requests if r.path == CREATE]


async def ask(server: Server, slack: SlackStandIn, key: str) -> str:
    """A /call, and the one answer the person gets."""
    status, _ = await server.slash("/call", NUMBER, response_url=slack.response_url(key))
    assert status == 200
    await eventually(lambda: bool(slack.responses_for(key)), timeout=15)
    [answer] = slack.responses_for(key)
    return str(answer["text"])


def audit(server: Server) -> list[tuple[Any, ...]]:
    return rows(server, "SELECT outcome, reason FROM audit WHERE action = 'call' ORDER BY id")


@pytest.fixture
def write_lock(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A second connection to the database, as another process would hold it."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=0.1)
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


async def test_a_slack_500_on_the_card_is_not_called_a_missing_invitation(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    slack.http_error("chat.postMessage", 500)
    text = await ask(server, slack, "r")
    assert "Slack had an error (HTTP 500)" in text and "no call was placed" in text
    assert "invite" not in text.lower()
    assert creates(retell) == []
    assert rows(server, "SELECT count(*) FROM call_holds") == [(0,)]
    assert audit(server) == [("failed", "card not posted: http_500")] or audit(server)[0][0] \
        == "failed"


async def test_a_dropped_connection_on_the_card_gets_an_answer(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    slack.faults(methods=["chat.postMessage"], drop_after=1.0)
    text = await ask(server, slack, "r")
    slack.clear_faults()
    assert "Slack did not answer" in text and "no call was placed" in text
    assert creates(retell) == []
    assert rows(server, "SELECT count(*) FROM call_holds") == [(0,)]
    [(outcome, reason)] = audit(server)
    assert outcome == "failed" and reason.startswith("card not posted")
    # Slack did post the card before the connection broke: it must not say "placing" forever.
    [card] = slack.messages(CHANNEL)
    await eventually(lambda: "no call was placed" in str(slack.message(CHANNEL, card["ts"])))
    final = str(slack.message(CHANNEL, card["ts"]))
    assert "Placing" not in final and "placing" not in final.replace("no call was placed", "")


async def test_a_card_slack_never_stored_is_not_looked_for_forever(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    slack.http_error("chat.postMessage", 503)
    text = await ask(server, slack, "r")
    assert "HTTP 503" in text and "no call was placed" in text
    # Two looks at the channel's history (now and a moment later), then it lets go.
    await eventually(lambda: len(slack.calls_to("conversations.history")) == 2, timeout=10)
    assert slack.messages(CHANNEL) == [] and slack.calls_to("chat.update") == []


@pytest.mark.sqlite_only("holds SQLite's file write lock from a side connection")
async def test_a_locked_database_at_admission_is_said_plainly(
    server: Server, slack: SlackStandIn, retell: RetellStandIn,
    write_lock: sqlite3.Connection,
) -> None:
    write_lock.execute("BEGIN IMMEDIATE")
    text = await ask(server, slack, "r")  # answered once the busy timeout runs out
    write_lock.execute("ROLLBACK")
    assert "database is locked" in text and "No call was placed" in text
    assert creates(retell) == [] and slack.messages(CHANNEL) == []
    assert rows(server, "SELECT count(*) FROM call_holds") == [(0,)]


async def test_a_2xx_without_a_call_id_is_a_failure_that_keeps_its_hold(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    retell.answer_next(CREATE, 201, {"call_status": "registered"})
    text = await ask(server, slack, "r")
    assert "Retell answered with something I could not read" in text
    assert "may still place it" in text
    [card] = slack.messages(CHANNEL)
    await eventually(lambda: "Not placed" in str(slack.message(CHANNEL, card["ts"])))
    [(kind, key)] = rows(server, "SELECT error_kind, request_key FROM calls")
    assert kind == "bad_answer" and key == creates(retell)[0].json["idempotency_key"]
    # Retell may have placed it: the attempt keeps counting until that is settled.
    assert rows(server, "SELECT request_key FROM call_holds") == [(key,)]
    assert audit(server) == [("failed", "bad_answer")]


async def test_a_huge_retell_error_text_is_cut_and_never_shows_the_number(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    retell.fail_next(CREATE, 400, "x" * 2500 + f" cannot call {NUMBER} " + "y" * 2500)
    text = await ask(server, slack, "r")
    assert text.startswith(":x: Retell refused the call:") and len(text) < 600
    [card] = slack.messages(CHANNEL)
    await eventually(lambda: "Not placed" in str(slack.message(CHANNEL, card["ts"])))
    shown = text + str(slack.message(CHANNEL, card["ts"]))
    assert "4155550123" not in shown and "555 0123" not in shown


@pytest.fixture
async def slow_retell_server(make_server: MakeServer) -> Server:
    return await make_server(CALLBOT_RETELL_TIMEOUT=8.0)


@pytest.mark.sqlite_only("holds SQLite's file write lock from a side connection")
async def test_a_call_placed_while_the_database_is_locked_is_recorded_by_its_webhook(
    slow_retell_server: Server, slack: SlackStandIn, retell: RetellStandIn,
    write_lock: sqlite3.Connection,
) -> None:
    server = slow_retell_server
    retell.hang_next(CREATE, 0.5)
    await server.slash("/call", NUMBER, response_url=slack.response_url("r"))
    await eventually(lambda: len(creates(retell)) == 1)
    write_lock.execute("BEGIN IMMEDIATE")  # taken while Retell is placing the call
    await eventually(lambda: bool(slack.responses_for("r")), timeout=15)
    write_lock.execute("ROLLBACK")
    [answer] = slack.responses_for("r")
    [call_id] = retell.calls
    assert f"Retell placed the call (`{call_id}`)" in answer["text"]
    assert "database is locked" in answer["text"]
    [card] = slack.messages(CHANNEL)
    await eventually(lambda: call_id in str(slack.message(CHANNEL, card["ts"])))

    # Its webhook carries the route and the request key: the call is recorded, the card
    # follows it, and the hold gives way to the call row.
    body = retell.event_body(call_id, "call_started")
    assert (await retell.send_webhook(server.url + "/retell/webhook", body))[0] == 200
    await eventually(server.outbox_idle)
    await slack.wait_for(lambda: "In progress" in str(slack.message(CHANNEL, card["ts"])))
    assert rows(server, "SELECT call_id, user_id FROM calls") == [(call_id, "U0ALICE")]
    assert rows(server, "SELECT count(*) FROM call_holds") == [(0,)]


@pytest.fixture
async def limited(make_server: MakeServer) -> Server:
    """One call an hour per person; creates time out fast; uncertain ones settle after 2 s."""
    return await make_server(CALLBOT_USER_CALLS_PER_HOUR=1, CALLBOT_RETELL_TIMEOUT=0.3,
                             CALLBOT_POLL_AFTER_SECONDS=2.0)


async def test_a_create_that_timed_out_but_was_placed_keeps_counting(
    limited: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    retell.hang_next(CREATE, 1.0)  # we give up at 0.3 s; Retell places it all the same
    first = await ask(limited, slack, "first")
    assert "did not answer in time" in first
    second = await ask(limited, slack, "second")  # a new request, a new key
    assert "your limit" in second
    await eventually(lambda: len(retell.calls) == 1)
    assert len(creates(retell)) == 1  # the limit held: Retell was not asked again
    # The poller finds the call by the key in its metadata: it is recorded, and the hold
    # gives way to it, so the count stays one.
    [call_id] = retell.calls
    await eventually(lambda: rows(limited, "SELECT count(*) FROM call_holds") == [(0,)],
                     timeout=15)
    assert rows(limited, "SELECT user_id FROM calls WHERE call_id = ?", call_id) == [
        ("U0ALICE",)]
    third = await ask(limited, slack, "third")
    assert "your limit" in third and len(creates(retell)) == 1


async def test_a_create_that_failed_and_was_not_placed_frees_its_place(
    limited: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    retell.fail_next(CREATE, 500)
    first = await ask(limited, slack, "first")
    assert "server error" in first and "may still place it" in first
    assert "your limit" in await ask(limited, slack, "second")
    # Retell has no call with that key: the hold is released and the person may call.
    await eventually(lambda: rows(limited, "SELECT count(*) FROM call_holds") == [(0,)],
                     timeout=15)
    await limited.slash("/call", NUMBER, response_url=slack.response_url("third"))
    await eventually(lambda: len(retell.calls) == 1)
    lists = [r for r in retell.requests if r.path == "/v3/list-calls"]
    assert lists and lists[0].json["filter_criteria"]["metadata"][0]["key"] == "callbot_key"


async def test_concurrent_slash_bursts_never_pass_the_limit_with_lost_answers(
    limited: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    retell.hang_next(CREATE, 1.0, times=5)
    await asyncio.gather(*(limited.slash("/call", NUMBER, response_url=slack.response_url(
        f"k{i}")) for i in range(5)))
    await eventually(lambda: all(slack.responses_for(f"k{i}") for i in range(5)), timeout=15)
    assert len(creates(retell)) == 1
