"""Charts drawn in a process of their own.

matplotlib costs the process that imports it some 40 MB and a few hundred milliseconds of
CPU per chart: drawn in the server, it would hold up the event loop and break the memory
budget. One worker process (started on the first chart, spawned, so it shares nothing with
the server) draws them; the server only awaits the PNG. A worker that dies is replaced on
the next chart."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.render.chart import calls_chart
from storage.models import DayCounts

if TYPE_CHECKING:  # imported on the first chart: start-up and memory pay nothing for it
    from concurrent.futures import ProcessPoolExecutor

log = logging.getLogger(__name__)


class Drawing:
    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    async def chart(self, days: Sequence[DayCounts], *, title: str | None, lang: str,
                    english_title: str | None = None) -> bytes:
        """The calls-per-day PNG (bot/render/chart.py), drawn in the worker."""
        draw = functools.partial(calls_chart, list(days), title=title, lang=lang,
                                 english_title=english_title)
        from concurrent.futures.process import BrokenProcessPool

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), draw)
        except BrokenProcessPool:
            log.warning("chart worker died; a new one draws the next chart")
            self.close()
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
