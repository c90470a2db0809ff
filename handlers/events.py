"""Events API listeners: `call ...` in messages, mentions and DMs, and the App Home tab.

Slack retries an event it thinks was not received, and a mention in a channel the bot is in
arrives twice (as `app_mention` and as `message`); one claim per message makes both safe.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.calls.placing import PlaceRequest
from bot.context import AppContext
from bot.input.parsing import CommandError, parse_call_text
from bot.render import replies
from bot.render.mistakes import mistake, usage
from handlers.placing import external_team, place_from_slack, tell_in_thread
from storage.models import Route

log = logging.getLogger(__name__)

_MENTION = re.compile(r"^\s*<@[A-Z0-9]+(?:\|[^>]*)?>[\s:,]*")
# `call` then something that starts like a number: "call me later" is conversation, not a call.
_CALL = re.compile(r"^\s*call\s+(?=[+(\d<]|tel:)(.*)$", re.IGNORECASE | re.DOTALL)


def call_text(text: str, *, mentioned: bool) -> str | None:
    """What follows `call` in a message (after the bot's mention, if any), else None."""
    if mentioned:
        text = _MENTION.sub("", text, count=1)
    match = _CALL.match(text)
    return match.group(1) if match else None


def register(app: AsyncApp, ctx: AppContext) -> None:
    async def on_message(
        event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient,
        context: AsyncBoltContext, mentioned: bool,
    ) -> None:
        # Edits, deletions, joins and bot posts carry a subtype or a bot id: never a call.
        if event.get("subtype") or event.get("bot_id") or not event.get("user"):
            return
        if event.get("user") == context.bot_user_id:
            return
        channel, ts, user = str(event["channel"]), str(event["ts"]), str(event["user"])
        direct = event.get("channel_type") == "im"
        text = call_text(str(event.get("text") or ""), mentioned=mentioned)
        if text is None and not (mentioned or direct):
            return
        if not await ctx.calls.claim(f"message:{channel}:{ts}"):
            log.info("message channel=%s ts=%s already handled", channel, ts)
            return
        thread = str(event.get("thread_ts") or ts)
        tell = tell_in_thread(client, channel, user, thread)
        if text is None:
            await client.chat_postMessage(channel=channel, thread_ts=thread,
                                          text=usage("message", await ctx.languages.of(user)))
            return
        try:
            request = parse_call_text(text, ctx.settings.default_region)
        except CommandError as exc:
            log.info("message call refused user=%s: %s", user, type(exc).__name__)
            lang = await ctx.languages.of(user)
            await tell(replies.warning(mistake(exc, lang), usage("message", lang)))
            return
        route = Route(team_id=body.get("team_id"), channel_id=channel, user_id=user,
                           thread_ts=thread)
        # Slack Connect: `user_team` is the writer's own team, the app's is auth.test's.
        user_team = event.get("user_team") or event.get("team")
        placement = PlaceRequest(request, route, ("message", channel, ts),
                              source="mention" if mentioned else "message",
                              external_team=external_team(user_team, context))
        await place_from_slack(ctx, client, placement, tell)

    async def message(
        event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        await on_message(event, body, client, context, mentioned=_mentions_bot(event, context))

    async def app_mention(
        event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        await on_message(event, body, client, context, mentioned=True)

    async def app_home_opened(event: dict[str, Any]) -> None:
        if event.get("tab") == "home" and event.get("user"):
            await ctx.home.publish(str(event["user"]))

    app.event("message")(ctx.inflight.track(message))
    app.event("app_mention")(ctx.inflight.track(app_mention))
    app.event("app_home_opened")(ctx.inflight.track(app_home_opened))


def _mentions_bot(event: dict[str, Any], context: AsyncBoltContext) -> bool:
    """A `message` that starts with the bot's mention is the same request as its app_mention."""
    text = str(event.get("text") or "")
    return bool(context.bot_user_id) and text.lstrip().startswith(f"<@{context.bot_user_id}")
