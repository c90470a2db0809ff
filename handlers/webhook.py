"""`POST /retell/webhook`: verify, keep the body durably, answer; the rest happens later.

The answer comes once the body is committed to the inbox (deduplicated on call id and
event), which is all a 2xx promises Retell; bot/calls/ingest.py turns it into the call row and
the Slack work. Per-request log lines would cost as much as the write under a burst: counts
go to /metrics, and one line every few seconds says how many came.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError

from bot.calls.service import EVENT_EFFECTS
from bot.context import AppContext
from bot.http.edge import VERIFIED, refuse
from bot.http.signatures import check_retell_signature
from bot.retell.client import WebhookBody
from bot.runtime.logs import LOGGED

log = logging.getLogger(__name__)
SUMMARY_EVERY = 10.0  # seconds between the lines that count webhooks
# The two answers a kept webhook gets, serialised once.
ANSWERS = {outcome: f'{{"status": "{outcome}"}}'.encode() for outcome in ("stored", "duplicate")}


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    if first.get("type") == "missing":
        return f"{where} is missing"
    return f"{where}: {first.get('msg', 'invalid')}"


class _Counts:
    """How many webhooks of each outcome since the last line: one line per interval."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.since = time.monotonic() - SUMMARY_EVERY  # the first one gets its line

    def add(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        now = time.monotonic()
        if now - self.since >= SUMMARY_EVERY:
            parts = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()))
            log.info("webhooks: %s since the last count", parts)
            self.counts, self.since = {}, now


def make_handler(ctx: AppContext) -> Handler:
    key = ctx.settings.webhook_key
    counted = ctx.metrics.webhook_events
    counts = _Counts()

    async def retell_webhook(request: web.Request) -> web.StreamResponse:
        request[LOGGED] = True  # counted below, and summed up in one line now and then
        raw = await request.read()
        # The edge checked the digest already (off the loop for large bodies); checked here
        # too when it did not, so this handler never trusts a body it has not seen verified.
        refused = None if request.get(VERIFIED) else check_retell_signature(
            raw, key, request.headers.get("x-retell-signature"))
        if refused:
            counted.labels("unknown", "unsigned").inc()
            return refuse(request, 401, f"invalid signature: {refused}")
        try:
            # orjson: four times faster on a transcript-sized body, and it refuses what
            # SQLite could not store (lone surrogates) and nesting past 1024 levels.
            data = orjson.loads(raw)
            text = raw.decode("utf-8")
        except (UnicodeError, ValueError):
            return _invalid(request, "unknown", "body is not valid UTF-8 JSON")
        if not isinstance(data, dict) or not isinstance(data.get("event"), str):
            return _invalid(request, "unknown",
                            "body must be a JSON object with an `event` string")
        event = data["event"]
        if event not in EVENT_EFFECTS:
            counted.labels("other", "ignored").inc()
            counts.add("ignored")
            return web.json_response({"status": "ignored"})
        try:
            body = WebhookBody.model_validate(data)
        except ValidationError as exc:
            return _invalid(request, event, _validation_message(exc))
        entry = ctx.calls.webhook_entry(0, event, False, body.call, data["call"])
        outcome, inbox_id = await ctx.store.accept_webhook(body.call.call_id, event, text)
        if inbox_id is not None:
            ctx.ingest.push(replace(entry, inbox_id=inbox_id, merge=outcome == "duplicate"))
        counted.labels(event, outcome).inc()
        counts.add(outcome)
        return web.Response(body=ANSWERS[outcome], content_type="application/json")

    def _invalid(request: web.Request, event: str, message: str) -> web.Response:
        counted.labels(event, "invalid").inc()
        return refuse(request, 400, message)

    return retell_webhook
