"""Delivers the outbox to Slack: card updates and summaries that webhooks caused.

Items are committed with the event that caused them, so a crash or a Slack outage delays
them but never loses them; on start-up the worker picks up whatever is still pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import TextFile, analysis_reply, call_card, transcript_post
from bot.tasks import finish_or_cancel
from storage.base import Store
from storage.models import CallRecord, OutboxItem

log = logging.getLogger(__name__)

# Slack errors that retrying cannot fix: record them on the item and move on.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "missing_scope",
        "message_not_found",
        "cant_update_message",
        "msg_too_long",
        "invalid_blocks",
        "restricted_action",
        "no_permission",
    }
)


class Permanent(Exception):
    pass


class OutboxWorker:
    def __init__(
        self,
        store: Store,
        client: AsyncWebClient,
        *,
        notify_channel: str | None = None,
        show_full_numbers: bool = False,
        max_backoff: float = 300.0,
        max_attempts: int = 12,
        on_card: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.notify_channel = notify_channel
        self.show_full_numbers = show_full_numbers
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts
        self.on_card = on_card  # told the user id whose call changed (App Home refresh)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="outbox-worker")

    async def stop(self, grace: float = 10.0) -> None:
        """Let the item in hand finish (so a restart never repeats a post), then stop."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        await finish_or_cancel(self._task, grace)
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            # Cleared before looking, so a wake() that comes while we look is not lost.
            self._wake.clear()
            try:
                await self.deliver_due()
                next_due = await self.store.next_outbox_due()
            except Exception:
                log.exception("outbox pass failed; retrying in 5 s")
                next_due = time.time() + 5
            if self._stopping:
                return
            timeout = None if next_due is None else max(0.0, next_due - time.time())
            if timeout == 0.0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def deliver_due(self) -> int:
        """One pass over what is due now; returns how many items were handled."""
        handled = 0
        while True:
            items = await self.store.due_outbox(time.time(), 50)
            if not items:
                return handled
            for item in items:
                if self._stopping:
                    return handled
                await self._attempt(item)
                handled += 1

    async def _attempt(self, item: OutboxItem) -> None:
        try:
            await self._deliver(item)
        except Permanent as exc:
            log.error("outbox gave up call_id=%s kind=%s: %s", item.call_id, item.kind, exc)
            await self.store.fail_outbox(item.id, time.time(), str(exc))
            return
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            reason, retry_after = _transient_reason(exc)
            if item.attempts + 1 >= self.max_attempts:
                log.error("outbox gave up call_id=%s kind=%s after %d attempts: %s",
                          item.call_id, item.kind, item.attempts + 1, reason)
                await self.store.fail_outbox(item.id, time.time(), reason)
                return
            delay = retry_after or min(self.max_backoff, 2.0**item.attempts)
            delay *= 1 if retry_after else random.uniform(0.5, 1.0)
            log.warning("outbox retry call_id=%s kind=%s in %.1f s: %s",
                        item.call_id, item.kind, delay, reason)
            await self.store.retry_outbox(item.id, time.time() + delay, reason)
            return
        await self.store.complete_outbox(item.id, time.time())

    async def _deliver(self, item: OutboxItem) -> None:
        call = await self.store.get_call(item.call_id)
        channel = (call.channel_id if call else None) or self.notify_channel
        if call is None or channel is None:
            log.info("call_id=%s kind=%s has no channel; stored only", item.call_id, item.kind)
            return
        card = call_card(call, show_full_numbers=self.show_full_numbers)
        if call.message_ts is None:
            ts = await self._post(channel, card.text, card.blocks)
            await self.store.set_card(item.call_id, channel, ts)
            call.message_ts = ts
            log.info("card posted call_id=%s channel=%s", item.call_id, channel)
        elif item.kind == "card":
            await self._call("chat_update", channel=channel, ts=call.message_ts,
                             text=card.text, blocks=card.blocks)
            log.info("card updated call_id=%s status=%s", item.call_id, call.status)
        if item.kind == "summary":
            await self._post_summary(channel, call)
        elif item.kind == "transcript":
            await self._post_transcript(channel, call)
        if call.user_id and self.on_card is not None:
            self.on_card(call.user_id)

    async def _post_summary(self, channel: str, call: CallRecord) -> None:
        reply = analysis_reply(call)
        await self._post(channel, reply.text, reply.blocks, thread_ts=_thread(call))
        log.info("summary posted call_id=%s channel=%s", call.call_id, channel)

    async def _post_transcript(self, channel: str, call: CallRecord) -> None:
        post = transcript_post(call, show_full_numbers=self.show_full_numbers)
        if isinstance(post, TextFile):
            await self._call(
                "files_upload_v2", channel=channel, thread_ts=_thread(call),
                content=post.content, filename=post.filename, title=post.title,
                initial_comment=post.comment,
            )
        else:
            await self._post(channel, post.text, post.blocks, thread_ts=_thread(call))
        log.info("transcript posted call_id=%s channel=%s as %s", call.call_id, channel,
                 "file" if isinstance(post, TextFile) else "message")

    async def _post(
        self, channel: str, text: str, blocks: list[dict[str, object]], thread_ts: str | None = None
    ) -> str:
        response = await self._call(
            "chat_postMessage", channel=channel, text=text, blocks=blocks, thread_ts=thread_ts,
            unfurl_links=False, unfurl_media=False,
        )
        return str(response["ts"])

    async def _call(self, method: str, **kwargs: object) -> dict[str, object]:
        try:
            response = await getattr(self.client, method)(**kwargs)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            if error in PERMANENT_ERRORS:
                raise Permanent(f"{method}: {error}") from None
            raise
        return dict(response.data) if isinstance(response.data, dict) else {}


def _thread(call: CallRecord) -> str | None:
    """Replies go under the card, or under its parent when the card is itself a reply."""
    return call.thread_ts or call.message_ts


def _transient_reason(exc: BaseException) -> tuple[str, float | None]:
    if isinstance(exc, SlackApiError) and exc.response is not None:
        status = exc.response.status_code
        retry_after = exc.response.headers.get("Retry-After") or exc.response.headers.get(
            "retry-after"
        )
        error = exc.response.get("error", "") if isinstance(exc.response.data, dict) else ""
        seconds = float(retry_after) if retry_after and str(retry_after).isdigit() else None
        return f"HTTP {status} {error}".strip(), seconds
    return type(exc).__name__, None
