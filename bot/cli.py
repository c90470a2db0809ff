"""The `callbot` command: `serve` (also `python -m bot serve`), `demo`, `check`, and
`import` / `export` (past calls from Retell into the store, and out of it as files)."""

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
from typing import TYPE_CHECKING, TextIO

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
from storage.errors import DATABASE_ERRORS

if TYPE_CHECKING:
    from bot.retell.client import RetellError

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


IMPORT_HELP = """Copy past calls from Retell into the database: list-calls a page of 1000 at
a time (and, with --transcripts, get-call for each new call that connected, since the list
leaves the words out). Imported calls count in /callstats and show in /callsearch; nothing
is posted to Slack. Calls already stored (from webhooks or an earlier import) are left as
they are, so running it again adds only what is new. Retell's rate limits are honoured
(a 429 is waited out as Retry-After asks).

Progress goes to stderr (a bar on a terminal, a line per page otherwise); the summary line
to stdout. Reads RETELL_API_KEY, RETELL_BASE_URL, CALLBOT_RETELL_TIMEOUT and DATABASE_URL
(with the other settings serve needs). Exits 0 when done, 1 when Retell or the database
failed (calls stored before it stay), 2 when the settings cannot be used."""

EXPORT_HELP = """Write the stored calls as one record per call, oldest first, for a knowledge
base or a warehouse: JSON lines (the default) or CSV, both with the transcript. Streams page
by page, so any number of calls exports in the same small memory. Numbers are masked unless
CALLBOT_SHOW_FULL_NUMBERS=true (then in full, in the number column and inside text).

Reads DATABASE_URL and CALLBOT_SHOW_FULL_NUMBERS (with the other settings serve needs).
With --output the file appears whole or not at all (written beside it, then renamed).
Exits 0 when done, 1 when the database could not be read or the file written, 2 when the
settings cannot be used."""

MIGRATE_HELP = """Copy an SQLite installation's data into PostgreSQL: every call, event,
queued Slack update, claim, do-not-call entry, audit row, scheduled call and campaign, with
their ids, so cards, buttons and links keep working. The PostgreSQL schema is made (or
brought up to date) first. Batches of rows commit one at a time with a mark of how far the
copy got: stopped, it goes on from there when run again. A finished copy forgets the mark,
so running it again copies every row again, updating what changed (nothing is doubled):
copy once while the old server runs, stop it, copy again, then start the new instances on
PostgreSQL. At the end, the rows of every table are counted on both sides.

Reads nothing from the environment. Exits 0 when every count matches, 1 when one does not
or the copy failed (run it again), 2 when an URL cannot be used."""

# A history import waits out longer rate-limit pauses and more retries than a person in
# Slack would: nobody is waiting on an answer, and giving up means starting over.
IMPORT_RETRIES = 5
IMPORT_MAX_RETRY_WAIT = 120.0


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
    sub = top.add_subparsers(dest="command",
                             metavar="{serve,demo,check,import,export,migrate-db}")
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
    since_help = ("calls from this far back: a number of days (7d, 30d, 90d) or a date "
                  "(2026-11-01, from its start in UTC)")
    imports = sub.add_parser("import", help="copy past calls from Retell into the database",
                             description=IMPORT_HELP, formatter_class=raw)
    imports.add_argument("--since", required=True, type=_since, metavar="30d|DATE",
                         help=since_help)
    imports.add_argument("--transcripts", action="store_true",
                         help="also fetch each new call's transcript (one get-call per call)")
    exports = sub.add_parser("export", help="write the stored calls as JSON lines or CSV",
                             description=EXPORT_HELP, formatter_class=raw)
    exports.add_argument("--since", type=_since, metavar="30d|DATE",
                         help=since_help + "; all calls when left out")
    exports.add_argument("--format", choices=("jsonl", "csv"), default="jsonl",
                         help="one JSON object per line (default), or CSV with a header")
    exports.add_argument("--output", "-o", type=Path, metavar="FILE",
                         help="write here instead of stdout")
    migrate = sub.add_parser("migrate-db", help="copy an SQLite database into PostgreSQL",
                             description=MIGRATE_HELP, formatter_class=raw)
    migrate.add_argument("--from", dest="source", required=True, metavar="sqlite:///FILE",
                         help="the SQLite database to copy (opened read-only)")
    migrate.add_argument("--to", dest="target", required=True,
                         metavar="postgresql://user:pass@host:5432/db",
                         help="the PostgreSQL database to copy into")
    return top


