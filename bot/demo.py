"""`callbot demo`: see the app work with no accounts and no network.

The real server (bot.app.create_app behind the edge runner, as `callbot serve` runs it) on
127.0.0.1 with a free port, the Slack stand-in in this process for Slack's Web API, Retell
simulated inside the server (RETELL_MODE=simulate, sped up), on a throw-away SQLite file.
A short story (bot/demo_story.py) is played through the real HTTP routes, every request
signed as Slack signs it; what the channel would show is printed as it happens.

The server's own log lines go to a file in the temporary directory; its path is printed
when something fails (and the directory is then kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from bot.config import Settings
from bot.render.catalog import DEFAULT_LANGUAGE, words
from bot.render.terminal import Style, message_lines, wrap
from bot.retell.simulator import Timings
from standins.slack import SlackCall, SlackStandIn, signed_headers

TEAM = "T0DEMO"
CHANNEL = "C0CALLS"
CHANNEL_NAME = "calls"
USER = "U0DANA"  # the person typing; an admin (CALLBOT_ADMINS), so /calldnc add works
USER_NAME = "dana"
BOT_USER = "U0CALLBOT"
# Calls sped up so the story plays in seconds; the server's default is a few seconds each.
TIMINGS = Timings(ring=0.5, no_answer=1.0, talk=1.5, analysis=0.3)
DEADLINE = 8.0  # seconds a step's effect may take before the demo gives up
# What the feed shows of the Web API calls the app makes (the rest is plumbing).
SHOWN = ("chat.postMessage", "chat.update", "chat.postEphemeral",
         "files.completeUploadExternal")


Story = Callable[["Demo", Any], Awaitable[None]]  # (the demo, the server's AppContext)


class DemoFailed(Exception):
    """A step's expected effect did not appear; the message says which."""


