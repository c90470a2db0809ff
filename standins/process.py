"""A server (or any program) as a child process, watched without blocking the event loop.

One runner for the tests, the bench and the demo: they all need the same careful spawn (own
session, dies with its parent, output in a log file), the same wait for `GET /healthz` and
the same SIGTERM-then-SIGKILL stop, and two copies of that had drifted apart (log handling,
timing, leaked log handles). What differs (the signal the kernel sends an orphan, the
start-up timeout, the open-files limit) is a parameter.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import shlex
import signal as signals
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import aiohttp

POLL = 0.01  # seconds between looks at the child: fine enough to time a start-up
HEALTHY_TIMEOUT = 60.0
STOP_GRACE = 15.0  # seconds a SIGTERMed child gets to shut down before SIGKILL
TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1

try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # not Linux: a child may then outlive a parent that was killed
    _LIBC = None


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent(
    sig: int = signals.SIGKILL, nofile: tuple[int, int] | None = None
) -> Callable[[], None]:
    """A `preexec_fn`: the kernel sends the child `sig` when this process dies, so a killed
    pytest or bench leaves nothing running; `nofile` sets the child's open-files limits
    (soft, hard) as a deployment would. Call it in the parent (it notes the parent's pid)."""
    parent = os.getpid()

    def arrange() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return arrange


class ChildProcess:
    """`argv` as a child process serving on `port`, everything it prints in `log_path`.

    It runs in `workdir` (an empty one reads no stray `.env`), with stdin closed, in a
    session of its own: a Ctrl-C in the terminal reaches only the parent, which then sends it
    exactly one SIGTERM (a second one mid-shutdown can hang a server). Every spawn appends a
    header line and then the run's output to the log, so a restarted child keeps the earlier
    runs; `run_offset` is where the latest run's output begins. Leaving `async with` kills it.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        workdir: Path,
        log_path: Path,
        port: int,
        name: str | None = None,
        deathsig: int = signals.SIGKILL,
        nofile: tuple[int, int] | None = None,
        start_timeout: float = HEALTHY_TIMEOUT,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.workdir = workdir
        self.log_path = log_path
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.name = name or log_path.stem  # in error messages and the log tail's heading
        self.deathsig = deathsig
        self.nofile = nofile
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.run_offset = 0
        self.spawned_at = 0.0  # time.perf_counter() once the latest spawn had exec'd

    # -- lifecycle ------------------------------------------------------------------------

    def spawn(self, note: str = "") -> None:
        """Start the program and return at once (fork + exec only: nothing waits on it)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.runs += 1
        header = f"----- run {self.runs}: {shlex.join(self.argv)}{note} -----\n"
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the handle
            log.write(header.encode())
            log.flush()
            self.run_offset = log.tell()
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(self.deathsig, self.nofile),
            )
        self.spawned_at = time.perf_counter()

    async def start(self, timeout: float | None = None) -> float:  # noqa: ASYNC109
        """Spawn and wait until healthy: seconds since the spawn (see `wait_healthy`)."""
        self.spawn()
        return await self.wait_healthy(timeout)

    async def wait_healthy(self, timeout: float | None = None) -> float:  # noqa: ASYNC109
        """Poll `GET /healthz` until it answers 200; seconds since the spawn. Fails with the
        log's tail if the child exits first or is not healthy within `timeout` s (default
        `start_timeout`; it is then killed)."""
        proc = self._proc()
        limit = self.start_timeout if timeout is None else timeout
        deadline = time.perf_counter() + limit
        # One session for the whole wait: a new one per poll would blur a timed start-up.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as session:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {proc.returncode} before it "
                                       f"was healthy\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(self.url + "/healthz") as resp:
                        if resp.status == 200:
                            return time.perf_counter() - self.spawned_at
                if time.perf_counter() > deadline:
                    self.kill()
                    raise RuntimeError(f"{self.name} not healthy within {limit:g} s "
                                       f"(killed)\n{self.log_tail()}")
                await asyncio.sleep(POLL)

    @property
    def pid(self) -> int:
        return self._proc().pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The latest run's exit code (negative: killed by that signal); None while it runs."""
        return None if self.proc is None else self.proc.poll()

    def signal(self, sig: int) -> None:
        """Send a signal (e.g. signal.SIGTERM); nothing happens once it has been reaped."""
        self._proc().send_signal(sig)

    async def wait_exit(self, timeout: float) -> int:  # noqa: ASYNC109
        """The exit code once the child ends; after `timeout` s it is killed and this fails."""
        proc = self._proc()
        if not await self._exited(timeout):
            self.kill()
            raise RuntimeError(f"{self.name} (pid {proc.pid}) still running {timeout:.1f} s "
                               f"later; killed\n{self.log_tail()}")
        return proc.returncode

    async def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM (a graceful shutdown), SIGKILL after `grace` s: the exit code, None if it
        was never spawned. Should this be cancelled, the child is killed all the same."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signals.SIGTERM)
            try:
                if not await self._exited(grace):
                    self.kill()
            except BaseException:
                self.kill()
                raise
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the child if it still runs, and reap it (synchronous, so fixtures and
        finalizers can call it; SIGKILL cannot be caught, so the wait is short)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    async def close(self) -> None:
        """Never leave a process behind."""
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

    def _proc(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.proc

    async def _exited(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Poll (a blocking wait would hold up the event loop) until exit or `timeout` s."""
        proc = self._proc()
        deadline = time.perf_counter() + timeout
        while proc.poll() is None:
            if time.perf_counter() > deadline:
                return False
            await asyncio.sleep(POLL)
        return True

    # -- what it shows --------------------------------------------------------------------

    def status_kib(self, key: str) -> int | None:
        """A `kB` figure from /proc/<pid>/status, e.g. VmHWM (peak RSS); None once it ended
        (its pid may belong to another process by then)."""
        if not self.running:
            return None
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return None

    def log_text(self, since: int = 0) -> str:
        """The log (every run) from byte offset `since`: `log_size()` or `run_offset`."""
        with contextlib.suppress(OSError), self.log_path.open("rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")
        return ""

    def log_size(self) -> int:
        """The log's length now: pass it to `log_text(since=...)` to see only what follows."""
        with contextlib.suppress(OSError):
            return self.log_path.stat().st_size
        return 0

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        """The log's last lines under a heading, for error messages."""
        tail = self.log_text().splitlines()[-lines:]
        return f"--- {self.name} log (tail) ---\n" + "\n".join(tail)
