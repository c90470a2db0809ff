"""A small typed client for the parts of Retell's API this app uses (see retell-api.md).

Every failure becomes one of the `RetellError` family (bot/render/answers.py says each in
words), so nothing else has to interpret HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from bot.input.phones import mask_numbers
from bot.runtime.retry import retry_after_seconds

log = logging.getLogger(__name__)
# Failures after which Retell may still have done what was asked (a 2xx we could not read
# is one: Retell answered that it did something).
UNCERTAIN_KINDS = frozenset({"timeout", "unreachable", "server_error", "bad_answer"})
# Retell's own error texts are shown to people: long ones are cut, not passed on whole.
MAX_REASON_CHARS = 300
MAX_EPOCH_MS = 10**14  # the year 5138: far past any real timestamp, far below 2**63


# The disconnection_reason of a call whose callee asked not to be called again.
DNC_REASON = "user_requested_dnc"

class RetellError(Exception):
    """Retell did not do what we asked. `reason` is Retell's own words when it gave any.

    A family, as httpx's exceptions are: catch RetellError for any failure, or one kind
    (RetellTimeout, RetellRefused, ...). bot/render/answers.py says each to a person."""

    # refused | rate_limited | server_error | timeout | unreachable | bad_answer
    kind = "unreachable"

    def __init__(self, reason: str, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{self.kind}: {reason}" + (f" (HTTP {status})" if status else ""))
        self.reason = reason
        self.status = status
        self.retry_after = retry_after  # seconds, when Retell said how long to wait

    @property
    def transient(self) -> bool:
        """Worth trying again; a refusal will be refused again."""
        return self.kind != "refused" or self.status in (408, 409)

    @property
    def uncertain(self) -> bool:
        """Retell may have done it anyway (no answer, or a server error mid-way)."""
        return self.kind in UNCERTAIN_KINDS


class RetellRefused(RetellError):
    """A 4xx: Retell will refuse the same request again (except 408 and 409)."""

    kind = "refused"


class RetellRateLimited(RetellError):
    """A 429: nothing was done; wait `retry_after` seconds."""

    kind = "rate_limited"


class RetellServerError(RetellError):
    """A 5xx: Retell may have done part of it."""

    kind = "server_error"


class RetellTimeout(RetellError):
    """No answer in time: Retell may have done it."""

    kind = "timeout"


class RetellUnreachable(RetellError):
    """The connection failed before Retell could answer."""

    kind = "unreachable"


class RetellBadAnswer(RetellError):
    """A 2xx we cannot read: Retell may have done it."""

    kind = "bad_answer"


@dataclass(frozen=True)
class Agent:
    agent_id: str
    agent_name: str | None
    version: int = 0
    # Where the agent sends its webhooks (get-agent only; None: the account's URL applies).
    webhook_url: str | None = None


@dataclass(frozen=True)
class CallerNumber:
    """One of the account's numbers, for the caller-ID choice."""

    phone_number: str
    nickname: str | None = None
    outbound_agent_id: str | None = None
    # Every agent bound to the number (`outbound_agents` / `inbound_agents`, retell-api.md).
    outbound_agents: tuple[str, ...] = ()
    inbound_agents: tuple[str, ...] = ()


# -- the call object, as webhooks and get-call carry it ------------------------------------


class _Lenient(BaseModel):
    """Retell adds fields often; unknown ones are kept, not refused."""

    model_config = ConfigDict(extra="allow")


class CallAnalysis(_Lenient):
    call_summary: str | None = None
    user_sentiment: str | None = None
    call_successful: bool | None = None
    in_voicemail: bool | None = None
    custom_analysis_data: dict[str, Any] | None = None  # the agent's own extracted fields


class CallCost(_Lenient):
    combined_cost: float | None = None


class LatencyFigures(_Lenient):
    p50: float | None = Field(default=None, ge=0, le=3_600_000)


class CallLatency(_Lenient):
    """Retell's latency figures per call (ms); `/callstats` reads the end-to-end p50."""

    e2e: LatencyFigures | None = None


def _whole(value: Any) -> Any:
    """Retell's integers sometimes arrive as floats (`95000.0`, even `95000.4`): a reading
    off by a fraction of a millisecond is still the reading, not a reason to drop a call."""
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return round(value)
    return value


