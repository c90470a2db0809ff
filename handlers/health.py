"""`GET /healthz` for load balancers and `GET /metrics` for Prometheus.

Health is 200 while the database answers, 503 otherwise; it also shows the outbox backlog
so an operator can see Slack deliveries piling up (a Slack outage) before people do.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.context import AppContext
from bot.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)
PING_TIMEOUT = 2.0


async def _backlog(ctx: AppContext) -> tuple[int, float]:
    """(items waiting for Slack, age in seconds of the oldest), also kept in the metrics."""
    count, oldest = await ctx.store.outbox_backlog()
    age = round(max(0.0, time.time() - oldest), 3) if oldest is not None else 0.0
    ctx.metrics.outbox_backlog.set(count)
    ctx.metrics.outbox_oldest_age.set(age)
    return count, age


def make_handler(ctx: AppContext) -> Handler:
    async def healthz(request: web.Request) -> web.StreamResponse:
        try:
            count, age = await asyncio.wait_for(_backlog(ctx), timeout=PING_TIMEOUT)
        except Exception as exc:
            log.error("health check failed: %s", type(exc).__name__)
            return web.json_response(
                {"status": "unavailable", "error": "database does not answer"}, status=503
            )
        return web.json_response(
            {"status": "ok", "outbox": {"backlog": count, "oldest_age_seconds": age}}
        )

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
