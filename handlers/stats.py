"""`/callstats` (periods, filters, breakdowns, extracted fields, a chart and exports) and
`/callsearch` (full text over summaries and transcripts, with the same filters). The
figures come from bot/calls/insights.py; words, blocks, the chart and the files from
bot/render. The answer normally rides on the ack; a slow one follows by response_url, and
the chart and exports follow by direct message (files cannot be ephemeral)."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import time
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.calls.insights import Insight, UnknownCampaign
from bot.context import AppContext
from bot.guard.admission import Busy, HeavyGate
from bot.input.mistakes import Mistake
from bot.input.phones import phone_words
from bot.input.stats_query import StatsQuery, parse_search_query, parse_stats_query
from bot.render import replies
from bot.render.blocks import Message, text_message
from bot.render.campaigns import campaign_not_found
from bot.render.exports import call_cells, call_header, call_json
from bot.render.mistakes import mistake, usage
from bot.render.search import (
    ACTION_SEARCH_MORE,
    PAGE,
    read_more_value,
    search_message,
    short_words,
)
from bot.render.stats import filter_words, period_label, report_message
from storage.errors import SearchTooShort
from storage.models import CallFilter, SearchHit

log = logging.getLogger(__name__)

STATS_ACK_BUDGET = 2.0  # past this the answer follows through response_url
STATS_CAPACITY = 4  # /callstats in hand at once; more are told when to come back
EXPORT_PAGE = 2000
EXPORT_LIMIT = 100_000  # calls in one file sent by DM (the CLI export has no limit)
PERMALINK_WAIT = 1.5  # seconds the card links may take before the answer goes without them


def register(app: AsyncApp, ctx: AppContext) -> None:
    gate = HeavyGate(STATS_CAPACITY)

    async def callstats_command(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient,
    ) -> None:
        user = str(command.get("user_id") or "")
        # Asked at once: the answer has 3 s in all, and the zone decides what "today" is.
        profile = asyncio.ensure_future(asyncio.gather(ctx.languages.of(user),
                                                       ctx.languages.zone(user)))
        lang, zone = await profile
        try:
            query = parse_stats_query(str(command.get("text") or ""), zone=zone,
                                      now=time.time())
        except Mistake as exc:
            log.info("/callstats refused user=%s: %s", user, exc.code)
            await ack(text=replies.warning(mistake(exc, lang), usage("stats", lang)))
            return
        try:
            with gate.enter(user):
                await _answer(query, user, lang, ack, respond, client)
        except Busy as exc:
            ctx.metrics.heavy_refused.labels("/callstats").inc()
            log.info("/callstats busy user=%s in_hand=%d retry_after=%d", user, gate.in_hand,
                     exc.retry_after)
            await ack(text=replies.busy(exc.reason, exc.retry_after, exc.in_hand, lang))

    async def _answer(query: StatsQuery, user: str, lang: str, ack: AsyncAck,
                      respond: AsyncRespond, client: AsyncWebClient) -> None:
        started = time.perf_counter()
        task = asyncio.ensure_future(ctx.insights.report(query, team_id=ctx.team_scope()))
        done, _ = await asyncio.wait({task}, timeout=STATS_ACK_BUDGET)
        if not done:
            await ack(text=replies.say("counting_calls", lang))
        try:
            insight = await task
        except UnknownCampaign as exc:
            text = campaign_not_found(exc.name, lang)
            await (ack(text=text) if done else respond(text=text, response_type="ephemeral"))
            return
        message = report_message(
            insight.report, period_label=period_label(query, lang),
            filters=filter_words(agent=query.agent, user_id=query.user_id,
                                 channel_id=query.channel_id, campaign=query.campaign,
                                 direction=query.direction, outcome=query.outcome, lang=lang),
            by=query.by, names=insight.campaigns, lang=lang)
        log.info("/callstats period=%s calls=%d by=%s in %.0f ms", query.period,
                 insight.report.stats.calls, query.by or "-",
                 (time.perf_counter() - started) * 1000)
        if done:
            await ack(text=message.text, blocks=message.blocks)
        else:
            await respond(text=message.text, blocks=message.blocks, response_type="ephemeral")
        if query.chart:
            await _send_chart(client, user, insight, query, lang)
        if query.export:
            admin = ctx.guard.is_admin(user)
            flt = insight.filter if admin else await ctx.insights.call_filter(
                query, only_user=user, team_id=ctx.team_scope())
            await _send_export(client, user, flt, query.export, lang, own_only=not admin)

    async def _dm(client: AsyncWebClient, user: str) -> str:
        opened = await client.conversations_open(users=user)
        return str(opened["channel"]["id"])

    async def _send_chart(client: AsyncWebClient, user: str, insight: Insight,
                          query: StatsQuery, lang: str) -> None:
        title = replies.chart_title(period_label(query, lang), lang)
        # Drawn in a worker process: the event loop never waits for matplotlib. English
        # where the machine has no font for the person's language.
        try:
            png = await ctx.drawing.chart(
                insight.report.days, title=title, lang=lang,
                english_title=replies.chart_title(period_label(query, "en"), "en"))
        except Exception as exc:  # the figures were answered already
            log.warning("/callstats chart not drawn user=%s: %s", user, type(exc).__name__)
            return
        try:
            await client.files_upload_v2(channel=await _dm(client, user), content=png,
                                         filename="callstats.png", title=title)
        except SlackApiError as exc:
            log.warning("/callstats chart not sent user=%s: %s", user,
                        exc.response.get("error"))

    async def _send_export(client: AsyncWebClient, user: str, flt: CallFilter, kind: str,
                           lang: str, *, own_only: bool) -> None:
        full = ctx.settings.show_full_numbers
        fields = await ctx.store.field_names(flt)
        lines: list[str] = []
        count, after = 0, 0
        while count < EXPORT_LIMIT:
            page = await ctx.store.export_calls(flt, after_id=after, limit=EXPORT_PAGE)
            if not page:
                break
            for call in page[:EXPORT_LIMIT - count]:
                lines.append(call_json(call, full=full) if kind == "jsonl"
                             else _csv_line(call_cells(call, fields=fields, full=full)))
            count += min(len(page), EXPORT_LIMIT - count)
            after = page[-1].id
        header = "" if kind == "jsonl" else _csv_line(call_header(fields))
        content = header + "".join(line + ("\n" if kind == "jsonl" else "") for line in lines)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        try:
            await client.files_upload_v2(
                channel=await _dm(client, user), content=content.encode("utf-8"),
                filename=f"callbot-calls-{stamp}.{kind}",
                initial_comment=replies.export_comment(count, own_only, count >= EXPORT_LIMIT,
                                                       lang))
            log.info("/callstats export user=%s kind=%s calls=%d", user, kind, count)
        except SlackApiError as exc:
            log.warning("/callstats export not sent user=%s: %s", user,
                        exc.response.get("error"))

    async def callsearch_command(
        ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient,
    ) -> None:
        user = str(command.get("user_id") or "")
        message = await _search(client, user, str(command.get("text") or ""), 0)
        await ack(text=message.text, blocks=message.blocks)

    async def search_more(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                          client: AsyncWebClient, respond: AsyncRespond) -> None:
        await ack()
        user = str((body.get("user") or {}).get("id") or "")
        asked = read_more_value(str(action.get("value") or ""))
        if asked is None:
            return
        message = await _search(client, user, *asked)
        await respond(text=message.text, blocks=message.blocks, response_type="ephemeral",
                      replace_original=True)

    async def _search(client: AsyncWebClient, user: str, text: str, offset: int) -> Message:
        """One page of `/callsearch` for `text`, from `offset`; every mistake answered."""
        lang, zone = await asyncio.gather(ctx.languages.of(user), ctx.languages.zone(user))
        started = time.perf_counter()
        try:
            words, query = parse_search_query(text, zone=zone, now=time.time())
            flt = await ctx.insights.call_filter(query, team_id=ctx.team_scope())
        except Mistake as exc:
            log.info("/callsearch refused user=%s: %s", user, exc.code)
            return text_message(replies.warning(mistake(exc, lang), usage("search", lang)))
        except UnknownCampaign as exc:
            return text_message(campaign_not_found(exc.name, lang))
        number = phone_words(words, ctx.settings.default_region)
        try:
            hits = await ctx.store.search_calls(
                words, flt, limit=PAGE + 1, offset=offset,
                include_transcripts=ctx.settings.post_transcripts, number=number)
        except SearchTooShort:
            return text_message(replies.warning(short_words(words, lang),
                                                usage("search", lang)))
        more, hits = len(hits) > PAGE, hits[:PAGE]
        links = await _permalinks(client, hits)
        log.info("/callsearch user=%s hits=%d offset=%d in %.0f ms", user, len(hits), offset,
                 (time.perf_counter() - started) * 1000)
        return search_message(text, words, hits, offset=offset, more=more, permalinks=links,
                              show_full_numbers=ctx.settings.show_full_numbers,
                              by_number=number is not None, lang=lang)

    async def _permalinks(client: AsyncWebClient, hits: list[SearchHit]) -> dict[str, str]:
        """Each card's link (chat.getPermalink), asked all at once; a card Slack cannot
        find is shown without one."""
        async def one(hit: SearchHit) -> tuple[str, str] | None:
            call = hit.call
            if not (call.call_id and call.channel_id and call.message_ts):
                return None
            try:
                found = await client.chat_getPermalink(channel=call.channel_id,
                                                       message_ts=call.message_ts)
            except (SlackApiError, aiohttp.ClientError, TimeoutError):
                return None
            return call.call_id, str(found.get("permalink") or "")

        try:
            async with asyncio.timeout(PERMALINK_WAIT):
                found = await asyncio.gather(*(one(h) for h in hits))
        except TimeoutError:
            return {}
        return {k: v for k, v in filter(None, found) if v}

    app.command("/callstats")(ctx.inflight.track(callstats_command))
    app.command("/callsearch")(ctx.inflight.track(callsearch_command))
    app.action(ACTION_SEARCH_MORE)(ctx.inflight.track(search_more))


def _csv_line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()
