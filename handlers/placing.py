"""Placing a call from Slack: the card lives in a Slack channel, the answer goes to the
person who asked. The use case itself (rules, card, Retell, every failure) is
bot/calls/placing.py; this is its Slack side."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any, Protocol

import aiohttp
from slack_bolt.async_app import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.calls.placing import CardNotPosted, NotAllowed, Outcome, Placed, PlaceRequest
from bot.context import AppContext
from bot.guard.admission import foreign_team
from bot.render.blocks import Message, already_placed_card, call_card
from bot.render.placing import placing_answer
from bot.render.schedule import hours_offer
from bot.slack.outbox import marker
from storage.models import CallRecord, Route

log = logging.getLogger(__name__)

Blocks = list[dict[str, Any]]


class Tell(Protocol):
    """Answers the person who asked, only them: text, and blocks when there are buttons."""

    async def __call__(self, text: str, blocks: Blocks | None = None) -> None: ...


class SlackCardSink:
    """The card as a message in the channel (or thread) the request came from."""

    def __init__(self, ctx: AppContext, client: AsyncWebClient, route: Route) -> None:
        self.ctx = ctx
        self.client = client
        self.channel = route.channel_id or ""
        self.thread_ts = route.thread_ts
        self.lang = ctx.settings.channel_language(route.channel_id)  # the channel's posts

    def _card(self, call: CallRecord) -> Message:
        settings = self.ctx.settings
        return call_card(call, show_full_numbers=settings.show_full_numbers,
                         post_transcripts=settings.post_transcripts, lang=self.lang,
                         simulated=settings.simulated)

    async def post(self, call: CallRecord, key: str) -> str:
        card = self._card(call)
        try:
            posted = await self.client.chat_postMessage(
                channel=self.channel, text=card.text, blocks=card.blocks,
                thread_ts=self.thread_ts, metadata=marker(key),
            )
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise CardNotPosted(*_slack_failure(exc)) from None
        return str(posted["ts"])

    async def update(self, ts: str, call: CallRecord) -> None:
        card = self._card(call)
        await self._edit(ts, card.text, card.blocks)

    async def point_to_placed(self, ts: str, call: CallRecord) -> None:
        card = already_placed_card(call, show_full_numbers=self.ctx.settings.show_full_numbers,
                                   lang=self.lang)
        await self._edit(ts, card.text, card.blocks)

    async def find(self, since: float, key: str) -> str | None:
        return await self.ctx.outbox.find_post(self.channel, self.thread_ts, since, key)

    async def _edit(self, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        """Best effort: the person has been told already; a card Slack won't update is
        logged."""
        try:
            await self.client.chat_update(channel=self.channel, ts=ts, text=text, blocks=blocks)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            error, status = _slack_failure(exc)
            log.warning("card not updated channel=%s error=%s status=%s", self.channel, error,
                        status)


async def place_from_slack(
    ctx: AppContext, client: AsyncWebClient, request: PlaceRequest, tell: Tell
) -> CallRecord | None:
    """Run the placing use case with the card in Slack, and tell the person the outcome."""
    tell = _safe(tell)
    await ctx.inflight.after_acks()
    settings = ctx.settings
    request = replace(request, lang=settings.channel_language(request.route.channel_id))

    async def answer(outcome: Outcome) -> None:
        if isinstance(outcome, Placed):
            return  # the card says it all
        lang = await ctx.languages.of(request.route.user_id)
        text = placing_answer(outcome, show_full_numbers=settings.show_full_numbers,
                              lang=lang, simulated=settings.simulated)
        if text is None:
            return
        await tell(text, _hours_offer(ctx, request, outcome, text, lang))

    outcome = await ctx.placing.place(request, SlackCardSink(ctx, client, request.route),
                                      answer)
    return outcome.record if isinstance(outcome, Placed) else None


MAX_VALUE = 2000  # Slack's limit on a button's value


def offer_value(request: PlaceRequest, opens_at: float) -> str | None:
    """What a calling-hours button carries to place or schedule the same call (None: too
    long for a button's value; the person can still use `/call ... at <when>`)."""
    agent = request.agent.agent_id if request.agent else request.command.agent
    value = json.dumps({"n": request.command.phone.e164, "a": agent,
                        "v": request.command.variables, "f": request.from_number,
                        "c": request.route.channel_id, "t": request.route.thread_ts,
                        "no": request.note, "o": opens_at}, separators=(",", ":"))
    return value if len(value) <= MAX_VALUE else None


def _hours_offer(ctx: AppContext, request: PlaceRequest, outcome: Outcome, text: str,
                 lang: str) -> Blocks | None:
    """Outside calling hours: offer to schedule it for the opening (and, for an admin, to
    call anyway)."""
    if not (isinstance(outcome, NotAllowed) and outcome.refusal.reason == "calling_hours"):
        return None
    opens_at = outcome.refusal.facts.get("opens_at")
    if not isinstance(opens_at, float):
        return None
    value = offer_value(request, opens_at)
    if value is None:
        return None
    return hours_offer(text, opens_at, request.command.phone.e164, value,
                       admin=ctx.guard.is_admin(request.route.user_id), lang=lang)


def _slack_failure(exc: Exception) -> tuple[str, int | None]:
    """(Slack's error code, HTTP status) of a failed call; status None: no answer at all."""
    if isinstance(exc, SlackApiError) and exc.response is not None:
        data = exc.response.data
        error = data.get("error") if isinstance(data, dict) else None
        return str(error or f"http_{exc.response.status_code}"), exc.response.status_code
    return type(exc).__name__, None


def _safe(tell: Tell) -> Tell:
    """Telling the person must never be what fails: log it and go on."""

    async def safe(text: str, blocks: Blocks | None = None) -> None:
        try:
            await tell(text, blocks)
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

    async def tell(text: str, blocks: Blocks | None = None) -> None:
        try:
            await client.chat_postEphemeral(channel=channel, user=user, text=text,
                                            blocks=blocks, thread_ts=thread_ts)
        except SlackApiError as exc:
            log.warning("could not answer user=%s in channel=%s: %s", user, channel,
                        exc.response.get("error"))

    return tell


def tell_by_dm(client: AsyncWebClient, user: str) -> Tell:
    """For surfaces with nowhere else to answer (App Home, a closed modal)."""

    async def tell(text: str, blocks: Blocks | None = None) -> None:
        try:
            await client.chat_postMessage(channel=user, text=text, blocks=blocks)
        except SlackApiError as exc:
            log.warning("could not DM user=%s: %s", user, exc.response.get("error"))

    return tell
