"""The `callbot` command: `serve` (also `python -m bot serve`), `demo` and `check`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import importlib.metadata
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
from bot.render.catalog import DEFAULT_LANGUAGE, LANGUAGES
from bot.runtime.logs import setup_logging

# Connections the kernel may queue before we accept them: a burst of webhooks (or of
# slow clients) must not overflow a short queue into SYN retransmits of a second or more.
BACKLOG = 1024


class StartupError(Exception):
    """Start-up cannot go on: one line naming the setting and the cause (as SettingsError)."""


SERVE_HELP = """Run the HTTP server: Slack at POST /slack/events (or Socket Mode when
SLACK_APP_TOKEN is set), Retell at POST /retell/webhook, GET /healthz and GET /metrics.

Reads every setting in .env.example from the environment or ./.env: SLACK_BOT_TOKEN,
SLACK_SIGNING_SECRET or SLACK_APP_TOKEN, RETELL_API_KEY and RETELL_FROM_NUMBER (optional
with RETELL_MODE=simulate), DATABASE_URL, HOST, PORT, LOG_LEVEL and the CALLBOT_* settings."""

DEMO_HELP = """Show the app working with no accounts and no network: the real server on
loopback with built-in stand-ins for Slack and Retell, on a throw-away database. Plays a
short story (a call that connects and is analysed, one not answered, a number on the
do-not-call list, a button press, /callstats) and prints what the channel shows.

Reads no settings; exits 0 when the story played as it should."""

CHECK_HELP = """Check the set-up against the live services, one line each (a tick or a
cross, and the fix): the Slack token and its scopes, the signing secret or the Socket Mode
token, the Retell key, RETELL_FROM_NUMBER and RETELL_AGENT_ID, the agents' webhook URLs
against CALLBOT_PUBLIC_URL, and the notify channel.

Reads SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_APP_TOKEN, SLACK_API_URL,
RETELL_API_KEY, RETELL_FROM_NUMBER, RETELL_AGENT_ID, RETELL_BASE_URL, CALLBOT_PUBLIC_URL and
CALLBOT_NOTIFY_CHANNEL. Exits 0 only when everything needed passes, 1 when something does
not, 2 when the settings cannot be used (missing, malformed, or .env.example's placeholders)."""


def version() -> str:
    try:
        return importlib.metadata.version("retell-slack-callbot")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="callbot", description="Place Retell AI phone calls from Slack, and see them "
        "come back. Without a subcommand, `serve`.",
        epilog="Start with `callbot demo`; `callbot <command> --help` says what each reads.")
    top.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = top.add_subparsers(dest="command", metavar="{serve,demo,check}")
    raw = argparse.RawDescriptionHelpFormatter
    serve = sub.add_parser("serve", help="run the server (the default)",
                           description=SERVE_HELP, formatter_class=raw)
    serve.add_argument("--host", help="overrides HOST")
    serve.add_argument("--port", type=int, help="overrides PORT")
    demo = sub.add_parser("demo", help="see it work offline, with stand-ins for Slack and Retell",
                          description=DEMO_HELP, formatter_class=raw)
    demo.add_argument("--language", choices=LANGUAGES, default=DEFAULT_LANGUAGE,
                      help="the language of the story and of what Slack shows (en, th)")
    sub.add_parser("check", help="check the Slack and Retell set-up, one line per item",
                   description=CHECK_HELP, formatter_class=raw)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "demo":
        from bot.demo import run_demo

        return run_demo(lang=args.language)
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
    from bot.setup.placeholders import placeholder_problem

    placeholder = placeholder_problem(settings)  # .env.example's values, never replaced
    if placeholder:
        print(f"callbot: {placeholder}", file=sys.stderr)
        return 2
    if args.command == "check":
        from bot.setup.check import run_check

        return run_check(settings)

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
        _ignore_late_signals(loop)
    return 0


def _ignore_late_signals(loop: asyncio.AbstractEventLoop) -> None:
    """Stopped: a signal from now until the process ends changes nothing. Closing the loop
    would put the default actions back, and a second SIGTERM a moment after the first
    would then kill a process that stopped cleanly (exit -15 instead of 0)."""
    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)  # none lands between the two steps
    try:
        for sig in signals:
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    log = logging.getLogger("bot")
    if stop.is_set():
        log.info("%s: already stopping", sig.name)
    else:
        log.info("%s: stopping", sig.name)
    stop.set()


if __name__ == "__main__":
    sys.exit(main())
