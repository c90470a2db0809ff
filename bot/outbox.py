"""Delivers the outbox to Slack: card updates, summaries and transcripts webhooks caused.

Items are committed with the event that caused them, so a crash or a Slack outage delays
them but never loses them; on start-up the worker picks up whatever is still pending.

- Order: a call's items go out one after another, oldest first; a call whose item is
  waiting to be retried holds back only its own later items.
- Pace: each channel has its own lane, paced at about one message a second (Slack's
  limit), so a busy channel never holds up the others.
- At most once: every post carries a marker in its message metadata. Before a post goes
  out the item is marked as posting; if the answer is then lost (a dropped connection, a
  crash), the retry first looks for the marker in the channel or thread and, if Slack did
  post it, takes that message instead of posting again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import TextFile, analysis_reply, call_card, transcript_post
from bot.metrics import Metrics
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
MARKER_TYPE = "callbot_delivery"
# Methods that put something in a channel, and so count against its pace.
_PACED = frozenset({"chat_postMessage", "chat_update", "files_upload_v2"})
_LOOKUP_PAGES = 5  # how far back to look for a lost post (pages of 200 messages)
_HEADS_PER_PASS = 500
_PASS_INTERVAL = 0.05  # seconds between two reads of the outbox, at the most


class Permanent(Exception):
    pass


class _Stopping(Exception):
    """Stopped while waiting to write: the item is left as it was, for the next start."""


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 1.0  # first backoff, doubled per attempt, with jitter
    cap: float = 300.0
    max_attempts: int = 50
    channel_rate: float = 1.0  # messages a second per channel

    def backoff(self, attempts: int) -> float:
        return float(min(self.cap, self.base * 2 ** min(attempts, 30))) * random.uniform(0.5, 1)


class OutboxWorker:
    def __init__(
        self,
        store: Store,
        client: AsyncWebClient,
        *,
        notify_channel: str | None = None,
        show_full_numbers: bool = False,
        post_transcripts: bool = True,
        post_recordings: bool = True,
        policy: RetryPolicy | None = None,
        metrics: Metrics | None = None,
        on_card: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.notify_channel = notify_channel
        self.show_full_numbers = show_full_numbers
        self.post_transcripts = post_transcripts
        self.post_recordings = post_recordings
        self.policy = policy or RetryPolicy()
        self.metrics = metrics or Metrics()
        self.on_card = on_card  # told the user id whose call changed (App Home refresh)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._queues: dict[str, deque[OutboxItem]] = {}
        self._busy_calls: set[str] = set()  # calls with an item in a lane
        self._next_slot: dict[str, float] = {}  # per channel: when the next write may go
        self._finished_during_read: set[int] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="outbox-worker")

    async def stop(self, grace: float = 10.0) -> None:
        """Let the items in hand finish (so a restart never repeats a post), then stop."""
        if self._task is None:
            return
        self._stop.set()
        self._wake.set()
        await finish_or_cancel([self._task, *self._lanes.values()], grace)
        self._task = None
        self._lanes.clear()

    # -- scheduling ----------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stop.is_set():
            # Cleared before looking, so a wake() that comes while we look is not lost.
            self._wake.clear()
            started = time.perf_counter()
            try:
                next_due = await self._dispatch()
            except Exception:
                log.exception("outbox pass failed; retrying in 5 s")
                next_due = time.time() + 5
            # With a deep backlog a pass costs more: space passes so they take at most a
            # tenth of the time, leaving the rest to answering webhooks.
            pause = max(_PASS_INTERVAL, 9 * (time.perf_counter() - started))
            timeout = None if next_due is None else max(0.0, next_due - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            # A burst of webhooks wakes the worker once per event; one pass per moment is
            # enough, and leaves the CPU to answering the webhooks.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), pause)

    async def _dispatch(self) -> float | None:
        """Hand each due call's next item to its channel's lane; returns when to look again."""
        now = time.time()
        next_due: float | None = None
        # An item a lane finishes while the heads are being read may still be among them
        # (the read began before its commit): it must not be handed out a second time.
        self._finished_during_read = set()
        heads = await self.store.outbox_heads(_HEADS_PER_PASS, skip=self._busy_calls)
        finished, self._finished_during_read = self._finished_during_read, None
        for item in heads:
            if item.call_id in self._busy_calls or item.id in finished:
                continue
            if item.next_attempt_at > now:
                next_due = min(next_due or item.next_attempt_at, item.next_attempt_at)
                continue
            channel = item.channel_id or self.notify_channel or ""
            self._busy_calls.add(item.call_id)
            self._queues.setdefault(channel, deque()).append(item)
            if channel not in self._lanes:
                self._lanes[channel] = asyncio.create_task(
                    self._lane(channel), name=f"outbox-lane-{channel}"
                )
        return next_due

    async def _lane(self, channel: str) -> None:
        queue = self._queues[channel]
        try:
            while queue and not self._stop.is_set():
                item = queue.popleft()
                try:
                    await self._attempt(item)
                except Exception:
                    log.exception("outbox item %d failed unexpectedly", item.id)
                finally:
                    if self._finished_during_read is not None:
                        self._finished_during_read.add(item.id)
                    self._busy_calls.discard(item.call_id)
                    self._wake.set()  # the call's next item may now go
        finally:
            for item in queue:
                self._busy_calls.discard(item.call_id)
            queue.clear()
            del self._lanes[channel]

    # -- one item --------------------------------------------------------------------------

    async def _attempt(self, item: OutboxItem) -> None:
        try:
            done = await self._deliver(item)
        except _Stopping:
            return
        except Permanent as exc:
            log.error("outbox gave up call_id=%s kind=%s: %s", item.call_id, item.kind, exc)
            self.metrics.outbox_failed.labels(item.kind).inc()
            await self.store.fail_outbox(item.id, time.time(), str(exc))
            return
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            await self._retry(item, exc)
            return
        self.metrics.outbox_delivered.labels(item.kind).inc()
        await self.store.complete_outbox(done, time.time())

    async def _retry(self, item: OutboxItem, exc: Exception) -> None:
        reason, retry_after, uncertain = _transient(exc)
        self.metrics.outbox_retries.labels(reason.split(" ")[-1] or reason).inc()
        if item.attempts + 1 >= self.policy.max_attempts:
            log.error("outbox gave up call_id=%s kind=%s after %d attempts: %s",
                      item.call_id, item.kind, item.attempts + 1, reason)
            self.metrics.outbox_failed.labels(item.kind).inc()
            await self.store.fail_outbox(item.id, time.time(), reason)
            return
        delay = retry_after if retry_after is not None else self.policy.backoff(item.attempts)
        channel = item.channel_id or self.notify_channel
        if retry_after is not None and channel:
            # Slack said how long this channel must wait: hold the whole lane, not one item.
            self._next_slot[channel] = time.monotonic() + retry_after
        log.warning("outbox retry call_id=%s kind=%s in %.2f s: %s",
                    item.call_id, item.kind, delay, reason)
        await self.store.retry_outbox(item.id, time.time() + delay, reason, uncertain=uncertain)

    async def _deliver(self, item: OutboxItem) -> list[int]:
        """Do what the item asks; returns the ids of the items this delivered."""
        done = [item.id]
        if item.kind == "card":  # one update shows every change queued so far
            done = sorted({item.id, *await self.store.pending_card_items(item.call_id)})
        call = await self.store.get_call(item.call_id)
        channel = (call.channel_id if call else None) or self.notify_channel
        if call is None or channel is None:
            log.info("call_id=%s kind=%s has no channel; stored only", item.call_id, item.kind)
            return done
        card = call_card(call, show_full_numbers=self.show_full_numbers,
                         post_transcripts=self.post_transcripts)
        if call.message_ts is None:
            ts = await self._post(item, f"card:{call.call_id}", channel, card.text, card.blocks,
                                  thread_ts=call.thread_ts)
            await self.store.set_card(item.call_id, channel, ts)
            call.message_ts = ts
            log.info("card posted call_id=%s channel=%s", item.call_id, channel)
        elif item.kind == "card":
            await self._call("chat_update", channel=channel, ts=call.message_ts,
                             text=card.text, blocks=card.blocks)
            log.info("card updated call_id=%s status=%s", item.call_id, call.status)
        if item.kind == "summary":
            reply = analysis_reply(call, post_transcripts=self.post_transcripts,
                                   post_recordings=self.post_recordings)
            await self._post(item, f"summary:{call.call_id}", channel, reply.text, reply.blocks,
                             thread_ts=_thread(call))
            log.info("summary posted call_id=%s channel=%s", call.call_id, channel)
        elif item.kind == "transcript" and self.post_transcripts:
            await self._post_transcript(item, channel, call)
        if call.user_id and self.on_card is not None:
            self.on_card(call.user_id)
        return done

    async def _post_transcript(self, item: OutboxItem, channel: str, call: CallRecord) -> None:
        post = transcript_post(call, show_full_numbers=self.show_full_numbers)
        thread = _thread(call)
        if isinstance(post, TextFile):
            # A file carries no metadata: its name (one per call) is the marker.
            if await self._posted_before(item, channel, thread, file_name=post.filename):
                return
            await self.store.mark_posting(item.id, time.time())
            await self._call(
                "files_upload_v2", channel=channel, thread_ts=thread,
                content=post.content, filename=post.filename, title=post.title,
                initial_comment=post.comment,
            )
        else:
            await self._post(item, f"transcript:{call.call_id}", channel, post.text,
                             post.blocks, thread_ts=thread)
        log.info("transcript posted call_id=%s channel=%s as %s", call.call_id, channel,
                 "file" if isinstance(post, TextFile) else "message")

    async def _post(
        self,
        item: OutboxItem,
        key: str,
        channel: str,
        text: str,
        blocks: list[dict[str, object]],
        thread_ts: str | None = None,
    ) -> str:
        """Post once: if an earlier attempt's answer was lost, find that post instead."""
        found = await self._posted_before(item, channel, thread_ts, key=key)
        if found is not None:
            return found
        await self.store.mark_posting(item.id, time.time())
        response = await self._call(
            "chat_postMessage", channel=channel, text=text, blocks=blocks, thread_ts=thread_ts,
            unfurl_links=False, unfurl_media=False,
            metadata={"event_type": MARKER_TYPE, "event_payload": {"key": key}},
        )
        return str(response["ts"])

    async def _posted_before(
        self,
        item: OutboxItem,
        channel: str,
        thread_ts: str | None,
        *,
        key: str | None = None,
        file_name: str | None = None,
    ) -> str | None:
        """The ts of the post an earlier attempt made but never heard back about (found by
        metadata key or file name), if Slack has it; None when there is nothing to look for."""
        if item.posting_since is None:
            return None
        found = await self._find_posted(channel, thread_ts, item.posting_since, key, file_name)
        if found is not None:
            log.info("outbox found %s already posted (ts=%s); not posting again",
                     key or file_name, found)
            self.metrics.outbox_recovered.inc()
        return found

    async def _find_posted(
        self, channel: str, thread_ts: str | None, since: float, key: str | None,
        file_name: str | None,
    ) -> str | None:
        args: dict[str, Any] = {"channel": channel, "limit": 200, "include_all_metadata": True,
                                "oldest": f"{since - 60:.6f}"}
        method = "conversations_history"
        if thread_ts is not None:
            method = "conversations_replies"
            args["ts"] = thread_ts
        for _ in range(_LOOKUP_PAGES):
            page = await self._call(method, paced=False, **args)
            for message in page.get("messages") or []:
                if isinstance(message, dict) and _is_ours(message, key, file_name):
                    return str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
            args["cursor"] = cursor
        return None

    async def _call(self, method: str, *, paced: bool = True, **kwargs: Any) -> dict[str, Any]:
        channel = kwargs.get("channel")
        if paced and method in _PACED and isinstance(channel, str):
            await self._pace(channel)
        started = time.perf_counter()
        try:
            response = await getattr(self.client, method)(**kwargs)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            self.metrics.slack_errors.labels(method, error or "unknown").inc()
            if error in PERMANENT_ERRORS:
                raise Permanent(f"{method}: {error}") from None
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.metrics.slack_errors.labels(method, type(exc).__name__).inc()
            raise
        finally:
            self.metrics.slack_seconds.labels(method).observe(time.perf_counter() - started)
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def _pace(self, channel: str) -> None:
        """About one write a second per channel; waits are cut short by stop()."""
        now = time.monotonic()
        slot = max(now, self._next_slot.get(channel, 0.0))
        self._next_slot[channel] = slot + 1.0 / self.policy.channel_rate
        if slot > now:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), slot - now)
            if self._stop.is_set():
                raise _Stopping


