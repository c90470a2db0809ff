"""The real server in its own process (`python -m bot serve`), for tests of signals and exits.

The Slack and Retell stand-ins keep running in the test's event loop, so nothing here blocks
it: spawning, waiting and killing are standins.process's (shared with the bench), which polls
the child. Here the child gets a clean environment built from the stand-ins, runs in a
temporary directory (no `.env` is read) and dies with the test process (SIGKILL via
PR_SET_PDEATHSIG), and `close()` never leaves it behind.

Usage::

    async with ServerProcess(slack, retell, db_path, tmp_path) as server:
        await server.start()
        status, _ = await server.slash("/call", "+14155550123",
                                       response_url=slack.response_url("k"))
        server.signal(signal.SIGTERM)
        assert await server.wait_exit(5) == 0
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal as signals
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from standins.process import ChildProcess
from standins.process import free_port as free_port  # tests import it from here
from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, SIGNING_SECRET, USER, command_form, slack_headers
from tests.support.stores import database_for

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 15.0
REQUEST_TIMEOUT = 10.0
# Settings the parent's environment must never leak into the server.
_OURS = ("SLACK_", "RETELL_", "CALLBOT_", "DATABASE_")
_ALSO_OURS = frozenset({"HOST", "PORT", "LOG_LEVEL", "PYTHONPATH"})


def server_env(
    slack: SlackStandIn,
    retell: RetellStandIn,
    db_path: Path | str,
    port: int,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment `python -m bot serve` gets: the stand-ins, the database, the port."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_OURS) and k not in _ALSO_OURS}
    env.update(
        SLACK_BOT_TOKEN=slack.token,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        RETELL_API_KEY=retell.api_key,
        RETELL_FROM_NUMBER=retell.phone_numbers[0]["phone_number"],
        RETELL_BASE_URL=retell.url,
        DATABASE_URL=database_for(db_path),
        HOST="127.0.0.1",
        PORT=str(port),
        LOG_LEVEL="INFO",
        CALLBOT_CALLING_HOURS="any",  # suites run at any hour
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


async def raw_exchange(
    port: int, data: bytes, *, timeout: float = REQUEST_TIMEOUT, shut_write: bool = False,  # noqa: ASYNC109
) -> bytes:
    """Send raw bytes on a fresh TCP connection and read until the server closes it (or
    `timeout`): for requests no HTTP client would send. Raises on a refused connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if shut_write:
            writer.write_eof()
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(timeout):
                while chunk := await reader.read(65536):
                    chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def status_of(answer: bytes) -> int | None:
    """The status code of a raw HTTP answer, None when there was none."""
    line = answer.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[1].isdigit() else None


def _decode(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


async def post(
    url: str, data: bytes, headers: dict[str, str], *, timeout: float = REQUEST_TIMEOUT  # noqa: ASYNC109
) -> tuple[int, Any]:
    """POST on a fresh connection; (status, JSON or text). Raises on a refused connection."""
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.post(url, data=data, headers=headers) as resp,
    ):
        return resp.status, _decode(await resp.text())


async def get(url: str, *, timeout: float = REQUEST_TIMEOUT) -> tuple[int, Any]:  # noqa: ASYNC109
    """GET on a fresh connection; (status, JSON or text). Raises on a refused connection."""
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.get(url) as resp,
    ):
        return resp.status, _decode(await resp.text())


async def send_slash(
    base_url: str,
    command: str,
    text: str,
    *,
    response_url: str,
    user: str = USER,
    channel: str = CHANNEL,
    trigger_id: str | None = None,
    timeout: float = REQUEST_TIMEOUT,  # noqa: ASYNC109
) -> tuple[int, Any]:
    """A slash command to `base_url`/slack/events, form-encoded and signed as Slack does."""
    form = command_form(command, text, response_url=response_url, user=user, channel=channel,
                        trigger_id=trigger_id or f"{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}")
    body = urlencode(form).encode()
    return await post(base_url + "/slack/events", body, slack_headers(body), timeout=timeout)


async def send_webhook(
    base_url: str,
    retell: RetellStandIn,
    body: str,
    *,
    timeout: float = REQUEST_TIMEOUT,  # noqa: ASYNC109
) -> tuple[int, Any]:
    """A Retell webhook to `base_url`/retell/webhook, signed as Retell signs it."""
    return await post(base_url + "/retell/webhook", body.encode("utf-8"),
                      retell.webhook_headers(body), timeout=timeout)


async def connection_refused(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing accepts TCP connections on the port any more."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
    except ConnectionRefusedError:
        return True
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return False


class ServerProcess(ChildProcess):
    """`python -m bot serve` as a child process on a fixed port and database file.

    `start()` spawns it and waits for `GET /healthz` = 200; `restart()` starts it again on
    the same port and database once it has exited. Everything it prints goes to `log_path`
    (appended across restarts). `close()` (or leaving `async with`) SIGKILLs it if needed;
    so does the kernel should pytest die first.
    """

    def __init__(
        self,
        slack: SlackStandIn,
        retell: RetellStandIn,
        db_path: Path | str,
        workdir: Path,
        *,
        extra: dict[str, str] | None = None,
        port: int | None = None,
        nofile: tuple[int, int] | None = None,
    ) -> None:
        port = port or free_port()
        cwd = workdir / "server-cwd"  # empty: no `.env` can be picked up here
        cwd.mkdir(parents=True, exist_ok=True)
        super().__init__(
            [sys.executable, "-m", "bot", "serve"],
            server_env(slack, retell, db_path, port, extra),
            workdir=cwd, log_path=workdir / "server.log", port=port, name="server",
            deathsig=signals.SIGKILL, nofile=nofile, start_timeout=START_TIMEOUT,
        )
        self.slack = slack
        self.retell = retell
        self.db_path = db_path

    async def start_expecting_exit(self, timeout: float = START_TIMEOUT) -> int:  # noqa: ASYNC109
        """Spawn the server for a start-up that must fail: its exit code (it must not become
        healthy; if it still runs after `timeout` s it is killed and this fails)."""
        self.spawn(note=", expected to fail")
        return await self.wait_exit(timeout)

    async def restart(self) -> None:
        """Start again on the same port and database; stops it first (SIGTERM) if running."""
        if self.running:
            self.signal(signals.SIGTERM)
            await self.wait_exit(START_TIMEOUT)
        await self.start()

    # -- requests -------------------------------------------------------------------------

    async def slash(
        self, command: str, text: str, *, response_url: str, **kwargs: Any
    ) -> tuple[int, Any]:
        """A signed slash command, e.g. `await server.slash("/call", "+14155550123", ...)`."""
        return await send_slash(self.url, command, text, response_url=response_url, **kwargs)

    async def webhook(self, body: str, **kwargs: Any) -> tuple[int, Any]:
        """A signed Retell webhook, e.g. the text of `retell.event_body(id, "call_ended")`."""
        return await send_webhook(self.url, self.retell, body, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await get(self.url + path, **kwargs)
