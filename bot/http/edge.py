"""The server's edge: what anyone on the internet can make it do before a signature is checked.

- Connections: a header read timeout (aiohttp has none), a bound on their number that sheds
  the oldest connection still waiting for a complete request (never one being answered),
  and error logging that stays bounded under a flood (rate-limited lines with counts).
- Requests to the two signed routes: no compressed bodies (415), a body cap per route counted
  on the wire (413), a body read timeout (408), the signature headers checked before the body
  is read and the digest right after (401), and Slack bodies checked for what slack_bolt
  parses in its request constructor (400), so unsigned or malformed input never reaches Bolt.
- Memory and CPU spent on bodies are bounded across requests: a byte budget for bodies held
  in memory (slow senders hold little of it, unlike a count of concurrent reads) and a
  semaphore for digests of large bodies, computed off the event loop.

Hooks into aiohttp 3.14 (web_protocol.RequestHandler, web_server.Server): `connection_made`,
`data_received` and `_handle_request` mark when a connection waits for a request;
`handle_error`/`log_exception` replace per-request tracebacks; `AppRunner._make_server` is
where the guarded server is swapped in.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest

from bot.config import Settings
from bot.http.signatures import (
    check_retell_header,
    check_retell_signature,
    check_slack_headers,
    check_slack_signature,
)
from bot.runtime.logs import LOGGED
from bot.runtime.metrics import Metrics

log = logging.getLogger("bot.http.edge")
T = TypeVar("T")

# Slack's largest requests are interactions carrying a whole message (block_actions: up to
# 50 blocks of up to 3,000 characters plus 40,000 of text) or a whole modal (view_submission:
# up to 100 blocks and their state), form-encoded, which can triple JSON's punctuation:
# a few hundred KB at most. 1 MiB leaves room and still bounds what an unsigned sender costs.
SLACK_MAX_BODY = 1024 * 1024
# Bodies held in memory at once across all requests: four of Retell's largest.
BODY_BUDGET = 128 * 1024 * 1024
# Digests of bodies larger than this run in a thread (hashlib releases the GIL), a few at once.
HASH_INLINE_BYTES = 256 * 1024
HASH_THREADS = 2
# Slack payloads nest about ten deep; json.loads recurses and fails near 1,000.
JSON_MAX_DEPTH = 64
# Descriptors kept for everything but client connections (database, clients, logs).
FD_RESERVE = 256
# How long a kept-alive connection may sit idle between requests (nginx's default is 75 s;
# aiohttp's client keeps its pooled connections 15 s). Idle ones are shed first when full.
KEEPALIVE_IDLE = 60.0
# Signed a webhook and let it through: the route's handler need not check the digest again.
VERIFIED = web.RequestKey("callbot_signature_verified", bool)


# -- bounded logging ------------------------------------------------------------------------


@dataclass
class _Slot:
    until: float
    level: int
    logged: int = 0
    suppressed: int = 0
    flush: asyncio.TimerHandle | None = None


class LogLimiter:
    """At most `burst` lines per key per `window` seconds; the rest become one line with a
    count at the end of the window. Keys are fixed strings chosen by our code, never input."""

    def __init__(self, logger: logging.Logger, *, burst: int = 5, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.clock = clock
        self.burst = burst
        self.window = window
        self._slots: dict[str, _Slot] = {}

    def allow(self, key: str, level: int = logging.WARNING) -> bool:
        """True when a line for `key` may be logged now; else it is counted."""
        now = self.clock()
        slot = self._slots.get(key)
        if slot is None or now >= slot.until:
            if slot is not None:
                self._close(key, slot)
            slot = self._slots[key] = _Slot(until=now + self.window, level=level)
        if slot.logged < self.burst:
            slot.logged += 1
            return True
        slot.suppressed += 1
        if slot.flush is None:
            with contextlib.suppress(RuntimeError):  # no loop: reported by the next line
                loop = asyncio.get_running_loop()
                slot.flush = loop.call_later(slot.until - now, self._close, key, slot)
        return False

    def log(self, level: int, key: str, msg: str, *args: Any,
            exc_info: BaseException | None = None) -> None:
        if self.allow(key, level):
            self.logger.log(level, msg, *args, exc_info=exc_info)

    def reset(self) -> None:
        """Forget every window (tests: each starts with a full burst)."""
        for key, slot in list(self._slots.items()):
            self._close(key, slot)

    def _close(self, key: str, slot: _Slot) -> None:
        if self._slots.get(key) is slot:
            del self._slots[key]
        if slot.flush is not None:
            slot.flush.cancel()
            slot.flush = None
        if slot.suppressed:
            self.logger.log(slot.level, "%d more %r line(s) in the last %.0f s, not logged",
                            slot.suppressed, key, self.window)
            slot.suppressed = 0


REFUSALS = LogLimiter(log, burst=20, window=10.0)
# A Slack request well formed and fresh but signed with another secret: SLACK_SIGNING_SECRET
# is wrong (or someone else is sending). Said once a minute, with a count of the rest.
SECRET_MISMATCH = LogLimiter(log, burst=1, window=60.0)
SECRET_MISMATCH_LINE = ("slack: a request's signature does not match SLACK_SIGNING_SECRET: "
                        "copy the Signing Secret from the app's Basic Information page (or "
                        "someone else is sending to /slack/events)")


def install_loop_exception_handler(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio logs each failed accept (EMFILE: out of descriptors) and each transport error
    with a traceback; under a flood that is a line per connection. Bound it, per message."""
    limiter = LogLimiter(logging.getLogger("asyncio"), burst=3, window=60.0)

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message") or "event loop error")
        exc = context.get("exception")
        if isinstance(exc, OSError):
            limiter.log(logging.WARNING, message[:80], "%s: %s", message,
                        errno.errorcode.get(exc.errno or 0, type(exc).__name__))
        elif limiter.allow(message[:80], logging.ERROR):
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


