"""Logs: a line per request and per event with the call id; no secrets, no whole numbers."""

from __future__ import annotations

import logging

import pytest

from bot.logs import ScrubFilter, scrub
from tests.conftest import SIGNING_SECRET, Server
from tests.standins.retell import RetellStandIn
from tests.standins.slack import SlackStandIn


def test_scrub_masks_numbers_and_tokens() -> None:
    line = "to=+14155550123 token xoxb-123-456-abc header Bearer key_abcdef xapp-1-A1-2"
    cleaned = scrub(line)
    assert "+1 415 ••• 0123" in cleaned
    for secret in ("+14155550123", "xoxb-123", "key_abcdef", "xapp-1"):
        assert secret not in cleaned


async def test_a_whole_call_logs_no_secret_and_no_full_number(
    server: Server, slack: SlackStandIn, retell: RetellStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for handler in logging.getLogger().handlers:
        handler.addFilter(ScrubFilter())
    await server.slash("/call", "+1 415 555 0123 customer_name=Ann",
                       response_url=slack.response_url("x"))
    await slack.wait_for(lambda: len(slack.calls_to("chat.update")) == 1)
    call_id = next(iter(retell.calls))
    for event in ("call_started", "call_ended", "call_analyzed"):
        body = retell.event_body(call_id, event)
        await retell.send_webhook(server.url + "/retell/webhook", body)
    await slack.wait_for(lambda: any(c.args.get("thread_ts") for c in slack.calls))
    retell.fail_next("/v2/create-phone-call", 402)
    await server.slash("/call", "+1 415 555 0199", response_url=slack.response_url("y"))
    await slack.wait_for(lambda: bool(slack.responses_for("y")))

    text = caplog.text
    own = [r for r in caplog.records if r.name.startswith(("bot", "handlers"))]
    for event in ("call_started", "call_ended", "call_analyzed"):
        assert any(event in r.getMessage() and call_id in r.getMessage() for r in own), event
    # One line per webhook (its own, with the outcome and time), not a second access line.
    assert any(f"call_id={call_id} stored in" in r.getMessage() for r in own)
    assert not any("POST /retell/webhook" in r.getMessage() for r in own)
    assert any("POST /slack/events 200" in r.getMessage() for r in own)
    assert "+1 415 ••• 0123" in text
    for secret in ("+14155550123", "+14155550199", "5550123", retell.api_key, slack.token,
                   SIGNING_SECRET):
        assert secret not in "\n".join(r.getMessage() for r in own), secret