def _since(text: str) -> float:
    """argparse's reading of --since (its error names the option and the problem)."""
    from bot.calls.history import parse_since

    try:
        return parse_since(text, time.time())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "demo":
        from bot.demo import run_demo

        return run_demo(lang=args.language)
    if args.command == "migrate-db":
        return run_migrate(args.source, args.target)
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
    if args.command in ("import", "export"):
        try:
            if args.command == "import":
                if settings.simulated:
                    print("callbot: RETELL_MODE=simulate has no Retell history to import; "
                          "set RETELL_MODE=live", file=sys.stderr)
                    return 2
                check_database(settings)
                return run_import(settings, since=args.since, transcripts=args.transcripts)
            if not settings.uses_postgres and not settings.database_path.is_file():
                print(f"callbot: DATABASE_URL {settings.database_label}: no database there, "
                      "so no calls to export", file=sys.stderr)
                return 1
            check_database(settings)
            return run_export(settings, since=args.since, kind=args.format,
                              output=args.output)
        except StartupError as exc:
            print(f"callbot: {exc}", file=sys.stderr)
            return 2

    setup_logging(settings.log_level)
    try:
        check_database(settings)
        return asyncio.run(run_server(settings))
    except StartupError as exc:
        print(f"callbot: {exc}", file=sys.stderr)
        return 2


# -- import and export --------------------------------------------------------------------


class _Progress:
    """What `callbot import` / `export` say while they work, on stderr: one line redrawn in
    place on a terminal, a plain line per step otherwise (a log keeps every one)."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.label = label
        self.tty = stream.isatty()
        try:
            "·".encode(stream.encoding or "ascii")
            self.ascii_only = False
        except (LookupError, UnicodeEncodeError):
            self.ascii_only = True
        self._drawn = False

    def show(self, done: int, total: int | None, unit: str, detail: str = "") -> None:
        from bot.render.terminal import progress_line

        line = progress_line(self.label, done, total, unit, detail, ascii_only=self.ascii_only)
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own, above the bar (which is drawn again at the next step)."""
        self.end()
        self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def _retell_problem(exc: RetellError) -> str:
    """A Retell failure in one line, naming the setting to look at."""
    said = f"HTTP {exc.status}: {exc.reason}" if exc.status else f"{exc.kind}: {exc.reason}"
    if exc.status in (401, 403):
        return f"Retell refused RETELL_API_KEY ({said}); copy a key from the Retell dashboard"
    if exc.status == 429:
        return f"Retell kept rate-limiting the import ({said}); run it again later"
    if exc.kind == "bad_answer":
        return f"Retell answered with something the import cannot read ({exc.reason})"
    if exc.transient:
        return (f"Retell is unavailable ({said}); check the network and RETELL_BASE_URL, "
                "then run it again")
    return f"Retell refused the request ({said})"