# -- descriptors ----------------------------------------------------------------------------


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard limit; (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


def connection_budget(setting: int, open_files: int) -> int:
    """CALLBOT_MAX_CONNECTIONS, but never more than the descriptors left for clients: past
    that, accept() fails (EMFILE) instead of shedding idle connections."""
    reserve = min(FD_RESERVE, open_files // 4)
    return max(16, min(setting, open_files - reserve))


# -- connections ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EdgeLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int


class GuardedHandler(RequestHandler):
    """aiohttp's connection protocol, plus a deadline for the next request's headers."""

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = manager.limits
        self._limiter = manager.limiter
        self._waiting_since: float | None = None  # None while a request is in
        self._idle_for = self._limits.header_timeout  # before the first byte of a request
        self._first_byte: float | None = None  # of the request being waited for
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def awaiting_request(self) -> bool:
        """Has not sent a complete request (headers and body): may be shed."""
        if self._waiting_since is not None:
            return True
        request = self._current_request
        return request is not None and not request.content.is_eof()

    def _wait_for_request(self, idle: float) -> None:
        """A new connection has `header_timeout` to send its request; a kept-alive one may
        stay idle longer (clients reuse connections), but once a request's first byte has
        come, its headers must be complete within `header_timeout` of it."""
        self._waiting_since = self._loop.time()
        self._idle_for = idle
        self._first_byte = None
        self._arm()

    def _due(self) -> float:
        assert self._waiting_since is not None
        due = self._waiting_since + self._idle_for
        if self._first_byte is not None:
            due = min(due, self._first_byte + self._limits.header_timeout)
        return due

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        if self._waiting_since is not None and self.transport is not None:
            self._deadline = self._loop.call_at(self._due(), self._on_deadline)

    def _on_deadline(self) -> None:
        self._deadline = None
        if self._waiting_since is None or self.transport is None:
            return
        if self._loop.time() < self._due():
            self._arm()
            return
        self._limiter.log(logging.INFO, "header timeout",
                          "closed a connection: idle, or request headers not complete within "
                          "%g s", self._limits.header_timeout)
        self.force_close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._wait_for_request(self._limits.header_timeout)

    def data_received(self, data: bytes) -> None:
        count = self._request_count
        super().data_received(data)
        if self._waiting_since is None:
            return
        if self._request_count != count:  # complete headers: the body has its own timeout
            self._waiting_since = None
            self._arm()
        elif data and self._first_byte is None:
            self._first_byte = self._loop.time()
            self._arm()

    async def _handle_request(
        self,
        request: BaseRequest,
        start_time: float | None,
        request_handler: Callable[[BaseRequest], Awaitable[web.StreamResponse]],
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super()._handle_request(request, start_time, request_handler)
        finally:
            if not self._messages and not self._force_close:
                self._wait_for_request(max(KEEPALIVE_IDLE, self._limits.header_timeout))

    def connection_lost(self, exc: BaseException | None) -> None:
        self._waiting_since = None
        self._arm()  # cancels the deadline
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Malformed HTTP (400s from the parser) and our own failures (500): a JSON answer and
        a bounded number of log lines, not a traceback per request."""
        if status >= 500:
            self._limiter.log(logging.ERROR, "handler error", "error handling %s %s",
                              request.method, request.rel_url.raw_path[:100], exc_info=exc)
        else:
            reason = exc.message if isinstance(exc, HttpProcessingError) else message
            self._limiter.log(logging.WARNING, "bad http", "bad HTTP request from %s: %s",
                              request.remote, str(reason or "")[:100].encode("unicode_escape")
                              .decode("ascii"))
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        answer = {"error": "bad HTTP request"} if status < 500 else {"error": "internal error"}
        resp = web.json_response(answer, status=status)
        resp.force_close()
        return resp

    def log_exception(self, *args: Any, **kw: Any) -> None:
        msg = str(args[0]) if args else "unhandled exception"
        exc = kw.get("exc_info")
        self._limiter.log(logging.ERROR, msg[:80], "%s", msg,
                          exc_info=exc if isinstance(exc, BaseException) else None)


class GuardedServer(web.Server):
    """aiohttp's server (the protocol factory) with a bound on open connections."""

    def __init__(self, handler: Any, *, limits: EdgeLimits, limiter: LogLimiter,
                 **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits
        self.limiter = limiter
        self._live: dict[RequestHandler, None] = {}  # oldest first

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, loop=self._loop, **self._kwargs)

    @property
    def open_connections(self) -> int:
        return len(self._live)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._live[handler] = None
        if len(self._live) > self.limits.max_connections:
            self._shed(handler)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self._live.pop(handler, None)
        super().connection_lost(handler, exc)

    def _shed(self, newest: RequestHandler) -> None:
        """Full: close the oldest connection that has not sent a complete request, so idle
        and slow clients make room for new ones; only if every one is busy, the newest."""
        victim = next((c for c in self._live if c is not newest
                       and isinstance(c, GuardedHandler) and c.awaiting_request), newest)
        del self._live[victim]
        self.limiter.log(logging.WARNING, "connections full",
                         "%d connections open (CALLBOT_MAX_CONNECTIONS): closed %s",
                         self.limits.max_connections,
                         "the newest" if victim is newest else "the oldest waiting one")
        victim.force_close()


class EdgeRunner(web.AppRunner):
    """An AppRunner whose server is the guarded one."""

    def __init__(self, app: web.Application, *, limits: EdgeLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits
        self.limiter = LogLimiter(logging.getLogger("aiohttp.server"), burst=5, window=60.0)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return GuardedServer(
            plain.request_handler, request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation, loop=plain._loop,
            limits=self.limits, limiter=self.limiter, **plain._kwargs,
        )

    @property
    def open_connections(self) -> int:
        server = self.server
        return server.open_connections if isinstance(server, GuardedServer) else 0


def make_runner(
    app: web.Application, settings: Settings, *, max_connections: int | None = None,
    **kwargs: Any,
) -> EdgeRunner:
    """The runner for the real server and the tests alike. Bodies are never decompressed
    (compressed requests are refused anyway: counted on the wire, nothing inflates)."""
    limits = EdgeLimits(
        header_timeout=settings.header_timeout, body_timeout=settings.body_timeout,
        max_connections=max_connections or settings.max_connections,
    )
    kwargs.setdefault("access_log", None)
    return EdgeRunner(app, limits=limits, auto_decompress=False, **kwargs)


# -- requests on the signed routes ----------------------------------------------------------


class ByteBudget:
    """Bytes of request bodies in memory at once. A reader that would exceed it waits (under
    its body timeout), which also stops reading its socket: TCP pushes back on the sender."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.free = limit
        self._waiters: list[asyncio.Future[None]] = []

    async def take(self, n: int) -> None:
        while self.free < n:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        self.free -= n

    def give(self, n: int) -> None:
        self.free += n
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


@dataclass(frozen=True)
class _Route:
    kind: Literal["slack", "retell"]
    cap: int


class _Refused(Exception):
    def __init__(self, status: int, message: str, *, body_read: bool = False,
                 wrong_secret: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body_read = body_read
        self.wrong_secret = wrong_secret


def refuse(request: web.Request, status: int, message: str, *, body_read: bool = True,
           logged: bool = False) -> web.Response:
    """A 4xx JSON answer and one short, rate-limited log line (the access log adds none;
    none here either when the caller `logged` its own). Closes the connection when the body
    was not read, so no one lingers to drain it."""
    route = request.match_info.route.resource
    where = route.canonical if route is not None else "other"
    if not logged:
        REFUSALS.log(logging.WARNING, f"{where} {status}", "refused %s %s from %s: %d %s",
                     request.method, where, request.remote, status, message)
    request[LOGGED] = True
    resp = web.json_response({"error": message}, status=status)
    if not body_read:
        resp.force_close()
    return resp


def _too_deep(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def json_object_problem(text: str, what: str) -> str | None:
    """None when `text` is a JSON object json.loads can take, else why not. orjson is strict:
    no lone surrogates, no NaN, at most 1,024 levels; ours is stricter still on depth."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return f"{what} is not valid JSON"
    if not isinstance(value, dict):
        return f"{what} is not a JSON object"
    if _too_deep(value, JSON_MAX_DEPTH):
        return f"{what} is nested too deeply"
    return None


def slack_body_problem(body: bytes, content_type: str) -> str | None:
    """Why slack_bolt's request constructor would fail on this body (it parses JSON bodies,
    and the `payload` field of forms, with json.loads and no checks), else None."""
    if not body:
        return "empty body"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or text.startswith("{"):
        return json_object_problem(text, "body")
    if "payload" in text:
        payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
        if payload is not None:
            return json_object_problem(payload, "payload")
    return None


class Edge:
    """The checks in front of `/slack/events` and `/retell/webhook` (see the module doc)."""

    def __init__(self, settings: Settings, metrics: Metrics, *, retell_cap: int) -> None:
        self.settings = settings
        self.metrics = metrics
        self.routes = {
            "/slack/events": _Route("slack", SLACK_MAX_BODY),
            "/retell/webhook": _Route("retell", retell_cap),
        }
        self.budget = ByteBudget(max(BODY_BUDGET, 2 * retell_cap))
        self.hashing = asyncio.Semaphore(HASH_THREADS)

    def middleware(self) -> Middleware:
        @web.middleware
        async def edge(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            resource = request.match_info.route.resource
            route = (self.routes.get(resource.canonical)
                     if resource is not None and request.method == "POST" else None)
            if route is None:
                return await handler(request)
            held = 0
            try:
                self._check_headers(request, route)
                body, held = await self._read(request, route.cap)
                await self._verify(request, route, body)
            except _Refused as refused:
                if route.kind == "retell" and refused.status == 401:
                    self.metrics.webhook_events.labels("unknown", "unsigned").inc()
                if refused.wrong_secret:
                    SECRET_MISMATCH.log(logging.WARNING, "slack signing secret",
                                        SECRET_MISMATCH_LINE)
                return refuse(request, refused.status, refused.message,
                              body_read=refused.body_read, logged=refused.wrong_secret)
            else:
                request._read_bytes = body  # what request.read() returns from here on
                request[VERIFIED] = True
                return await handler(request)
            finally:
                self.budget.give(held)

        return edge

    def _check_headers(self, request: web.Request, route: _Route) -> None:
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise _Refused(415, "compressed bodies are not accepted (Content-Encoding)")
        length = request.content_length
        if length is not None and length > route.cap:
            raise _Refused(413, f"body larger than {route.cap} bytes")
        if route.kind == "slack":
            reason = check_slack_headers(request.headers.get("X-Slack-Request-Timestamp"),
                                         request.headers.get("X-Slack-Signature"))
        else:
            checked = check_retell_header(request.headers.get("x-retell-signature"))
            reason = checked if isinstance(checked, str) else None
        if reason:
            raise _Refused(401, f"invalid signature: {reason}")

    async def _read(self, request: web.Request, cap: int) -> tuple[bytes, int]:
        """The body, counted as it arrives (chunked bodies have no Content-Length); and the
        bytes taken from the budget, which the caller gives back when the request is done."""
        chunks: list[bytes] = []
        held = total = 0
        try:
            async with asyncio.timeout(self.settings.body_timeout):
                while chunk := await request.content.readany():
                    total += len(chunk)
                    if total > cap:
                        raise _Refused(413, f"body larger than {cap} bytes")
                    await self.budget.take(len(chunk))
                    held += len(chunk)
                    chunks.append(chunk)
        except TimeoutError:
            self.budget.give(held)
            raise _Refused(408, f"body not received within {self.settings.body_timeout:g} s"
                           ) from None
        except (OSError, RequestPayloadError, HttpProcessingError):
            self.budget.give(held)
            raise _Refused(400, "body could not be read") from None
        except _Refused:
            self.budget.give(held)
            raise
        return b"".join(chunks), held

    async def _digest(self, size: int, compute: Callable[[], T]) -> T:
        """Small bodies inline; large ones in a thread, a few at a time."""
        if size <= HASH_INLINE_BYTES:
            return compute()
        async with self.hashing:
            return await asyncio.to_thread(compute)

    async def _verify(self, request: web.Request, route: _Route, body: bytes) -> None:
        headers = request.headers
        if route.kind == "slack":
            secret = self.settings.slack_signing_secret or ""
            reason = await self._digest(len(body), lambda: check_slack_signature(
                body, secret, headers.get("X-Slack-Request-Timestamp"),
                headers.get("X-Slack-Signature")))
            if reason:
                raise _Refused(401, f"invalid signature: {reason}", body_read=True,
                               wrong_secret=reason == "digest mismatch")
            problem = slack_body_problem(body, headers.get("Content-Type", ""))
            if problem:
                raise _Refused(400, problem, body_read=True)
            return
        key = self.settings.webhook_key
        # The header again too: it may have gone stale while the body arrived.
        reason = await self._digest(len(body), lambda: check_retell_signature(
            body, key, headers.get("x-retell-signature")))
        if reason:
            raise _Refused(401, f"invalid signature: {reason}", body_read=True)


