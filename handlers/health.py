"""`GET /healthz`: 200 while the database answers, 503 otherwise (for load balancers)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.context import AppContext

log = logging.getLogger(__name__)
PING_TIMEOUT = 2.0


def make_handler(ctx: AppContext) -> Handler:
    async def healthz(request: web.Request) -> web.StreamResponse:
        try:
            await asyncio.wait_for(ctx.store.ping(), timeout=PING_TIMEOUT)
        except Exception as exc:
            log.error("health check failed: %s", type(exc).__name__)
            return web.json_response(
                {"status": "unavailable", "error": "database does not answer"}, status=503
            )
        return web.json_response({"status": "ok"})

    return healthz
