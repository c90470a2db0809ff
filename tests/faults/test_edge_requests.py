"""Bad input on the two signed routes, through the real app on loopback: every case is a 4xx
JSON error, one short log line, no traceback, nothing stored, and Bolt never sees it."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.http import edge
from bot.http.signatures import retell_signature, slack_signature
from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import SIGNING_SECRET, MakeServer, Server, command_form
from tests.support.db import db_rows
from tests.support.process import raw_exchange, status_of
from tests.support.stores import database_for

pytestmark = pytest.mark.slow  # processes, faults with waits, or many examples

TABLES = ("calls", "webhook_events", "outbox", "claims", "dnc", "audit", "call_holds",
          "webhook_inbox")
# The loggers a request's own lines come from (edge refusals, access log, webhook handler).
REQUEST_LOGGERS = ("bot.http.edge", "bot.http", "handlers.webhook")
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def stored(db_path: Path) -> dict[str, int]:
    url = database_for(db_path)
    return {t: db_rows(url, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}


@pytest.fixture(autouse=True)
def _fresh_log_windows() -> None:
    edge.REFUSALS.reset()


def signed_slack(body: bytes, content_type: str = FORM, **headers: str) -> dict[str, str]:
    ts = str(int(time.time()))
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": slack_signature(body, SIGNING_SECRET, ts), **headers}


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@dataclass(frozen=True)
class Case:
    route: str
    body: bytes
    headers: Callable[[bytes, str], dict[str, str]]  # (body, retell key) -> headers
    status: int


def slack_case(body: bytes, content_type: str = FORM, status: int = 400,
               **override: str) -> Case:
    def headers(b: bytes, _key: str) -> dict[str, str]:
        return {**signed_slack(b, content_type), **override}

    return Case("/slack/events", body, headers, status)


def retell_case(body: bytes, status: int = 400, header: str | None = None, **extra: str) -> Case:
    def headers(b: bytes, key: str) -> dict[str, str]:
        sig = header if header is not None else retell_signature(b, key, int(time.time() * 1000))
        return {"Content-Type": JSON, "x-retell-signature": sig, **extra}

    return Case("/retell/webhook", body, headers, status)


COMMAND = urlencode(command_form("/call", "+14155550123", response_url="http://x/r")).encode()
EVENT = json.dumps({"type": "event_callback", "event": {"type": "app_mention"}}).encode()
WEBHOOK = json.dumps({"event": "call_ended", "call": {"call_id": "call_edge"}}).encode()

CASES = {
    # Headers slack_sdk would call int() on, or compare after hashing: refused before Bolt.
    "slack-timestamp-not-a-number": slack_case(COMMAND, status=401,
                                               **{"X-Slack-Request-Timestamp": "soon"}),
    "slack-timestamp-thousands-of-digits": slack_case(
        COMMAND, status=401, **{"X-Slack-Request-Timestamp": "1" * 5000}),
    "slack-timestamp-unicode-digits": slack_case(
        COMMAND, status=401, **{"X-Slack-Request-Timestamp": "١٧٠٠٠٠٠٠٠٠"}),
    "slack-signature-thousands-of-digits": slack_case(
        COMMAND, status=401, **{"X-Slack-Signature": "v0=" + "1" * 5000}),
    "slack-stale": slack_case(COMMAND, status=401,
                              **{"X-Slack-Request-Timestamp": "1600000000"}),
    # Signed bodies slack_bolt's request constructor would raise on (a 500 before our code).
    "slack-json-type-not-json": slack_case(b"this is not json", JSON),
    "slack-json-array": slack_case(b"[1, 2, 3]", JSON),
    "slack-brace-not-json": slack_case(b"{command=/call"),
    "slack-payload-not-json": slack_case(urlencode({"payload": "{nope"}).encode()),
    "slack-payload-not-an-object": slack_case(urlencode({"payload": "[1]"}).encode()),
    "slack-payload-a-string": slack_case(urlencode({"payload": '"block_actions"'}).encode()),
    "slack-json-nested-thousands-deep": slack_case(nested(5000).encode(), JSON),
    "slack-payload-nested-thousands-deep": slack_case(
        urlencode({"payload": "[" * 5000 + "]" * 5000}).encode()),
    "slack-payload-nested-past-our-cap": slack_case(
        urlencode({"payload": nested(edge.JSON_MAX_DEPTH + 1)}).encode()),
    "slack-empty-body": slack_case(b""),
    "slack-lone-surrogate-json": slack_case(b'{"type": "event_callback", "x": "\\ud800"}', JSON),
    "slack-lone-surrogate-payload": slack_case(
        urlencode({"payload": '{"type": "block_actions", "x": "\\udfff"}'}).encode()),
    "slack-not-utf8": slack_case(b"command=%2Fcall&text=\xed\xa0\x80"),
    "slack-compressed": slack_case(gzip.compress(COMMAND), status=415,
                                   **{"Content-Encoding": "gzip"}),
    "slack-deflate": slack_case(zlib.compress(EVENT), JSON, status=415,
                                **{"Content-Encoding": "deflate"}),
    "slack-brotli": slack_case(EVENT, JSON, status=415, **{"Content-Encoding": "br"}),
    "slack-over-the-cap": slack_case(b"text=" + b"a" * edge.SLACK_MAX_BODY, status=413),
    "retell-signature-thousands-of-digits": retell_case(
        WEBHOOK, status=401, header="v=" + "1" * 5000 + ",d=" + "a" * 64),
    "retell-signature-unicode-digits": retell_case(
        WEBHOOK, status=401, header="v=١٧٠٠٠٠٠٠٠٠٠٠٠,d=" + "a" * 64),
    "retell-digest-mismatch": retell_case(
        WEBHOOK, status=401, header=f"v={int(time.time() * 1000)},d=" + "a" * 64),
    "retell-not-json": retell_case(b"not json at all"),
    "retell-nested-thousands-deep": retell_case(b"[" * 5000 + b"]" * 5000),
    "retell-empty-body": retell_case(b""),
    "retell-lone-surrogate": retell_case(
        b'{"event": "call_ended", "call": {"call_id": "call_x", "agent_name": "\\ud800"}}'),
    "retell-compressed": retell_case(gzip.compress(WEBHOOK), status=415,
                                     **{"Content-Encoding": "gzip"}),
}


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    # No automatic compression or decompression: bytes go on the wire as given.
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_input_is_a_4xx_json_error_one_line_and_nothing_stored(
    name: str, server: Server, slack: SlackStandIn, retell: RetellStandIn, db_path: Path,
    client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture,
) -> None:
    case = CASES[name]
    before = stored(db_path)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        async with client.post(server.url + case.route, data=case.body,
                               headers=case.headers(case.body, retell.api_key)) as resp:
            status, answer = resp.status, await resp.text()
        await server.ctx.inflight.wait_idle(5)
    assert status == case.status, answer
    assert set(json.loads(answer)) == {"error"}
    assert stored(db_path) == before
    assert retell.created_calls() == [] and slack.calls_to("chat.postMessage") == []
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    own = [r.getMessage() for r in caplog.records if r.name in REQUEST_LOGGERS]
    assert len(own) == 1, own


async def test_signed_requests_as_slack_and_retell_send_them_still_pass(
    server: Server, retell: RetellStandIn, client: aiohttp.ClientSession,
) -> None:
    async with client.post(server.url + "/slack/events", data=COMMAND,
                           headers=signed_slack(COMMAND, **{"Content-Encoding": "identity"})
                           ) as resp:
        assert resp.status == 200
    body = json.dumps({"event": "call_started", "call": {"call_id": "call_fine"}}).encode()
    headers = {"Content-Type": JSON,
               "x-retell-signature": retell_signature(body, retell.api_key,
                                                      int(time.time() * 1000))}
    async with client.post(server.url + "/retell/webhook", data=body, headers=headers) as resp:
        assert resp.status < 300, await resp.text()


async def test_chunked_bodies_are_counted_on_the_wire(
    server: Server, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture,
) -> None:
    """No Content-Length: the cap still holds, counting bytes as they arrive."""
    chunk = b"a" * 65536
    chunks = edge.SLACK_MAX_BODY // len(chunk) + 2

    async def body() -> AsyncIterator[bytes]:
        for _ in range(chunks):
            yield chunk

    headers = signed_slack(chunk * chunks)  # fresh and well formed: the body is read
    with caplog.at_level(logging.INFO):
        async with client.post(server.url + "/slack/events", data=body(),
                               headers=headers) as resp:
            assert resp.status == 413
            assert "larger than" in (await resp.json())["error"]
    assert len([r for r in caplog.records if r.name in REQUEST_LOGGERS]) == 1


async def test_a_declared_length_over_the_cap_is_refused_before_the_body(
    server: Server,
) -> None:
    """Only headers are sent: the answer comes without waiting for the body."""
    port = int(server.url.rsplit(":", 1)[1])
    for route, cap in (("/slack/events", edge.SLACK_MAX_BODY), ("/retell/webhook", 32 << 20)):
        head = (f"POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: {JSON}\r\n"
                f"Content-Length: {cap + 1}\r\n\r\n").encode()
        assert status_of(await raw_exchange(port, head, timeout=5)) == 413


async def test_large_signed_webhooks_are_verified_off_the_loop_and_accepted(
    server: Server, retell: RetellStandIn, client: aiohttp.ClientSession,
) -> None:
    """Past HASH_INLINE_BYTES the digest runs in a thread; a good one passes, a bad one not."""
    words = [{"word": "hello", "start": i / 10, "end": i / 10 + 0.05} for i in range(40_000)]
    body = json.dumps({"event": "call_started",
                       "call": {"call_id": "call_big", "transcript_object": [
                           {"role": "user", "content": "hello", "words": words}]}}).encode()
    assert len(body) > edge.HASH_INLINE_BYTES
    ts = int(time.time() * 1000)
    good = {"Content-Type": JSON, "x-retell-signature": retell_signature(body, retell.api_key, ts)}
    async with client.post(server.url + "/retell/webhook", data=body, headers=good) as resp:
        assert resp.status < 300, await resp.text()
    bad = {"Content-Type": JSON, "x-retell-signature": retell_signature(body, "other", ts)}
    async with client.post(server.url + "/retell/webhook", data=body, headers=bad) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"] == "invalid signature: digest mismatch"


async def test_a_kept_alive_connection_may_idle_but_its_next_headers_must_come_in_time(
    make_server: MakeServer,
) -> None:
    srv = await make_server(CALLBOT_HEADER_TIMEOUT=0.5)
    port = int(srv.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    # Idle for longer than the header timeout: still open (clients reuse connections).
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 1.5)
    # A request begun and not finished: closed once the header timeout has passed.
    writer.write(b"GET /heal")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.wait_for(reader.read(1), 5) == b""
    assert loop.time() - started >= 0.4
    writer.close()
