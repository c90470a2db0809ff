"""Pure pieces of the edge: signature header checks, Slack body checks, bounded logging."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import time
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import Clock, SignatureVerifier

from bot.http.edge import (
    JSON_MAX_DEPTH,
    ByteBudget,
    LogLimiter,
    connection_budget,
    install_loop_exception_handler,
    slack_body_problem,
)
from bot.http.signatures import (
    check_retell_header,
    check_retell_signature,
    check_slack_headers,
    check_slack_signature,
    parse_retell_header,
    retell_signature,
    slack_signature,
)

SECRET = "test-signing-secret"
BODY = b"command=%2Fcall&text=%2B14155550123+caf%C3%A9"


def test_slack_signatures_agree_with_slack_sdk() -> None:
    ts = str(int(time.time()))
    ours = slack_signature(BODY, SECRET, ts)
    verifier = SignatureVerifier(SECRET)
    assert ours == verifier.generate_signature(timestamp=ts, body=BODY.decode())
    assert verifier.is_valid(BODY.decode(), ts, ours)
    assert check_slack_signature(BODY, SECRET, ts, ours) is None
    assert check_slack_signature(BODY + b"x", SECRET, ts, ours) == "digest mismatch"
    assert check_slack_signature(BODY, "other", ts, ours) == "digest mismatch"


@pytest.mark.parametrize("skew", [-301, 301])
def test_stale_slack_timestamps_are_refused_like_slack_sdk(skew: int) -> None:
    # One frozen clock for both checks: a second that ticks between them must not matter.
    now = float(int(time.time()))
    ts = str(int(now) + skew)
    signature = slack_signature(BODY, SECRET, ts)
    assert not SignatureVerifier(SECRET, clock=_FrozenClock(now)).is_valid(
        BODY.decode(), ts, signature)
    assert check_slack_signature(BODY, SECRET, ts, signature, now=now) == "stale timestamp"
    inside = str(int(now) + (300 if skew > 0 else -300))
    fresh = slack_signature(BODY, SECRET, inside)
    assert SignatureVerifier(SECRET, clock=_FrozenClock(now)).is_valid(
        BODY.decode(), inside, fresh)
    assert check_slack_signature(BODY, SECRET, inside, fresh, now=now) is None


class _FrozenClock(Clock):
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


@pytest.mark.parametrize(("timestamp", "signature", "reason"), [
    (None, "v0=" + "a" * 64, "missing signature"),
    ("1", None, "missing signature"),
    ("abc", "v0=" + "a" * 64, "malformed timestamp"),
    ("9" * 5000, "v0=" + "a" * 64, "malformed timestamp"),
    ("١٧٠٠٠٠٠٠٠٠", "v0=" + "a" * 64, "malformed timestamp"),  # Arabic-Indic digits
    ("-1", "v0=" + "a" * 64, "malformed timestamp"),
    ("1e9", "v0=" + "a" * 64, "malformed timestamp"),
    ("NOW", "v0=" + "1" * 5000, "malformed timestamp"),
    ("{now}", "v0=" + "1" * 5000, "malformed signature"),
    ("{now}", "v1=" + "a" * 64, "malformed signature"),
    ("{now}", "v0=" + "A" * 64, "malformed signature"),
    ("{now}", "v0=" + "٣" * 64, "malformed signature"),
])
def test_malformed_slack_headers_are_named_and_never_raise(
    timestamp: str | None, signature: str | None, reason: str
) -> None:
    if timestamp == "{now}":
        timestamp = str(int(time.time()))
    assert check_slack_headers(timestamp, signature) == reason


@pytest.mark.parametrize("header", [
    "v=" + "1" * 5000 + ",d=" + "a" * 64,
    "v=١٧٠٠٠٠٠٠٠٠٠٠٠,d=" + "a" * 64,
    "v=1700000000000,d=" + "a" * 5000,
    "v=1700000000000,d=" + "٣" * 64,
    "v=,d=" + "a" * 64,
    "v=+1,d=" + "a" * 64,
    "v=1700000000000;d=" + "a" * 64,
    "x" * 100_000,
])
def test_malformed_retell_headers_are_refused_without_int_of_long_digits(header: str) -> None:
    assert parse_retell_header(header) == "malformed signature"
    assert check_retell_signature(b"{}", "key", header) == "malformed signature"


def test_retell_header_check_is_what_the_signature_check_uses() -> None:
    now = int(time.time() * 1000)
    header = retell_signature(b"{}", "key", now)
    assert check_retell_header(header) == (now, header.split("d=")[1])
    assert check_retell_header(retell_signature(b"{}", "key", now - 301_000)) == "stale timestamp"
    assert check_retell_signature(b"{}", "key", header) is None


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize(("body", "content_type", "problem"), [
    (b"", "application/x-www-form-urlencoded", "empty body"),
    (b"\xed\xa0\x80", "application/x-www-form-urlencoded", "body is not UTF-8"),
    (b"not json", "application/json", "body is not valid JSON"),
    (b"[1, 2]", "application/json; charset=utf-8", "body is not a JSON object"),
    (b"{not json", "application/x-www-form-urlencoded", "body is not valid JSON"),
    (b'{"type": "\\ud800"}', "application/json", "body is not valid JSON"),
    (b'{"n": NaN}', "application/json", "body is not valid JSON"),
    (_nested(JSON_MAX_DEPTH + 1).encode(), "application/json", "body is nested too deeply"),
    (b"[" * 100_000, "application/json", "body is not valid JSON"),
    (urlencode({"payload": "nope"}).encode(), "", "payload is not valid JSON"),
    (urlencode({"payload": "[]"}).encode(), "", "payload is not a JSON object"),
    (urlencode({"payload": '"x"'}).encode(), "", "payload is not a JSON object"),
    (urlencode({"payload": '{"t": "\\udfff"}'}).encode(), "", "payload is not valid JSON"),
    (urlencode({"payload": _nested(5000)}).encode(), "", "payload is not valid JSON"),
    (urlencode({"payload": _nested(200)}).encode(), "", "payload is nested too deeply"),
])
def test_slack_bodies_bolt_cannot_parse_are_named(
    body: bytes, content_type: str, problem: str
) -> None:
    assert slack_body_problem(body, content_type) == problem


@pytest.mark.parametrize(("body", "content_type"), [
    (BODY, "application/x-www-form-urlencoded"),
    (urlencode({"command": "/call", "text": "payload=1"}).encode(), ""),
    (urlencode({"payload": json.dumps({"type": "block_actions"})}).encode(), ""),
    (json.dumps({"type": "event_callback", "event": {"type": "app_mention"}}).encode(),
     "application/json"),
    (_nested(JSON_MAX_DEPTH).encode(), "application/json"),
])
def test_slack_bodies_as_slack_sends_them_pass(body: bytes, content_type: str) -> None:
    assert slack_body_problem(body, content_type) is None


def test_log_limiter_logs_a_burst_then_one_line_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    limiter = LogLimiter(logging.getLogger("test.limiter"), burst=3, window=60.0,
                         clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.limiter"):
        for i in range(500):
            limiter.log(logging.WARNING, "flood", "bad thing %d", i)
        now[0] += 61.0
        limiter.log(logging.WARNING, "flood", "bad thing after")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:3] == ["bad thing 0", "bad thing 1", "bad thing 2"]
    assert lines[3] == "497 more 'flood' line(s) in the last 60 s, not logged"
    assert lines[4:] == ["bad thing after"]


async def test_a_flood_of_accept_errors_logs_a_few_lines_without_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    install_loop_exception_handler(loop)
    try:
        with caplog.at_level(logging.DEBUG):
            for _ in range(500):
                loop.call_exception_handler({
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(errno.EMFILE, "Too many open files"),
                })
    finally:
        loop.set_exception_handler(previous)
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert 1 <= len(records) <= 3
    assert all(r.exc_info is None for r in records)
    assert "EMFILE" in records[0].getMessage()


@pytest.mark.parametrize(("setting", "open_files", "expected"), [
    (4096, 20_000, 4096), (4096, 1024, 768), (4096, 64, 48), (100, 100, 75),
])
def test_connections_stay_below_the_open_files_limit(
    setting: int, open_files: int, expected: int
) -> None:
    assert connection_budget(setting, open_files) == expected


async def test_the_body_budget_makes_readers_wait_until_bytes_are_given_back() -> None:
    budget = ByteBudget(10)
    await budget.take(8)
    second = asyncio.create_task(budget.take(5))
    await asyncio.sleep(0)
    assert not second.done() and budget.free == 2
    budget.give(8)
    await asyncio.wait_for(second, 1)
    assert budget.free == 5