class _DemoSettings(Settings):
    """The demo's settings only: nothing from the environment or a .env file, so a real
    set-up in the same shell changes nothing in the demo (and is never touched by it)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def demo_settings(slack: SlackStandIn, database: Path, port: int, secret: str,
                  lang: str = DEFAULT_LANGUAGE) -> Settings:
    return _DemoSettings(
        CALLBOT_LANGUAGE=lang,
        SLACK_BOT_TOKEN=slack.token,
        SLACK_SIGNING_SECRET=secret,
        SLACK_API_URL=slack.api_url,
        RETELL_MODE="simulate",
        DATABASE_URL=f"sqlite:///{database}",
        HOST="127.0.0.1",
        PORT=port,
        CALLBOT_ADMINS=USER,
        # The story plays at any hour of the reader's day (the callees' too).
        CALLBOT_CALLING_HOURS="any",
        # Slack's real pace (about a post a second per channel) would only slow the story.
        CALLBOT_SLACK_CHANNEL_RATE=100,
        CALLBOT_OUTBOX_RETRY_BASE=0.1,
        CALLBOT_SHUTDOWN_TIMEOUT=3,
        LOG_LEVEL="INFO",
    )


# -- what the channel shows ------------------------------------------------------------------


@dataclass
class Feed:
    """Prints what Slack shows, in the order the app asked for it, stamped with the seconds
    since the demo began: cards as posted and as each update left them, thread replies,
    files, and answers only the person who asked sees."""

    slack: SlackStandIn
    out: TextIO
    style: Style
    started: float
    symbols: bool = True
    lang: str = DEFAULT_LANGUAGE
    cards: list[str] = field(default_factory=list)  # card ts, in order: call 1, 2, ...
    _calls_seen: int = 0
    _responses_seen: int = 0
    _top_posts: dict[str, int] = field(default_factory=dict)
    _shown: dict[str, list[str]] = field(default_factory=dict)
    asked: dict[str, str] = field(default_factory=dict)  # response_url key -> what asked

    def stamp(self) -> str:
        return f"+{time.monotonic() - self.started:5.2f}s"

    def say(self, line: str = "") -> None:
        print(line, file=self.out, flush=True)

    def words(self, key: str, **facts: object) -> str:
        return words(self.lang, f"demo.{key}", **facts)

    def drain(self) -> None:
        """Print everything that happened since the last look."""
        calls = self.slack.calls
        while self._calls_seen < len(calls):
            call = calls[self._calls_seen]
            self._calls_seen += 1
            if call.method in SHOWN:
                self._web_call(call)
        responses = self.slack.responses
        while self._responses_seen < len(responses):
            key, body = responses[self._responses_seen]
            self._responses_seen += 1
            self.answer(self.words("answer_to", what=self.asked.get(key, key), user=USER_NAME),
                        body)

    def answer(self, what: str, body: Mapping[str, Any]) -> None:
        public = body.get("response_type") == "in_channel"
        what = self.words("in_the_channel", what=what) if public else what
        self.show(f"#{CHANNEL_NAME} · {what}", message_lines(body, self.style))

    def show(self, title: str, lines: list[str]) -> None:
        bar = "│" if self.symbols else "|"
        self.say(f"  {self.stamp()}  {title}")
        for line in lines:
            self.say(f"           {bar} {line}".rstrip())

    def card_number(self, ts: str | None) -> int | None:
        return self.cards.index(ts) + 1 if ts in self.cards else None

    def _web_call(self, call: SlackCall) -> None:
        args = call.args
        channel = str(args.get("channel") or args.get("channel_id") or "")
        where = f"#{self.style.channels.get(channel, channel)}"
        if call.method == "chat.postEphemeral":
            self.answer(self.words("only_sees",
                                   user=self.style.users.get(str(args.get("user")), "?")), args)
            return
        if call.method == "files.completeUploadExternal":
            titles = [str(f.get("title") or "file") for f in args.get("files") or []
                      if isinstance(f, dict)]
            lines = message_lines({"text": args.get("initial_comment") or ""}, self.style)
            self.show(f"{where} · " + self.words(
                "a_file", where=self._thread_words(args.get("thread_ts")),
                titles=", ".join(titles)), lines)
            return
        lines = message_lines(args, self.style)
        if call.method == "chat.update":
            ts = str(args.get("ts") or "")
            number = self.card_number(ts)
            if self._shown.get(ts) == lines:
                unchanged = (self.words("card_unchanged", number=number) if number
                             else self.words("message_unchanged"))
                self.say(f"  {self.stamp()}  {where} · {unchanged}")
                return
            self._shown[ts] = lines
            updated = (self.words("card_updated", number=number) if number
                       else self.words("message_updated"))
            self.show(f"{where} · {updated}", lines)
            return
        thread = args.get("thread_ts")
        if thread:
            self.show(f"{where} · {self._thread_words(thread)}", lines)
            return
        # A new top-level message: its ts is the n-th top-level message of the channel's.
        n = self._top_posts.get(channel, 0)
        self._top_posts[channel] = n + 1
        posted = self.slack.messages(channel)
        ts = str(posted[n]["ts"]) if n < len(posted) else ""
        self.cards.append(ts)
        self._shown[ts] = lines
        self.show(f"{where} · {self.words('card_posted', number=len(self.cards))}", lines)

    def _thread_words(self, thread_ts: Any) -> str:
        number = self.card_number(str(thread_ts))
        return (self.words("in_thread_of", number=number) if number
                else self.words("in_a_thread"))


# -- the person at the keyboard --------------------------------------------------------------


class Demo:
    """The running demo: signed requests to the server, and waiting for their effects."""

    def __init__(self, url: str, secret: str, slack: SlackStandIn, feed: Feed,
                 http: aiohttp.ClientSession) -> None:
        self.url = url
        self.secret = secret
        self.slack = slack
        self.feed = feed
        self.http = http
        self.step = ""
        self._commands = 0

    def begin(self, step: str) -> None:
        """Start step `step` (a key under `demo.` in the catalogues: its title)."""
        self.feed.drain()
        title = self.feed.words(step)
        self.step = title
        heavy = "━━" if self.feed.symbols else "=="
        self.feed.say()
        self.feed.say(f"{heavy} {title} {heavy}")

    async def slash(self, command: str, text: str) -> tuple[str, Any]:
        """Type a slash command in the channel; returns its response_url key and the ack
        body (shown as the answer only the person sees, when there is one)."""
        self._commands += 1
        key = f"c{self._commands}"
        self.feed.asked[key] = command
        self.feed.drain()
        typed = self.feed.words("typed", user=USER_NAME, channel=CHANNEL_NAME,
                                command=f"{command} {text}".rstrip())
        self.feed.say(f"  {self.feed.stamp()}  {typed}")
        form = {
            "token": "demo", "team_id": TEAM, "team_domain": "demo", "channel_id": CHANNEL,
            "channel_name": CHANNEL_NAME, "user_id": USER, "user_name": USER_NAME,
            "command": command, "text": text, "api_app_id": "A0DEMO",
            "is_enterprise_install": "false", "response_url": self.slack.response_url(key),
            "trigger_id": f"{self._commands}.{uuid.uuid4().hex}",
        }
        status, body = await self._post(urlencode(form).encode())
        self._acked(command, status, body)
        return key, body

    async def press(self, label: str, action_id: str, value: str, message_ts: str) -> None:
        """Press a button on a card in the channel, as Slack sends it (block_actions)."""
        self._commands += 1
        key = f"b{self._commands}"
        self.feed.asked[key] = f"[ {label} ]"
        self.feed.drain()
        self.feed.say(f"  {self.feed.stamp()}  "
                      + self.feed.words("presses", user=USER_NAME, label=label))
        payload = {
            "type": "block_actions",
            "user": {"id": USER, "username": USER_NAME, "team_id": TEAM},
            "api_app_id": "A0DEMO", "token": "demo",
            "team": {"id": TEAM, "domain": "demo"},
            "trigger_id": f"{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": CHANNEL,
                          "is_ephemeral": False},
            "channel": {"id": CHANNEL, "name": CHANNEL_NAME},
            "message": {"ts": message_ts, "type": "message"},
            "response_url": self.slack.response_url(key),
            "actions": [{"type": "button", "action_id": action_id, "block_id": "call_actions",
                         "value": value, "action_ts": f"{time.time():.6f}"}],
        }
        status, body = await self._post(urlencode({"payload": json.dumps(payload)}).encode())
        self._acked(f"[ {label} ]", status, body)

    def _acked(self, what: str, status: int, body: Any) -> None:
        if status != 200:
            self.fail("failed.http", what=what, status=status, body=f"{body!r:.200}")
        answer_to = self.feed.words("answer_to", what=what, user=USER_NAME)
        if isinstance(body, dict) and (body.get("text") or body.get("blocks")):
            self.feed.answer(answer_to, body)
        elif isinstance(body, str) and body:
            self.feed.answer(answer_to, {"text": body})

    def fail(self, key: str, **facts: object) -> NoReturn:
        """Stop the story: the step under way did not have its effect (`key`: why)."""
        raise DemoFailed(f"{self.step}: {self.feed.words(key, **facts)}")

    async def _post(self, body: bytes) -> tuple[int, Any]:
        async with self.http.post(self.url + "/slack/events", data=body,
                                  headers=signed_headers(body, self.secret)) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text) if text else None
            except ValueError:
                return resp.status, text

    async def expect(self, what: str, check: Callable[[], Awaitable[bool] | bool],
                     deadline: float = DEADLINE) -> None:
        """Wait for `what` (a key under `demo.expect.`) to be true, printing what happens
        meanwhile; DemoFailed if it is not within `deadline` seconds."""
        loop = asyncio.get_running_loop()
        until = loop.time() + deadline
        while True:
            self.feed.drain()
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                self.feed.drain()
                return
            if loop.time() > until:
                self.fail("failed.not_seen", what=self.feed.words(f"expect.{what}"),
                          seconds=f"{deadline:g}")
            await asyncio.sleep(0.02)


# -- running it ------------------------------------------------------------------------------


def _can_print(out: TextIO, text: str) -> bool:
    try:
        text.encode(out.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _quiet_logs(path: Path) -> Callable[[], None]:
    """The server's log lines (and warnings) into `path`; returns what puts them back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)

    def restore() -> None:
        logging.captureWarnings(False)
        root.handlers = handlers
        root.setLevel(level)
        handler.close()

    return restore


