"""Polls Retell for calls whose webhooks do not come (no public URL, a laptop behind NAT).

Whatever polling finds is recorded as the events it stands for, deduplicated with the
webhooks, so the channel gets each outcome once whichever way it arrived. With two
processes on one database (a rolling deploy) one of them polls: the one holding the
`poller` lease, renewed every pass; the other takes over when it runs out.
"""

from __future__ import annotations

import contextlib
import logging
import time

from bot.calls.service import CallService
from bot.runtime.tasks import LEASE_SECONDS, Worker, process_owner

log = logging.getLogger(__name__)
BATCH = 20
LEASE = "poller"


class Poller(Worker):
    """Asks Retell about calls whose webhooks are late; one process at a time (a lease)."""

    name = "retell-poller"

    def __init__(
        self, calls: CallService, *, interval: float = 5.0,
        owner: str | None = None, lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.calls = calls
        self.interval = interval
        self.owner = owner or process_owner()
        # Renewed every pass: outlives a few of them, so only a dead holder loses it.
        self.lease_seconds = max(lease_seconds, 3 * interval)
        self.holding = False
        super().__init__()

    async def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                polled = 0
                try:
                    if await self._hold():
                        polled = await self.calls.poll_due(BATCH)
                except Exception:
                    log.exception("poll pass failed")
                if polled < BATCH:
                    await self._rest(self.interval)
        finally:
            if self.holding:  # hand over at once rather than when the lease runs out
                with contextlib.suppress(Exception):
                    await self.calls.store.release_lease(LEASE, self.owner)

    async def _hold(self) -> bool:
        """Take or renew the poller lease; False while another process holds it."""
        now = time.time()
        held = await self.calls.store.acquire_lease(LEASE, self.owner, now,
                                                    now + self.lease_seconds)
        if held != self.holding:
            log.info("poller %s", "active in this process" if held else
                     "left to another process")
        self.holding = held
        return held
