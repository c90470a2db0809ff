"""What every stand-in shares: an aiohttp app on 127.0.0.1 with a port the OS picks."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from aiohttp import web


class LoopbackServer:
    """Base for stand-ins: `_serve()` binds the app, `_shutdown()` stops it (safe twice)."""

    _runner: web.AppRunner | None = None
    _url: str | None = None

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:54321``."""
        if self._url is None:
            raise RuntimeError(f"{type(self).__name__} is not started; await start() first")
        return self._url

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        await self._shutdown()

    async def _serve(
        self, app: web.Application, *, scheme: str = "http", shutdown_timeout: float = 60.0
    ) -> str:
        """Start `app` on a free port (parallel test runs never collide); returns its URL."""
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._url = f"{scheme}://{host}:{port}"
        return self._url

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