async def _run(workdir: Path, out: TextIO, story: Story | None, lang: str) -> None:
    from bot.app import CONTEXT, create_app
    from bot.cli import bind
    from bot.demo_story import play
    from bot.http.edge import make_runner

    started = time.monotonic()
    symbols = _can_print(out, "📞✅━│─")
    width = max(40, min(shutil.get_terminal_size((100, 24)).columns, 110) - 13)
    style = Style(users={USER: USER_NAME, BOT_USER: "callbot"},
                  channels={CHANNEL: CHANNEL_NAME},
                  zone=datetime.now().astimezone().tzinfo or Style().zone,
                  symbols=symbols, width=width)
    secret = secrets.token_hex(16)
    sockets = await bind("127.0.0.1", 0)
    port = int(sockets[0].getsockname()[1])
    async with SlackStandIn(token="xoxb-demo-not-a-real-token", team_id=TEAM,
                            bot_user_id=BOT_USER) as slack:
        slack.users[USER] = {"locale": "th-TH" if lang == "th" else "en-US"}
        settings = demo_settings(slack, workdir / "callbot.db", port, secret, lang)
        app = create_app(settings, simulation=TIMINGS)
        runner = make_runner(app, settings, handle_signals=False, shutdown_timeout=3.0)
        feed = Feed(slack, out, style, started, symbols=symbols, lang=lang)
        try:
            await runner.setup()
            for sock in sockets:
                await web.SockSite(runner, sock).start()
            intro = feed.words("intro", url=f"http://127.0.0.1:{port}", user=USER_NAME)
            for line in wrap([intro], width + 11):
                feed.say(line)
            async with aiohttp.ClientSession() as http:
                demo = Demo(f"http://127.0.0.1:{port}", secret, slack, feed, http)
                await (story or play)(demo, app[CONTEXT])
                await _settle(app[CONTEXT])
                feed.drain()
        finally:
            await runner.cleanup()
            for sock in sockets:
                sock.close()
    feed.say()
    feed.say(feed.words("done", seconds=f"{time.monotonic() - started:.1f}"))


