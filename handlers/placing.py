"""The one way a call is placed from Slack, whichever surface asked for it.

`/call`, the modal, a message, a mention and the "Call again" button all end here, so every
rule (card first, then Retell; a failure shown on the card and to the person) holds for each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import already_placed_card, call_card, not_in_channel_text
from bot.calls import AgentLookupError, CallFailed, SlackRoute, idempotency_key
from bot.context import AppContext
from bot.guard import Refused
from bot.parsing import CallCommand
from bot.phones import mask_phone
from bot.retell import Agent
from storage.models import CallRecord

log = logging.getLogger(__name__)

Tell = Callable[[str], Awaitable[None]]


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


async def place_from_slack(
    ctx: AppContext, client: AsyncWebClient, placement: Placement, tell: Tell
) -> CallRecord | None:
    """Post the card, ask Retell, and tell the person what went wrong if anything did."""
    route = placement.route
    log.info("%s user=%s channel=%s to=%s", placement.source, route.user_id, route.channel_id,
             mask_phone(placement.command.phone.e164))
    agent = placement.agent
    if agent is None and not placement.use_number_agent:
        try:
            agent = await ctx.calls.resolve_agent(placement.command.agent)
        except AgentLookupError as exc:
            await tell(f":warning: {exc}")
            return None
    try:  # every rule, before the card and before Retell
        ticket = await ctx.guard.admit(
            user_id=route.user_id, channel_id=route.channel_id,
            number=placement.command.phone.e164,
            agent=(agent.agent_name or agent.agent_id) if agent else None,
            source=placement.source,
        )
    except Refused as exc:
        await tell(f":no_entry: {exc}")
        return None
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
    try:
        posted = await client.chat_postMessage(
            channel=channel, text=card.text, blocks=card.blocks, thread_ts=route.thread_ts
        )
    except SlackApiError as exc:
        error = str(exc.response.get("error", "unknown_error"))
        log.warning("%s card not posted channel=%s error=%s", placement.source, channel, error)
        await ctx.guard.abandon(ticket, f"card not posted: {error}")
        await tell(not_in_channel_text(channel, error))
        return None
    route = replace(route, message_ts=str(posted["ts"]))
    key = placement.request_key or idempotency_key(route.team_id or "",
                                                   *placement.request_parts)
    try:
        record = await ctx.calls.place_call(
            placement.command, agent, route, key,
            from_number=placement.from_number, note=placement.note, ticket=ticket,
        )
    except CallFailed as exc:
        failed = replace(pending, id=exc.row_id, status="failed", error=str(exc))
        card = call_card(failed, show_full_numbers=show)
        await client.chat_update(channel=channel, ts=route.message_ts or "", text=card.text,
                                 blocks=card.blocks)
        await tell(f":x: {exc}")
        return None
    finally:
        if route.user_id:
            ctx.home.refresh(route.user_id)
    if record.message_ts and record.message_ts != route.message_ts:
        card = already_placed_card(record, show_full_numbers=show)
        await client.chat_update(channel=channel, ts=route.message_ts or "", text=card.text,
                                 blocks=card.blocks)
    ctx.outbox.wake()
    return record


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
