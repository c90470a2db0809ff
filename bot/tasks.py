"""Stopping background workers without cutting a store write or a Slack post in half."""

from __future__ import annotations

import asyncio
import contextlib


async def finish_or_cancel(task: asyncio.Task[None], grace: float) -> None:
    """Give a task told to stop `grace` seconds to end on its own, then cancel it."""
    try:
        await asyncio.wait_for(asyncio.shield(task), grace)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
