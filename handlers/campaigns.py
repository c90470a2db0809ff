"""Campaigns from Slack: `/callcampaign` (the modal, `list`, `status <name>`), a CSV shared
in a DM with the app, the card's buttons; and the Slack side of a campaign the runner
reaches through `SlackCampaignSink`. The use case is bot/calls/campaigns.py."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.calls.campaigns import CampaignDraft, NotYours, Preview
from bot.context import AppContext
from bot.guard.admission import Refused
from bot.input.campaign_form import (
    CampaignFile,
    CampaignForm,
    CampaignFormError,
    read_campaign_form,
)
from bot.input.contacts import MAX_BYTES, ContactsError, read_contacts
from bot.input.mistakes import Mistake
from bot.render.campaigns import (
    ACTION_CAMPAIGN_CANCEL,
    ACTION_CAMPAIGN_PAUSE,
    ACTION_CAMPAIGN_RESULTS,
    ACTION_CAMPAIGN_RESUME,
    ACTION_CAMPAIGN_START,
    CAMPAIGN_MODAL,
    campaign_card,
    campaign_failure,
    campaign_failures_more,
    campaign_form_errors,
    campaign_list,
    campaign_modal,
    campaign_not_found,
    campaign_not_now,
    campaign_not_yours,
    campaign_state_changed,
    campaign_status,
    campaign_summary,
    campaign_usage,
    results_csv,
)
from bot.render.mistakes import mistake
from bot.render.refusals import refusal_words
from bot.render.views import modal_metadata, read_modal_metadata
from bot.retell.client import RetellError
from bot.slack.installs import for_team
from handlers.placing import (
    Tell,
    _slack_failure,
    external_team,
    interaction_team,
    tell_by_dm,
)
from handlers.views import choices
from storage.models import CallRecord, Campaign, CampaignCounts, CampaignRow, Route

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 5
CONCURRENCY_WAIT = 0.6  # seconds Retell's get-concurrency may take before the modal opens
DOWNLOAD_TIMEOUT = 30.0
_ACTIONS = (ACTION_CAMPAIGN_START, ACTION_CAMPAIGN_PAUSE, ACTION_CAMPAIGN_RESUME,
            ACTION_CAMPAIGN_CANCEL)


class FileNotRead(Mistake):
    """The uploaded file could not be fetched from Slack (a mistake code and its facts)."""


class SlackCampaignSink:
    """One campaign's card in its channel, its thread, and its results file."""

    def __init__(self, ctx: AppContext, client: AsyncWebClient, channel_id: str) -> None:
        self.ctx = ctx
        self.client = client
        self.channel = channel_id
        self.lang = ctx.settings.channel_language(channel_id)

    async def post(self, preview: Preview) -> str:
        card = campaign_card(preview.campaign, preview.counts, now=time.time(),
                             bad=preview.bad, estimate_s=preview.estimate_s,
                             show_full_numbers=self.ctx.settings.show_full_numbers,
                             lang=self.lang)
        posted = await self.client.chat_postMessage(channel=self.channel, text=card.text,
                                                    blocks=card.blocks)
        return str(posted["ts"])

    async def show(self, campaign: Campaign, counts: CampaignCounts, *,
                   eta_s: float | None) -> None:
        if not campaign.card_ts:
            return
        card = campaign_card(campaign, counts, now=time.time(), eta_s=eta_s,
                             show_full_numbers=self.ctx.settings.show_full_numbers,
                             lang=self.lang)
        try:
            await self.client.chat_update(channel=self.channel, ts=campaign.card_ts,
                                          text=card.text, blocks=card.blocks)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("campaign card not updated id=%d: %s", campaign.id,
                        _slack_failure(exc)[0])

    async def note(self, campaign: Campaign, text: str) -> None:
        """Who started, paused, resumed or cancelled it, in the card's thread."""
        try:
            await self.client.chat_postMessage(channel=self.channel,
                                               thread_ts=campaign.card_ts, text=text)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("campaign note not posted id=%d: %s", campaign.id,
                        _slack_failure(exc)[0])

    async def failure(self, campaign: Campaign, row: CampaignRow,
                      call: CallRecord | None, *, more: bool = False) -> None:
        text = campaign_failures_more(self.lang) if more else campaign_failure(
            row, call, show_full_numbers=self.ctx.settings.show_full_numbers, lang=self.lang)
        await self.client.chat_postMessage(channel=self.channel, thread_ts=campaign.card_ts,
                                           text=text)

    async def results(self, campaign: Campaign, counts: CampaignCounts,
                      rows: Sequence[tuple[CampaignRow, CallRecord | None]]) -> None:
        content = results_csv(campaign, rows,
                              show_full_numbers=self.ctx.settings.show_full_numbers)
        slug = re.sub(r"[^A-Za-z0-9_-]+", "-", campaign.name).strip("-")[:40] or "campaign"
        await self.client.files_upload_v2(
            channel=self.channel, thread_ts=campaign.card_ts, content=content,
            filename=f"{slug}-{campaign.id}-results.csv",
            initial_comment=campaign_summary(campaign, counts, lang=self.lang))
        log.info("campaign results posted id=%d rows=%d", campaign.id, len(rows))


