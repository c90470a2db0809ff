"""Nothing from Retell, call metadata or a request can ping, link or forge a log line.

Hostile values go in the way they would come: signed Retell webhooks (agent names,
statuses, disconnection reasons, summaries, custom fields, metadata), Retell's error texts,
and raw HTTP requests whose path and headers carry CR LF and ANSI escapes. Then everything
the Slack stand-in received is read the way Slack reads it: every mrkdwn text and every
fallback `text` (plain_text objects are never parsed for mentions or links), and every log
line captured.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest

from bot.render.blocks import (
    analysis_reply,
    audit_line,
    call_card,
    channel_link,
    said,
    transcript_post,
    user_mention,
)
from bot.render.stats import report_message
from bot.render.views import home_call_line
from bot.runtime.logs import install_scrubbing, scrub
from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from storage.models import STAGE_ANALYZED, AuditRow, CallRecord, CallStats, StatsReport
from tests.conftest import CHANNEL, USER, Server
from tests.support.waiting import eventually

CREATE = "/v2/create-phone-call"
HOSTILE = ("<!channel> <!here|here> <!everyone> <@U0BOSS> <#C0SECRET> "
           "<https://evil.example|click> @channel")
# What must never reach a mrkdwn text or a fallback text as it is.
FORBIDDEN = ("<!channel", "<!here", "<!everyone", "<@U0BOSS", "<#C0SECRET", "<https://evil",
             "@channel")


def mrkdwn_texts(value: Any, *, top: bool = True) -> Iterator[str]:
    """Every string Slack parses as mrkdwn in an API call's arguments or a view."""
    if isinstance(value, dict):
        if value.get("type") == "plain_text":
            return  # shown as it is: Slack reads no mentions or links in it
        for key, inner in value.items():
            if key in ("text", "initial_comment") and isinstance(inner, str):
                yield inner
            elif key == "blocks" and isinstance(inner, str):  # form-encoded JSON
                yield from mrkdwn_texts(json.loads(inner), top=False)
            else:
                yield from mrkdwn_texts(inner, top=False)
    elif isinstance(value, list):
        for inner in value:
            yield from mrkdwn_texts(inner, top=False)


def assert_nothing_pings(texts: list[str]) -> None:
    assert texts, "nothing was captured"
    for text in texts:
        for bad in FORBIDDEN:
            assert bad not in text, f"{bad!r} reaches Slack in {text[:300]!r}"


def slack_received(slack: SlackStandIn) -> list[str]:
    texts = [t for c in slack.calls for t in mrkdwn_texts(c.args)]
    texts += [t for _, body in slack.responses for t in mrkdwn_texts(body)]
    texts += [t for view in slack.views.values() for t in mrkdwn_texts(view)]
    return texts


# -- rendering, unit by unit -----------------------------------------------------------------


def hostile_call(**kw: Any) -> CallRecord:
    base = CallRecord(
        id=3, call_id="call_x", direction="outbound", status="ended", stage=STAGE_ANALYZED,
        created_at=1_795_000_000.0, updated_at=1_795_000_000.0, user_id=USER,
        to_number="+14155550123", agent_name=HOSTILE, agent_id=HOSTILE, note=HOSTILE,
        disconnection_reason=HOSTILE, error=HOSTILE, summary=HOSTILE,
        transcript=f"Agent: {HOSTILE}\nUser: {HOSTILE}", successful=True, analyzed_at=1.0,
    )
    return replace(base, **kw)


@pytest.mark.parametrize("status", ["ended", "failed", "error", "not_connected", HOSTILE])
def test_every_rendering_escapes_what_came_from_a_call(status: str) -> None:
    call = hostile_call(status=status)
    texts: list[str] = []
    for message in (call_card(call), analysis_reply(call), transcript_post(call)):
        texts += list(mrkdwn_texts(vars(message)))
    texts.append(home_call_line(call))
    stats = CallStats(calls=1, failed_attempts=0, analyzed=1, successful=1, sentiments={},
                      connected=1, avg_duration_ms=None, median_duration_ms=None,
                      total_cost_cents=0, top_reasons=[(HOSTILE, 1)])
    texts += list(mrkdwn_texts(vars(report_message(
        StatsReport(stats), period_label="all time"))))
    assert_nothing_pings(texts)
    assert any("&lt;!channel&gt;" in t for t in texts)  # shown, not dropped


@pytest.mark.parametrize("user_id", [
    "U1> <!channel", "U0ALICE|x", "u0alice", "<@U0BOSS>", "", "C0GENERAL", "U", "U0 BOSS",
    "U0ALICE\n", "Ｕ0ALICE",
])
def test_requested_by_shows_only_a_slack_user_id(user_id: str) -> None:
    card = call_card(hostile_call(user_id=user_id, status="ongoing"))
    head = card.blocks[0]["text"]["text"]
    assert "Requested by" not in head and "<@" not in head
    assert user_mention(user_id) == ""


def test_requested_by_for_a_real_user_id() -> None:
    for user_id in ("U0ALICE", "W012AB3CD"):
        head = call_card(hostile_call(user_id=user_id, status="ongoing")).blocks[0]
        assert f"Requested by <@{user_id}>" in head["text"]["text"]


def test_audit_and_channel_ids_are_checked_too() -> None:
    row = AuditRow(id=1, at=1_795_000_000.0, action=HOSTILE, outcome=HOSTILE,
                   user_id="U1> <!channel", channel_id="C1> <!here", source=HOSTILE,
                   number=HOSTILE, agent=HOSTILE, reason=HOSTILE, call_id=HOSTILE)
    assert_nothing_pings([audit_line(row), channel_link("C1> <!here")])
    assert channel_link("C0GENERAL") == "<#C0GENERAL>"


