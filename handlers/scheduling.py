"""Scheduled calls from Slack: `/call ... at <when>`, the card's Call now and Cancel buttons,
`/callschedule`; and the Slack side of a scheduled call (its card, its requester's DMs) the
scheduler reaches through `SlackScheduleSink`. The use case is bot/calls/scheduling.py."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.calls.placing import CardNotPosted, CardSink, NotAllowed, Outcome, PlaceRequest
from bot.calls.scheduling import NotYours, ScheduleRequest
from bot.context import AppContext
from bot.guard.admission import Refused
from bot.input.parsing import CallCommand
from bot.input.phones import parse_phone
from bot.input.when import WhenError, parse_when
from bot.render import replies
from bot.render.answers import card_not_posted
from bot.render.mistakes import mistake, usage
from bot.render.placing import placing_answer
from bot.render.refusals import refusal_words, short_refusal
from bot.render.schedule import (
    ACTION_HOURS_OVERRIDE,
    ACTION_HOURS_SCHEDULE,
    ACTION_SCHEDULE_CANCEL,
    ACTION_SCHEDULE_NOW,
    missed_words,
    not_placed_words,
    not_yours,
    schedule_list,
    scheduled_answer,
    scheduled_card,
)
from bot.slack.outbox import marker
from handlers.placing import (
    Blocks,
    SlackCardSink,
    Tell,
    _slack_failure,
    external_team,
    interaction_team,
    place_from_slack,
    tell_by_dm,
)
from storage.models import CallRecord, Route, Scheduled

log = logging.getLogger(__name__)


class _FiringCard(SlackCardSink):
    """The fired call's card is the scheduled card, updated in place (posted anew only if
    the scheduled card never made it to the channel)."""

    def __init__(self, ctx: AppContext, client: AsyncWebClient, route: Route,
                 card_ts: str | None) -> None:
        super().__init__(ctx, client, route)
        self.card_ts = card_ts

    async def post(self, call: CallRecord, key: str) -> str:
        if self.card_ts is None:
            return await super().post(call, key)
        card = self._card(call)
        try:
            await self.client.chat_update(channel=self.channel, ts=self.card_ts,
                                          text=card.text, blocks=card.blocks,
                                          metadata=marker(key))
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise CardNotPosted(*_slack_failure(exc)) from None
        return self.card_ts


class SlackScheduleSink:
    """One scheduled call's card in its channel, and its requester's DMs."""

    def __init__(self, ctx: AppContext, client: AsyncWebClient, channel_id: str) -> None:
        self.ctx = ctx
        self.client = client
        self.channel = channel_id
        self.lang = ctx.settings.channel_language(channel_id)

    def _card(self, entry: Scheduled, waiting_until: float | None = None,
              refusal: str | None = None) -> tuple[str, list[dict[str, Any]]]:
        settings = self.ctx.settings
        card = scheduled_card(entry, show_full_numbers=settings.show_full_numbers,
                              lang=self.lang, simulated=settings.simulated,
                              waiting_until=waiting_until, refusal=refusal)
        return card.text, card.blocks

    async def post(self, entry: Scheduled) -> str:
        text, blocks = self._card(entry)
        posted = await self.client.chat_postMessage(channel=self.channel, text=text,
                                                    blocks=blocks, thread_ts=entry.thread_ts)
        return str(posted["ts"])

    async def show(self, entry: Scheduled, *, waiting_until: float | None = None) -> None:
        if entry.card_ts is None:
            return
        refusal = None
        if entry.outcome == "refused" and entry.detail:
            refusal = short_refusal(entry.detail, self.lang)
        text, blocks = self._card(entry, waiting_until, refusal)
        try:
            await self.client.chat_update(channel=self.channel, ts=entry.card_ts, text=text,
                                          blocks=blocks)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("scheduled card not updated id=%d: %s", entry.id,
                        _slack_failure(exc)[0])

    def card(self, entry: Scheduled) -> CardSink:
        route = Route(team_id=entry.team_id, channel_id=entry.channel_id,
                      user_id=entry.user_id, thread_ts=entry.thread_ts)
        return _FiringCard(self.ctx, self.client, route, entry.card_ts)

    async def tell(self, entry: Scheduled, outcome: Outcome | None) -> None:
        settings = self.ctx.settings
        lang = await self.ctx.languages.of(entry.user_id)
        full = settings.show_full_numbers
        if outcome is None:
            text = missed_words(entry, show_full_numbers=full, lang=lang)
        else:
            why = placing_answer(outcome, show_full_numbers=full, lang=lang,
                                 simulated=settings.simulated) or ""
            text = not_placed_words(entry, why, show_full_numbers=full, lang=lang)
        await tell_by_dm(self.client, entry.user_id)(text)


def read_offer(value: str, region: str) -> tuple[CallCommand, str, str | None, float,
                                                str | None, str | None] | None:
    """A calling-hours button's value (handlers/placing.offer_value) read back: the call,
    its channel and thread, when the window opens, its caller ID and note."""
    try:
        data = json.loads(value)
        phone = parse_phone(str(data["n"]), region)
        variables = {str(k): str(v) for k, v in dict(data.get("v") or {}).items()}
        agent = data.get("a")
        channel = data.get("c")
        opens_at = float(data["o"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(channel, str) or not channel:
        return None
    thread, caller, note = data.get("t"), data.get("f"), data.get("no")
    return (CallCommand(phone=phone, agent=agent if isinstance(agent, str) else None,
                        variables=variables), channel,
            thread if isinstance(thread, str) else None, opens_at,
            caller if isinstance(caller, str) else None, note if isinstance(note, str) else None)


async def schedule_from_slack(
    ctx: AppContext, client: AsyncWebClient, command: CallCommand, route: Route,
    when: tuple[str, str] | float, *, request_parts: tuple[str, ...],
    external_team: str | None, tell: Tell, note: str | None = None,
    from_number: str | None = None,
) -> Scheduled | None:
    """`/call <number> ... at <when>` (`when`: the keyword and its text, read in the
    requester's zone) or the modal's *When* (`when`: a moment): keep the call, post its
    card; the requester is told when (theirs and the callee's) or why not."""
    settings = ctx.settings
    user = route.user_id or ""
    lang, zone = await asyncio.gather(ctx.languages.of(user), ctx.languages.zone(user))
    if isinstance(when, tuple):
        try:
            due = (await asyncio.to_thread(parse_when, when[0], when[1], zone,
                                           datetime.now(UTC),
                                           settings.schedule_max_days)).timestamp()
        except WhenError as exc:
            await tell(replies.warning(mistake(exc, lang), usage("call", lang)))
            return None
    else:
        due = when
    request = ScheduleRequest(command, route, due, external_team=external_team,
                              request_parts=request_parts, note=note,
                              from_number=from_number)
    sink = SlackScheduleSink(ctx, client, route.channel_id or "")
    try:
        entry = await ctx.scheduling.schedule(request, sink)
    except Refused as exc:
        await tell(replies.refused(refusal_words(exc, lang)))
        return None
    except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
        error, status = _slack_failure(exc)
        log.warning("scheduled card not posted: %s", error)
        await tell(":x: " + card_not_posted(route.channel_id or "", error, status, lang))
        return None
    await tell(scheduled_answer(entry, lang))
    return entry


def register(app: AsyncApp, ctx: AppContext) -> None:
    async def callschedule_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        user = str(command.get("user_id") or "")
        lang = await ctx.languages.of(user)
        text = str(command.get("text") or "").strip().lower()
        if text not in ("", "all"):
            await ack(text=replies.warning(usage("schedule", lang)))
            return
        everyone = text == "all"
        if everyone and not ctx.guard.is_admin(user):
            await ack(text=replies.refused(refusal_words(
                Refused("not_admin", admins=sorted(ctx.settings.admins)), lang)))
            return
        entries = await ctx.store.upcoming_schedules(None if everyone else user, 40)
        listed = schedule_list(entries, everyone=everyone, lang=lang,
                               show_full_numbers=ctx.settings.show_full_numbers)
        await ack(text=listed.text, blocks=listed.blocks)

    async def schedule_button(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient,
                              respond: AsyncRespond, context: AsyncBoltContext) -> None:
        await ack()
        user = body["user"]["id"]
        action = body["actions"][0]
        value = str(action.get("value") or "")
        if not value.isdigit():
            return
        schedule_id = int(value)
        admin = ctx.guard.is_admin(user)

        def sinks(entry: Scheduled) -> SlackScheduleSink:
            return SlackScheduleSink(ctx, client, entry.channel_id)

        try:
            if action.get("action_id") == ACTION_SCHEDULE_CANCEL:
                await ctx.scheduling.cancel(schedule_id, user, admin=admin, sinks=sinks)
                return
            outcome = await ctx.scheduling.call_now(schedule_id, user, admin=admin,
                                                    sinks=sinks)
            if isinstance(outcome, NotAllowed):
                lang = await ctx.languages.of(user)
                await respond(text=replies.refused(refusal_words(outcome.refusal, lang)),
                              response_type="ephemeral", replace_original=False)
        except NotYours as exc:
            lang = await ctx.languages.of(user)
            await respond(text=replies.warning(not_yours(exc.reason, exc.owner, lang)),
                          response_type="ephemeral", replace_original=False)

    async def hours_button(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient,
                           respond: AsyncRespond, context: AsyncBoltContext) -> None:
        """On a calling-hours refusal: schedule the call for the opening, or (an admin,
        after Slack's confirmation) place it now anyway, audited as an override."""
        await ack()
        user = body["user"]["id"]
        action = body["actions"][0]

        async def tell(text: str, blocks: Blocks | None = None) -> None:
            await respond(text=text, blocks=blocks, response_type="ephemeral",
                          replace_original=False)

        offer = read_offer(str(action.get("value") or ""), ctx.settings.default_region)
        if offer is None:
            log.info("calling-hours button with an unreadable value user=%s", user)
            return
        command, channel, thread, opens_at, from_number, note = offer
        route = Route(team_id=(body.get("team") or {}).get("id"), channel_id=channel,
                      user_id=user, thread_ts=thread)
        team = external_team(interaction_team(body), context)
        trigger = str(body.get("trigger_id") or action.get("action_ts") or "")
        if action.get("action_id") == ACTION_HOURS_SCHEDULE:
            await schedule_from_slack(ctx, client, command, route, opens_at,
                                      request_parts=("offer", trigger), external_team=team,
                                      tell=tell, note=note, from_number=from_number)
            return
        placement = PlaceRequest(command, route, ("override", trigger), source="override",
                                 from_number=from_number, note=note, external_team=team,
                                 use_number_agent=command.agent is None,
                                 override_hours=True)
        await place_from_slack(ctx, client, placement, tell)

    app.command("/callschedule")(ctx.inflight.track(callschedule_command))
    for action_id in (ACTION_HOURS_SCHEDULE, ACTION_HOURS_OVERRIDE):
        app.action(action_id)(ctx.inflight.track(hours_button))
    for action_id in (ACTION_SCHEDULE_NOW, ACTION_SCHEDULE_CANCEL):
        app.action(action_id)(ctx.inflight.track(schedule_button))
