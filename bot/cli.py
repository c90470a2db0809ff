"""`callbot serve` / `python -m bot serve`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import logging
import signal
import socket
import sqlite3
import sys
import time
from pathlib import Path

from aiohttp import web

from bot.config import Settings, SettingsError, load_settings
from bot.http.edge import (
    connection_budget,
    install_loop_exception_handler,
    make_runner,
    raise_open_files_limit,
)
from bot.runtime.logs import setup_logging

# Connections the kernel may queue before we accept them: a burst of webhooks (or of
# slow clients) must not overflow a short queue into SYN retransmits of a second or more.
BACKLOG = 1024


class StartupError(Exception):
    """Start-up cannot go on: one line naming the setting and the cause (as SettingsError)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callbot", description="Retell calls from Slack")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the HTTP server (the default)")
    serve.add_argument("--host", help="overrides HOST")
    serve.add_argument("--port", type=int, help="overrides PORT")
    args = parser.parse_args(argv)

    overrides = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"callbot: {exc}", file=sys.stderr)
        return 2

    setup_logging(settings.log_level)
    try:
        check_database(settings)
        return asyncio.run(run_server(settings))
    except StartupError as exc:
        print(f"callbot: {exc}", file=sys.stderr)
        return 2


def check_database(settings: Settings) -> None:
    """Open the database file (creating it and its directory as the store does) before
    anything starts, so a bad DATABASE_URL is one line, not a traceback from a worker."""
    path = settings.database_path
    try:
        if path.parent.exists() and not path.parent.is_dir():
            raise StartupError(f"DATABASE_URL {settings.database_url} cannot be created: "
                               f"{_nearest_file(path)} is a file, not a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=5)
        try:
            conn.execute("PRAGMA user_version").fetchone()  # refuses a file that is no database
        finally:
            conn.close()
    except (OSError, sqlite3.Error) as exc:
        if isinstance(exc, NotADirectoryError | FileExistsError):
            cause = f"{_nearest_file(path)} is a file, not a directory"
        else:
            cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StartupError(f"DATABASE_URL {settings.database_url} cannot be opened: {cause}"
                           ) from None


def _nearest_file(path: Path) -> Path:
    """The first existing ancestor of `path` that is not a directory (what blocks mkdir)."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return path.parent


async def bind(host: str, port: int) -> list[socket.socket]:
    """The listening sockets for HOST and PORT, bound before anything else starts: a port in
    use or a host that does not resolve stops start-up with one line, and nothing to undo."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"HOST {host!r} does not resolve: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise StartupError(_bind_problem(host, port, exc)) from None
    return sockets


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"PORT {port} is already in use on {host}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"HOST {host!r} is not an address of this machine"
    if exc.errno == errno.EACCES:
        return f"PORT {port} needs privileges this process does not have"
    return f"PORT {port} on HOST {host!r} cannot be listened on: {exc.strerror}"


async def run_server(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT, then stop in order: stop accepting, finish requests
    and listeners in flight, stop the outbox worker, close the database.

    Our own signal handling rather than `web.run_app`'s: a second signal during the stop
    must not cut it short and leave the database threads running.
    """
    from bot.app import create_app

    log = logging.getLogger("bot")
    loop = asyncio.get_running_loop()
    install_loop_exception_handler(loop)
    sockets = await bind(settings.host, settings.port)
    before, open_files = raise_open_files_limit()
    max_connections = connection_budget(settings.max_connections, open_files)
    log.info("open files: soft limit %d%s; up to %d connections", open_files,
             f" (raised from {before})" if open_files != before else "", max_connections)
    runner = make_runner(create_app(settings), settings, max_connections=max_connections,
                         handle_signals=False, shutdown_timeout=settings.shutdown_timeout)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, stop, sig)
    try:
        try:
            await runner.setup()
        except sqlite3.Error as exc:
            with contextlib.suppress(Exception):
                await runner.cleanup()
            raise StartupError(f"DATABASE_URL {settings.database_url} cannot be opened: {exc}"
                               ) from None
        for sock in sockets:
            await web.SockSite(runner, sock, backlog=BACKLOG).start()
        # Everything loaded so far lives as long as the process: keep it out of the
        # collector's way, and collect less often, so a burst of webhooks does not pay for
        # full collections in its slowest answers (p99 about 40% lower in bench/).
        gc.freeze()
        gc.set_threshold(20_000, 20, 100)
        log.info("ready: listening on http://%s:%d", settings.host, settings.port)
        await stop.wait()
    finally:
        if runner.server is not None:
            started = time.monotonic()
            await runner.cleanup()
            log.info("stopped cleanly in %.1f s", time.monotonic() - started)
        for sock in sockets:  # closed already if a site was started on it
            sock.close()
    return 0


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    log = logging.getLogger("bot")
    if stop.is_set():
        log.info("%s: already stopping", sig.name)
    else:
        log.info("%s: stopping", sig.name)
    stop.set()


if __name__ == "__main__":
    sys.exit(main())
