"""Webhook ingest in two steps, so answering Retell costs little more than keeping the body.

The handler verifies a webhook, keeps its body in the inbox (deduplicated on call id and
event) and answers. This consumer then turns kept bodies into call rows and Slack work in
batches, one transaction each, and drops them from the inbox in that same transaction. What
the handler already parsed is handed over in memory; anything else (a restart after a
crash, a spill under load, another process that died) is read back from the inbox.

While webhooks keep arriving the consumer takes about a twentieth of the loop, so a burst is
answered at nearly the speed of the durable write alone; it catches up when the burst ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from bot.calls.service import CallService
from bot.runtime.tasks import Worker
from storage.base import InboxStore
from storage.models import InboxEntry

log = logging.getLogger(__name__)
BATCH = 64  # per transaction: small enough that a webhook's own write never waits long
# Parsed webhooks held in memory at most (their text, roughly); beyond, they are read back
# from the store, which costs parsing them again.
MEMORY_BYTES = 8 * 1024 * 1024
ENTRY_OVERHEAD = 2048  # the rest of an entry: its fields, the dataclasses, the queue
IDLE_CHECK = 5.0  # seconds between looks at the inbox for rows no one holds in memory
ORPHAN_AGE = 5.0  # a row this old that nobody applied was left by a stopped process
# While webhooks keep coming, pause this many times as long as a batch took: the consumer
# then takes about a twentieth of the loop, and catches up once the burst is over.
YIELD = 19
MAX_PAUSE = 2.0  # s: a batch slowed by a busy database must not stall the backlog for long
QUIET = 0.05  # s without a new webhook: the burst is over, stop pausing


class Ingest(Worker):
    """Stopping finishes the batch in hand; what is left stays in the inbox for the next
    start."""

    name = "webhook-ingest"

    def __init__(self, store: InboxStore, calls: CallService, *, default_channel: bool,
                 on_applied: Callable[[], None]) -> None:
        self.store = store
        self.calls = calls
        self.default_channel = default_channel
        self.on_applied = on_applied
        self._queue: deque[InboxEntry] = deque()
        self._spilled = True  # at start: a crash may have left rows behind
        self._pushed = 0
        self._held = 0  # bytes of the entries in the queue
        self._wake = asyncio.Event()
        super().__init__()

    def push(self, entry: InboxEntry) -> None:
        """A kept webhook, already parsed by the handler."""
        size = _size(entry)
        if self._held + size <= MEMORY_BYTES:
            self._queue.append(entry)
            self._held += size
        else:
            self._spilled = True
        self._pushed += 1
        self._wake.set()

    def _wake_up(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        last_look = 0.0
        while not self._stopping.is_set():
            self._wake.clear()
            pushed, started = self._pushed, time.perf_counter()
            look = time.monotonic() - last_look >= IDLE_CHECK
            try:
                count = await self._step(
                    orphans_before=time.time() - ORPHAN_AGE if look else None)
            except Exception as exc:  # the store is failing: try again soon, quietly
                log.error("webhook ingest pass failed: %s", type(exc).__name__)
                self._spilled = True  # the batch in hand is still in the inbox: read it back
                await self._rest(1.0)
                continue
            if look:
                last_look = time.monotonic()
            if count:
                self.on_applied()
                if self._pushed != pushed:  # webhooks are still coming: leave them the CPU
                    await self._make_way(YIELD * (time.perf_counter() - started))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_CHECK)

    async def _make_way(self, seconds: float) -> None:
        """Pause for `seconds` (at most MAX_PAUSE) while webhooks keep coming, but no
        longer than QUIET after the last one: the backlog is applied as a burst ends."""
        until = time.monotonic() + min(seconds, MAX_PAUSE)
        while not self._stopping.is_set():
            left = until - time.monotonic()
            if left <= 0:
                return
            pushed = self._pushed
            await self._rest(min(QUIET, left))
            if self._pushed == pushed:
                return

    async def _step(self, *, orphans_before: float | None) -> int:
        """One batch: from memory if any, else rows read back from the inbox."""
        if self._queue:
            batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            self._held -= sum(_size(entry) for entry in batch)
        elif self._spilled or orphans_before is not None:
            rows = await self.store.inbox_rows(
                BATCH, received_before=None if self._spilled else orphans_before)
            if not rows:
                self._spilled = False
                return 0
            batch = [self.calls.stored_entry(*row) for row in rows]
        else:
            return 0
        applied = await self.store.apply_inbox(batch, default_channel=self.default_channel)
        for entry in applied:
            if entry.fields is None:
                log.warning("webhook dropped from the inbox: event=%s no longer validates",
                            entry.event[:40])
        return len(batch)


def _size(entry: InboxEntry) -> int:
    fields = entry.fields
    if fields is None:
        return ENTRY_OVERHEAD
    return (ENTRY_OVERHEAD + len(fields.transcript or "") + len(fields.raw_payload or "")
            + len(fields.summary or ""))
