"""Polls Retell for calls whose webhooks do not come (no public URL, a laptop behind NAT).

Whatever polling finds is recorded as the events it stands for, deduplicated with the
webhooks, so the channel gets each outcome once whichever way it arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from bot.calls import CallService
from bot.tasks import finish_or_cancel

log = logging.getLogger(__name__)
BATCH = 20


class Poller:
    def __init__(
        self, calls: CallService, on_found: Callable[[], None], *, interval: float = 5.0
    ) -> None:
        self.calls = calls
        self.on_found = on_found
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="retell-poller")

    async def stop(self, grace: float = 5.0) -> None:
        """Let a pass in hand finish (it writes to the store), then stop."""
        if self._task is None:
            return
        self._stopping.set()
        await finish_or_cancel([self._task], grace)
        self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            polled = 0
            try:
                polled = await self.calls.poll_due(BATCH)
                if polled:
                    self.on_found()
            except Exception:
                log.exception("poll pass failed")
            if polled < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.interval)
