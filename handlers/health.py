"""`GET /healthz` for load balancers and `GET /metrics` for Prometheus.

Health is 503 when the database cannot be read or written (locked past its timeout, disk
full, closed), 200 otherwise. It shows the outbox backlog, so an operator sees Slack
deliveries piling up (a Slack outage) before people do, and the Slack token's state from
`auth.test` at start-up: `ok`, `checking`, or Slack's error.

A bad token or a Slack outage is reported but does not make the instance unhealthy: a load
balancer that took it out would fix neither, and would also stop Retell's webhooks from being
recorded (the calls' outcomes, delivered to Slack once it is back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.authorization.async_single_team_authorization import (
    AsyncSingleTeamAuthorization,
)
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.context import AppContext
from bot.runtime.metrics import CONTENT_TYPE, Metrics
from bot.runtime.retry import retry_after_seconds

log = logging.getLogger(__name__)
PING_TIMEOUT = 2.0  # the database part of a health check: a read, then a write
# At start-up, how long a health check waits for the first auth.test answer (in parallel
# with the database, so within the same budget) before it says "checking".
SLACK_FIRST_WAIT = 1.0
# Slack errors worth asking again for; any other (invalid_auth, token_revoked, ...) stays
# until the token is changed, which takes a restart.
TRANSIENT_SLACK_ERRORS = frozenset({
    "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
})
_ERROR_CODE = re.compile(r"[^a-z0-9_]")


class SlackCheck:
    """`auth.test` in the background at start-up, asked again with backoff while Slack is
    unreachable; its answer warms Bolt's authorization cache so the first burst of requests
    does not each call auth.test, and gives the app's own team (Slack Connect rule)."""

    def __init__(self, client: AsyncWebClient, bolt: AsyncApp | None, metrics: Metrics, *,
                 retry_base: float = 1.0, retry_cap: float = 60.0) -> None:
        self.client = client
        self.bolt = bolt
        self.metrics = metrics
        self.state = "checking"
        self.team_id: str | None = None
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self._answered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="slack-auth-test")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def first_answer(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait at most `timeout` s for the first answer (success or error)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._answered.wait(), timeout)

    async def _run(self) -> None:
        delay = self.retry_base
        while True:
            wait = delay
            try:
                result = await self.client.auth_test()
            except SlackApiError as exc:
                status = int(getattr(exc.response, "status_code", 0) or 0)
                error = _error_code(exc.response.get("error"), status)
                self._answer(error)
                if status < 500 and status != 429 and error not in TRANSIENT_SLACK_ERRORS:
                    log.error("slack: auth.test refused the token: %s", error)
                    return
                retry_after = retry_after_seconds((exc.response.headers or {}).get("Retry-After"))
                if retry_after is not None:
                    wait = max(wait, min(retry_after, self.retry_cap))
            except Exception as exc:  # connection refused, DNS, timeout: Slack unreachable
                self._answer(f"unreachable ({type(exc).__name__})")
            else:
                self._succeeded(result)
                return
            log.warning("slack: auth.test failed (%s); asking again in %.0f s", self.state,
                        wait)
            await asyncio.sleep(wait)
            delay = min(self.retry_cap, delay * 2)

    def _succeeded(self, result: AsyncSlackResponse) -> None:
        self.team_id = str(result.get("team_id") or "") or None
        warmed = warm_bolt(self.bolt, result) if self.bolt is not None else False
        self._answer("ok")
        log.info("slack: token ok for team %s (bot user %s)%s", self.team_id,
                 result.get("user_id"), "" if warmed else "; Bolt's cache not found")

    def _answer(self, state: str) -> None:
        self.state = state
        self.metrics.slack_auth_ok.set(1 if state == "ok" else 0)
        self._answered.set()


def warm_bolt(bolt: AsyncApp, result: AsyncSlackResponse) -> bool:
    """Give Bolt's single-team authorization the auth.test answer it would fetch (and keep)
    on the first request. Bolt has no public setter; its middleware list is found by type,
    and a Bolt that no longer has it is left as it is (it then asks on its own)."""
    for middleware in getattr(bolt, "_async_middleware_list", ()):
        if isinstance(middleware, AsyncSingleTeamAuthorization):
            if middleware.auth_test_result is None:
                middleware.auth_test_result = result
            return True
    return False


