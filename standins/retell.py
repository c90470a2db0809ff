"""A local stand-in for the Retell API, so tests never call (or pay for) the real service.

It answers the endpoints the bot uses with JSON shaped like Retell's real answers (see
/work/shared/retell-api.md and the retell-sdk ``types/``), records every request, can be
told to fail, hang or drop a connection, and builds and sends webhooks signed exactly the way
Retell signs them. It never imports retell-sdk, so the SDK stays an independent oracle.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from standins.loopback import LoopbackServer

E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")

# Retell reports these dial failures with call_status "not_connected" instead of "ended".
NOT_CONNECTED_REASONS = frozenset(
    {"dial_no_answer", "dial_busy", "dial_failed", "invalid_destination", "marked_as_spam"}
)

DEFAULT_MESSAGES: dict[int, str] = {
    400: "Bad request",
    401: "Invalid API key",
    402: "Insufficient credit in account",
    403: "Forbidden",
    404: "Not found",
    408: "Request timeout",
    409: "Conflict",
    422: "Cannot find requested asset under given api key",
    429: "Account rate limited",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}

ASSET_NOT_FOUND = "Cannot find requested asset under given api key"

# A call holds a concurrency slot while Retell reports it in one of these states.
LIVE_STATUSES = frozenset({"registered", "ongoing"})
# Retell's default workspace concurrency (retell-api.md, Limits).
DEFAULT_CONCURRENCY = 20

# Fields that only exist once a call is over; stripped from call_started bodies.
_END_FIELDS = (
    "end_timestamp",
    "duration_ms",
    "transcript",
    "transcript_object",
    "recording_url",
    "recording_multi_channel_url",
    "public_log_url",
    "disconnection_reason",
    "call_cost",
    "latency",
    "llm_token_usage",
    "call_analysis",
    "collected_dynamic_variables",
)
# Bulky fields /v3/list-calls leaves out of its items.
_LIST_OMIT = ("transcript", "transcript_object", "transcript_with_tool_calls")

# Cents per second, roughly Retell's public pricing; only needs to look plausible.
_PRODUCT_PRICES: tuple[tuple[str, float], ...] = (
    ("retell_platform", 0.0917),
    ("elevenlabs_tts", 0.0117),
    ("gpt_4o_mini", 0.0008),
    ("us_telephony", 0.0250),
)


def sign(body: str, key: str, ts_ms: int | None = None) -> str:
    """Return an ``x-retell-signature`` value, computed the way Retell computes it."""
    ts = int(time.time() * 1000) if ts_ms is None else ts_ms
    digest = hmac.new(key.encode(), (body + str(ts)).encode(), hashlib.sha256).hexdigest()
    return f"v={ts},d={digest}"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _agent_id() -> str:
    return "agent_" + secrets.token_hex(12)


def _call_id() -> str:
    return "call_" + secrets.token_hex(16)


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


def _error(status: int, message: str, *, legacy: bool = False) -> web.Response:
    body = {"error_message": message} if legacy else {"status": "error", "message": message}
    return _json(body, status=status)


def _pretty(number: str) -> str:
    """Format a NANP number like Retell's ``phone_number_pretty``; others stay as given."""
    if number.startswith("+1") and len(number) == 12:
        return f"+1 ({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


