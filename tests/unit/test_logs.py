"""Logs: a line per request and per event with the call id; no secrets, no whole numbers."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bot.runtime.logs import ScrubFilter, clean_record, install_scrubbing, scrub
from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import SIGNING_SECRET, Server


def test_scrub_masks_numbers_and_tokens() -> None:
    line = "to=+14155550123 token xoxb-123-456-abc header Bearer key_abcdef xapp-1-A1-2"
    cleaned = scrub(line)
    assert "+1 415 ••• 0123" in cleaned
    for secret in ("+14155550123", "xoxb-123", "key_abcdef", "xapp-1"):
        assert secret not in cleaned


@pytest.mark.slow
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
    # Webhooks are counted in a periodic line, with no access line per request.
    assert any(r.getMessage().startswith("webhooks:") for r in own)
    assert any(call_id in r.getMessage() for r in own)
    assert not any("POST /retell/webhook" in r.getMessage() for r in own)
    assert any("POST /slack/events 200" in r.getMessage() for r in own)
    assert "+1 415 ••• 0123" in text
    for secret in ("+14155550123", "+14155550199", "5550123", retell.api_key, slack.token,
                   SIGNING_SECRET):
        assert secret not in "\n".join(r.getMessage() for r in own), secret


@pytest.fixture
def scrubbing() -> Iterator[None]:
    previous = logging.getLogRecordFactory()
    install_scrubbing()
    install_scrubbing()  # twice is once
    try:
        yield
    finally:
        logging.setLogRecordFactory(previous)


def test_every_record_is_scrubbed_when_made_whatever_its_handler(
    scrubbing: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("some.library")
    log.debug("POST %s body=%r", "/x\r\nFAKE LINE", {"to": "(415) 555-0123", "t": "xoxb-1-abc"})
    try:
        raise RuntimeError("Retell said: +1 415-555-0123 is invalid\n2026 INFO forged")
    except RuntimeError:
        log.exception("create failed for %s", "415.555.0123")
    log.info("bad arguments %s %s", "+14155550123")  # a bug in a log call: still clean
    text = caplog.text
    for leak in ("555-0123", "555.0123", "5550123", "xoxb-1", "\r\nFAKE", "\n2026 INFO"):
        assert leak not in text, leak
    assert "\\r\\nFAKE LINE" in text and "[redacted]" in text and "••• 0123" in text
    [failed] = [r for r in caplog.records if r.exc_info]
    assert failed.exc_text and "RuntimeError: Retell said: +1 415 ••• 0123" in failed.exc_text
    assert all(line.startswith("  ") for line in failed.exc_text.splitlines())
    assert "log arguments do not fit" in caplog.records[-1].getMessage()


def test_scrub_filter_cleans_records_made_before_scrubbing_was_installed() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "to=%s\x1b[2J", ("+14155550123",),
                               None)
    assert ScrubFilter().filter(record)
    assert record.getMessage() == "to=+1 415 ••• 0123\\x1b[2J"
    clean_record(record)  # once is enough: a second pass changes nothing
    assert record.getMessage() == "to=+1 415 ••• 0123\\x1b[2J"


def test_very_long_lines_are_cut() -> None:
    cleaned = scrub("x" * 100_000)
    assert len(cleaned) < 21_000 and cleaned.endswith("more characters]")
