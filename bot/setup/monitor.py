"""`serve`'s own set-up check: the checks of `callbot check`, in the background after
start-up, one WARNING line per problem, and their state for /healthz.

Slack's side and Retell's run side by side, so neither holds up the other, and neither holds
up /healthz or the webhooks. auth.test is asked again with backoff while Slack does not
answer; its answer also warms Bolt's authorization cache (so the first burst of requests
does not each call auth.test). Retell's side is asked again while Retell does not answer.
In Socket Mode the server's own connection is the check: Slack is asked about the app token
only when that connection has not come up in time, to say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.authorization.async_single_team_authorization import (
    AsyncSingleTeamAuthorization,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.config import Settings
from bot.runtime.metrics import Metrics
from bot.setup.check import (
    SLACK_SOCKET_MODE,
    CheckResult,
    SlackAuth,
    ask_slack_auth,
    check_notify_channel,
    check_retell,
    check_socket_mode,
    failed,
    oauth_results,
    redact,
    retell_client,
    scopes_result,
    secrets_of,
    signing_secret_result,
    socket_mode_ok,
    token_result,
)
from bot.setup.scopes import wanted_scopes

log = logging.getLogger("bot.setup")
# How long the server's own Socket Mode connection may take before Slack is asked why.
SOCKET_WAIT = 15.0
SIDES = ("slack", "retell")


class SetupMonitor:
    """Runs the checks once the server is up (`start`), and keeps what they found."""

    def __init__(self, settings: Settings, slack: AsyncWebClient, bolt: AsyncApp | None,
                 metrics: Metrics, *, retry_base: float = 1.0, retry_cap: float = 60.0,
                 socket_wait: float = SOCKET_WAIT) -> None:
        self.settings = settings
        self.slack = slack
        self.bolt = bolt
        self.metrics = metrics
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.socket_wait = socket_wait
        # auth.test's state for /healthz: "checking", "ok", or Slack's error code.
        self.slack_state = "checking"
        self.team_id: str | None = None
        self._results: dict[str, list[CheckResult]] = {side: [] for side in SIDES}
        self._answered = {side: asyncio.Event() for side in SIDES}  # a first round is in
        self._done = {side: asyncio.Event() for side in SIDES}  # nothing left to ask
        self._logged: dict[str, str] = {}  # the problem line logged last, by result key
        self._socket: asyncio.Future[Any] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._secrets = secrets_of(settings)

    # -- lifecycle ----------------------------------------------------------------------------

    def watch_socket_mode(self, connecting: asyncio.Future[Any]) -> None:
        """The server's own Socket Mode connection (it ends once connected); call it before
        the event loop runs the checks, i.e. in the same start-up step as `start`."""
        self._socket = connecting

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._guarded("slack", self._slack_side()),
                                name="setup-check-slack"),
            asyncio.create_task(self._guarded("retell", self._retell_side()),
                                name="setup-check-retell"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def first_answer(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait at most `timeout` s for a first round of both sides (passed or not)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                for side in SIDES:
                    await self._answered[side].wait()

    async def retell_answered(self) -> None:
        """Until Retell's side has made its first round of requests (tests: so that the
        failures they queue in the Retell stand-in are not taken by a check)."""
        await self._answered["retell"].wait()

    async def _guarded(self, side: str, checks: Coroutine[Any, Any, None]) -> None:
        """A check that fails in a way of its own (a bug) is logged; the server goes on."""
        try:
            await checks
        except Exception:
            log.exception("set-up: the %s checks stopped", side)
            self._finished(side)

    # -- what was found -----------------------------------------------------------------------

    @property
    def results(self) -> list[CheckResult]:
        return [r for side in SIDES for r in self._results[side]]

    @property
    def problems(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok]

    def report(self) -> dict[str, Any]:
        """For /healthz: `ok`, `checking` or `problems`, and each problem's key and detail
        (the fixes are in the log; nothing here is a secret)."""
        problems = {r.key: redact(r.detail, self._secrets) for r in self.problems}
        done = all(self._done[side].is_set() for side in SIDES)
        state = "problems" if problems else "ok" if done else "checking"
        return {"state": state, "problems": problems}

    def _record(self, side: str, results: list[CheckResult]) -> None:
        """Keep a side's results; log each new problem once, and each one that passes now."""
        before = {r.key for r in self._results[side]}
        self._results[side] = results
        for result in results:
            if not result.ok:
                line = redact(f"set-up problem: {result.name}: {result.detail}; fix: "
                              f"{result.fix}", self._secrets)
                if self._logged.get(result.key) != line:
                    log.warning("%s", line)
                    self._logged[result.key] = line
            elif self._logged.pop(result.key, None) is not None:
                log.info("set-up: %s passes now: %s", result.name,
                         redact(result.detail, self._secrets))
        for key in before - {r.key for r in results}:
            self._logged.pop(key, None)

    def _finished(self, side: str) -> None:
        self._answered[side].set()
        self._done[side].set()
        if all(self._done[s].is_set() for s in SIDES) and not self.problems:
            log.info("set-up: all %d checks pass", len(self.results))

    def _backoff(self, delay: float, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(delay, min(retry_after, self.retry_cap))
        return delay

    # -- Slack --------------------------------------------------------------------------------

    async def _slack_side(self) -> None:
        if self.settings.oauth:  # no token of our own to check: one per installation
            self.slack_state = "ok"
            self._record("slack", oauth_results(self.settings))
            self._answered["slack"].set()
            self._finished("slack")
            return
        delay = self.retry_base
        while True:
            auth = await ask_slack_auth(self.slack)
            self._token_state(auth)
            if not auth.transient:
                break
            self._record("slack", [token_result(auth)])
            self._answered["slack"].set()
            wait = self._backoff(delay, auth.retry_after)
            log.info("set-up: asking Slack's auth.test again in %.0f s", wait)
            await asyncio.sleep(wait)
            delay = min(self.retry_cap, delay * 2)
        if auth.response is not None:
            self._token_ok(auth.response)
        results = [token_result(auth), scopes_result(auth, wanted_scopes())]
        if self.settings.slack_signing_secret is not None or not self.settings.slack_app_token:
            results.append(signing_secret_result(self.settings))
        results.append(await check_notify_channel(self.settings, self.slack, auth))
        self._record("slack", results)
        self._answered["slack"].set()
        if self.settings.slack_app_token:
            self._record("slack", [*results, await self._socket_mode()])
        self._finished("slack")

    def _token_state(self, auth: SlackAuth) -> None:
        self.slack_state = auth.state
        self.metrics.slack_auth_ok.set(1 if auth.ok else 0)

    def _token_ok(self, response: AsyncSlackResponse) -> None:
        self.team_id = str(response.get("team_id") or "") or None
        warmed = warm_bolt(self.bolt, response) if self.bolt is not None else False
        log.info("slack: token ok for team %s (bot user %s)%s", self.team_id,
                 response.get("user_id"), "" if warmed else "; Bolt's cache not found")

    async def _socket_mode(self) -> CheckResult:
        connecting = self._socket
        if connecting is None:  # not watched: ask Slack directly, as `callbot check` does
            return await check_socket_mode(self.settings) or socket_mode_ok()
        done, _ = await asyncio.wait({connecting}, timeout=self.socket_wait)
        if done and not connecting.cancelled() and connecting.exception() is None:
            return socket_mode_ok()
        asked = await check_socket_mode(self.settings)
        if asked is not None and not asked.ok:
            return asked
        return failed("Slack Socket Mode", SLACK_SOCKET_MODE,
                      f"not connected after {self.socket_wait:g} s, though Slack accepts "
                      "SLACK_APP_TOKEN", "check that this server may open WebSocket "
                      "connections to Slack, and that Socket Mode is on in the app's settings")

    # -- Retell -------------------------------------------------------------------------------

    async def _retell_side(self) -> None:
        client = retell_client(self.settings)
        delay = self.retry_base
        try:
            while True:
                results = await check_retell(self.settings, client)
                self._record("retell", results)
                self._answered["retell"].set()
                if not any(r.transient and not r.ok for r in results):
                    break
                log.info("set-up: asking Retell again in %.0f s", delay)
                await asyncio.sleep(delay)
                delay = min(self.retry_cap, delay * 2)
        finally:
            await client.aclose()
        self._finished("retell")


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