def _latency(base: float) -> dict[str, float]:
    values = [base * f for f in (0.8, 0.9, 1.0, 1.1, 1.6)]
    return {
        "p50": base,
        "p90": round(base * 1.4, 1),
        "p95": round(base * 1.5, 1),
        "p99": round(base * 1.6, 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
        "num": len(values),
    }


@dataclass
class RecordedRequest:
    """One request as the stand-in saw it, for assertions about what the bot sent."""

    method: str
    path: str
    query: dict[str, str]
    json: Any | None
    headers: dict[str, str]


@dataclass
class _Rule:
    """A queued failure; ``kind`` is "fail", "hang", "drop", "answer" or "late"."""

    prefix: str
    kind: str
    remaining: int
    status: int = 500
    message: str = ""
    retry_after: int | None = None
    legacy: bool = False
    seconds: float = 0.0
    body: Any = None
    after: int = 0  # requests under ``prefix`` let through before the rule applies


class RetellStandIn(LoopbackServer):
    """A Retell API on 127.0.0.1 with an OS-picked port; see the module docstring."""

    def __init__(
        self,
        api_key: str = "key_test_retell",
        *,
        agents: list[dict[str, Any]] | None = None,
        phone_numbers: list[dict[str, Any]] | None = None,
        concurrency_limit: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.api_key = api_key
        # What get-concurrency reports as the workspace's limit (base + purchased). The
        # stand-in does not enforce it: tests assert on ``max_live`` instead.
        self.concurrency_limit = concurrency_limit
        # Merged last into the get-concurrency answer (e.g. burst settings, or a
        # ``current_concurrency`` that includes calls placed by other apps).
        self.concurrency_overrides: dict[str, Any] = {}
        # Highest number of live calls (registered or ongoing) seen at once.
        self.max_live = 0
        self._live: set[str] = set()
        self.agents: list[dict[str, Any]] = [
            self._agent_defaults(a) for a in (agents if agents is not None else _default_agents())
        ]
        first = self.agents[0]["agent_id"] if self.agents else None
        second = self.agents[1]["agent_id"] if len(self.agents) > 1 else first
        raw_numbers = (
            phone_numbers if phone_numbers is not None else _default_numbers(first, second)
        )
        self.phone_numbers: list[dict[str, Any]] = [self._number_defaults(n) for n in raw_numbers]
        self.calls: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self.idempotency_keys: dict[str, str] = {}
        self.create_delay: float = 0.0
        self.agents_page_size: int = 1000
        self.phone_numbers_page_size: int = 1000
        self._created_bodies: list[dict[str, Any]] = []
        self._rules: list[_Rule] = []
        self._closing = asyncio.Event()
        # Told (event, call_id) of each call created ("created", not replays) and each live
        # call stopped ("stopped"): bot/retell/simulator.py plays a call's life from these.
        self.on_call: Callable[[str, str], None] | None = None

    # ----- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Bind 127.0.0.1 on a free port and start answering."""
        self._closing = asyncio.Event()
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v2/create-phone-call", self._create_phone_call)
        app.router.add_get("/v2/get-call/{call_id}", self._get_call)
        app.router.add_post("/v2/stop-call/{call_id}", self._stop_call)
        app.router.add_post("/v3/list-calls", self._list_calls)
        app.router.add_post("/v2/list-agents", self._list_agents)
        app.router.add_get("/get-agent/{agent_id}", self._get_agent)
        app.router.add_get("/v2/list-phone-numbers", self._list_phone_numbers)
        app.router.add_get("/get-concurrency", self._get_concurrency)
        # A short shutdown timeout keeps close() quick while a hang_next() sleep is pending.
        await self._serve(app, shutdown_timeout=1.0)

    async def close(self) -> None:
        """Stop the server, waking any request that is still hanging."""
        self._closing.set()
        await self._shutdown()

    # ----- failure injection -----------------------------------------------------------

    def fail_next(
        self,
        path: str,
        status: int,
        message: str | None = None,
        *,
        times: int = 1,
        retry_after: int | None = None,
        legacy_error_key: bool = False,
        after: int = 0,
    ) -> None:
        """Answer the next ``times`` requests under ``path`` with an error status, once
        ``after`` more of them have been answered normally (a failure mid-way through a
        paginated read)."""
        text = message if message is not None else DEFAULT_MESSAGES.get(status, f"Error {status}")
        self._rules.append(
            _Rule(
                path,
                "fail",
                times,
                status=status,
                message=text,
                retry_after=retry_after,
                legacy=legacy_error_key,
                after=after,
            )
        )

    def hang_next(self, path: str, seconds: float, *, times: int = 1) -> None:
        """Sleep ``seconds`` before answering (normally) the next requests under ``path``.

        The request is still processed after the sleep, like a slow Retell that finishes the
        work after the client gave up: a timed-out create-phone-call does create a call.
        """
        self._rules.append(_Rule(path, "hang", times, seconds=seconds))

    def drop_next(self, path: str, *, times: int = 1) -> None:
        """Close the connection without any answer for the next requests under ``path``.

        Note: aiohttp's client (3.14) silently retries an idempotent request (GET, PUT, ...)
        once when the server disconnects; use ``times=2`` to make such a client see the error.
        """
        self._rules.append(_Rule(path, "drop", times))

    def answer_next(self, path: str, status: int, body: Any, *, times: int = 1) -> None:
        """Answer the next requests under ``path`` with ``body`` (JSON) and ``status``, doing
        nothing: a Retell that answers 2xx with something a client cannot use."""
        self._rules.append(_Rule(path, "answer", times, status=status, body=body))

    def _take_rule(self, path: str) -> _Rule | None:
        for rule in self._rules:
            if path.startswith(rule.prefix):
                if rule.after > 0:
                    rule.after -= 1
                    return None
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._rules.remove(rule)
                return rule
        return None

    # ----- live calls ------------------------------------------------------------------

    @property
    def live_now(self) -> int:
        """Calls holding a concurrency slot now: from create (registered) until they end.

        Tracked through create-phone-call, ``new_inbound_call``, stop-call and
        ``event_body``; a test that edits ``calls[...]["call_status"]`` by hand bypasses it.
        """
        return len(self._live)

    def reset_max_live(self) -> None:
        """Start a new high-water mark from the calls live now (e.g. between test phases)."""
        self.max_live = len(self._live)

    def _track(self, call: dict[str, Any]) -> None:
        """Move a call in or out of the live set after any change of its status."""
        if call.get("call_status") in LIVE_STATUSES:
            self._live.add(call["call_id"])
            self.max_live = max(self.max_live, len(self._live))
        else:
            self._live.discard(call["call_id"])

    # ----- request log -----------------------------------------------------------------

    def created_calls(self) -> list[dict[str, Any]]:
        """JSON bodies of create-phone-call requests that created a call (not replays)."""
        return list(self._created_bodies)

    def answer_late_next(self, path: str, seconds: float, *, times: int = 1) -> None:
        """Do the next ``times`` requests under ``path`` at once (a create does place the
        call) but hold each answer ``seconds``: a client that dies meanwhile never learns
        what Retell did, as when a process is killed between Retell's answer and its
        commit."""
        self._rules.append(_Rule(path, "late", times, seconds=seconds))

    def clear_rules(self) -> None:
        """Forget every queued failure, hang or late answer."""
        self._rules.clear()

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Any,
    ) -> web.StreamResponse:
        """Record, apply injected failures, then check the API key."""
        raw = await request.read()
        parsed: Any | None = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        if "authorization" in headers:
            headers["authorization"] = "<redacted>"
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), parsed, headers)
        )

        rule = self._take_rule(request.path)
        if rule is not None and rule.kind == "fail":
            resp = _error(rule.status, rule.message, legacy=rule.legacy)
            if rule.retry_after is not None:
                resp.headers["retry-after"] = str(rule.retry_after)
            return resp
        if rule is not None and rule.kind == "answer":
            return web.json_response(rule.body, status=rule.status)
        if rule is not None and rule.kind == "drop":
            transport = request.transport
            if transport is not None:
                transport.abort()
            # Nothing can be written any more; raising stops aiohttp from trying.
            raise asyncio.CancelledError
        if rule is not None and rule.kind == "hang":
            try:
                await asyncio.wait_for(self._closing.wait(), rule.seconds)
            except TimeoutError:
                pass

        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "Invalid API key")
        result: web.StreamResponse = await handler(request)
        if rule is not None and rule.kind == "late":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), rule.seconds)
        return result

    # ----- data defaults ---------------------------------------------------------------

    @staticmethod
    def _agent_defaults(agent: dict[str, Any]) -> dict[str, Any]:
        """Fill an agent dict up to the shape of the SDK's AgentResponse."""
        a = copy.deepcopy(agent)
        a.setdefault("agent_id", _agent_id())
        a.setdefault("agent_name", "Agent")
        a.setdefault("channel", "voice")
        a.setdefault("version", 1)
        a.setdefault("is_published", True)
        a.setdefault("is_suspended", False)
        a.setdefault("is_transfer_agent", False)
        a.setdefault(
            "response_engine",
            {"type": "retell-llm", "llm_id": "llm_" + secrets.token_hex(12), "version": 1},
        )
        a.setdefault("voice_id", "11labs-Adrian")
        a.setdefault("language", "en-US")
        a.setdefault("max_call_duration_ms", 3_600_000)
        a.setdefault("webhook_url", None)
        a.setdefault("tags", {})
        ts = _now_ms()
        a.setdefault("last_modification_timestamp", ts)
        a.setdefault("user_modified_timestamp", a["last_modification_timestamp"])
        return a

    @staticmethod
    def _number_defaults(number: dict[str, Any]) -> dict[str, Any]:
        """Fill a phone-number dict up to the shape of the SDK's PhoneNumberResponse."""
        n = copy.deepcopy(number)
        pn = n["phone_number"]
        n.setdefault("phone_number_type", "retell-twilio")
        n.setdefault("phone_number_pretty", _pretty(pn))
        if pn.startswith("+1") and len(pn) == 12:
            n.setdefault("area_code", int(pn[2:5]))
        n.setdefault("nickname", None)
        n.setdefault("outbound_agent_id", None)
        n.setdefault("inbound_agent_id", None)
        for side in ("outbound", "inbound"):
            bound = n[f"{side}_agent_id"]
            n.setdefault(f"{side}_agents", [{"agent_id": bound, "weight": 1}] if bound else [])
        n.setdefault("last_modification_timestamp", _now_ms())
        return n

    def _agent(self, agent_id: str | None) -> dict[str, Any] | None:
        return next((a for a in self.agents if a["agent_id"] == agent_id), None)

    def _number(self, phone_number: str) -> dict[str, Any] | None:
        return next((n for n in self.phone_numbers if n["phone_number"] == phone_number), None)

    # ----- endpoints -------------------------------------------------------------------

    async def _create_phone_call(self, request: web.Request) -> web.Response:
        if self.create_delay > 0:
            await asyncio.sleep(self.create_delay)
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Invalid JSON body")
        if not isinstance(body, dict):
            return _error(400, "Request body must be a JSON object")

        key = body.get("idempotency_key")
        if key is not None and not isinstance(key, str):
            return _error(400, "idempotency_key must be a string")
        if key is not None and key in self.idempotency_keys:
            return _json(self.calls[self.idempotency_keys[key]], status=201)

        for field in ("from_number", "to_number"):
            value = body.get(field)
            if value is None or value == "":
                return _error(400, f"{field} is required")
            if not isinstance(value, str) or not E164_RE.match(value):
                return _error(400, f"{field} must be a valid E.164 phone number, got {value!r}")
        number = self._number(body["from_number"])
        if number is None:
            return _error(404, f"Phone number {body['from_number']} not found under given api key")

        override = body.get("override_agent_id")
        if override is not None:
            agent = self._agent(override)
            if agent is None:
                return _error(422, ASSET_NOT_FOUND)
        else:
            agent = self._agent(number.get("outbound_agent_id"))
            if agent is None:
                return _error(
                    400,
                    f"Phone number {body['from_number']} has no outbound agent; "
                    "set one or pass override_agent_id",
                )

        version = body.get("override_agent_version", agent.get("version", 1))
        if not isinstance(version, int) or isinstance(version, bool):
            return _error(400, "override_agent_version must be an integer")

        dyn = body.get("retell_llm_dynamic_variables")
        if dyn is not None and not (
            isinstance(dyn, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in dyn.items())
        ):
            return _error(400, "retell_llm_dynamic_variables must be an object of string values")

        call: dict[str, Any] = {
            "call_id": _call_id(),
            "call_type": "phone_call",
            "agent_id": agent["agent_id"],
            "agent_name": agent.get("agent_name"),
            "agent_version": version,
            "direction": "outbound",
            "from_number": body["from_number"],
            "to_number": body["to_number"],
            "call_status": "registered",
            "data_storage_setting": "everything",
            "opt_in_signed_url": False,
        }
        if "metadata" in body:
            call["metadata"] = body["metadata"]
        if dyn is not None:
            call["retell_llm_dynamic_variables"] = dyn
        if body.get("custom_sip_headers") is not None:
            call["custom_sip_headers"] = body["custom_sip_headers"]
        self.calls[call["call_id"]] = call
        self._track(call)
        self._created_bodies.append(body)
        if key is not None:
            self.idempotency_keys[key] = call["call_id"]
        if self.on_call is not None:
            self.on_call("created", call["call_id"])
        return _json(call, status=201)

    async def _get_call(self, request: web.Request) -> web.Response:
        call = self.calls.get(request.match_info["call_id"])
        if call is None:
            return _error(404, "Call not found")
        return _json(call)

    async def _stop_call(self, request: web.Request) -> web.Response:
        call = self.calls.get(request.match_info["call_id"])
        if call is None:
            return _error(404, "Call not found")
        if call["call_status"] in ("registered", "ongoing"):
            now = _now_ms()
            call["call_status"] = "ended"
            call["disconnection_reason"] = "manual_stopped"
            call["end_timestamp"] = now
            if "start_timestamp" in call:
                call["duration_ms"] = now - call["start_timestamp"]
            self._track(call)
            if self.on_call is not None:
                self.on_call("stopped", call["call_id"])
        return web.Response(status=204)

    async def _list_calls(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return _error(400, "Invalid JSON body")
        body = body if isinstance(body, dict) else {}
        limit = body.get("limit", 50)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            return _error(400, "limit must be an integer between 1 and 1000")
        try:
            calls = [c for c in self.calls.values() if _matches(c, body.get("filter_criteria"))]
        except ValueError as exc:
            return _error(400, str(exc))
        if body.get("sort_order", "descending") == "descending":
            calls.reverse()
        page, more, next_key = _page(calls, "call_id", limit, body.get("pagination_key"))
        if page is None:
            return _error(400, "Invalid pagination_key")
        items = [{k: v for k, v in c.items() if k not in _LIST_OMIT} for c in page]
        answer: dict[str, Any] = {"items": items, "has_more": more, "pagination_key": next_key}
        if body.get("include_total") is True:
            answer["total"] = len(calls)
        return _json(answer)

    async def _list_agents(self, request: web.Request) -> web.Response:
        limit = _query_limit(request)
        if limit is None:
            return _error(400, "limit must be a positive integer")
        page, more, next_key = _page(
            self.agents,
            "agent_id",
            min(limit, self.agents_page_size),
            request.query.get("pagination_key"),
        )
        if page is None:
            return _error(400, "Invalid pagination_key")
        keys = (
            "agent_id",
            "agent_name",
            "channel",
            "is_suspended",
            "tags",
            "user_modified_timestamp",
            "is_transfer_agent",
        )
        items = [{k: a.get(k) for k in keys} for a in page]
        return _json({"items": items, "has_more": more, "pagination_key": next_key})

    async def _get_agent(self, request: web.Request) -> web.Response:
        agent = self._agent(request.match_info["agent_id"])
        if agent is None:
            return _error(404, ASSET_NOT_FOUND)
        return _json(agent)

    async def _list_phone_numbers(self, request: web.Request) -> web.Response:
        limit = _query_limit(request)
        if limit is None:
            return _error(400, "limit must be a positive integer")
        page, more, next_key = _page(
            self.phone_numbers,
            "phone_number",
            min(limit, self.phone_numbers_page_size),
            request.query.get("pagination_key"),
        )
        if page is None:
            return _error(400, "Invalid pagination_key")
        return _json({"items": page, "has_more": more, "pagination_key": next_key})

    async def _get_concurrency(self, request: web.Request) -> web.Response:
        """Where the workspace stands: live calls against the limit (base + purchased)."""
        limit = self.concurrency_limit
        base = min(limit, DEFAULT_CONCURRENCY)
        answer: dict[str, Any] = {
            "current_concurrency": self.live_now,
            "concurrency_limit": limit,
            "base_concurrency": base,
            "purchased_concurrency": limit - base,
            "concurrency_purchase_limit": 100,
            "remaining_purchase_limit": max(0, 100 - (limit - base)),
            "reserved_inbound_concurrency": 0,
            "concurrency_burst_enabled": False,
            "concurrency_burst_limit": 0,
        }
        answer.update(self.concurrency_overrides)
        return _json(answer)

    # ----- calls and webhooks ----------------------------------------------------------

    def new_inbound_call(self, from_number: str, to_number: str) -> str:
        """Register an inbound call (no metadata) as if someone dialled one of our numbers."""
        number = self._number(to_number)
        agent = self._agent(number.get("inbound_agent_id") if number else None)
        if agent is None and self.agents:
            agent = self.agents[0]
        call_id = _call_id()
        call: dict[str, Any] = {
            "call_id": call_id,
            "call_type": "phone_call",
            "agent_id": agent["agent_id"] if agent else _agent_id(),
            "agent_name": agent.get("agent_name") if agent else None,
            "agent_version": int(agent.get("version", 1)) if agent else 1,
            "direction": "inbound",
            "from_number": from_number,
            "to_number": to_number,
            "call_status": "registered",
            "data_storage_setting": "everything",
            "opt_in_signed_url": False,
        }
        self.calls[call_id] = call
        self._track(call)
        return call_id

    def add_past_call(
        self,
        start_ms: int,
        *,
        direction: str = "outbound",
        number: str = "+14155550123",
        analyzed: bool = True,
        **overrides: Any,
    ) -> str:
        """A call that happened before the app was set up (over, and analysed unless
        ``analyzed`` is False), as list-calls and get-call then report it: what a history
        import reads. ``overrides`` go into the call as `event_body`'s do (disconnection
        reason, duration, metadata, ``call_analysis`` merged key by key)."""
        agent = self.agents[0] if self.agents else self._agent_defaults({})
        ours = self.phone_numbers[0]["phone_number"] if self.phone_numbers else "+14155550100"
        call_id = _call_id()
        self.calls[call_id] = {
            "call_id": call_id,
            "call_type": "phone_call",
            "agent_id": agent["agent_id"],
            "agent_name": agent.get("agent_name"),
            "agent_version": int(agent.get("version", 1)),
            "direction": direction,
            "from_number": number if direction == "inbound" else ours,
            "to_number": ours if direction == "inbound" else number,
            "call_status": "registered",
            "start_timestamp": start_ms,
            "data_storage_setting": "everything",
            "opt_in_signed_url": False,
        }
        self.event_body(call_id, "call_analyzed" if analyzed else "call_ended", **overrides)
        return call_id

    def event_body(self, call_id: str, event: str, **overrides: Any) -> str:
        """Advance the stored call to ``event`` and return the webhook JSON text.

        Events may be built in any order; the stored call keeps the most advanced state and
        each body shows what Retell would send for that event. ``overrides`` are merged into
        the call (``call_analysis`` is merged key by key).
        """
        call = self.calls.get(call_id)
        if call is None:
            raise KeyError(f"unknown call_id {call_id!r}")
        analysis_override = overrides.pop("call_analysis", None)
        if event == "call_started":
            call.setdefault("start_timestamp", _now_ms())
            if call["call_status"] == "registered":
                call["call_status"] = "ongoing"
        elif event in ("call_ended", "call_analyzed"):
            self._end_call(call, overrides)
            if event == "call_analyzed" and "call_analysis" not in call:
                call["call_analysis"] = self._analysis(call)
        call.update(overrides)
        if isinstance(analysis_override, dict):
            call["call_analysis"] = {**call.get("call_analysis", {}), **analysis_override}
        elif analysis_override is not None:
            call["call_analysis"] = analysis_override
        self._track(call)

        out = copy.deepcopy(call)
        if event == "call_started":
            for field in _END_FIELDS:
                if field not in overrides:
                    out.pop(field, None)
            out["call_status"] = overrides.get("call_status", "ongoing")
        elif event == "call_ended" and analysis_override is None:
            out.pop("call_analysis", None)
        return _dumps({"event": event, "call": out})

    def _end_call(self, call: dict[str, Any], overrides: dict[str, Any]) -> None:
        """Fill in everything Retell reports once a call is over, unless already there."""
        reason = overrides.get("disconnection_reason", call.get("disconnection_reason"))
        if reason is None:
            reason = "user_hangup"
        connected = reason not in NOT_CONNECTED_REASONS
        same_reason = call.get("disconnection_reason") == reason
        if "call_cost" in call and same_reason and "duration_ms" not in overrides:
            return
        duration = overrides.get("duration_ms", call.get("duration_ms"))
        if duration is None:
            duration = 42_000 if connected else 0
        start = call.get("start_timestamp")
        if start is None:
            start = _now_ms() - duration
        call["start_timestamp"] = start
        call["end_timestamp"] = start + duration
        call["duration_ms"] = duration
        call["disconnection_reason"] = reason
        call["call_status"] = "ended" if connected else "not_connected"
        call.pop("call_analysis", None)
        seconds = round(duration / 1000, 3)
        products = _PRODUCT_PRICES if connected else ()
        costs: list[dict[str, Any]] = [
            {"product": p, "unit_price": price, "cost": round(price * seconds, 4)}
            for p, price in products
        ]
        call["call_cost"] = {
            "product_costs": costs,
            "combined_cost": round(sum(float(c["cost"]) for c in costs), 4),
            "total_duration_seconds": seconds,
            "total_duration_unit_price": round(sum(price for _, price in products), 4),
        }
        if connected:
            turns = self._turns(call)
            call["transcript"] = "\n".join(f"{r.capitalize()}: {t}" for r, t in turns) + "\n"
            call["transcript_object"] = transcript_object(turns)
            base = "https://dxc03zgurdly9.cloudfront.net/" + secrets.token_hex(32)
            call["recording_url"] = f"{base}/recording.wav"
            call["public_log_url"] = f"{base}/public.log"
            call["latency"] = {
                "e2e": _latency(1180.0),
                "llm": _latency(620.0),
                "tts": _latency(290.0),
                "asr": _latency(140.0),
            }
        else:
            call["transcript"] = ""
            call["transcript_object"] = []
            for field in ("recording_url", "public_log_url", "latency"):
                call.pop(field, None)

    @staticmethod
    def _turns(call: dict[str, Any]) -> list[tuple[str, str]]:
        dyn = call.get("retell_llm_dynamic_variables") or {}
        name = dyn.get("customer_name") or dyn.get("name") or "there"
        agent = call.get("agent_name") or "your assistant"
        return [
            ("agent", f"Hi {name}, this is {agent}. Is now a good time to talk?"),
            ("user", "Yes, sure. Could we meet at the café on Main Street on Friday?"),
            ("agent", "Friday at the café works. I'll send a confirmation. Anything else?"),
            ("user", "No, that's all. Viele Grüße and thanks!"),
        ]

    @staticmethod
    def _analysis(call: dict[str, Any]) -> dict[str, Any]:
        reason = call.get("disconnection_reason")
        if call.get("call_status") == "not_connected":
            return {
                "call_summary": "The call did not connect.",
                "user_sentiment": "Unknown",
                "call_successful": False,
                "in_voicemail": False,
                "custom_analysis_data": {},
            }
        voicemail = reason == "voicemail_reached"
        return {
            "call_summary": (
                "The call reached voicemail; the agent left a short message."
                if voicemail
                else "The agent called the user, who agreed to meet at the café on Friday."
            ),
            "user_sentiment": "Neutral" if voicemail else "Positive",
            "call_successful": not voicemail,
            "in_voicemail": voicemail,
            "custom_analysis_data": {},
        }

    def webhook_headers(
        self, body: str, key: str | None = None, ts_ms: int | None = None
    ) -> dict[str, str]:
        """Headers Retell would send with ``body`` (signed with ``key`` or the API key)."""
        return {
            "content-type": "application/json",
            "x-retell-signature": sign(body, key if key is not None else self.api_key, ts_ms),
        }

    async def send_webhook(
        self,
        url: str,
        body: str,
        *,
        key: str | None = None,
        ts_ms: int | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """POST ``body`` to ``url`` like Retell does; return (status, JSON or text).

        ``signature`` replaces the computed one; ``signature=""`` sends no signature header.
        """
        sent = self.webhook_headers(body, key, ts_ms)
        if signature is not None:
            if signature == "":
                del sent["x-retell-signature"]
            else:
                sent["x-retell-signature"] = signature
        sent.update(headers or {})
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, data=body.encode("utf-8"), headers=sent) as resp,
        ):
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text


