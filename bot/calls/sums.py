"""Keeps `/callstats`' per-day sums in step with the calls (storage/sqlite/rollup.py).

Any write to a call marks its day; once a day is over, this sums it again, in the
background, oldest first, a few days per write so webhooks never wait long behind it.
Until then `/callstats` reads that day from the calls: an answer is never stale, only
slower. Two processes on one database may both run it: a day summed twice is the same.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bot.runtime.tasks import Worker
from storage.base import StatsStore

log = logging.getLogger(__name__)

EVERY = 60.0  # seconds between looks for changed days
BATCH = 20  # days summed per look, each in its own write


class StatsSums(Worker):
    name = "stats-sums"

    def __init__(self, store: StatsStore, *, every: float = EVERY,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.store = store
        self.every = every
        self._clock = clock
        self.summed = 0  # days summed so far, for tests and the log

    async def catch_up(self) -> int:
        """Sum every changed day that is over; how many."""
        total = 0
        while True:
            done = await self.store.refresh_stats(self._clock(), days=BATCH)
            total += done
            if done < BATCH:
                break
        self.summed += total
        if total:
            log.info("stats: summed %d changed day(s)", total)
        return total

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.catch_up()
            except Exception as exc:  # the store is down for now: the next look tries again
                log.warning("stats: days not summed: %s", type(exc).__name__)
            await self._rest(self.every)
