"""Delivers the outbox to Slack: card updates, summaries and transcripts webhooks caused.

Items are committed with the event that caused them, so a crash or a Slack outage delays
them but never loses them; on start-up the worker picks up whatever is still pending.

- Together: a call's pending items go out in one turn of its channel's lane, its card
  updates coalesced into one write, then its summary and transcript, oldest first. A call
  whose item waits for a retry holds back only its own later items. When several calls
  wait in one lane, those with an outcome (a summary) go first.
- Pace: each channel has its own lane, paced at about one message a second (Slack's
  limit), so a busy channel never holds up the others.
- One process: a turn leases the call's items in the database (expiring, renewed while
  the turn lasts), so with two processes on one database each item is delivered by one
  of them, and a process that dies is taken over once its lease runs out.
- Poison: an item whose delivery fails in a way nobody expected (it cannot be rendered,
  Slack answers nonsense, our own bug) is retried a few times with backoff, then given up
  and recorded; one traceback per distinct error, one line per attempt after that.
- At most once: every post carries a marker in its message metadata. Before a post goes
  out the item is marked as posting; if the answer is then lost (a dropped connection, a
  crash), the retry first looks for the marker in the channel or thread and, if Slack did
  post it, takes that message instead of posting again. In a public channel the bot posts
  to without being a member, the look-up joins the channel first.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.render.blocks import Message, TextFile, analysis_reply, call_card, transcript_post
from bot.render.catalog import DEFAULT_LANGUAGE
from bot.runtime.logs import scrub
from bot.runtime.metrics import Metrics
from bot.runtime.retry import retry_after_seconds
from bot.runtime.tasks import LEASE_SECONDS, finish_or_cancel, process_owner
from bot.slack.installs import working_for
from storage.base import DeliveryStore
from storage.errors import store_failure
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
# Calls queued in memory per channel, at most (a minute of writes at Slack's pace): a deep
# backlog stays in the database, and a pass skips the channels that have enough in hand.
_LANE_DEPTH = 64
_PASS_INTERVAL = 0.05  # seconds between two reads of the outbox, at the most
# Without a wake-up, look again this often: another process sharing the database may have
# queued items (its webhooks wake only it), or died holding a lease that has now run out.
_IDLE_LOOK = 5.0
_PICK_AMONG = 200  # calls looked at when choosing a lane's next call
_TRACED_MAX = 256  # distinct unexpected errors remembered (one traceback each)
# Look-ups the bot may join a channel for: it posts there through chat:write.public.
_JOINABLE = frozenset({"conversations_history", "conversations_replies"})
# The call whose turn this task is running (each lane is a task of its own).
_TURN: contextvars.ContextVar[str | None] = contextvars.ContextVar("outbox_turn", default=None)


class Permanent(Exception):
    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"{method}: {error}")
        self.error = error


class _Stopping(Exception):
    """Stopped (or the call's lease was lost) while waiting to write: the item is left as
    it was, for the next start or the process that took the call over."""


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 1.0  # first backoff, doubled per attempt, with jitter
    cap: float = 300.0
    max_attempts: int = 50
    channel_rate: float = 1.0  # messages a second per channel
    max_unexpected: int = 5  # attempts for an item that fails in a way nobody expected

    def backoff(self, attempts: int) -> float:
        return float(min(self.cap, self.base * 2 ** min(attempts, 30))) * random.uniform(0.5, 1)


# How one step of a turn ended: its items settled (done or given up), or left pending.
_DONE, _FAILED, _RETRY, _STOPPED = "done", "failed", "retry", "stopped"


class OutboxWorker:
    def __init__(
        self,
        store: DeliveryStore,
        client: AsyncWebClient,
        *,
        notify_channel: str | None = None,
        show_full_numbers: bool = False,
        post_transcripts: bool = True,
        post_recordings: bool = True,
        policy: RetryPolicy | None = None,
        metrics: Metrics | None = None,
        on_card: Callable[[str], None] | None = None,
        owner: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
        language: Callable[[str | None], str] | None = None,
        simulated: bool = False,
    ) -> None:
        self.store = store
        # The language of each channel's posts (Settings.channel_language).
        self.language = language or (lambda _channel: DEFAULT_LANGUAGE)
        self.simulated = simulated  # cards say no real call was placed
        self.client = client
        self.notify_channel = notify_channel
        self.show_full_numbers = show_full_numbers
        self.post_transcripts = post_transcripts
        self.post_recordings = post_recordings
        self.policy = policy or RetryPolicy()
        self.metrics = metrics or Metrics()
        self.on_card = on_card  # told the user id whose call changed (App Home refresh)
        self.owner = owner or process_owner()
        self.lease_seconds = lease_seconds
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._queues: dict[str, list[OutboxItem]] = {}  # per channel: calls waiting a turn
        self._busy_calls: set[str] = set()  # calls queued in a lane or in a turn
        self._turns: set[str] = set()  # calls this process holds a lease on now
        self._lost: set[str] = set()  # calls whose lease another process took over
        self._next_slot: dict[str, float] = {}  # per channel: when the next write may go
        self._traced: set[str] = set()
        # Calls whose turn failed outside any step (the store, or a bug): not picked again
        # until then (wall time), with their consecutive failures: a backoff, not a loop.
        self._resting: dict[str, tuple[float, int]] = {}
        self._pass_failing = False
        self._pass: asyncio.Future[float | None] | None = None  # the worker's pass under way
        self._announced = False  # wake() since the last pass began: new work may be waiting

    def wake(self) -> None:
        """New Slack work is in the store (a webhook, a button, a placed call)."""
        self._announced = True
        self._wake.set()

    async def find_post(self, channel: str, thread_ts: str | None, since: float,
                        key: str) -> str | None:
        """The ts of a message posted with `marker(key)` since `since`, if Slack has it: for
        posts made outside the outbox (the call card) whose answer was lost."""
        return await self._find_posted(channel, thread_ts, since, key, None)

    def start(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="outbox-worker")
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="outbox-leases")

    async def stop(self, grace: float = 10.0) -> None:
        """Let the items in hand finish (so a restart never repeats a post), then stop."""
        if self._task is None:
            return
        self._stop.set()
        self._wake.set()
        await finish_or_cancel([self._task, *self._lanes.values()], grace)
        if self._heartbeat_task is not None:
            await finish_or_cancel([self._heartbeat_task], 0)
        self._task = self._heartbeat_task = None
        self._lanes.clear()

    # -- scheduling ----------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stop.is_set():
            # Cleared before looking, so a wake() that comes while we look is not lost.
            self._wake.clear()
            started = time.perf_counter()
            try:
                self._pass = asyncio.ensure_future(self._dispatch())
                next_due = await self._pass
                self._pass_failing = False
            except Exception as exc:
                # A traceback for the first failure, then one line each (the store is down).
                log.error("outbox pass failed; retrying in 5 s: %s", _brief(exc),
                          exc_info=None if self._pass_failing else exc)
                self._pass_failing = True
                next_due = time.time() + 5
            # With a deep backlog a pass costs more: space passes so they take at most a
            # tenth of the time, leaving the rest to answering webhooks.
            pause = max(_PASS_INTERVAL, 9 * (time.perf_counter() - started))
            timeout = min(_IDLE_LOOK, max(0.0, (next_due or math.inf) - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            # A burst of webhooks wakes the worker once per event; one pass per moment is
            # enough, and leaves the CPU to answering the webhooks.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), pause)

    async def _dispatch(self) -> float | None:
        """Queue each due call in its channel's lane; returns when to look again."""
        self._announced = False  # what was announced before this read is seen by it
        now = time.time()
        next_due: float | None = None
        full = {c for c, q in self._queues.items() if len(q) >= _LANE_DEPTH}
        if self.notify_channel in full:
            full.add("")  # calls with no channel of their own go to the notify channel
        heads = await self.store.outbox_heads(_HEADS_PER_PASS, skip=self._busy_calls,
                                              owner=self.owner, now=now, skip_channels=full)
        for item in heads:
            if item.call_id in self._busy_calls:
                continue
            due = max(item.next_attempt_at, self._resting.get(item.call_id, (0.0, 0))[0])
            if due > now:
                next_due = min(next_due or due, due)
                continue
            channel = item.channel_id or self.notify_channel or ""
            if len(self._queues.get(channel, ())) >= _LANE_DEPTH:
                continue  # the next pass brings it, once the lane has room
            self._busy_calls.add(item.call_id)
            self._queues.setdefault(channel, []).append(item)
            if channel not in self._lanes:
                self._lanes[channel] = asyncio.create_task(
                    self._lane(channel), name=f"outbox-lane-{channel}"
                )
        return next_due

    async def _lane(self, channel: str) -> None:
        queue = self._queues[channel]
        try:
            while queue and not self._stop.is_set():
                # Choose (and lease) the next call only once the channel may take a write:
                # whatever arrived for it meanwhile then goes in the same turn.
                idle = self._next_slot.get(channel, 0.0) <= time.monotonic()
                if not await self._wait_slot(channel):
                    break
                if idle:  # a waiting lane was caught up by the worker's passes meanwhile
                    await self._catch_up()
                item = await self._pick(queue)
                try:
                    await self._turn(item)
                    self._resting.pop(item.call_id, None)
                except Exception as exc:  # the store failed under the turn's bookkeeping
                    failures = self._resting.get(item.call_id, (0.0, 0))[1]
                    delay = self.policy.backoff(failures)
                    self._resting[item.call_id] = (time.time() + delay, failures + 1)
                    self._log_unexpected(f"outbox turn for call_id={item.call_id} failed; "
                                         f"trying it again in {delay:.2f} s", exc)
                finally:
                    self._busy_calls.discard(item.call_id)
                    self._wake.set()  # the call's next items may now go
        finally:
            for item in queue:
                self._busy_calls.discard(item.call_id)
            queue.clear()
            del self._lanes[channel]

    async def _catch_up(self) -> None:
        """Items announced (or being read) but not in a lane yet compete for this turn too:
        a call whose outcome just arrived must not lose its place to a pass not yet run.
        Only new work counts: the worker's own wake after a turn does not."""
        try:
            if self._pass is not None and not self._pass.done():
                await asyncio.wait([self._pass])
            if self._announced:
                await self._dispatch()
        except Exception:  # only an ordering hint: the worker's own pass retries
            return

    async def _pick(self, queue: list[OutboxItem]) -> OutboxItem:
        """The lane's next call: the first with an outcome waiting, else the first."""
        index = 0
        if len(queue) > 1:
            try:
                ready = await self.store.outbox_outcomes(
                    [i.call_id for i in queue[:_PICK_AMONG]])
            except Exception:  # only an ordering hint: take the first
                ready = set()
            index = next((n for n, i in enumerate(queue[:_PICK_AMONG])
                          if i.call_id in ready), 0)
        return queue.pop(index)

    async def _heartbeat(self) -> None:
        """Renew the leases of the calls in hand, so a slow Slack never lets another
        process take a call over mid-turn; notes the calls that were taken all the same."""
        failing = False
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.lease_seconds / 3)
            calls = set(self._turns)
            if not calls:
                continue
            try:
                held = await self.store.renew_outbox_leases(
                    calls, self.owner, time.time() + self.lease_seconds)
            except Exception as exc:  # the next beat tries again
                if not failing:
                    log.warning("outbox lease renewal failed: %s", _brief(exc))
                failing = True
                continue
            failing = False
            lost = (calls - held) & self._turns
            if lost:
                log.warning("outbox lease lost for %d call(s); leaving them to their new "
                            "holder", len(lost))
                self._lost |= lost

    # -- one call's turn -----------------------------------------------------------------

    async def _turn(self, head: OutboxItem) -> None:
        now = time.time()
        items = await self.store.lease_outbox(head.call_id, self.owner, now,
                                              now + self.lease_seconds)
        if not items:
            return  # not due after all, or another process has it in hand
        call_id = head.call_id
        self._turns.add(call_id)
        token = _TURN.set(call_id)
        settled: set[int] = set()
        try:
            settled = await self._deliver_turn(items)
        finally:
            _TURN.reset(token)
            self._turns.discard(call_id)
            self._lost.discard(call_id)
            if len(settled) < len(items):
                with contextlib.suppress(Exception):
                    await self.store.release_outbox(call_id, self.owner)

    async def _deliver_turn(self, items: list[OutboxItem]) -> set[int]:
        """Deliver a call's items: one card write for all its card updates, then the rest in
        order; returns the ids settled (delivered or given up)."""
        call = await self.store.get_call(items[0].call_id)
        channel = (call.channel_id if call else None) or self.notify_channel
        ids = [i.id for i in items]
        if call is None or channel is None:
            # Nothing to show anywhere: settle them all in one write, quietly.
            await self.store.complete_outbox(ids, time.time())
            return set(ids)
        cards = [i for i in items if i.kind == "card"]
        steps: list[tuple[list[OutboxItem], Callable[[], Awaitable[None]]]] = []
        if cards:
            steps.append((cards, lambda: self._card(cards[0], call, channel)))
        for item in items:
            if item.kind != "card":
                steps.append(([item], functools.partial(self._item, item, call, channel)))
        settled: set[int] = set()
        shown = False
        with working_for(call.team_id):  # the call's workspace's token, with several
            for group, run in steps:
                outcome = await self._attempt(group, run)
                if outcome in (_DONE, _FAILED):
                    settled |= {i.id for i in group}
                shown = shown or outcome == _DONE
                if outcome in (_RETRY, _STOPPED):
                    break  # the call's later items wait for this one
            if shown and call.user_id and self.on_card is not None:
                self.on_card(call.user_id)
        return settled

    async def _attempt(self, group: list[OutboxItem],
                       run: Callable[[], Awaitable[None]]) -> str:
        lead = group[0]
        try:
            await run()
        except _Stopping:
            return _STOPPED
        except Permanent as exc:
            log.error("outbox gave up call_id=%s kind=%s: %s", lead.call_id, lead.kind, exc)
            await self._give_up(group, str(exc))
            return _FAILED
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            return await self._retry(lead, group, exc)
        except Exception as exc:
            if store_failure(exc) is not None:
                raise  # the database's moment, not the item's: the lane rests the call
            return await self._poison(lead, group, exc)
        for item in group:
            self.metrics.outbox_delivered.labels(item.kind).inc()
        await self.store.complete_outbox([i.id for i in group], time.time())
        return _DONE

    async def _give_up(self, group: list[OutboxItem], reason: str) -> None:
        now = time.time()
        for item in group:
            self.metrics.outbox_failed.labels(item.kind).inc()
            await self.store.fail_outbox(item.id, now, reason)

    async def _retry(self, item: OutboxItem, group: list[OutboxItem], exc: Exception) -> str:
        reason, retry_after, uncertain = _transient(exc)
        self.metrics.outbox_retries.labels(reason.split(" ")[-1] or reason).inc()
        if item.attempts + 1 >= self.policy.max_attempts:
            log.error("outbox gave up call_id=%s kind=%s after %d attempts: %s",
                      item.call_id, item.kind, item.attempts + 1, reason)
            await self._give_up(group, reason)
            return _FAILED
        delay = retry_after if retry_after is not None else self.policy.backoff(item.attempts)
        channel = item.channel_id or self.notify_channel
        if retry_after is not None and channel:
            # Slack said how long this channel must wait: hold the whole lane, not one item.
            self._next_slot[channel] = time.monotonic() + retry_after
            await self.store.hold_channel(channel, time.time() + retry_after)
        log.warning("outbox retry call_id=%s kind=%s in %.2f s: %s",
                    item.call_id, item.kind, delay, reason)
        await self.store.retry_outbox(item.id, time.time() + delay, reason, uncertain=uncertain)
        return _RETRY

    async def _poison(self, item: OutboxItem, group: list[OutboxItem], exc: Exception) -> str:
        """An unexpected failure: a few tries with backoff, then given up and recorded."""
        attempt = item.attempts + 1
        reason = _brief(exc)
        self.metrics.outbox_retries.labels("unexpected").inc()
        limit = min(self.policy.max_unexpected, self.policy.max_attempts)
        if attempt >= limit:
            log.error("outbox gave up call_id=%s kind=%s after %d attempts: %s",
                      item.call_id, item.kind, attempt, reason)
            await self._give_up(group, reason)
            return _FAILED
        delay = self.policy.backoff(item.attempts)
        self._log_unexpected(
            f"outbox item failed unexpectedly call_id={item.call_id} kind={item.kind} "
            f"(attempt {attempt} of {limit}, again in {delay:.2f} s)", exc)
        # Whether Slack did it is unknown (the answer may be what failed): look first.
        await self.store.retry_outbox(item.id, time.time() + delay, reason, uncertain=True)
        return _RETRY

    def _log_unexpected(self, message: str, exc: BaseException) -> None:
        """One line; a traceback only the first time this error is seen."""
        key = f"{type(exc).__name__}:{_brief(exc)}"
        first = key not in self._traced
        if first:
            if len(self._traced) >= _TRACED_MAX:
                self._traced.clear()
            self._traced.add(key)
        log.error("%s: %s", message, _brief(exc), exc_info=exc if first else None)

    # -- what an item does ---------------------------------------------------------------

    async def _card(self, lead: OutboxItem, call: CallRecord, channel: str) -> None:
        """Post the card, or update it once to show every change queued so far."""
        card = self._call_card(call, channel)
        if call.message_ts is None:
            await self._post_card(lead, call, channel, card.text, card.blocks)
        else:
            await self._call("chat_update", channel=channel, ts=call.message_ts,
                             text=card.text, blocks=card.blocks)
            log.info("card updated call_id=%s status=%s", call.call_id, call.status)

    def _call_card(self, call: CallRecord, channel: str) -> Message:
        return call_card(call, show_full_numbers=self.show_full_numbers,
                         post_transcripts=self.post_transcripts,
                         lang=self.language(channel), simulated=self.simulated)

    async def _post_card(self, item: OutboxItem, call: CallRecord, channel: str, text: str,
                         blocks: list[dict[str, object]]) -> None:
        ts = await self._post(item, f"card:{call.call_id}", channel, text, blocks,
                              thread_ts=call.thread_ts)
        await self.store.set_card(item.call_id, channel, ts)
        call.message_ts = ts
        log.info("card posted call_id=%s channel=%s", item.call_id, channel)

    async def _item(self, item: OutboxItem, call: CallRecord, channel: str) -> None:
        if call.message_ts is None:  # the summary needs a card to reply under
            card = self._call_card(call, channel)
            await self._post_card(item, call, channel, card.text, card.blocks)
        if item.kind == "summary":
            # Off the loop: with a long transcript this is the heavy part of a turn.
            reply = await asyncio.to_thread(
                analysis_reply, call, post_transcripts=self.post_transcripts,
                post_recordings=self.post_recordings, show_full_numbers=self.show_full_numbers,
                lang=self.language(channel))
            await self._post(item, f"summary:{call.call_id}", channel, reply.text, reply.blocks,
                             thread_ts=_thread(call))
            log.info("summary posted call_id=%s channel=%s", call.call_id, channel)
        elif item.kind == "transcript" and self.post_transcripts:
            await self._post_transcript(item, channel, call)

    async def _post_transcript(self, item: OutboxItem, channel: str, call: CallRecord) -> None:
        post = await asyncio.to_thread(transcript_post, call,
                                       show_full_numbers=self.show_full_numbers,
                                       lang=self.language(channel))
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
            unfurl_links=False, unfurl_media=False, metadata=marker(key),
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
            page = await self._read_history(method, args)
            for message in page.get("messages") or []:
                if isinstance(message, dict) and _is_ours(message, key, file_name):
                    return str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
            args["cursor"] = cursor
        return None

    async def _read_history(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """A look-up page. The bot may post to a public channel through chat:write.public
        without being in it, and Slack then refuses to show the history: join and look
        again (a private channel cannot be joined, and stays refused)."""
        try:
            return await self._call(method, paced=False, **args)
        except Permanent as exc:
            if exc.error != "not_in_channel" or method not in _JOINABLE:
                raise
        await self._call("conversations_join", paced=False, channel=args["channel"])
        log.info("joined channel=%s to look for a post whose answer was lost", args["channel"])
        return await self._call(method, paced=False, **args)

    async def _call(self, method: str, *, paced: bool = True, **kwargs: Any) -> dict[str, Any]:
        channel = kwargs.get("channel")
        if paced and method in _PACED and isinstance(channel, str):
            await self._pace(channel)
        if _TURN.get() in self._lost:
            raise _Stopping  # another process took this call over: it is theirs now
        started = time.perf_counter()
        try:
            response = await getattr(self.client, method)(**kwargs)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            self.metrics.slack_errors.labels(method, error or "unknown").inc()
            if error in PERMANENT_ERRORS:
                raise Permanent(method, error) from None
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.metrics.slack_errors.labels(method, type(exc).__name__).inc()
            raise
        finally:
            self.metrics.slack_seconds.labels(method).observe(time.perf_counter() - started)
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def _wait_slot(self, channel: str) -> bool:
        """Wait (without taking it) for the channel's next write slot; False if stopped."""
        wait = self._next_slot.get(channel, 0.0) - time.monotonic()
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
        return not self._stop.is_set()

    async def _pace(self, channel: str) -> None:
        """About one write a second per channel, across every instance on the database (the
        slot is taken there); waits are cut short by stop()."""
        interval = 1.0 / self.policy.channel_rate
        wall = time.time()
        slot = await self.store.take_slot(channel, interval, wall)
        wait = slot - time.time()
        # This instance's own view, for choosing lanes: the channel is busy until then.
        self._next_slot[channel] = time.monotonic() + max(wait, 0.0) + interval
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
            if self._stop.is_set():
                raise _Stopping


def marker(key: str) -> dict[str, Any]:
    """Message metadata naming a post, so a post whose answer was lost can be found again."""
    return {"event_type": MARKER_TYPE, "event_payload": {"key": key}}


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


def _brief(exc: BaseException) -> str:
    """An error in one short line, numbers scrubbed: what a log line or last_error keeps."""
    text = " ".join(str(exc).split())
    return scrub(f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__)


def _transient(exc: BaseException) -> tuple[str, float | None, bool]:
    """(reason, Retry-After seconds, whether Slack may have done it all the same)."""
    if isinstance(exc, SlackApiError) and exc.response is not None:
        status = exc.response.status_code
        error = exc.response.get("error", "") if isinstance(exc.response.data, dict) else ""
        headers = {k.lower(): v for k, v in (exc.response.headers or {}).items()}
        retry_after = retry_after_seconds(headers.get("retry-after"))
        if retry_after is not None and retry_after > 3600:
            retry_after = None  # not believed: the backoff decides
        if status == 429:
            return f"HTTP 429 {error or 'ratelimited'}", retry_after or 1.0, False
        # A 5xx may come after Slack did the work; an ok:false answer means it did not.
        return f"HTTP {status} {error}".strip(), retry_after, status >= 500
    return type(exc).__name__, None, True


