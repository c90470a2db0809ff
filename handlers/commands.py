"""Slash commands: `/call` (text, or a modal when empty) and the guardrail commands
`/calldnc` and `/callaudit` (admins; anyone may `/calldnc check`)."""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.calls.placing import PlaceRequest
from bot.context import AppContext
from bot.guard.admission import Refused
from bot.input.parsing import (
    CommandError,
    parse_audit_text,
    parse_call_text,
    parse_dnc_text,
)
from bot.input.phones import show_phone
from bot.input.when import split_when
from bot.render import replies
from bot.render.blocks import audit_message, dnc_line, dnc_list_message
from bot.render.exports import audit_csv
from bot.render.mistakes import mistake, usage
from bot.render.refusals import refusal_words
from handlers.placing import Blocks, external_team, place_from_slack
from handlers.scheduling import schedule_from_slack
from handlers.views import open_call_modal
from storage.models import Route

log = logging.getLogger(__name__)



def register(app: AsyncApp, ctx: AppContext) -> None:
    async def call_command(
        ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond,
        context: AsyncBoltContext,
    ) -> None:
        if not command.get("text", "").strip():
            await ack()
            # The trigger id expires 3 s after Slack sent it: open before anything slow.
            await open_call_modal(ctx, client, str(command.get("trigger_id", "")),
                                  command.get("channel_id"), command.get("user_id"))
            return
        text = str(command.get("text", ""))
        later = split_when(text)  # `/call <number> ... at <when>` or `in <duration>`
        try:
            request = parse_call_text(later[0] if later else text, ctx.settings.default_region)
        except CommandError as exc:
            log.info("/call refused user=%s: %s", command.get("user_id"), type(exc).__name__)
            lang = await ctx.languages.of(command.get("user_id"))
            await ack(text=replies.warning(mistake(exc, lang), usage("call", lang)))
            return
        await ack()

        async def tell(text: str, blocks: Blocks | None = None) -> None:
            await respond(text=text, blocks=blocks, response_type="ephemeral")

        route = Route(
            team_id=command.get("team_id"),
            channel_id=command.get("channel_id"),
            user_id=command.get("user_id"),
        )
        # trigger_id is unique per invocation, so Slack's retry of it maps to the same key.
        trigger = str(command.get("trigger_id") or "")
        # Slack Connect: the invoking person's own team (the app's team is auth.test's).
        user_team = command.get("user_team") or command.get("team_id")
        if later is not None:
            await schedule_from_slack(ctx, client, request, route, (later[1], later[2]),
                                      request_parts=("command", trigger),
                                      external_team=external_team(user_team, context),
                                      tell=tell)
            return
        placement = PlaceRequest(
            request, route, ("command", trigger), source="/call",
            external_team=external_team(user_team, context),
        )
        await place_from_slack(ctx, client, placement, tell)

    async def calldnc_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        user = str(command.get("user_id") or "")
        lang = await ctx.languages.of(user)
        try:
            request = parse_dnc_text(command.get("text", ""), ctx.settings.default_region)
            if request.action == "list":
                entries, total = await ctx.guard.dnc_list(user, team_id=command.get("team_id"))
                listed = dnc_list_message(entries, total, lang=lang,
                                          show_full_numbers=ctx.settings.show_full_numbers)
                await ack(text=listed.text, blocks=listed.blocks)
                return
            assert request.phone is not None
            await ack(text=await _dnc(request.action, request.phone.e164, request.reason, user,
                                      command.get("team_id"), lang))
        except CommandError as exc:
            await ack(text=replies.warning(mistake(exc, lang), usage("dnc", lang)))
        except Refused as exc:
            await ack(text=replies.refused(refusal_words(exc, lang)))

    async def _dnc(action: str, number: str, reason: str | None, user: str,
                   team: str | None, lang: str) -> str:
        guard, full = ctx.guard, ctx.settings.show_full_numbers
        shown = show_phone(number, full=full)
        if action == "add":
            added = await guard.dnc_add(number, reason, user, team)
            return replies.dnc_added(shown, added, lang)
        if action == "remove":
            removed = await guard.dnc_remove(number, user, team)
            return replies.dnc_removed(shown, removed, lang)
        entry = await guard.dnc_check(number, team)
        if entry is None:
            return replies.dnc_not_listed(shown, lang)
        return replies.dnc_listed(dnc_line(entry, show_full_numbers=full, lang=lang), lang)

    async def callaudit_command(
        ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        user = str(command.get("user_id") or "")
        lang = await ctx.languages.of(user)
        try:
            query = parse_audit_text(command.get("text", ""), ctx.settings.default_region)
            if query.export:
                exported = await ctx.guard.audit_export(user, command.get("team_id"))
                await ack(text=replies.audit_exporting(len(exported), lang))
                error = await _send_csv(client, user, audit_csv(exported), len(exported), lang)
                if error:
                    await respond(text=replies.audit_not_sent(error, lang),
                                  response_type="ephemeral")
                return
            number = query.phone.e164 if query.phone else None
            rows = await ctx.guard.audit_rows(user, limit=query.limit, of_user=query.user_id,
                                              number=number, team_id=command.get("team_id"))
        except CommandError as exc:
            await ack(text=replies.warning(mistake(exc, lang), usage("audit", lang)))
            return
        except Refused as exc:
            await ack(text=replies.refused(refusal_words(exc, lang)))
            return
        scope = replies.audit_scope(query.user_id,
                                    show_phone(number, full=False) if number else None, lang)
        message = audit_message(rows, scope, lang)
        await ack(text=message.text, blocks=message.blocks)

    async def _send_csv(client: AsyncWebClient, user: str, content: str,
                        count: int, lang: str) -> str | None:
        """A file in the admin's DM with the app; returns Slack's error, if any."""
        try:
            opened = await client.conversations_open(users=user)
            await client.files_upload_v2(
                channel=opened["channel"]["id"], content=content,
                filename=f"callbot-audit-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.csv",
                title=replies.audit_file_title(lang),
                initial_comment=replies.audit_file_comment(count, lang),
            )
            log.info("/callaudit export user=%s rows=%d", user, count)
            return None
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "unknown_error")
            log.warning("/callaudit export failed user=%s: %s", user, error)
            return error

    app.command("/call")(ctx.inflight.track(call_command))
    app.command("/calldnc")(ctx.inflight.track(calldnc_command))
    app.command("/callaudit")(ctx.inflight.track(callaudit_command))