Whole = Annotated[int, BeforeValidator(_whole)]


class RetellCall(_Lenient):
    call_id: str = Field(min_length=1, max_length=200)
    call_status: str | None = None
    direction: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    # Bounded so that nothing a sender makes up overflows a SQLite integer.
    start_timestamp: Whole | None = Field(default=None, ge=0, le=MAX_EPOCH_MS)
    end_timestamp: Whole | None = Field(default=None, ge=0, le=MAX_EPOCH_MS)
    duration_ms: Whole | None = Field(default=None, ge=0, le=MAX_EPOCH_MS)
    transcript: str | None = None
    recording_url: str | None = None
    public_log_url: str | None = None
    disconnection_reason: str | None = None
    metadata: Any = None
    retell_llm_dynamic_variables: dict[str, Any] | None = None
    call_cost: CallCost | None = None
    call_analysis: CallAnalysis | None = None
    latency: CallLatency | None = None


class Concurrency(BaseModel):
    """get-concurrency: how many calls the workspace has live against its limit, so a
    campaign places no more calls than Retell has slots for."""

    model_config = ConfigDict(extra="ignore")

    current_concurrency: Whole = Field(ge=0)
    concurrency_limit: Whole = Field(ge=0)
    base_concurrency: int | None = None
    purchased_concurrency: int | None = None
    reserved_inbound_concurrency: int | None = None
    concurrency_burst_enabled: bool | None = None
    concurrency_burst_limit: int | None = None
    concurrency_purchase_limit: int | None = None
    remaining_purchase_limit: int | None = None

    @property
    def free(self) -> int:
        """Slots left for new calls now (never negative, even when Retell is over)."""
        return max(0, self.concurrency_limit - self.current_concurrency)


@dataclass(frozen=True)
class CallPage:
    """One page of list-calls: the calls that could be read, how many items could not
    (`unreadable`, so a caller can say so rather than drop them silently), and the key to the
    next page (None on the last)."""

    calls: list[RetellCall]
    pagination_key: str | None
    unreadable: int = 0
    total: int | None = None  # all calls the filter matches, when asked for


class WebhookBody(_Lenient):
    event: str = Field(min_length=1, max_length=100)
    call: RetellCall


# -- the client ----------------------------------------------------------------------------


@cache
def _tls() -> ssl.SSLContext:
    """One TLS context (the CA bundle read once) for every client: each read is ~25 ms."""
    return httpx.create_ssl_context()


