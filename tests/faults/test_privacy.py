"""No full phone number anywhere, in any spelling; the privacy switches hold on every path.

Calls go through the real app (signed slash commands, messages and Retell webhooks) to the
Slack and Retell stand-ins. Everything is captured: every log record of every logger at
DEBUG (library debug output included, tracebacks formatted), and everything the Slack
stand-in received (posts, updates, ephemerals, response_url answers, views, file contents).
Then each number used is searched for in every spelling: E.164, national, digits only,
spaced, dashed, dotted, bracketed, URL-encoded, Unicode digits.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterator

import pytest

from bot.render.blocks import ACTION_TRANSCRIPT
from bot.runtime.logs import install_scrubbing, scrub, scrub_block
from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, USER, MakeServer, Server, button
from tests.support.waiting import eventually

CREATE = "/v2/create-phone-call"
# The numbers called, as (country code, national significant number).
PLACED = ("1", "4155550123")  # placed, talked, analyzed
REFUSED = ("44", "2079460123")  # Retell refuses it, naming the number in its error text
LONG_ERROR = ("1", "4155550177")  # Retell fails with a 5,000-character error text
MESSAGED = ("1", "4155550188")  # placed from a `call ...` message
NUMBERS = (PLACED, REFUSED, LONG_ERROR, MESSAGED)
LIBRARIES = ("slack_bolt", "slack_sdk", "httpx", "httpcore", "aiosqlite", "aiohttp")
_SEP = r"[\s.\-()/\u00a0\u2010-\u2015]*(?:%2[Bb]|%20|\+)?"


def spellings(country: str, nsn: str) -> re.Pattern[str]:
    """The national number with anything a person or a library puts between its digits:
    `+14155550123`, `(415) 555-0123`, `415.555.0123`, `4 1 5 5 5 5 0 1 2 3`, ... Unicode
    digits are folded to ASCII before searching."""
    return re.compile(_SEP.join(nsn))


def middle(nsn: str) -> re.Pattern[str]:
    """The digits a mask hides, next to the tail it shows (`555 0123`): never together."""
    return re.compile(_SEP.join(nsn[-7:]))


def fold_digits(text: str) -> str:
    return "".join(str(int(c)) if c.isdigit() and not c.isascii() and c.isdecimal() else c
                   for c in text)


def assert_no_number(where: str, text: str) -> None:
    text = fold_digits(text)
    for country, nsn in NUMBERS:
        for pattern in (spellings(country, nsn), middle(nsn)):
            found = pattern.search(text)
            assert found is None, (
                f"{where}: +{country} {nsn} as {found.group(0)!r} in "
                f"…{text[max(found.start() - 80, 0):found.end() + 40]!r}…")


def slack_traffic(slack: SlackStandIn) -> str:
    """Everything the Slack stand-in was sent, as one text."""
    files = [{**f, "content": f.get("content", b"").decode("utf-8", "replace")
              if isinstance(f.get("content"), bytes) else f.get("content")}
             for f in slack.files.values()]
    return json.dumps({"calls": [c.args for c in slack.calls], "responses": slack.responses,
                       "ephemerals": slack.ephemerals, "views": slack.views, "files": files},
                      ensure_ascii=False, default=str)


@pytest.fixture
def scrubbed_logs() -> Iterator[None]:
    """What `callbot serve` does at start-up (bot.runtime.logs.setup_logging), undone afterwards."""
    previous = logging.getLogRecordFactory()
    install_scrubbing()
    try:
        yield
    finally:
        logging.setLogRecordFactory(previous)


@pytest.fixture
def all_debug(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    for name in LIBRARIES:
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


def logged(caplog: pytest.LogCaptureFixture) -> str:
    lines = [caplog.text]
    for record in caplog.records:
        lines.append(record.getMessage())
        if record.exc_text:
            lines.append(record.exc_text)
    return "\n".join(lines)


# -- the scrubbing itself ----------------------------------------------------------------------


@pytest.mark.parametrize("spelled", [
    "+14155550123", "14155550123", "4155550123", "(415) 555-0123", "415-555-0123",
    "415.555.0123", "415 555 0123", "+1 415 555 0123", "+1-415-555-0123", "+1 (415) 555-0123",
    "+1.415.555.0123", "%2B14155550123", "+1\u00a0415\u00a0555\u00a00123", "415/555/0123",
    "٤١٥٥٥٥٠١٢٣", "+١٤١٥٥٥٥٠١٢٣", "415\u2013555\u20130123", "tel:+14155550123",
    "to_number=+14155550123&x=1", "'+14155550123'", '"4155550123"',
])
def test_scrub_masks_every_spelling(spelled: str) -> None:
    line = f"refused: number {spelled} is invalid"
    assert_no_number("scrub", scrub(line))
    assert "refused: number" in scrub(line) and "•••" in scrub(line)


def test_scrub_keeps_what_is_not_a_number() -> None:
    line = ("ts=1712345678.123456 at 1712345678 in 12.5 ms on 2026-11-24 call_id=call_"
            "0123456789abcdef channel=C0123456789 user=U0123456789 $1,234.56 took 95000 ms")
    assert scrub(line) == line


def test_tracebacks_are_scrubbed_and_indented() -> None:
    try:
        raise ValueError("Invalid to_number +1 (415) 555-0123\r\n2026-01-01 INFO forged")
    except ValueError:
        import traceback
        block = scrub_block(traceback.format_exc())
    assert_no_number("traceback", block)
    assert all(line.startswith("  ") for line in block.splitlines())
    assert "\r" not in block


# -- end to end --------------------------------------------------------------------------------


async def analyzed_call(server: Server, slack: SlackStandIn, retell: RetellStandIn) -> str:
    """A call placed by `/call` in the national spelling, then talked and analyzed, with the
    number said back in every spelling in the summary, the transcript and the reason."""
    await server.slash("/call", '(415) 555-0123 customer_name=Ann note="or 415.555.0123"',
                       response_url=slack.response_url("placed"))
    await slack.wait_for(lambda: bool(retell.calls))
    call_id = next(iter(retell.calls))
    said = ("Agent: Is +1 415 555 0123 your number?\n"
            "User: Yes, 415-555-0123, or (415) 555-0123, 4155550123, 415.555.0123.\n"
            "Agent: Thanks.\n")
    for event, extra in (
        ("call_started", {}),
        ("call_ended", {"disconnection_reason": "transfer_to_14155550123_failed"}),
        ("call_analyzed", {
            "transcript": said * 400,  # long: a file, and cut notes in the summary reply
            "disconnection_reason": "transfer_to_14155550123_failed",
            "call_analysis": {"call_summary": "Ann (+14155550123, 415 555 0123) confirmed. "
                                              * 400,
                              "custom_analysis_data": {"callback": "+1 (415) 555-0123"}}}),
    ):
        body = retell.event_body(call_id, event, **extra)
        status, _ = await retell.send_webhook(server.url + "/retell/webhook", body)
        assert status == 200
    return call_id


@pytest.mark.slow
async def test_no_full_number_in_any_post_answer_or_log_line(
    scrubbed_logs: None, all_debug: pytest.LogCaptureFixture, server: Server,
    slack: SlackStandIn, retell: RetellStandIn,
) -> None:
    call_id = await analyzed_call(server, slack, retell)
    await slack.wait_for(lambda: any(c.args.get("thread_ts") for c in slack.calls))
    # The *Transcript* button: a long one goes to the thread as a file.
    [card] = slack.messages(CHANNEL)
    await server.interactive(button(ACTION_TRANSCRIPT, call_id, message_ts=card["ts"],
                                    response_url=slack.response_url("t")))
    await slack.wait_for(lambda: any(f.get("uploaded") for f in slack.files.values()))

    # Retell refuses, naming the number (in two spellings) in its error text.
    retell.fail_next(CREATE, 400, "Invalid to_number +442079460123 (020 7946 0123): unreachable")
    await server.slash("/call", "+44 20 7946 0123", response_url=slack.response_url("refused"))
    await slack.wait_for(lambda: bool(slack.responses_for("refused")))
    # Retell fails with a 5,000-character error text that ends with the number.
    retell.fail_next(CREATE, 500, "overloaded " * 455 + "dialing +1-415-555-0177")
    await server.slash("/call", "+1 415 555 0177", response_url=slack.response_url("long"))
    await slack.wait_for(lambda: bool(slack.responses_for("long")))
    # A `call ...` message, a DNC check, an audit by a non-admin, and the Home tab.
    ts = f"{int(time.time())}.{uuid.uuid4().int % 10**6:06d}"
    await server.event({"type": "message", "channel": CHANNEL, "user": USER, "ts": ts,
                        "channel_type": "channel", "text": "call 415.555.0188"})
    await slack.wait_for(lambda: any(c.args.get("thread_ts") == ts for c in slack.calls))
    await server.slash("/calldnc", "check (415) 555-0123", response_url=slack.response_url("d"))
    await server.slash("/callaudit", "4155550123", response_url=slack.response_url("a"))
    await server.event({"type": "app_home_opened", "user": USER, "tab": "home"})
    await slack.wait_for(lambda: bool(slack.calls_to("views.publish")))
    await eventually(server.outbox_idle, timeout=15)

    traffic = slack_traffic(slack)
    for tail in ("••• 0123", "••• 0177", "••• 0188"):
        assert tail in traffic, tail
    assert len(slack.files) >= 1  # the long transcript went as a file, and was scanned
    assert_no_number("Slack", traffic)
    assert_no_number("logs", logged(all_debug))
    assert any(r.name.startswith(("slack_sdk", "httpcore", "aiosqlite"))
               for r in all_debug.records), "library debug output was not captured"


# -- the privacy switches ------------------------------------------------------------------------


@pytest.fixture(params=[
    pytest.param({"CALLBOT_POST_RECORDINGS": False}, id="no-recordings"),
    pytest.param({"CALLBOT_POST_TRANSCRIPTS": False}, id="no-transcripts"),
])
async def private_server(request: pytest.FixtureRequest, make_server: MakeServer) -> Server:
    return await make_server(**request.param)


@pytest.mark.slow
async def test_call_log_link_appears_nowhere_when_a_switch_is_off(
    private_server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await analyzed_call(private_server, slack, retell)
    log_url = retell.calls[call_id]["public_log_url"]
    await slack.wait_for(lambda: any(c.args.get("thread_ts") for c in slack.calls))
    await private_server.event({"type": "app_home_opened", "user": USER, "tab": "home"})
    await slack.wait_for(lambda: bool(slack.calls_to("views.publish")))
    await eventually(private_server.outbox_idle, timeout=15)
    traffic = slack_traffic(slack)
    assert "more characters of the summary not shown" in traffic  # the cut note is there
    assert log_url not in traffic
    assert "Call log" not in traffic