def run_import(settings: Settings, *, since: float, transcripts: bool) -> int:
    """`callbot import`: Retell's calls since `since` into the store; the summary on stdout,
    progress and problems on stderr. 0 done, 1 Retell or the database failed."""
    from bot.calls.history import ImportProgress, import_history
    from bot.render.terminal import count
    from bot.retell.client import RetellClient, RetellError
    from bot.runtime.logs import install_scrubbing
    from storage.stores import make_store

    install_scrubbing()
    progress = _Progress(sys.stderr, "Importing")
    waits = 0

    def observe(operation: str, seconds: float, kind: str | None) -> None:
        nonlocal waits
        if kind == "rate_limited":
            waits += 1
            progress.note(f"Retell asked to slow down ({operation}): waiting as it said, "
                          "then going on")

    def step(p: ImportProgress) -> None:
        if not (p.page_done or progress.tty):
            return  # a log gets a line per page, not per batch of transcripts
        detail = f"page {p.pages}, {count(p.added)} new"
        if transcripts:
            detail += f", {count(p.transcripts)} transcripts"
        progress.show(p.fetched, p.total, "calls", detail)

    async def run() -> str:
        retell = RetellClient(
            settings.retell_api_key, base_url=settings.retell_base_url,
            timeout=settings.retell_timeout_seconds,
            retries=max(settings.retell_retries, IMPORT_RETRIES),
            max_retry_wait=IMPORT_MAX_RETRY_WAIT, observe=observe)
        try:
            async with make_store(settings.database_url,
                                  pool_size=settings.database_pool_size) as store:
                result = await import_history(retell, store, since=since,
                                              transcripts=transcripts, progress=step)
        finally:
            await retell.aclose()
        line = (f"Imported from Retell: {count(result.fetched)} calls fetched in "
                f"{result.pages} page(s), {count(result.added)} added, "
                f"{count(result.already)} already stored")
        if result.live:
            line += f", {count(result.live)} still live (their webhooks will record them)"
        if result.skipped:
            line += f", {count(result.skipped)} skipped (not phone calls, or unreadable)"
        if transcripts:
            line += f"; {count(result.transcripts)} transcripts fetched"
        return line + "."

    try:
        summary = asyncio.run(run())
    except RetellError as exc:
        from bot.setup.check import redact, secrets_of

        progress.end()
        line = (f"callbot: import stopped: {_retell_problem(exc)}. Calls stored before this "
                "are kept; running it again adds the rest.")
        print(redact(line, secrets_of(settings)), file=sys.stderr)  # Retell may echo the key
        return 1
    except _DATABASE_OR_FILE as exc:
        progress.end()
        print(f"callbot: import stopped: DATABASE_URL {settings.database_label}: {exc}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.end()
        print("callbot: import interrupted. Calls stored so far are kept; running it again "
              "adds the rest.", file=sys.stderr)
        return 130
    progress.end()
    print(summary)
    return 0


def run_migrate(source: str, target: str) -> int:
    """`callbot migrate-db`: progress on stderr, the counts on stdout."""
    from bot.config import redact_url
    from bot.render.terminal import count
    from storage.copy import copy_sqlite
    from storage.stores import POSTGRES_SCHEMES

    if not source.startswith("sqlite:///") or source == "sqlite:///":
        print("callbot: --from must look like sqlite:///path/to/callbot.db", file=sys.stderr)
        return 2
    if not target.startswith(POSTGRES_SCHEMES):
        print("callbot: --to must look like postgresql://user:pass@host:5432/db",
              file=sys.stderr)
        return 2
    path = Path(source.removeprefix("sqlite:///"))
    if not path.is_file():
        print(f"callbot: --from {source}: no database there", file=sys.stderr)
        return 2
    label = redact_url(target)
    progress = _Progress(sys.stderr, "Copying")

    def step(table: str, done: int, total: int) -> None:
        progress.show(done, total, "rows", table)

    try:
        report = asyncio.run(copy_sqlite(path, target, progress=step))
    except _DATABASE_OR_FILE as exc:
        progress.end()
        print(f"callbot: migrate-db stopped: {label}: {str(exc).splitlines()[0][:300]}. "
              "Rows copied so far are kept; running it again goes on from there.",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.end()
        print("callbot: migrate-db interrupted; running it again goes on from there.",
              file=sys.stderr)
        return 130
    progress.end()
    for table, rows in report.source.items():
        mark = "ok" if report.target.get(table) == rows else "DIFFERENT"
        print(f"{table:16} {count(rows):>12} in SQLite, {count(report.target[table]):>12} in "
              f"PostgreSQL  {mark}")
    if report.mismatched:
        print(f"callbot: the counts differ for {', '.join(report.mismatched)}: the source "
              "changed during the copy, or the target already held other rows. Stop the "
              "old server and run migrate-db again.", file=sys.stderr)
        return 1
    print(f"Copied {count(sum(report.copied.values()))} rows into {label}; every count "
          "matches.")
    return 0


def run_export(settings: Settings, *, since: float | None, kind: str,
               output: Path | None) -> int:
    """`callbot export`: the stored calls as JSON lines or CSV, page by page, to `output`
    (written beside it, then renamed into place) or stdout. 0 done, 1 a read or write
    failed."""
    import csv
    import io
    import os

    from bot.calls.history import export_pages
    from bot.render.exports import call_json, export_cells, export_header
    from bot.render.terminal import count
    from storage.models import CallFilter
    from storage.stores import make_store

    full = settings.show_full_numbers
    flt = CallFilter(since=since)
    progress = _Progress(sys.stderr, "Exporting")
    partial = output.with_name(output.name + ".partial") if output is not None else None

    async def write_all(out: TextIO) -> int:
        written = 0
        async with make_store(settings.database_url,
                              pool_size=settings.database_pool_size) as store:
            writer = csv.writer(out) if kind == "csv" else None
            fields: list[str] = []
            if writer is not None:
                fields = await store.field_names(flt)
                writer.writerow(export_header(fields))
            async for page in export_pages(store, flt, transcripts=True):
                if writer is not None:
                    writer.writerows(export_cells(c, fields=fields, full=full) for c in page)
                else:
                    out.write("".join(call_json(c, full=full, transcript=True) + "\n"
                                      for c in page))
                written += len(page)
                if progress.tty:
                    progress.show(written, None, "calls")
        out.flush()
        return written

    stdout: io.TextIOWrapper | None = None
    try:
        if partial is not None:
            with open(partial, "w", encoding="utf-8", newline="") as out:
                written = asyncio.run(write_all(out))
            assert output is not None
            os.replace(partial, output)
        else:
            stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
            written = asyncio.run(write_all(stdout))
    except BrokenPipeError:  # `callbot export | head`: the reader has what it wanted
        progress.end()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except _DATABASE_OR_FILE as exc:
        progress.end()
        _remove(partial)
        where = (f"{output}: {exc.strerror or exc}" if isinstance(exc, OSError)
                 and output is not None else f"DATABASE_URL {settings.database_label}: {exc}")
        print(f"callbot: export stopped: {where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.end()
        _remove(partial)
        print("callbot: export interrupted; no file written.", file=sys.stderr)
        return 130
    finally:
        if stdout is not None:
            with contextlib.suppress(ValueError, OSError):
                stdout.detach()
    progress.end()
    target = str(output) if output is not None else "stdout"
    numbers = "in full" if full else "masked"
    print(f"Exported {count(written)} calls as {kind} to {target} (numbers {numbers}).",
          file=sys.stderr)
    return 0


def _remove(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


_DATABASE_OR_FILE: tuple[type[BaseException], ...] = (*DATABASE_ERRORS, OSError)


def check_database(settings: Settings) -> None:
    """Open the database file (creating it and its directory as the store does) before
    anything starts, so a bad DATABASE_URL is one line, not a traceback from a worker."""
    if settings.uses_postgres:
        _check_postgres(settings)
        return
    path = settings.database_path
    try:
        if path.parent.exists() and not path.parent.is_dir():
            raise StartupError(f"DATABASE_URL {settings.database_label} cannot be created: "
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
        raise StartupError(f"DATABASE_URL {settings.database_label} cannot be opened: {cause}"
                           ) from None


def _check_postgres(settings: Settings) -> None:
    """Connect once (5 s at most): a server that is down, a wrong password or a database
    that does not exist is one line naming the URL without its password."""
    import asyncpg

    async def connect() -> None:
        conn = await asyncio.wait_for(asyncpg.connect(settings.database_url), 5)
        await conn.close()

    try:
        asyncio.run(connect())
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        cause = ("no answer within 5 s" if isinstance(exc, TimeoutError)
                 else exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc))
        raise StartupError(f"DATABASE_URL {settings.database_label} cannot be opened: "
                           f"{cause}") from None


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
        except DATABASE_ERRORS as exc:
            with contextlib.suppress(Exception):
                await runner.cleanup()
            raise StartupError(f"DATABASE_URL {settings.database_label} cannot be opened: {exc}"
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