def test_said_masks_cuts_and_escapes() -> None:
    out = said("<@U0BOSS> call +1 415 555 0123 " + "x" * 5000, 300)
    assert "<@U0BOSS" not in out and "555 0123" not in out and len(out) < 400


# -- end to end: Retell webhooks and errors ---------------------------------------------------


async def placed(server: Server, slack: SlackStandIn, retell: RetellStandIn) -> str:
    await server.slash("/call", "+1 415 555 0123", response_url=slack.response_url("p"))
    await slack.wait_for(lambda: bool(retell.calls) and bool(slack.calls_to("chat.update")))
    return next(iter(retell.calls))


@pytest.mark.slow
async def test_hostile_values_in_webhooks_never_ping_or_link(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed(server, slack, retell)
    forged_meta = {"slack_user_id": "U0ALICE> <!channel", "slack_channel_id": CHANNEL,
                   "slack_team_id": "T0TEST"}
    statuses = []
    for event, extra in (
        ("call_started", {"agent_name": HOSTILE, "metadata": forged_meta}),
        ("call_started", {"call_status": "<!channel>", "agent_name": HOSTILE}),
        ("call_ended", {"disconnection_reason": HOSTILE, "agent_name": HOSTILE}),
        ("call_analyzed", {"disconnection_reason": HOSTILE, "agent_name": HOSTILE,
                           "transcript": f"Agent: {HOSTILE}\nUser: {HOSTILE}\n",
                           "call_analysis": {"call_summary": HOSTILE * 50,
                                             "user_sentiment": HOSTILE,
                                             "custom_analysis_data": {"x": HOSTILE}}}),
    ):
        body = retell.event_body(call_id, event, **extra)
        status, _ = await retell.send_webhook(server.url + "/retell/webhook", body)
        statuses.append(status)
    assert all(s < 500 for s in statuses), statuses
    await slack.wait_for(lambda: any(c.args.get("thread_ts") for c in slack.calls))
    await server.event({"type": "app_home_opened", "user": USER, "tab": "home"})
    await slack.wait_for(lambda: bool(slack.calls_to("views.publish")))
    await eventually(server.outbox_idle, timeout=15)

    texts = slack_received(slack)
    assert_nothing_pings(texts)
    assert any("&lt;!channel&gt;" in t for t in texts)  # the values were shown, escaped
    assert any(f"Requested by <@{USER}>" in t for t in texts)  # the real requester stays


async def test_hostile_retell_error_text_never_pings(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    retell.fail_next(CREATE, 400, f"Refused: {HOSTILE}")
    await server.slash("/call", "+1 415 555 0123", response_url=slack.response_url("e"))
    await slack.wait_for(lambda: bool(slack.responses_for("e")))
    await slack.wait_for(lambda: "Not placed" in json.dumps(slack.calls_to("chat.update")[-1:]
                                                            and slack.messages(CHANNEL)))
    card_texts = [t for m in slack.messages(CHANNEL) for t in mrkdwn_texts(m)]
    assert_nothing_pings(card_texts)
    assert any("&lt;!channel&gt;" in t for t in card_texts)
    # The answer to the person goes through handlers/placing.py.
    assert_nothing_pings([t for b in slack.responses_for("e") for t in mrkdwn_texts(b)])


# -- log lines cannot be forged ----------------------------------------------------------------


@pytest.fixture
def scrubbed_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """What `callbot serve` does at start-up (bot.runtime.logs.setup_logging), undone afterwards."""
    previous = logging.getLogRecordFactory()
    install_scrubbing()
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog
    finally:
        logging.setLogRecordFactory(previous)


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
FORGED = "2026-01-01T00:00:00 INFO bot.http: POST /retell/webhook 200"


async def raw_request(server: Server, data: bytes) -> bytes:
    parts = urlsplit(server.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


async def test_request_path_and_headers_cannot_forge_log_lines(
    scrubbed_logs: pytest.LogCaptureFixture, server: Server
) -> None:
    evil = f"\r\n{FORGED}\x1b[2J\x1b[31m\u2028\x85"
    encoded = "".join(f"%{b:02X}" for b in evil.encode())
    requests = [
        f"GET /nowhere{encoded} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
        (f"POST /slack/events{encoded} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
         "Content-Length: 2\r\n\r\n{}").encode(),
        (b"POST /retell/webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
         b"X-Retell-Signature: v=1\x1b[31m,d=\x1b[2J\r\nUser-Agent: a\x1b]0;pwned\x07b\r\n"
         b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"),
        (b"POST /slack/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
         b"X-Slack-Request-Timestamp: 1\x1b[2J\r\nX-Slack-Signature: v0=\x1b[31m\r\n"
         b"Content-Length: 2\r\n\r\n{}"),
        b"GET /\x1b[31m\x85x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]
    for data in requests:
        answer = await raw_request(server, data)
        assert re.match(rb"HTTP/1\.[01] 4\d\d ", answer), answer[:200]
    records = [r for r in scrubbed_logs.records if "forged" not in r.name]
    assert any("nowhere" in r.getMessage() for r in records), "the 404 was not logged"
    for record in records:
        message = record.getMessage()
        assert not _CONTROL.search(message), f"control character in {message!r}"
    for line in scrubbed_logs.text.splitlines():
        assert not line.startswith("2026-01-01T00:00:00"), f"forged line {line!r}"
    assert "\x1b" not in scrubbed_logs.text


def test_scrub_escapes_every_control_character() -> None:
    every = "".join(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029])
    cleaned = scrub(f"a{every}b")
    assert not _CONTROL.search(cleaned) and "\t" not in cleaned
    assert cleaned.startswith("a\\x00") and cleaned.endswith("\\u2029b")
    assert "\\r\\n" in scrub("x\r\ny") and "\\x1b[31m" in scrub("\x1b[31m")
