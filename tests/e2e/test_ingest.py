"""The webhook inbox: what is answered 2xx is kept, and turned into calls exactly once.

The handler keeps the verified body (deduplicated) and answers; the consumer applies it.
Bodies kept by a process that stopped before applying them are applied at the next start.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import MakeServer, Server, make_settings
from tests.support.db import db_rows as rows
from tests.support.stores import store_for
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("sound_database")
NOTIFY = "C0CALLS"




@pytest.mark.slow
async def test_bodies_kept_before_a_stop_are_applied_at_the_next_start(
    make_server: MakeServer, slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    call_id = retell.new_inbound_call("+442079460123", retell.phone_numbers[0]["phone_number"])
    bodies = [retell.event_body(call_id, e) for e in ("call_started", "call_ended",
                                                       "call_analyzed")]
    async with store_for(db_path) as store:  # as the handler left them: kept, not applied
        events = ("call_started", "call_ended", "call_analyzed")
        for inbox_id, (body, event) in enumerate(zip(bodies, events, strict=True), start=1):
            assert await store.accept_webhook(call_id, event, body) == ("stored", inbox_id)
        assert await store.accept_webhook(call_id, "call_ended", bodies[1]) == (
            "duplicate", None)
    assert rows(db_path, "SELECT count(*) FROM calls") == [(0,)]

    server = await make_server(CALLBOT_NOTIFY_CHANNEL=NOTIFY)
    await eventually(server.outbox_idle)
    assert rows(db_path, "SELECT direction, stage FROM calls") == [("inbound", 3)]
    assert rows(db_path, "SELECT count(*) FROM webhook_inbox") == [(0,)]
    await slack.wait_for(lambda: len(slack.messages(NOTIFY)) == 1)
    [card] = slack.messages(NOTIFY)
    await slack.wait_for(lambda: len(slack.thread(NOTIFY, card["ts"])) == 1)  # one summary


async def test_a_kept_body_that_no_longer_reads_is_dropped_once_and_logged(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with store_for(db_path) as store:
        await store.accept_webhook("call_x", "call_ended", '{"event": "call_ended"}')
    server = Server(make_settings(slack, retell, db_path))
    with caplog.at_level(logging.INFO):
        await server.start()
        try:
            await eventually(server.outbox_idle)
        finally:
            await server.stop()
    assert rows(db_path, "SELECT count(*) FROM webhook_inbox") == [(0,)]
    assert rows(db_path, "SELECT count(*) FROM calls") == [(0,)]
    dropped = [r for r in caplog.records if "dropped from the inbox" in r.getMessage()]
    assert len(dropped) == 1 and dropped[0].exc_info is None


@pytest.mark.slow
async def test_a_burst_of_webhooks_logs_a_count_not_a_line_each(
    server: Server, retell: RetellStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    url = server.url + "/retell/webhook"
    with caplog.at_level(logging.INFO):
        for i in range(60):
            call_id = retell.new_inbound_call(f"+4420794601{i:02d}",
                                              retell.phone_numbers[0]["phone_number"])
            status, answer = await retell.send_webhook(url, retell.event_body(
                call_id, "call_started"))
            assert (status, answer) == (200, {"status": "stored"})
    await eventually(server.outbox_idle)
    lines = [r for r in caplog.records if r.name in ("handlers.webhook", "bot.http")]
    assert 1 <= len(lines) <= 3, [r.getMessage() for r in lines]
    assert rows(server, "SELECT count(*) FROM calls") == [(60,)]


async def test_the_stored_payload_does_not_keep_the_transcript_twice(
    server: Server, retell: RetellStandIn
) -> None:
    call_id = retell.new_inbound_call("+442079460123", retell.phone_numbers[0]["phone_number"])
    words = [{"role": "agent", "content": "hello there", "words": [
        {"word": "hello", "start": 0.1, "end": 0.4}]}]
    body = retell.event_body(call_id, "call_ended", transcript="Agent: hello there\n",
                             transcript_object=words)
    assert (await retell.send_webhook(server.url + "/retell/webhook", body))[0] == 200
    await eventually(server.outbox_idle)
    [(transcript, payload)] = rows(server,
                                   "SELECT transcript, raw_payload FROM calls")
    assert transcript == "Agent: hello there\n"
    assert "hello there" not in payload and '"call_id"' in payload
