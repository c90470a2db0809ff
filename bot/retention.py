"""Retention: once a day, forget the words of calls older than CALLBOT_RETENTION_DAYS.

Transcripts, Retell's raw payloads and the recording and call-log links go; everything
`/callstats` reads (status, duration, cost, sentiment, success, reason) and the audit log
stay. The first pass runs at start-up, so a server restarted daily still purges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from bot.tasks import finish_or_cancel
from storage.base import Store

log = logging.getLogger(__name__)
DAY = 86400.0


class Retention:
    def __init__(self, store: Store, days: int, *, every: float = DAY,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.days = days
        self.every = every
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.passes = 0  # completed passes, for tests

    def start(self) -> None:
        if self.days <= 0:
            return  # keep everything
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self, grace: float = 5.0) -> None:
        if self._task is not None:
            self._stopping.set()
            await finish_or_cancel([self._task], grace)
            self._task = None

    async def purge(self) -> int:
        cutoff = self._clock() - self.days * DAY
        purged = await self.store.purge_before(cutoff)
        self.passes += 1
        if purged:
            log.info("retention: cleared transcripts and payloads of %d calls older than %d days",
                     purged, self.days)
        return purged

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.purge()
            except Exception:
                log.exception("retention pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.every)