def _error_code(error: Any, status: int) -> str:
    """Slack's error code as shown in /healthz: short, plain, never anything else."""
    code = _ERROR_CODE.sub("", str(error or "").lower())[:64]
    return code or (f"http_{status}" if status else "unknown_error")


async def _backlog(ctx: AppContext) -> tuple[int, float]:
    """(items waiting for Slack, age in seconds of the oldest), also kept in the metrics."""
    count, oldest = await ctx.store.outbox_backlog()
    age = round(max(0.0, time.time() - oldest), 3) if oldest is not None else 0.0
    ctx.metrics.outbox_backlog.set(count)
    ctx.metrics.outbox_oldest_age.set(age)
    return count, age


class _Unhealthy(Exception):
    pass


def _why(exc: BaseException) -> str:
    if isinstance(exc, sqlite3.Error):
        return str(exc) or type(exc).__name__  # SQLite's own words: "database is locked"
    if isinstance(exc, RuntimeError) and "not open" in str(exc):
        return "the store is closed"
    return type(exc).__name__


def make_handler(ctx: AppContext, slack: SlackCheck | None = None) -> Handler:
    # The write probe still in flight (a writer stuck on a lock): later checks wait for it
    # instead of queueing one more write each.
    probe: dict[str, asyncio.Future[None]] = {}
    last = {"error": ""}  # what was logged last, so an outage logs once, not per probe

    async def database() -> tuple[int, float]:
        try:
            count, age = await _backlog(ctx)
        except Exception as exc:
            raise _Unhealthy(f"database cannot be read: {_why(exc)}") from None
        pending = probe.get("write")
        if pending is not None and pending.done() and not pending.cancelled():
            pending.exception()  # seen (by an earlier check, or now): not "never retrieved"
        if pending is None or pending.done():
            pending = probe["write"] = asyncio.ensure_future(ctx.store.check_writable())
        try:
            await asyncio.shield(pending)
        except Exception as exc:
            raise _Unhealthy(f"database cannot be written: {_why(exc)}") from None
        return count, age

    async def checked() -> tuple[int, float]:
        try:
            return await asyncio.wait_for(database(), timeout=PING_TIMEOUT)
        except TimeoutError:
            raise _Unhealthy(f"database did not answer within {PING_TIMEOUT:g} s "
                             "(locked or overloaded)") from None

    async def healthz(request: web.Request) -> web.StreamResponse:
        waited = slack.first_answer(SLACK_FIRST_WAIT) if slack is not None else asyncio.sleep(0)
        outcome, _ = await asyncio.gather(checked(), waited, return_exceptions=True)
        slack_state = slack.state if slack is not None else "unknown"
        if isinstance(outcome, BaseException):
            error = str(outcome) if isinstance(outcome, _Unhealthy) else type(outcome).__name__
            if error != last["error"]:
                log.error("health: %s", error)
                last["error"] = error
            return web.json_response(
                {"status": "unavailable", "error": error, "slack": slack_state}, status=503
            )
        if last["error"]:
            log.info("health: database answers again")
            last["error"] = ""
        count, age = outcome
        return web.json_response({"status": "ok",
                                  "outbox": {"backlog": count, "oldest_age_seconds": age},
                                  "slack": slack_state})

    return healthz


def make_metrics_handler(ctx: AppContext) -> Handler:
    async def metrics(request: web.Request) -> web.StreamResponse:
        try:
            await asyncio.wait_for(_backlog(ctx), timeout=PING_TIMEOUT)
        except Exception as exc:  # the rest of the metrics are still worth having
            log.error("metrics: outbox backlog unavailable: %s", type(exc).__name__)
        transactions, writes = ctx.store.commits
        ctx.metrics.db_transactions.set(transactions)
        ctx.metrics.db_writes.set(writes)
        return web.Response(body=ctx.metrics.render(),
                            headers={"Content-Type": CONTENT_TYPE})

    return metrics
