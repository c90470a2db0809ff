"""`GET /healthz` for load balancers and `GET /metrics` for Prometheus.

Health is 503 when the database cannot be read or written (locked past its timeout, disk
full, closed), 200 otherwise. It shows the outbox backlog, so an operator sees Slack
deliveries piling up (a Slack outage) before people do, the Slack token's state from
`auth.test` at start-up (`slack`: `ok`, `checking`, or Slack's error), and the set-up checks
`serve` runs in the background (`checks`: `ok`, `checking` or `problems`, with each problem;
bot/setup/monitor.py, the same checks as `callbot check`).

A bad token, a set-up problem or a Slack outage is reported but does not make the instance
unhealthy: a load balancer that took it out would fix none of them, and would also stop
Retell's webhooks from being recorded (the calls' outcomes, delivered to Slack once it is
back).
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.context import AppContext
from bot.runtime.metrics import CONTENT_TYPE
from bot.setup.monitor import SetupMonitor
from storage.errors import DATABASE_ERRORS

log = logging.getLogger(__name__)
PING_TIMEOUT = 2.0  # the database part of a health check: a read, then a write
# At start-up, how long a health check waits for the set-up checks' first answers (in
# parallel with the database, so within the same budget) before it says "checking".
SLACK_FIRST_WAIT = 1.0


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
    if isinstance(exc, DATABASE_ERRORS):
        # The database's own words ("database is locked"), or the driver's error name.
        return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    if isinstance(exc, RuntimeError) and "not open" in str(exc):
        return "the store is closed"
    return type(exc).__name__


def make_handler(ctx: AppContext, checks: SetupMonitor | None = None) -> Handler:
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
        waited = (checks.first_answer(SLACK_FIRST_WAIT) if checks is not None
                  else asyncio.sleep(0))
        outcome, _ = await asyncio.gather(checked(), waited, return_exceptions=True)
        slack_state = checks.slack_state if checks is not None else "unknown"
        setup = checks.report() if checks is not None else {"state": "unknown", "problems": {}}
        if isinstance(outcome, BaseException):
            error = str(outcome) if isinstance(outcome, _Unhealthy) else type(outcome).__name__
            if error != last["error"]:
                log.error("health: %s", error)
                last["error"] = error
            return web.json_response(
                {"status": "unavailable", "error": error, "slack": slack_state,
                 "checks": setup}, status=503
            )
        if last["error"]:
            log.info("health: database answers again")
            last["error"] = ""
        count, age = outcome
        return web.json_response({"status": "ok",
                                  "outbox": {"backlog": count, "oldest_age_seconds": age},
                                  "slack": slack_state, "checks": setup})

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