def _thread(call: CallRecord) -> str | None:
    """Replies go under the card, or under its parent when the card is itself a reply."""
    return call.thread_ts or call.message_ts


def _is_ours(message: dict[str, Any], key: str | None, file_name: str | None) -> bool:
    if key is not None:
        meta = message.get("metadata")
        if isinstance(meta, dict) and meta.get("event_type") == MARKER_TYPE:
            payload = meta.get("event_payload")
            return isinstance(payload, dict) and payload.get("key") == key
        return False
    files = message.get("files")
    return isinstance(files, list) and any(
        isinstance(f, dict) and f.get("name") == file_name for f in files
    )


def _transient(exc: BaseException) -> tuple[str, float | None, bool]:
    """(reason, Retry-After seconds, whether Slack may have done it all the same)."""
    if isinstance(exc, SlackApiError) and exc.response is not None:
        status = exc.response.status_code
        error = exc.response.get("error", "") if isinstance(exc.response.data, dict) else ""
        headers = {k.lower(): v for k, v in (exc.response.headers or {}).items()}
        retry_after = _seconds(headers.get("retry-after"))
        if status == 429:
            return f"HTTP 429 {error or 'ratelimited'}", retry_after or 1.0, False
        # A 5xx may come after Slack did the work; an ok:false answer means it did not.
        return f"HTTP {status} {error}".strip(), retry_after, status >= 500
    return type(exc).__name__, None, True


def _seconds(value: object) -> float | None:
    try:
        seconds = float(str(value))
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None
