"""The webhook consumer's pacing: it leaves the loop to a burst of webhooks, and applies the
backlog as soon as the burst ends, even when a batch was slow (a busy database)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from bot.calls.ingest import MAX_PAUSE, ORPHAN_AGE, YIELD, Ingest
from storage.models import InboxEntry

SLOW_BATCH = 1.0  # s: at YIELD times this, the old pause was 19 s


class SlowFirstBatch:
    """An inbox whose first batch takes SLOW_BATCH seconds; it counts what is applied."""

    def __init__(self) -> None:
        self.applied: list[int] = []
        self.batches = 0
        self.first_started = asyncio.Event()

    async def accept_webhook(self, call_id: str, event: str, body: str
                             ) -> tuple[str, int | None]:
        raise AssertionError("the handler's part, not the consumer's")

    async def inbox_rows(self, limit: int, *, received_before: float | None = None
                         ) -> list[tuple[int, str, bool, str]]:
        return []  # nothing left by an earlier start

    async def apply_inbox(self, entries: Sequence[InboxEntry], *,
                          default_channel: bool) -> list[InboxEntry]:
        self.batches += 1
        if self.batches == 1:
            self.first_started.set()
            await asyncio.sleep(SLOW_BATCH)  # the stand-in's database being slow
        self.applied.extend(entry.inbox_id for entry in entries)
        return list(entries)


def entry(n: int) -> InboxEntry:
    return InboxEntry(n, "call_ended", False, None)


async def test_the_backlog_is_applied_when_the_burst_ends_not_after_a_long_pause() -> None:
    store = SlowFirstBatch()
    calls: Any = None  # read only for rows spilled to the store, which this test has none of
    ingest = Ingest(store, calls, default_channel=True, on_applied=lambda: None)
    ingest.start()
    try:
        ingest.push(entry(1))
        await store.first_started.wait()
        for n in range(2, 202):  # the burst goes on while the first batch is being written
            ingest.push(entry(n))
            await asyncio.sleep(0)
        burst_over = time.monotonic()
        while len(store.applied) < 201:
            assert time.monotonic() - burst_over < YIELD * SLOW_BATCH / 2, (
                f"{201 - len(store.applied)} webhooks still waiting after the burst ended")
            await asyncio.sleep(0.01)
        assert store.applied == list(range(1, 202))  # in order, each once
        assert time.monotonic() - burst_over < SLOW_BATCH + MAX_PAUSE + 1
    finally:
        await ingest.stop()


class FailsOnce:
    """An inbox whose first write fails (a lock wait timed out, say): the batch stays in
    the store, as it does in a real one, and only reading it back brings it."""

    def __init__(self) -> None:
        self.kept: dict[int, tuple[float, InboxEntry]] = {}  # id: (received at, entry)
        self.applied: list[int] = []
        self.failed = False
        self.looked = asyncio.Event()  # the consumer has read the inbox once (at its start)

    async def accept_webhook(self, call_id: str, event: str, body: str
                             ) -> tuple[str, int | None]:
        raise AssertionError("the handler's part, not the consumer's")

    async def inbox_rows(self, limit: int, *, received_before: float | None = None
                         ) -> list[tuple[int, str, bool, str]]:
        self.looked.set()
        return [(n, e.event, e.merge, "{}") for n, (at, e) in sorted(self.kept.items())
                if received_before is None or at <= received_before][:limit]

    async def apply_inbox(self, entries: Sequence[InboxEntry], *,
                          default_channel: bool) -> list[InboxEntry]:
        if not self.failed:
            self.failed = True
            raise RuntimeError("lock wait timed out")
        for entry in entries:
            if self.kept.pop(entry.inbox_id, None) is not None:
                self.applied.append(entry.inbox_id)
        return list(entries)


class ReadsBack:
    """The part of the call service the consumer uses for rows read back."""

    def stored_entry(self, inbox_id: int, event: str, merge: bool, body: str) -> InboxEntry:
        return InboxEntry(inbox_id, event, merge, None)


async def test_a_batch_whose_write_failed_is_read_back_at_the_next_pass() -> None:
    store = FailsOnce()
    calls: Any = ReadsBack()
    ingest = Ingest(store, calls, default_channel=True, on_applied=lambda: None)
    ingest.start()
    try:
        await store.looked.wait()  # what an earlier start left is read: nothing
        for n in range(1, 4):  # three webhooks kept by the handler, then handed over
            store.kept[n] = (time.time(), entry(n))
            ingest.push(entry(n))
        failed_at = time.monotonic()
        while len(store.applied) < 3:
            # the next pass comes a second after a failure; the look for rows nobody holds
            # would find them only once they are ORPHAN_AGE old
            assert time.monotonic() - failed_at < ORPHAN_AGE - 1, "the failed batch waits"
            await asyncio.sleep(0.01)
        assert store.applied == [1, 2, 3]
    finally:
        await ingest.stop()
