"""The real server in its own process (`python -m bot serve`), for tests of signals and exits.

The Slack and Retell stand-ins keep running in the test's event loop, so nothing here blocks
it: the child is started with `subprocess.Popen` and watched by polling. The child gets a
clean environment built from the stand-ins, runs in a temporary directory (no `.env` is
read) and dies with the test process (PR_SET_PDEATHSIG), and `close()` never leaves it behind.

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
import ctypes
import json
import os
import resource
import signal as signals
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self
from urllib.parse import urlencode

import aiohttp

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, SIGNING_SECRET, USER, command_form, slack_headers

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 15.0
REQUEST_TIMEOUT = 10.0
POLL = 0.02
TAIL_LINES = 40
# Settings the parent's environment must never leak into the server.
_OURS = ("SLACK_", "RETELL_", "CALLBOT_", "DATABASE_")
_ALSO_OURS = frozenset({"HOST", "PORT", "LOG_LEVEL", "PYTHONPATH"})
_PR_SET_PDEATHSIG = 1

try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # not Linux: the child may then outlive a killed pytest
    _LIBC = None


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(
    slack: SlackStandIn,
    retell: RetellStandIn,
    db_path: Path,
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
        DATABASE_URL=f"sqlite:///{db_path}",
        HOST="127.0.0.1",
        PORT=str(port),
        LOG_LEVEL="INFO",
        CALLBOT_CALLING_HOURS="any",  # suites run at any hour
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


def _die_with(parent: int, nofile: tuple[int, int] | None = None) -> Any:
    """preexec_fn: the kernel SIGKILLs the child when the test process goes away; `nofile`
    sets the child's open-files limits (soft, hard) as a deployment would."""

    def arrange() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signals.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return arrange


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


class ServerProcess:
    """`python -m bot serve` as a child process on a fixed port and database file.

    `start()` spawns it and waits for `GET /healthz` = 200; `restart()` starts it again on
    the same port and database once it has exited. Everything it prints goes to `log_path`
    (appended across restarts). `close()` (or leaving `async with`) SIGKILLs it if needed.
    """

    def __init__(
        self,
        slack: SlackStandIn,
        retell: RetellStandIn,
        db_path: Path,
        workdir: Path,
        *,
        extra: dict[str, str] | None = None,
        port: int | None = None,
        nofile: tuple[int, int] | None = None,
    ) -> None:
        self.slack = slack
        self.retell = retell
        self.db_path = db_path
        self.workdir = workdir / "server-cwd"  # empty: no `.env` can be picked up here
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = server_env(slack, retell, db_path, self.port, extra)
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.nofile = nofile

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the server and wait until it is healthy; fail with its log if it is not."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the server is already running")
        self.runs += 1
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the handle
            log.write(f"----- run {self.runs}: python -m bot serve on {self.url} -----\n"
                      .encode())
            log.flush()
            self.proc = self._spawn(log)
        await self._wait_healthy()

    async def start_expecting_exit(self, timeout: float = START_TIMEOUT) -> int:  # noqa: ASYNC109
        """Spawn the server for a start-up that must fail: its exit code (it must not become
        healthy; if it still runs after `timeout` s it is killed and this fails)."""
        if self.running:
            raise RuntimeError("the server is already running")
        self.runs += 1
        with self.log_path.open("ab") as log:
            log.write(f"----- run {self.runs}: expected to fail -----\n".encode())
            log.flush()
            self.proc = self._spawn(log)
        return await self.wait_exit(timeout)

    def _spawn(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        # fork + exec only: nothing here waits on the child, so the event loop is not held up.
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C in pytest's terminal does not also signal the server.
            start_new_session=True,
            preexec_fn=_die_with(os.getpid(), self.nofile),
        )

    async def _wait_healthy(self) -> None:
        proc = self.proc
        assert proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"server exited with {proc.returncode} before it was healthy\n"
                    f"{self.log_tail()}"
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                status, _ = await get(self.url + "/healthz", timeout=1.0)
                if status == 200:
                    return
            if loop.time() > deadline:
                self.kill()
                raise AssertionError(
                    f"server not healthy within {START_TIMEOUT:.0f} s (killed)\n{self.log_tail()}"
                )
            await asyncio.sleep(POLL)

    async def restart(self) -> None:
        """Start again on the same port and database; stops it first (SIGTERM) if running."""
        if self.running:
            self.signal(signals.SIGTERM)
            await self.wait_exit(START_TIMEOUT)
        await self.start()

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the server was never started")
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def signal(self, sig: int) -> None:
        """Send a signal (e.g. signal.SIGTERM) to the server process."""
        if self.proc is None:
            raise RuntimeError("the server was never started")
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float) -> int:  # noqa: ASYNC109
        """The exit code once the process ends; after `timeout` s it is killed and this fails."""
        proc = self.proc
        if proc is None:
            raise RuntimeError("the server was never started")
        loop = asyncio.get_running_loop()
        started = loop.time()
        while proc.poll() is None:
            if loop.time() - started > timeout:
                self.kill()
                raise AssertionError(
                    f"server (pid {proc.pid}) still running {timeout:.1f} s later; killed\n"
                    f"{self.log_tail()}"
                )
            await asyncio.sleep(POLL)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the server (if it still runs) and reap it."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            # SIGKILL cannot be caught, so this returns at once; the timeout is a safeguard.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    async def close(self) -> None:
        """Never leave a process behind: kill whatever still runs, close the log."""
        self.kill()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- output ---------------------------------------------------------------------------

    def log_text(self, since: int = 0) -> str:
        """What the server printed (all runs), from byte offset `since` (see `log_size`)."""
        with contextlib.suppress(OSError):
            with self.log_path.open("rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        return ""

    def log_size(self) -> int:
        """The log's length now: pass it to `log_text(since=...)` to see only what follows."""
        with contextlib.suppress(OSError):
            return self.log_path.stat().st_size
        return 0

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return "--- server log (tail) ---\n" + "\n".join(tail)

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