async def _settle(ctx: Any) -> None:
    """Let the outbox deliver what is still queued, so the end of the story is shown."""
    loop = asyncio.get_running_loop()
    until = loop.time() + 3.0
    while loop.time() < until:
        backlog, _ = await ctx.store.outbox_backlog()
        if backlog == 0:
            return
        await asyncio.sleep(0.05)


def run_demo(out: TextIO | None = None, story: Story | None = None,
             lang: str = DEFAULT_LANGUAGE) -> int:
    """Play the demo (`story`, by default bot/demo_story.py's) and print it to `out`, in
    `lang` (the narration, and what Slack shows: the demo's person reads Slack in it); 0
    when every step had its effect, 1 (and why, on stderr) otherwise."""
    out = out or sys.stdout
    workdir = Path(tempfile.mkdtemp(prefix="callbot-demo-"))
    log_path = workdir / "server.log"
    restore = _quiet_logs(log_path)
    failure: str | None = None
    try:
        asyncio.run(_run(workdir, out, story, lang))
    except DemoFailed as exc:
        failure = str(exc)
    except KeyboardInterrupt:
        failure = "interrupted"
    except BrokenPipeError:  # `callbot demo | head`: whoever read the output has gone
        restore()
        shutil.rmtree(workdir, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        logging.getLogger("bot.demo").exception("the demo broke")
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        restore()
    if failure is None:
        with contextlib.suppress(OSError):
            shutil.rmtree(workdir)
        return 0
    print(words(lang, "demo.failed", failure=failure, log=log_path), file=sys.stderr,
          flush=True)
    return 1
