"""Background workers: stopping them without cutting a store write or a Slack post in half,
and leases that keep work meant for one process in one process when two share a database."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterator
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


class Worker:
    """A background loop that can be told to stop between two steps: `start` runs `_run`,
    `stop` sets `_stopping`, wakes the loop (`_wake_up`) and gives it `grace` seconds to
    end on its own before cancelling it, so a step never stops half way through a write."""

    name = "worker"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self, grace: float = 5.0) -> None:
        if self._task is None:
            return
        self._stopping.set()
        self._wake_up()
        await finish_or_cancel([self._task], grace)
        self._task = None

    async def _run(self) -> None:
        raise NotImplementedError

    def _wake_up(self) -> None:
        """A loop that waits on something besides `_stopping` is woken here."""

    async def _rest(self, seconds: float) -> None:
        """Wait `seconds`, or less if told to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


class InFlight:
    """Listener work still running after Slack got its ack (Bolt runs it in a task of its
    own); shutdown waits for it, so a call placed at Retell is always recorded here."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._answering = 0  # Slack requests still waiting for their ack
        self._acked = asyncio.Event()
        self._acked.set()

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Around a Slack request until its HTTP answer (the ack) is ready."""
        self._answering += 1
        self._acked.clear()
        try:
            yield
        finally:
            self._answering -= 1
            if self._answering == 0:
                self._acked.set()

    async def after_acks(self, limit: float = 0.25) -> None:
        """Work after an ack waits (briefly) for the acks still owed: Slack gives up on a
        request after 3 s, while placing a call can start a few milliseconds later. In a
        burst of 50 commands this keeps the last ack from queueing behind 49 placements."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._acked.wait(), limit)

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
