"""The one way a call is placed from Slack, whichever surface asked for it.

`/call`, the modal, a message, a mention and the "Call again" button all end here, so every
rule (card first, then Retell; a failure shown on the card and to the person) holds for each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.calls.service import (
    AgentLookupError,
    CallFailed,
    CallNotRecorded,
    SlackRoute,
    idempotency_key,
)
from bot.context import AppContext
from bot.guard.admission import Refused, Ticket, foreign_team
from bot.input.parsing import CallCommand
from bot.input.phones import mask_phone
from bot.render import answers
from bot.render.blocks import ERROR_LIMIT, already_placed_card, call_card, said
from bot.retell.client import Agent
from bot.slack.outbox import marker
from storage.errors import store_failure
from storage.models import CallRecord

log = logging.getLogger(__name__)

Tell = Callable[[str], Awaitable[None]]
_LOST_CARD_LOOKS = (0.0, 3.0)  # seconds to wait before each look for an unanswered card


@dataclass(frozen=True)
class Placement:
    command: CallCommand
    route: SlackRoute
    # Parts of the Slack request that identify it: a retry of it maps to the same call.
    request_parts: tuple[str, ...]
    agent: Agent | None = None  # already chosen (modal, call again); else command.agent
    use_number_agent: bool = False  # chosen: no agent override, the caller ID's own agent
    from_number: str | None = None
    note: str | None = None
    source: str = "command"
    request_key: str | None = None  # reuse this idempotency key (retrying an unknown outcome)
    # The person's own organisation when it is not the app's (Slack Connect): guard.team_may.
    external_team: str | None = None


async def place_from_slack(
    ctx: AppContext, client: AsyncWebClient, placement: Placement, tell: Tell
) -> CallRecord | None:
    """Post the card, ask Retell, and tell the person what went wrong if anything did.

    Whatever fails on the way (Slack, the database, Retell, our own code) the person gets
    an answer that fits the cause, the card ends in a final state, and the hold on the
    limits is settled: nothing is acked and then forgotten."""
    tell = _safe(tell)
    state = _Progress()
    await ctx.inflight.after_acks()
    try:
        return await _place(ctx, client, placement, tell, state)
    except Exception as exc:
        cause = store_failure(exc)
        log.error("%s failed at %s: %s", placement.source, state.step, type(exc).__name__)
        if state.ticket is not None and state.step != "recorded":
            with contextlib.suppress(Exception):  # the database may be the cause
                await ctx.guard.abandon(state.ticket, f"{state.step}: {type(exc).__name__}")
        if state.card_ts is not None and state.pending is not None:
            failed = replace(state.pending, status="failed",
                             error=answers.unexpected(type(exc).__name__))
            await _update_card(ctx, client, placement.route.channel_id or "", state.card_ts,
                               failed)
        if cause is not None and state.card_ts is None:
            await tell(f":x: {answers.store_down_before(cause)}")
        else:
            await tell(f":x: {answers.unexpected(type(exc).__name__)}")
        return None


@dataclass
class _Progress:
    step: str = "agent"
    ticket: Ticket | None = None
    card_ts: str | None = None
    pending: CallRecord | None = None


async def _place(ctx: AppContext, client: AsyncWebClient, placement: Placement, tell: Tell,
                 state: _Progress) -> CallRecord | None:
    route = placement.route
    log.info("%s user=%s channel=%s to=%s", placement.source, route.user_id, route.channel_id,
             mask_phone(placement.command.phone.e164))
    agent = placement.agent
    if agent is None and not placement.use_number_agent:
        try:
            agent = await ctx.calls.resolve_agent(placement.command.agent)
        except AgentLookupError as exc:
            await tell(f":warning: {said(str(exc), ERROR_LIMIT)}")
            return None
    # Known before the card: the hold carries it, so the call settles the hold however it
    # is recorded.
    key = placement.request_key or idempotency_key(route.team_id or "",
                                                   *placement.request_parts)
    state.step = "admission"
    try:  # every rule, before the card and before Retell
        ticket = await ctx.guard.admit(
            user_id=route.user_id, channel_id=route.channel_id,
            number=placement.command.phone.e164,
            agent=(agent.agent_name or agent.agent_id) if agent else None,
            source=placement.source, external_team=placement.external_team,
            request_key=key,
        )
    except Refused as exc:
        await tell(f":no_entry: {exc}")
        return None
    state.ticket = ticket
    now = time.time()
    pending = CallRecord(
        id=0, call_id=None, direction="outbound", status="placing", stage=0,
        created_at=now, updated_at=now, user_id=route.user_id,
        to_number=placement.command.phone.e164,
        agent_id=agent.agent_id if agent else None,
        agent_name=agent.agent_name if agent else None,
        note=placement.note,
    )
    show = ctx.settings.show_full_numbers
    card = call_card(pending, show_full_numbers=show,
                     post_transcripts=ctx.settings.post_transcripts)
    channel = route.channel_id or ""
    state.step = "card"
    card_key = f"card:{key}"
    try:
        posted = await client.chat_postMessage(
            channel=channel, text=card.text, blocks=card.blocks, thread_ts=route.thread_ts,
            metadata=marker(card_key),
        )
    except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
        error, status = _slack_failure(exc)
        log.warning("%s card not posted channel=%s error=%s status=%s", placement.source,
                    channel, error, status)
        state.ticket = None
        await ctx.guard.abandon(ticket, f"card not posted: {error}")
        await tell(f":x: {answers.card_not_posted(channel, error, status)}")
        if status is None or status >= 500:  # Slack may have posted it all the same
            await _close_lost_card(ctx, client, route, card_key, now, pending)
        return None
    route = replace(route, message_ts=str(posted["ts"]))
    state.card_ts, state.pending = route.message_ts, pending
    state.step = "retell"
    try:
        record = await ctx.calls.place_call(
            placement.command, agent, route, key,
            from_number=placement.from_number, note=placement.note, ticket=ticket,
        )
    except CallFailed as exc:
        state.step = "recorded"  # the store settled the hold (or it expires)
        message = answers.failed_unrecorded(str(exc)) if exc.unrecorded else str(exc)
        failed = replace(pending, id=exc.row_id, status="failed", error=message)
        await _update_card(ctx, client, channel, route.message_ts or "", failed)
        await tell(f":x: {said(message, ERROR_LIMIT, show_full_numbers=show)}")
        return None
    except CallNotRecorded as exc:
        state.step = "recorded"  # its webhooks will record it and settle the hold
        message = answers.placed_not_recorded(exc.call_id, exc.cause)
        placed = replace(pending, call_id=exc.call_id, status="registered", error=message)
        await _update_card(ctx, client, channel, route.message_ts or "", placed)
        await tell(f":warning: {said(message, ERROR_LIMIT, show_full_numbers=show)}")
        return None
    state.step = "recorded"
    if record.message_ts and record.message_ts != route.message_ts:
        card = already_placed_card(record, show_full_numbers=show)
        await _edit(client, channel, route.message_ts or "", card.text, card.blocks)
    return record


async def _close_lost_card(ctx: AppContext, client: AsyncWebClient, route: SlackRoute,
                           card_key: str, since: float, pending: CallRecord) -> None:
    """A card whose post went unanswered may be in the channel, saying "placing…" forever:
    find it by its marker and show that nothing was placed. Slack may store it a moment
    after the connection broke, so look twice."""
    channel = route.channel_id or ""
    for wait in _LOST_CARD_LOOKS:
        await asyncio.sleep(wait)
        try:
            ts = await ctx.outbox.find_post(channel, route.thread_ts, since, card_key)
        except Exception as exc:  # best effort: the person has their answer already
            log.warning("could not look for a lost card channel=%s: %s", channel,
                        type(exc).__name__)
            return
        if ts is not None:
            log.info("found a card whose post went unanswered channel=%s ts=%s", channel, ts)
            closed = replace(pending, status="failed", error=answers.card_lost())
            await _update_card(ctx, client, channel, ts, closed)
            return


async def _update_card(ctx: AppContext, client: AsyncWebClient, channel: str, ts: str,
                       call: CallRecord) -> None:
    card = call_card(call, show_full_numbers=ctx.settings.show_full_numbers)
    await _edit(client, channel, ts, card.text, card.blocks)


async def _edit(client: AsyncWebClient, channel: str, ts: str, text: str,
                blocks: list[dict[str, Any]]) -> None:
    """Best effort: the person has been told already; a card Slack won't update is logged."""
    try:
        await client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
    except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
        error, status = _slack_failure(exc)
        log.warning("card not updated channel=%s error=%s status=%s", channel, error, status)


