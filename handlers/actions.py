"""Buttons on call cards (in channels and in App Home). Each is acked at once."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.calls.placing import PlaceRequest
from bot.calls.service import CallFailed, NotAllowed, retry_key
from bot.context import AppContext
from bot.input.parsing import CallCommand
from bot.input.phones import PhoneNumberError, parse_phone
from bot.render import replies
from bot.render.answers import hang_up_refused, retell_words
from bot.render.blocks import ACTION_CALL_AGAIN, ACTION_HANG_UP, ACTION_REFRESH, ACTION_TRANSCRIPT
from bot.render.views import ACTION_OPEN_MODAL
from bot.retell.client import Agent
from handlers.placing import (
    Blocks,
    Tell,
    external_team,
    interaction_team,
    place_from_slack,
    tell_by_dm,
)
from handlers.views import open_call_modal
from storage.models import Route

log = logging.getLogger(__name__)

# A second "Call again" from the same person on the same card within this many seconds is
# taken for a double click, not a wish for two calls.
CALL_AGAIN_WINDOW = 30.0


def _tell(body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond) -> Tell:
    """Ephemeral under the card in a channel; a direct message when pressed in App Home."""
    if body.get("response_url"):

        async def tell(text: str, blocks: Blocks | None = None) -> None:
            await respond(text=text, blocks=blocks, response_type="ephemeral",
                          replace_original=False)

        return tell
    return tell_by_dm(client, body["user"]["id"])


def _value(body: dict[str, Any]) -> str:
    return str(body["actions"][0].get("value") or "")


def register(app: AsyncApp, ctx: AppContext) -> None:
    async def hang_up(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await ack()
        user = body["user"]["id"]
        try:
            await ctx.calls.hang_up(_value(body), user, admin=ctx.guard.is_admin(user))
        except NotAllowed as exc:
            lang = await ctx.languages.of(user)
            await _tell(body, client, respond)(
                replies.warning(hang_up_refused(exc.reason, exc.placed_by, lang)))
            return
        except CallFailed as exc:
            lang = await ctx.languages.of(user)
            await _tell(body, client, respond)(
                replies.warning(retell_words(exc.cause, exc.action, lang)))
            return

    async def refresh(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await ack()
        try:
            await ctx.calls.refresh(_value(body))
        except CallFailed as exc:
            lang = await ctx.languages.of(body["user"]["id"])
            await _tell(body, client, respond)(
                replies.warning(retell_words(exc.cause, exc.action, lang)))
            return

    async def transcript(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await ack()

        async def tell(reply: str) -> None:
            lang = await ctx.languages.of(body["user"]["id"])
            await _tell(body, client, respond)(replies.say(reply, lang))

        if not ctx.settings.post_transcripts:  # a card from before the setting changed
            await tell("transcripts_off")
            return
        call = await ctx.calls.find(_value(body))
        if call is None or call.call_id is None or not call.transcript:
            await tell("no_transcript_yet")
            return
        if not await ctx.calls.request_transcript(call.call_id):
            await tell("transcript_already_posted")

    async def call_again(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        user = body["user"]["id"]

        async def tell(reply: str) -> None:
            await _tell(body, client, respond)(replies.say(reply,
                                                           await ctx.languages.of(user)))

        ref = _value(body)
        source = await ctx.calls.find(ref)
        if source is None:
            await tell("no_record_of_call")
            return
        number = source.other_number
        try:
            phone = parse_phone(number or "", ctx.settings.default_region)
        except PhoneNumberError:
            await tell("no_number_to_dial")
            return
        channel = (body.get("channel") or {}).get("id") or source.channel_id
        if not channel:
            await tell("no_channel_for_call")
            return
        if not await ctx.calls.claim(f"again:{ref}:{user}", CALL_AGAIN_WINDOW):
            await tell("call_again_on_its_way")
            return
        agent = Agent(source.agent_id, source.agent_name) if source.agent_id else None
        placement = PlaceRequest(
            CallCommand(phone=phone, variables=dict(source.variables)),
            Route(team_id=(body.get("team") or {}).get("id") or source.team_id,
                       channel_id=channel, user_id=user, thread_ts=source.thread_ts),
            ("again", str(body.get("trigger_id") or ref)),
            agent=agent,
            use_number_agent=agent is None,
            # A call back goes out from the number the person called.
            from_number=source.our_number,
            note=source.note,
            source="call again",
            request_key=retry_key(source),
            external_team=external_team(interaction_team(body), context),
        )
        await place_from_slack(ctx, client, placement, _tell(body, client, respond))

    async def open_modal(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await open_call_modal(ctx, client, str(body.get("trigger_id", "")), None,
                              body["user"]["id"])

    app.action(ACTION_HANG_UP)(ctx.inflight.track(hang_up))
    app.action(ACTION_REFRESH)(ctx.inflight.track(refresh))
    app.action(ACTION_TRANSCRIPT)(ctx.inflight.track(transcript))
    app.action(ACTION_CALL_AGAIN)(ctx.inflight.track(call_again))
    app.action(ACTION_OPEN_MODAL)(ctx.inflight.track(open_modal))