def transcript_object(turns: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Retell's per-utterance transcript, with plausible word timings (the simulator uses
    it too)."""
    out: list[dict[str, Any]] = []
    t = 0.4
    for role, text in turns:
        words = []
        for w in text.split():
            words.append({"word": w, "start": round(t, 2), "end": round(t + 0.3, 2)})
            t += 0.35
        out.append({"role": role, "content": text, "words": words})
        t += 0.9
    return out


def _query_limit(request: web.Request) -> int | None:
    raw = request.query.get("limit", "1000")
    try:
        limit = int(raw)
    except ValueError:
        return None
    return limit if limit > 0 else None


def _page(
    items: list[dict[str, Any]], id_key: str, size: int, after: Any
) -> tuple[list[dict[str, Any]] | None, bool, str | None]:
    """Cut one page after the item whose ``id_key`` equals ``after`` (Retell-style keys)."""
    start = 0
    if after:
        ids = [i[id_key] for i in items]
        if after not in ids:
            return None, False, None
        start = ids.index(after) + 1
    page = items[start : start + size]
    more = start + size < len(items)
    return page, more, (page[-1][id_key] if more and page else None)


def _default_agents() -> list[dict[str, Any]]:
    return [
        {"agent_id": "agent_abc1f3d2e4b5a6c7d8e9f0a1", "agent_name": "Sales Follow-up"},
        {"agent_id": "agent_5e2d9c8b7a6f5e4d3c2b1a09", "agent_name": "Appointment Reminder"},
        {"agent_id": "agent_9f8e7d6c5b4a39281706f5e4", "agent_name": "Survey Bot"},
    ]


def _default_numbers(first: str | None, second: str | None) -> list[dict[str, Any]]:
    return [
        {
            "phone_number": "+14155550100",
            "nickname": "Sales line",
            "outbound_agent_id": first,
            "inbound_agent_id": first,
        },
        {
            "phone_number": "+14155550199",
            "nickname": "Support line",
            "outbound_agent_id": None,
            "inbound_agent_id": second,
        },
    ]


_NUMBER_OPS: dict[str, Callable[[float, float], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def _number_matches(value: Any, rule: Any) -> bool:
    """One number filter (`{op, type: number, value}`) or range (`{op: bt, type: range,
    value: [low, high]}`), as list-calls' start_timestamp and end_timestamp take them."""
    if not isinstance(rule, dict):
        raise ValueError(f"unsupported number filter {rule!r}")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False  # a call without the field matches no bound on it
    if rule.get("type") == "range" and rule.get("op") == "bt":
        low, high = rule["value"]
        return bool(low <= value <= high)
    compare = _NUMBER_OPS.get(rule.get("op", ""))
    if rule.get("type") != "number" or compare is None:
        raise ValueError(f"unsupported number filter {rule!r}")
    return compare(value, rule["value"])


def _matches(call: dict[str, Any], criteria: Any) -> bool:
    """list-calls' filters the app sends: keyed metadata (string `eq` only) and start/end
    time bounds."""
    if not isinstance(criteria, dict):
        return True
    for field in ("start_timestamp", "end_timestamp"):
        if field in criteria and not _number_matches(call.get(field), criteria[field]):
            return False
    found = call.get("metadata")
    metadata: dict[str, Any] = found if isinstance(found, dict) else {}
    for rule in criteria.get("metadata") or []:
        if rule.get("type") != "string" or rule.get("op") != "eq":
            raise ValueError(f"unsupported metadata filter {rule!r}")
        if metadata.get(rule.get("key")) != rule.get("value"):
            return False
    return True
