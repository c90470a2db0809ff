"""`POST /retell/webhook` end to end: signed as Retell signs, through the real server."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from standins.retell import RetellStandIn, sign
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, HEALTHY_IDLE, Server, make_settings
from tests.support.db import db_rows as rows
from tests.support.waiting import eventually
from tests.support.webhooks import card, placed_call, send, summaries

EVENTS = ("call_started", "call_ended", "call_analyzed")


@pytest.mark.slow
async def test_events_in_order_update_the_card_and_post_the_summary(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)

    assert await send(server, retell, call_id, "call_started") == (200, {"status": "stored"})
    await slack.wait_for(lambda: "In progress" in str(card(slack)["blocks"]))

    await send(server, retell, call_id, "call_ended", duration_ms=95_000,
               disconnection_reason="user_hangup")
    await slack.wait_for(lambda: "Ended" in str(card(slack)["blocks"]))
    assert "1m 35s · Customer hung up" in str(card(slack)["blocks"])

    await send(server, retell, call_id, "call_analyzed", duration_ms=95_000,
               call_analysis={"call_summary": "Ann booked Friday.", "user_sentiment": "Positive",
                              "call_successful": True})
    await slack.wait_for(lambda: len(summaries(slack)) == 1)
    [reply] = summaries(slack)
    text = json.dumps(reply["blocks"], ensure_ascii=False)
    for part in ("Ann booked Friday.", ":smiley: Positive", ":white_check_mark: Yes", "1m 35s",
                 "Recording", "café"):
        assert part in text, part
    await slack.wait_for(lambda: "Successful · :smiley: Positive" in str(card(slack)["blocks"]))
    assert len(slack.messages(CHANNEL)) == 1  # one card, updated in place
    [(status, stage, sentiment, ok, summary)] = rows(
        server, "SELECT status, stage, sentiment, successful, summary FROM calls")
    assert (status, stage, sentiment, ok, summary) == ("ended", 3, "Positive", 1,
                                                      "Ann booked Friday.")


@pytest.mark.slow
async def test_out_of_order_and_repeated_events(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    for event in ("call_analyzed", "call_analyzed", "call_ended", "call_started", "call_ended"):
        status, _ = await send(server, retell, call_id, event, disconnection_reason="dial_busy")
        assert status == 200
    await slack.wait_for(lambda: len(summaries(slack)) == 1)
    await eventually(server.outbox_idle)
    assert len(summaries(slack)) == 1
    blocks = str(card(slack)["blocks"])
    assert "Not connected" in blocks and "Line busy" in blocks
    assert "In progress" not in blocks
    assert rows(server, "SELECT count(*) FROM webhook_events") == [(3,)]
    assert rows(server, "SELECT status, stage FROM calls WHERE call_id = ?", call_id) == [
        ("not_connected", 3)]


@pytest.mark.slow
async def test_repeat_after_restart_has_no_second_effect(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    await send(server, retell, call_id, "call_analyzed")
    await slack.wait_for(lambda: len(summaries(slack)) == 1)
    await server.restart()
    assert await send(server, retell, call_id, "call_analyzed") == (200, {"status": "duplicate"})
    await server.restart()  # a further start finds nothing pending either
    assert await server.get("/healthz") == HEALTHY_IDLE
    assert len(summaries(slack)) == 1
    assert rows(server, "SELECT count(*) FROM outbox WHERE done_at IS NULL") == [(0,)]


@pytest.mark.slow
async def test_restart_between_placing_and_webhooks(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    await server.restart()
    for event in EVENTS:
        assert (await send(server, retell, call_id, event))[0] == 200
    await slack.wait_for(lambda: len(summaries(slack)) == 1)
    await eventually(server.outbox_idle)
    assert len(summaries(slack)) == 1
    assert summaries(slack)[0]["thread_ts"] == card(slack)["ts"]


@pytest.mark.slow
async def test_pending_deliveries_survive_a_slack_outage_and_restart(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    slack.http_error("chat.postMessage", 503, times=1)
    await send(server, retell, call_id, "call_analyzed")
    await slack.wait_for(lambda: any(
        c.method == "chat.postMessage" and c.args.get("thread_ts") for c in slack.calls))
    # The first summary post failed; the item waits (about a second) for its retry, and
    # the server restarts meanwhile: the new process delivers it.
    await server.restart()
    await slack.wait_for(lambda: len(summaries(slack)) == 1)
    await eventually(server.outbox_idle)
    [(attempts, error)] = rows(server, "SELECT attempts, last_error FROM outbox WHERE kind = "
                                       "'summary'")
    assert attempts == 2 and error is None
    assert len(summaries(slack)) == 1


@pytest.mark.slow
async def test_webhook_for_a_call_the_database_does_not_know(
    slack: SlackStandIn, retell: RetellStandIn, tmp_path: Any
) -> None:
    first = Server(make_settings(slack, retell, tmp_path / "one.db"))
    await first.start()
    call_id = await placed_call(first, slack, retell)
    await first.stop()
    second = Server(make_settings(slack, retell, tmp_path / "fresh.db"))  # database lost
    await second.start()
    try:
        for event in EVENTS:
            assert (await send(second, retell, call_id, event))[0] == 200
        await slack.wait_for(lambda: len(summaries(slack)) == 1)
        await eventually(lambda: ":white_check_mark: Successful" in str(card(slack)["blocks"]))
        [(channel, user)] = rows(second, "SELECT channel_id, user_id FROM calls")
        assert channel == CHANNEL and user is not None
    finally:
        await second.stop()


async def test_inbound_call_goes_to_the_notify_channel(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Any
) -> None:
    srv = Server(make_settings(slack, retell, db_path, CALLBOT_NOTIFY_CHANNEL="C0CALLS"))
    await srv.start()
    try:
        call_id = retell.new_inbound_call("+442079460123", retell.phone_numbers[0]["phone_number"])
        for event in EVENTS:
            await send(srv, retell, call_id, event)
        await slack.wait_for(lambda: len(slack.messages("C0CALLS")) == 1
                             and len(slack.thread("C0CALLS", slack.messages("C0CALLS")[0]["ts"]))
                             == 1)
    finally:
        await srv.stop()
    [inbound] = slack.messages("C0CALLS")
    assert "Inbound call from +44 20 ••• 0123" in str(inbound["blocks"])
    assert "7946" not in json.dumps(slack.messages("C0CALLS"))


async def test_inbound_without_notify_channel_is_stored_only(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = retell.new_inbound_call("+442079460123", retell.phone_numbers[0]["phone_number"])
    for event in EVENTS:
        assert (await send(server, retell, call_id, event))[0] == 200
    await eventually(server.outbox_idle)
    assert rows(server, "SELECT direction, stage FROM calls") == [("inbound", 3)]
    # A call that posts nowhere queues no Slack work at all: nothing to read, fetch or skip.
    assert rows(server, "SELECT count(*) FROM outbox") == [(0,)]
    assert slack.calls_to("chat.postMessage") == []


async def test_forged_webhooks_are_refused_with_no_side_effect(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    url = server.url + "/retell/webhook"
    body = retell.event_body(call_id, "call_analyzed")
    stale = int(time.time() * 1000) - 6 * 60 * 1000
    cases = [
        await retell.send_webhook(url, body, signature=""),  # no header
        await retell.send_webhook(url, body, key="key_someone_else"),
        await retell.send_webhook(url, body, ts_ms=stale),
        await retell.send_webhook(url, body, signature="v=1,d=nothex"),
        await retell.send_webhook(url, body.replace("café", "cafe"),
                                  signature=sign(body, retell.api_key)),
    ]
    for status, answer in cases:
        assert status == 401, answer
        assert "invalid signature" in answer["error"]
    assert rows(server, "SELECT count(*) FROM webhook_events") == [(0,)]
    assert rows(server, "SELECT count(*) FROM outbox WHERE call_id = ?", call_id) == [(1,)]


async def test_separate_webhook_key(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Any
) -> None:
    srv = Server(make_settings(slack, retell, db_path, RETELL_WEBHOOK_KEY="key_webhooks"))
    await srv.start()
    try:
        call_id = retell.new_inbound_call("+442079460123", "+14155550100")
        body = retell.event_body(call_id, "call_started")
        url = srv.url + "/retell/webhook"
        assert (await retell.send_webhook(url, body))[0] == 401  # signed with the API key
        assert (await retell.send_webhook(url, body, key="key_webhooks"))[0] == 200
    finally:
        await srv.stop()


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ("{not json", 400, "not valid UTF-8 JSON"),
        ('["call_ended"]', 400, "JSON object"),
        ('{"call": {"call_id": "x"}}', 400, "`event` string"),
        ('{"event": "call_ended"}', 400, "call is missing"),
        ('{"event": "call_ended", "call": {}}', 400, "call.call_id is missing"),
        ('{"event": "call_ended", "call": {"call_id": ""}}', 400, "call.call_id"),
        ('{"event": "call_ended", "call": {"call_id": "c", "duration_ms": "long"}}', 400,
         "duration_ms"),
        ('{"event": "something_new", "call": {}}', 200, "ignored"),
        ('{"event": "transcript_updated", "call": {"call_id": "c"}}', 200, "ignored"),
    ],
)
@pytest.mark.slow
async def test_signed_but_malformed_or_unknown_bodies(
    server: Server, retell: RetellStandIn, body: str, status: int, fragment: str
) -> None:
    got, answer = await retell.send_webhook(server.url + "/retell/webhook", body)
    assert got == status
    assert fragment in json.dumps(answer)
    assert rows(server, "SELECT count(*) FROM webhook_events") == [(0,)]
    assert rows(server, "SELECT count(*) FROM calls") == [(0,)]


async def test_healthz_reports_the_database(server: Server) -> None:
    assert await server.get("/healthz") == HEALTHY_IDLE
    await server.ctx.store.close()
    status, body = await server.get("/healthz")
    assert status == 503 and body["status"] == "unavailable"
