"""Slash commands: `/call` and `/callstats`. Thin: parse, ack, hand over to the service."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import call_card, not_in_channel_text, stats_message
from bot.calls import AgentLookupError, CallFailed, SlackRoute, idempotency_key
from bot.context import AppContext
from bot.parsing import CALL_USAGE, STATS_USAGE, CommandError, parse_call_text, parse_stats_period
from bot.phones import mask_phone
from storage.models import CallRecord

log = logging.getLogger(__name__)

# Stats normally answer inside the ack; past this they follow through response_url.
STATS_ACK_BUDGET = 2.0


def register(app: AsyncApp, ctx: AppContext) -> None:
    async def call_command(
        ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        try:
            request = parse_call_text(command.get("text", ""), ctx.settings.default_region)
        except CommandError as exc:
            log.info("/call refused user=%s: %s", command.get("user_id"), type(exc).__name__)
            await ack(text=f":warning: {exc}\n{CALL_USAGE}")
            return
        await ack()
        route = SlackRoute(
            team_id=command.get("team_id"),
            channel_id=command.get("channel_id"),
            user_id=command.get("user_id"),
        )
        log.info("/call user=%s channel=%s to=%s", route.user_id, route.channel_id,
                 mask_phone(request.phone.e164))
        try:
            agent = await ctx.calls.resolve_agent(request.agent)
        except AgentLookupError as exc:
            await respond(text=f":warning: {exc}", response_type="ephemeral")
            return

        pending = CallRecord(
            id=0, call_id=None, direction="outbound", status="placing", stage=0,
            created_at=time.time(), updated_at=time.time(), user_id=route.user_id,
            to_number=request.phone.e164,
            agent_id=agent.agent_id if agent else None,
            agent_name=agent.agent_name if agent else None,
        )
        card = call_card(pending, show_full_numbers=ctx.settings.show_full_numbers)
        try:
            posted = await client.chat_postMessage(
                channel=route.channel_id or "", text=card.text, blocks=card.blocks
            )
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            log.warning("/call card not posted channel=%s error=%s", route.channel_id, error)
            await respond(text=not_in_channel_text(route.channel_id or "", error),
                          response_type="ephemeral")
            return
        route = SlackRoute(route.team_id, route.channel_id, route.user_id, str(posted["ts"]))
        # trigger_id is unique per invocation, so Slack's retry of it maps to the same key.
        trigger = str(command.get("trigger_id") or route.message_ts)
        key = idempotency_key(route.team_id or "", trigger)
        try:
            await ctx.calls.place_call(request, agent, route, key)
        except CallFailed as exc:
            failed = replace(pending, status="failed", error=str(exc))
            card = call_card(failed, show_full_numbers=ctx.settings.show_full_numbers)
            await client.chat_update(channel=route.channel_id or "", ts=route.message_ts or "",
                                     text=card.text, blocks=card.blocks)
            await respond(text=f":x: {exc}", response_type="ephemeral")
            return
        ctx.outbox.wake()

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

    app.command("/call")(call_command)
    app.command("/callstats")(callstats_command)
