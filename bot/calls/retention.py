"""Daily upkeep: retention (the words of old calls) and housekeeping (bookkeeping that would
only grow).

Retention: once a day, forget the words of calls older than CALLBOT_RETENTION_DAYS.
Transcripts, Retell's raw payloads and the recording and call-log links go; everything
`/callstats` reads (status, duration, cost, sentiment, success, reason) and the audit log
stay.

Housekeeping: once a day, delete claims, received webhook events and finished outbox items
older than CALLBOT_HOUSEKEEPING_DAYS, keeping what dedupe still needs (see
`Store.prune`).

Each job runs under a lease in the database that is held for a day: with two processes on
one database (a rolling deploy) it runs in one of them, once a day. A fresh database runs
both at start-up; a process restarted within the day finds the day's pass already done.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from bot.runtime.tasks import Worker, process_owner
from storage.base import RetentionStore

log = logging.getLogger(__name__)
DAY = 86400.0
CHECK_EVERY = 3600.0  # how often a process looks whether a job's day has come


class Retention(Worker):
    name = "retention"

    def __init__(self, store: RetentionStore, days: int, *, housekeeping_days: int = 30,
                 owner: str | None = None, every: float = DAY,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.days = days
        self.housekeeping_days = housekeeping_days
        self.owner = owner or process_owner()
        self.every = every
        self._clock = clock
        super().__init__()
        self.passes = 0  # completed retention passes, for tests
        self.prunes = 0  # completed housekeeping passes, for tests

    def start(self) -> None:
        if self.days <= 0 and self.housekeeping_days <= 0:
            return  # keep everything
        super().start()

    async def purge(self) -> int:
        cutoff = self._clock() - self.days * DAY
        purged = await self.store.purge_before(cutoff)
        self.passes += 1
        if purged:
            log.info("retention: cleared transcripts and payloads of %d calls older than %d days",
                     purged, self.days)
        return purged

    async def prune(self) -> dict[str, int]:
        cutoff = self._clock() - self.housekeeping_days * DAY
        pruned = await self.store.prune(cutoff)
        self.prunes += 1
        if any(pruned.values()):
            log.info("housekeeping: deleted %s older than %d days",
                     ", ".join(f"{n} {table}" for table, n in pruned.items()),
                     self.housekeeping_days)
        return pruned

    async def _run(self) -> None:
        jobs: list[tuple[str, Callable[[], Awaitable[object]]]] = []
        if self.days > 0:
            jobs.append(("retention", self.purge))
        if self.housekeeping_days > 0:
            jobs.append(("housekeeping", self.prune))
        while not self._stopping.is_set():
            for name, job in jobs:
                await self._once_a_day(name, job)
            await self._rest(min(self.every, CHECK_EVERY))

    async def _once_a_day(self, name: str, job: Callable[[], Awaitable[object]]) -> None:
        """Run `job` if its day has come and no process (this one included) ran it since."""
        try:
            now = self._clock()
            if not await self.store.acquire_lease(name, self.owner, now, now + self.every,
                                                  reentrant=False):
                return
        except Exception:
            log.exception("%s pass failed", name)
            return
        try:
            await job()
        except Exception:
            log.exception("%s pass failed; trying again within the hour", name)
            with contextlib.suppress(Exception):
                await self.store.release_lease(name, self.owner)
