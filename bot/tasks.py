"""Background workers: stopping them without cutting a store write or a Slack post in half,
and leases that keep work meant for one process in one process when two share a database."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import ParamSpec

P = ParamSpec("P")
# How long a lease (an outbox call in hand, the poller) outlives its holder: a process that
# dies is taken over this long after its last renewal. Holders renew at a third of it.
LEASE_SECONDS = 15.0


def process_owner() -> str:
    """An owner id unique to this process (and this start of it), for leases."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def finish_or_cancel(tasks: Collection[asyncio.Task[None]], grace: float) -> None:
    """Give tasks told to stop `grace` seconds to end on their own, then cancel the rest."""
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=grace)
    for task in late:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class InFlight:
    """Listener work still running after Slack got its ack (Bolt runs it in a task of its
    own); shutdown waits for it, so a call placed at Retell is always recorded here."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def count(self) -> int:
        return self._count

    def track(self, fn: Callable[P, Awaitable[None]]) -> Callable[P, Awaitable[None]]:
        @functools.wraps(fn)  # Bolt reads the wrapped function's argument names
        async def tracked(*args: P.args, **kwargs: P.kwargs) -> None:
            self._count += 1
            self._idle.clear()
            try:
                await fn(*args, **kwargs)
            finally:
                self._count -= 1
                if self._count == 0:
                    self._idle.set()

        return tracked

    async def wait_idle(self, timeout: float) -> bool:  # noqa: ASYNC109
        """True when nothing is left running within `timeout` seconds."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