def _slack_failure(exc: Exception) -> tuple[str, int | None]:
    """(Slack's error code, HTTP status) of a failed call; status None: no answer at all."""
    if isinstance(exc, SlackApiError) and exc.response is not None:
        data = exc.response.data
        error = data.get("error") if isinstance(data, dict) else None
        return str(error or f"http_{exc.response.status_code}"), exc.response.status_code
    return type(exc).__name__, None


def _safe(tell: Tell) -> Tell:
    """Telling the person must never be what fails: log it and go on."""

    async def safe(text: str) -> None:
        try:
            await tell(text)
        except Exception as exc:
            log.warning("could not answer the person: %s", type(exc).__name__)

    return safe


def external_team(user_team: str | None, context: AsyncBoltContext) -> str | None:
    """The person's own team when it is not the app's (Slack Connect); the app's team is
    Bolt's authorization (auth.test) of this request. See guard.team_may."""
    result = context.authorize_result
    return foreign_team(user_team, result.team_id if result is not None else None)


def interaction_team(body: dict[str, Any]) -> str | None:
    """The team of the person behind a button press or a modal submission."""
    user = body.get("user") or {}
    return user.get("team_id") or (body.get("team") or {}).get("id")


def tell_in_thread(client: AsyncWebClient, channel: str, user: str, thread_ts: str | None) -> Tell:
    """Answers only the person sees, under the message that asked (message triggers)."""

    async def tell(text: str) -> None:
        try:
            await client.chat_postEphemeral(channel=channel, user=user, text=text,
                                            thread_ts=thread_ts)
        except SlackApiError as exc:
            log.warning("could not answer user=%s in channel=%s: %s", user, channel,
                        exc.response.get("error"))

    return tell


def tell_by_dm(client: AsyncWebClient, user: str) -> Tell:
    """For surfaces with nowhere else to answer (App Home, a closed modal)."""

    async def tell(text: str) -> None:
        try:
            await client.chat_postMessage(channel=user, text=text)
        except SlackApiError as exc:
            log.warning("could not DM user=%s: %s", user, exc.response.get("error"))

    return tell
