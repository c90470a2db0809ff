"""Slash commands: `/call` (text, or a modal when empty) and `/callstats`."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import stats_message
from bot.calls import SlackRoute
from bot.context import AppContext
from bot.parsing import CALL_USAGE, STATS_USAGE, CommandError, parse_call_text, parse_stats_period
from handlers.placing import Placement, place_from_slack
from handlers.views import open_call_modal

log = logging.getLogger(__name__)

# Stats normally answer inside the ack; past this they follow through response_url.
STATS_ACK_BUDGET = 2.0


def register(app: AsyncApp, ctx: AppContext) -> None:
    async def call_command(
        ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        if not command.get("text", "").strip():
            await ack()
            # The trigger id expires 3 s after Slack sent it: open before anything slow.
            await open_call_modal(ctx, client, str(command.get("trigger_id", "")),
                                  command.get("channel_id"))
            return
        try:
            request = parse_call_text(command.get("text", ""), ctx.settings.default_region)
        except CommandError as exc:
            log.info("/call refused user=%s: %s", command.get("user_id"), type(exc).__name__)
            await ack(text=f":warning: {exc}\n{CALL_USAGE}")
            return
        await ack()

        async def tell(text: str) -> None:
            await respond(text=text, response_type="ephemeral")

        route = SlackRoute(
            team_id=command.get("team_id"),
            channel_id=command.get("channel_id"),
            user_id=command.get("user_id"),
        )
        # trigger_id is unique per invocation, so Slack's retry of it maps to the same key.
        trigger = str(command.get("trigger_id") or "")
        placement = Placement(request, route, ("command", trigger), source="/call")
        await place_from_slack(ctx, client, placement, tell)

    async def callstats_command(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond
    ) -> None:
        try:
            period = parse_stats_period(command.get("text", ""))
        except CommandError as exc:
            await ack(text=f":warning: {exc}\n{STATS_USAGE}")
            return
        started = time.perf_counter()
        task = asyncio.ensure_future(ctx.calls.stats(period))
        done, _ = await asyncio.wait({task}, timeout=STATS_ACK_BUDGET)
        if not done:
            await ack(text=":hourglass_flowing_sand: Counting calls…")
        stats = await task
        message = stats_message(stats, period.label)
        log.info("/callstats period=%s calls=%d in %.0f ms", period.key, stats.calls,
                 (time.perf_counter() - started) * 1000)
        if done:
            await ack(text=message.text, blocks=message.blocks)
        else:
            await respond(text=message.text, blocks=message.blocks, response_type="ephemeral")

    app.command("/call")(ctx.inflight.track(call_command))
    app.command("/callstats")(ctx.inflight.track(callstats_command))