class RetellClient:
    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.retellai.com",
        timeout: float = 15.0,
        retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        observe: Callable[[str, float, str | None], None] | None = None,
        max_retry_wait: float = 30.0,
    ) -> None:
        self._timeout = timeout
        self._retries = retries
        # A Retry-After longer than this is not waited out: the caller hears of the 429
        # (a person waiting in Slack must not; a history import in a terminal may).
        self._max_retry_wait = max_retry_wait
        self._observe = observe  # (operation, seconds, error kind or None), for metrics
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "retell-slack-callbot"},
            timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
            transport=transport,
            verify=_tls(),
        )

    def use_base_url(self, base_url: str) -> None:
        """Send every request from now on to `base_url`: the simulated Retell
        (bot/retell/simulator.py), whose address is known only once it has started."""
        self._http.base_url = httpx.URL(base_url)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def create_phone_call(
        self,
        *,
        from_number: str,
        to_number: str,
        agent_id: str | None = None,
        variables: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> RetellCall:
        # honor_internal_dnc: Retell refuses numbers on the workspace's own DNC list too.
        body: dict[str, Any] = {"from_number": from_number, "to_number": to_number,
                                "honor_internal_dnc": True}
        if agent_id:
            body["override_agent_id"] = agent_id
        if variables:
            body["retell_llm_dynamic_variables"] = variables
        if metadata:
            body["metadata"] = metadata
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        # Only a key makes a retry safe: Retell then answers a repeat with the same call.
        data = await self._request("POST", "/v2/create-phone-call", json=body,
                                   retry=idempotency_key is not None)
        return _call_from(data, "create-phone-call")

    async def get_call(self, call_id: str) -> RetellCall:
        data = await self._request("GET", f"/v2/get-call/{call_id}")
        return _call_from(data, "get-call")

    async def find_call(self, metadata_key: str, value: str) -> RetellCall | None:
        """The call whose metadata has `metadata_key` = `value`, if Retell has one: how a
        create whose answer was lost is found (list-calls' keyed metadata filter)."""
        data = await self._request("POST", "/v3/list-calls", json={
            "limit": 1,
            "filter_criteria": {"metadata": [
                {"key": metadata_key, "type": "string", "op": "eq", "value": value}]},
        })
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list) or not items:
            return None
        return _call_from(items[0], "list-calls")

    async def list_calls(
        self, *, since_ms: int | None = None, limit: int = 1000,
        pagination_key: str | None = None, include_total: bool = False,
    ) -> CallPage:
        """One page of past calls, oldest first (`start_timestamp` >= `since_ms` when given):
        how history is backfilled. Items carry no transcript (get-call has it)."""
        body: dict[str, Any] = {"limit": limit, "sort_order": "ascending"}
        if since_ms is not None:
            body["filter_criteria"] = {
                "start_timestamp": {"op": "ge", "type": "number", "value": since_ms}}
        if pagination_key:
            body["pagination_key"] = pagination_key
        if include_total:
            body["include_total"] = True
        data = await self._request("POST", "/v3/list-calls", json=body)
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise RetellBadAnswer("list-calls: the answer has no items", 200)
        calls: list[RetellCall] = []
        unreadable = 0
        for item in items:
            try:
                calls.append(RetellCall.model_validate(item))
            except ValidationError:
                unreadable += 1
        more = data.get("has_more") is True
        key = data.get("pagination_key")
        total = data.get("total")
        return CallPage(
            calls=calls,
            pagination_key=key if more and isinstance(key, str) and key else None,
            unreadable=unreadable,
            total=total if isinstance(total, int) and not isinstance(total, bool) else None,
        )

    async def stop_call(self, call_id: str) -> None:
        """Hang up a live call; Retell then ends it with `manual_stopped`."""
        await self._request("POST", f"/v2/stop-call/{call_id}", retry=False)

    async def list_phone_numbers(self) -> list[CallerNumber]:
        numbers: list[CallerNumber] = []
        async for item in self._pages("GET", "/v2/list-phone-numbers"):
            if isinstance(item.get("phone_number"), str):
                outbound = _agent_ids(item, "outbound")
                numbers.append(
                    CallerNumber(
                        phone_number=item["phone_number"],
                        nickname=item.get("nickname"),
                        outbound_agent_id=item.get("outbound_agent_id") or next(iter(outbound),
                                                                                None),
                        outbound_agents=outbound,
                        inbound_agents=_agent_ids(item, "inbound"),
                    )
                )
        return numbers

    async def get_agent(self, agent_id: str) -> Agent:
        """One agent, with its webhook URL; RetellRefused (404 or 422) when there is none."""
        data = await self._request("GET", f"/get-agent/{quote(agent_id, safe='')}")
        if not isinstance(data, dict) or not data.get("agent_id"):
            raise RetellBadAnswer("get-agent: the answer is not an agent", 200)
        webhook_url = data.get("webhook_url")
        return Agent(agent_id=str(data["agent_id"]), agent_name=data.get("agent_name"),
                     version=int(data.get("version") or 0),
                     webhook_url=webhook_url if isinstance(webhook_url, str) else None)

    async def list_agents(self) -> list[Agent]:
        """All agents, one entry per agent id (the highest version's name wins)."""
        agents: dict[str, Agent] = {}
        async for item in self._pages("POST", "/v2/list-agents", json={}):
            if not item.get("agent_id"):
                continue
            agent = Agent(
                agent_id=str(item["agent_id"]),
                agent_name=item.get("agent_name"),
                version=int(item.get("version") or 0),
            )
            known = agents.get(agent.agent_id)
            if known is None or agent.version >= known.version:
                agents[agent.agent_id] = agent
        return list(agents.values())

    async def get_concurrency(self) -> Concurrency:
        """Live calls and the limit; RetellBadAnswer when the answer lacks either."""
        data = await self._request("GET", "/get-concurrency")
        try:
            return Concurrency.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors()
            where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
            raise RetellBadAnswer(f"get-concurrency: {where or 'the answer'} is invalid",
                                  200) from None

    async def _pages(
        self, method: str, path: str, **kwargs: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Items of a paginated list (older bare-list answers are accepted too)."""
        params: dict[str, Any] = {"limit": 1000}
        for _ in range(100):  # a hard stop against a server that never ends pagination
            data = await self._request(method, path, params=params, **kwargs)
            items = data.get("items", []) if isinstance(data, dict) else data
            for item in items or []:
                if isinstance(item, dict):
                    yield item
            if not (isinstance(data, dict) and data.get("has_more") and data.get("pagination_key")):
                return
            params = {"limit": 1000, "pagination_key": data["pagination_key"]}

    async def _request(self, method: str, path: str, *, retry: bool = True, **kwargs: Any) -> Any:
        """One request, tried again on 429, 5xx, timeouts and lost connections (honouring
        `retry-after`) when `retry` allows; then one RetellError for the caller."""
        operation = path.strip("/").split("/")[1 if path.startswith("/v") else 0]
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                data = await self._once(method, path, **kwargs)
            except RetellError as exc:
                if self._observe is not None:
                    self._observe(operation, time.perf_counter() - started, exc.kind)
                delay = exc.retry_after
                if delay is None:
                    delay = min(8.0, 0.5 * 2**attempt) * random.uniform(0.75, 1.0)
                if not (retry and exc.transient and attempt < self._retries
                        and delay <= self._max_retry_wait):
                    raise
                attempt += 1
                log.info("retell %s failed (%s); try %d of %d in %.1f s", operation, exc.kind,
                         attempt + 1, self._retries + 1, delay)
                await asyncio.sleep(delay)
                continue
            if self._observe is not None:
                self._observe(operation, time.perf_counter() - started, None)
            return data

    async def _once(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise RetellTimeout(f"no answer within {self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise RetellUnreachable(_transport_reason(exc)) from None
        log.debug("retell %s %s -> %s", method, path.split("/")[-1], response.status_code)
        if response.status_code >= 400:
            raise _error_from(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise RetellServerError(
                "answered with something that is not JSON", response.status_code
            ) from None


def _agent_ids(item: dict[str, Any], side: str) -> tuple[str, ...]:
    """The agents bound to one side of a number: `<side>_agents` (Retell now), else the
    older single `<side>_agent_id`."""
    bound = item.get(f"{side}_agents")
    ids = [str(a["agent_id"]) for a in bound if isinstance(a, dict) and a.get("agent_id")
           ] if isinstance(bound, list) else []
    single = item.get(f"{side}_agent_id")
    if not ids and isinstance(single, str) and single:
        ids = [single]
    return tuple(dict.fromkeys(ids))


def _call_from(data: Any, operation: str) -> RetellCall:
    """A call object from an answer, or a RetellError saying the answer was unreadable."""
    try:
        return RetellCall.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        raise RetellBadAnswer(f"{operation}: {where or 'the answer'} is invalid",
                              200) from None


def clean_reason(text: str) -> str:
    """Retell's words, on one line and cut to a readable length."""
    flat = mask_numbers(" ".join(text.split()))
    return flat if len(flat) <= MAX_REASON_CHARS else flat[: MAX_REASON_CHARS - 1] + "…"


def _transport_reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or DNS failure"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection closed without an answer"
    return type(exc).__name__


def _error_from(response: httpx.Response) -> RetellError:
    status = response.status_code
    reason = ""
    try:
        data = response.json()
        if isinstance(data, dict):
            reason = str(data.get("message") or data.get("error_message") or "")[:4000]
    except ValueError:
        reason = response.text[:4000]
    reason = clean_reason(reason or response.reason_phrase or f"HTTP {status}")
    retry_after = retry_after_seconds(response.headers.get("retry-after"))
    if status == 429:
        return RetellRateLimited(reason, status, retry_after)
    if status >= 500:
        return RetellServerError(reason, status, retry_after)
    return RetellRefused(reason, status, retry_after)


