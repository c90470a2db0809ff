"""The call modal: opened by `/call` with no text and by App Home; submitted like `/call`."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.calls.placing import PlaceRequest
from bot.context import AppContext
from bot.input.parsing import ModalError, parse_modal_values
from bot.render import replies
from bot.render.answers import retell_words
from bot.render.mistakes import mistake
from bot.render.views import (
    CALL_MODAL,
    NUMBER_DEFAULT_AGENT,
    call_modal,
    loading_modal,
    modal_metadata,
    read_modal_metadata,
)
from bot.retell.client import Agent, CallerNumber, RetellError
from handlers.placing import (
    Blocks,
    Tell,
    external_team,
    interaction_team,
    place_from_slack,
    tell_by_dm,
)
from handlers.scheduling import schedule_from_slack
from storage.models import Route

log = logging.getLogger(__name__)

# How long Retell may take before the modal opens with "Loading…" and is updated later.
MODAL_WAIT = 0.6


async def choices(
    ctx: AppContext,
) -> tuple[list[Agent], list[CallerNumber], RetellError | None]:
    """Agents and caller numbers; when Retell fails the modal still works, with a notice."""
    try:
        agents, numbers = await asyncio.gather(ctx.calls.agents(), ctx.calls.caller_numbers())
    except RetellError as exc:
        log.warning("modal choices not loaded: %s", exc)
        return [], [], exc
    return agents, numbers, None


async def open_call_modal(
    ctx: AppContext, client: AsyncWebClient, trigger_id: str, channel_id: str | None,
    user_id: str | None,
) -> None:
    metadata = modal_metadata(channel_id)
    # The trigger id lives 3 s: the person's language is asked alongside Retell's choices.
    lang_task = asyncio.ensure_future(ctx.languages.of(user_id))

    def full(agents: list[Agent], numbers: list[CallerNumber], failure: RetellError | None,
             lang: str) -> Any:
        notice = (replies.agents_unavailable(retell_words(failure, "agents", lang), lang)
                  if failure is not None else None)
        return call_modal(
            agents, numbers, default_from=ctx.settings.retell_from_number,
            default_agent_id=ctx.settings.retell_agent_id, channel_id=channel_id,
            metadata=metadata, notice=notice, lang=lang,
        )

    try:
        cached = ctx.calls.cached_choices()
        if cached is not None:
            await client.views_open(trigger_id=trigger_id,
                                    view=full(*cached, None, await lang_task))
            return
        loading = asyncio.ensure_future(choices(ctx))
        done, _ = await asyncio.wait({loading}, timeout=MODAL_WAIT)
        lang = await lang_task
        if done:
            await client.views_open(trigger_id=trigger_id, view=full(*loading.result(), lang))
            return
        opened = await client.views_open(trigger_id=trigger_id,
                                         view=loading_modal(metadata, lang))
        view = opened["view"]
        await client.views_update(view_id=view["id"], hash=view.get("hash"),
                                  view=full(*await loading, lang))
    except SlackApiError as exc:
        # hash_conflict: the person already closed or changed the view; nothing to do.
        log.warning("call modal not shown: %s", exc.response.get("error"))


def register(app: AsyncApp, ctx: AppContext) -> None:
    async def submit_call_modal(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        user = body["user"]["id"]
        try:
            request = parse_modal_values(view["state"]["values"], ctx.settings.default_region,
                                         no_agent=NUMBER_DEFAULT_AGENT,
                                         max_days=ctx.settings.schedule_max_days)
        except ModalError as exc:
            log.info("call modal refused user=%s fields=%s", user, ",".join(exc.errors))
            lang = await ctx.languages.of(user)
            await ack(response_action="errors",
                      errors={block: mistake(why, lang) for block, why in exc.errors.items()})
            return
        await ack()
        agent: Agent | None = None
        if request.agent_id:
            known = {a.agent_id: a for a in (ctx.calls.cached_choices() or ([], []))[0]}
            agent = known.get(request.agent_id) or Agent(request.agent_id, None)
        channel = request.channel_id or read_modal_metadata(view.get("private_metadata")).get(
            "channel_id")
        route = Route(team_id=(body.get("team") or {}).get("id"), channel_id=channel,
                           user_id=user)
        if request.due_at is not None:  # *When* was filled in: a call for later
            await schedule_from_slack(
                ctx, client, replace(request.command, agent=request.agent_id), route,
                request.due_at, request_parts=("modal", str(view.get("id", ""))),
                external_team=external_team(interaction_team(body), context),
                tell=_tell_for_modal(body, client, user), note=request.note,
                from_number=request.from_number)
            return
        placement = PlaceRequest(
            request.command, route, ("modal", str(view.get("id", ""))), agent=agent,
            use_number_agent=agent is None, from_number=request.from_number,
            note=request.note, source="modal",
            external_team=external_team(interaction_team(body), context),
        )
        await place_from_slack(ctx, client, placement, _tell_for_modal(body, client, user))

    app.view(CALL_MODAL)(ctx.inflight.track(submit_call_modal))


def _tell_for_modal(body: dict[str, Any], client: AsyncWebClient, user: str) -> Tell:
    """Answer in the chosen channel, visible to the person only; else by direct message."""
    urls = body.get("response_urls") or []
    url = urls[0].get("response_url") if urls and isinstance(urls[0], dict) else None
    if not url:
        return tell_by_dm(client, user)
    async def tell(text: str, blocks: Blocks | None = None) -> None:
        response = await AsyncWebhookClient(url).send(text=text, blocks=blocks,
                                                      response_type="ephemeral")
        if response.status_code != 200:
            await tell_by_dm(client, user)(text, blocks)

    return tell