def campaign_sinks(ctx: AppContext, client: AsyncWebClient
                   ) -> Callable[[Campaign], SlackCampaignSink]:
    """The runner's way to each campaign's Slack side."""

    def sink(campaign: Campaign) -> SlackCampaignSink:
        return SlackCampaignSink(ctx, for_team(client, campaign.team_id), campaign.channel_id)

    return sink


async def download_csv(ctx: AppContext, client: AsyncWebClient, file_id: str) -> tuple[str, bytes]:
    """The file's name and bytes, fetched as Slack requires (the bot token as a bearer);
    Slack answers a login page, not the file, when the token lacks `files:read`."""
    try:
        info = await client.files_info(file=file_id)
    except SlackApiError as exc:
        log.warning("campaign file not found file=%s: %s", file_id, _slack_failure(exc)[0])
        raise FileNotRead("campaign_file_unreadable") from None
    meta = info.get("file") or {}
    name = str(meta.get("name") or "contacts.csv")
    if int(meta.get("size") or 0) > MAX_BYTES:
        raise FileNotRead("contacts_too_large", limit=MAX_BYTES // (1024 * 1024))
    url = meta.get("url_private_download") or meta.get("url_private")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise FileNotRead("campaign_file_unreadable")
    timeout = aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT)
    try:
        async with (aiohttp.ClientSession(timeout=timeout) as session,
                    session.get(url, headers={"Authorization": f"Bearer {client.token}"},
                                allow_redirects=False) as resp):
            kind = resp.headers.get("Content-Type", "")
            if resp.status != 200 or kind.startswith("text/html"):
                log.warning("campaign file not downloaded file=%s status=%d type=%s",
                            file_id, resp.status, kind.split(";")[0])
                raise FileNotRead("campaign_file_unreadable")
            chunks: list[bytes] = []
            size = 0
            # read(n) gives what has arrived so far, not n bytes: read to the end, capped.
            async for chunk in resp.content.iter_chunked(64 * 1024):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_BYTES:
                    break
            data = b"".join(chunks)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("campaign file not downloaded file=%s: %s", file_id, type(exc).__name__)
        raise FileNotRead("campaign_file_unreadable") from None
    if len(data) > MAX_BYTES:
        raise FileNotRead("contacts_too_large", limit=MAX_BYTES // (1024 * 1024))
    return name, data


async def default_concurrency(ctx: AppContext) -> int:
    """min(5, Retell's free concurrency), 5 when Retell does not say in time."""
    try:
        found = await asyncio.wait_for(ctx.calls.retell.get_concurrency(), CONCURRENCY_WAIT)
    except (RetellError, TimeoutError):
        return DEFAULT_CONCURRENCY
    return max(1, min(DEFAULT_CONCURRENCY, found.free))


async def draft_from_slack(ctx: AppContext, client: AsyncWebClient, form: CampaignForm,
                           route: Route, tell: Tell, *, external: str | None) -> None:
    """Fetch and read the file, keep the draft and post its preview; every failure is
    told to the person in their language, and nothing is kept."""
    lang = await ctx.languages.of(route.user_id)
    try:
        name, data = await download_csv(ctx, client, form.file.id)
        contacts = read_contacts(data, ctx.settings.default_region)
    except (FileNotRead, ContactsError) as exc:
        log.info("campaign file refused user=%s: %s", route.user_id, exc.code)
        await tell(mistake(exc, lang))
        return
    draft = CampaignDraft(
        name=form.name, route=route, contacts=contacts, concurrency=form.concurrency,
        attempts=form.attempts, retry_spacing=form.retry_spacing_s, agent=form.agent,
        from_number=form.from_number, start_at=form.start_at, file_name=name,
        external_team=external)
    sink = SlackCampaignSink(ctx, client, route.channel_id or "")
    try:
        await ctx.campaigns.prepare(draft, sink)
    except Refused as exc:
        await tell(refusal_words(exc, lang))
    except SlackApiError as exc:
        log.warning("campaign preview not posted channel=%s: %s", route.channel_id,
                    _slack_failure(exc)[0])
        await tell(mistake(Mistake("campaign_preview_not_posted"), lang))


def register(app: AsyncApp, ctx: AppContext) -> None:
    async def campaign_command(
        ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient,
    ) -> None:
        text = str(command.get("text") or "").strip()
        user = str(command.get("user_id") or "")
        word, _, rest = text.partition(" ")
        if not text:
            await ack()
            await _open_modal(client, str(command.get("trigger_id") or ""),
                              command.get("channel_id"), user)
            return
        lang = await ctx.languages.of(user)
        if word.lower() == "list":
            found = await ctx.store.find_campaigns(limit=15)
            listed = [(c, await ctx.campaigns.counts(c.id)) for c in found]
            await ack(text=campaign_list(listed, lang=lang))
            return
        if word.lower() == "status" and rest.strip():
            matches = await ctx.store.find_campaigns(name=rest.strip()[:80], limit=1)
            if not matches:
                await ack(text=campaign_not_found(rest.strip()[:80], lang))
                return
            campaign = matches[0]
            counts = await ctx.campaigns.counts(campaign.id)
            await ack(text=campaign_status(campaign, counts, now=time.time(),
                                           eta_s=ctx.campaigns.eta(campaign, counts),
                                           lang=lang))
            return
        await ack(text=campaign_usage(lang))

    async def _open_modal(client: AsyncWebClient, trigger_id: str, channel: str | None,
                          user: str) -> None:
        lang_task = asyncio.ensure_future(ctx.languages.of(user))
        concurrency_task = asyncio.ensure_future(default_concurrency(ctx))
        cached = ctx.calls.cached_choices()
        if cached is None:
            try:
                agents, numbers, _ = await asyncio.wait_for(choices(ctx), CONCURRENCY_WAIT)
            except TimeoutError:
                agents, numbers = [], []
        else:
            agents, numbers = cached
        view = campaign_modal(agents, numbers, default_concurrency=await concurrency_task,
                              max_concurrency=ctx.settings.campaign_max_concurrency,
                              metadata=modal_metadata(channel), lang=await lang_task)
        try:
            await client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as exc:
            log.warning("campaign modal not shown: %s", exc.response.get("error"))

    async def submit_campaign_modal(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        user = body["user"]["id"]
        try:
            form = read_campaign_form(view["state"]["values"],
                                      max_concurrency=ctx.settings.campaign_max_concurrency,
                                      now=time.time(), max_days=ctx.settings.schedule_max_days)
        except CampaignFormError as exc:
            log.info("campaign modal refused user=%s fields=%s", user, ",".join(exc.errors))
            lang = await ctx.languages.of(user)
            await ack(response_action="errors", errors=campaign_form_errors(
                exc.errors, lang, max_concurrency=ctx.settings.campaign_max_concurrency,
                max_days=ctx.settings.schedule_max_days))
            return
        await ack()
        channel = read_modal_metadata(view.get("private_metadata")).get("channel_id")
        route = Route(team_id=(body.get("team") or {}).get("id"), channel_id=channel or user,
                      user_id=user)
        await draft_from_slack(ctx, client, form, route, tell_by_dm(client, user),
                               external=external_team(interaction_team(body), context))

    async def shared_file(event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient,
                          context: AsyncBoltContext) -> None:
        """A CSV shared in a DM with the app: a campaign with the defaults, previewed there."""
        if event.get("channel_type") != "im" or event.get("bot_id") or not event.get("user"):
            return
        files = [f for f in event.get("files") or [] if isinstance(f, dict)]
        csvs = [f for f in files if str(f.get("name", "")).lower().endswith(".csv")
                or f.get("filetype") == "csv"]
        channel, user = str(event["channel"]), str(event["user"])
        if not csvs or not await ctx.calls.claim(f"file:{channel}:{event.get('ts')}"):
            return
        name = str(csvs[0].get("name") or "contacts.csv")
        shared = CampaignFile(str(csvs[0].get("id") or ""), name, "")
        form = CampaignForm(name=name.rsplit(".", 1)[0][:80] or name, agent=None,
                            from_number=None, file=shared,
                            concurrency=await default_concurrency(ctx),
                            attempts=1, retry_spacing_s=3600.0, start_at=None)
        route = Route(team_id=body.get("team_id"), channel_id=channel, user_id=user)
        await draft_from_slack(ctx, client, form, route, tell_by_dm(client, user),
                               external=external_team(event.get("user_team")
                                                      or event.get("team"), context))

    async def campaign_button(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient,
        respond: AsyncRespond,
    ) -> None:
        await ack()
        user = body["user"]["id"]
        admin = ctx.guard.is_admin(user)
        value = str(action.get("value") or "")
        if not value.isdigit():
            return
        campaign_id = int(value)
        name = action["action_id"]
        try:
            if name == ACTION_CAMPAIGN_START:
                campaign = await ctx.campaigns.start(campaign_id, user, admin=admin)
            elif name == ACTION_CAMPAIGN_PAUSE:
                campaign = await ctx.campaigns.pause(campaign_id, user, admin=admin)
            elif name == ACTION_CAMPAIGN_RESUME:
                campaign = await ctx.campaigns.resume(campaign_id, user, admin=admin)
            else:
                campaign = await ctx.campaigns.cancel(campaign_id, user, admin=admin)
        except NotYours as exc:
            lang = await ctx.languages.of(user)
            text = (campaign_not_yours(exc.owner or "", lang) if exc.reason == "not_theirs"
                    else campaign_not_found(value, lang) if exc.reason == "unknown"
                    else campaign_not_now(lang))
            await respond(text=text, response_type="ephemeral", replace_original=False)
            return
        sink = SlackCampaignSink(ctx, client, campaign.channel_id)
        await ctx.campaigns.show(campaign, sink, force=True)
        await sink.note(campaign, campaign_state_changed(
            campaign, name.removeprefix("campaign_"), user, sink.lang))

    async def results_button(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient,
        respond: AsyncRespond,
    ) -> None:
        await ack()
        user = body["user"]["id"]
        value = str(action.get("value") or "")
        campaign = await ctx.store.get_campaign(int(value)) if value.isdigit() else None
        lang = await ctx.languages.of(user)
        if campaign is None:
            await respond(text=campaign_not_found(value, lang), response_type="ephemeral",
                          replace_original=False)
            return
        if campaign.owner != user and not ctx.guard.is_admin(user):
            await respond(text=campaign_not_yours(campaign.owner, lang),
                          response_type="ephemeral", replace_original=False)
            return
        await ctx.campaigns.results(campaign, SlackCampaignSink(ctx, client,
                                                                campaign.channel_id))

    app.command("/callcampaign")(ctx.inflight.track(campaign_command))
    app.view(CAMPAIGN_MODAL)(ctx.inflight.track(submit_campaign_modal))
    app.event({"type": "message", "subtype": "file_share"})(ctx.inflight.track(shared_file))
    for action_id in _ACTIONS:
        app.action(action_id)(ctx.inflight.track(campaign_button))
    app.action(ACTION_CAMPAIGN_RESULTS)(ctx.inflight.track(results_button))
