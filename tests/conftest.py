"""Fixtures: the real app on loopback, with Slack and Retell replaced by recording stand-ins."""

from __future__ import annotations

import copy
import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web

from bot.app import CONTEXT, SETUP_CHECKS, create_app
from bot.config import Settings, redact_url
from bot.context import AppContext
from bot.http.edge import make_runner
from standins.retell import RetellStandIn
from standins.slack import SlackStandIn, signed_headers
from storage.sqlite import INBOX_MAX_ATTEMPTS
from tests.support.db import db_rows
from tests.support.stores import (
    TEST_DATABASE_ENV,
    created,
    database_for,
    drop_created,
    fresh_database,
    on_postgres,
    postgres_answers,
    postgres_server,
)

SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
TEAM = "T0TEST"
CHANNEL = "C0GENERAL"
USER = "U0ALICE"
BOT_USER = "U0BOT"
# /healthz with nothing waiting for Slack, the bot token accepted by auth.test, and every
# set-up check passed.
HEALTHY_IDLE = (200, {"status": "ok", "outbox": {"backlog": 0, "oldest_age_seconds": 0.0},
                      "slack": "ok", "checks": {"state": "ok", "problems": {}}})


def button(
    action_id: str,
    value: str,
    *,
    user: str = USER,
    channel: str | None = CHANNEL,
    message_ts: str = "1.000001",
    response_url: str | None = None,
) -> dict[str, Any]:
    """A block_actions payload for a button on a card in a channel, or in App Home when
    `channel` is None (Slack then sends a view container and no response_url)."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": "A0CALLBOT",
        "token": "legacy-verification-token",
        "team": {"id": TEAM, "domain": "acme"},
        "trigger_id": f"{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}",
        "actions": [
            {"type": "button", "action_id": action_id, "block_id": "call_actions",
             "value": value, "action_ts": f"{time.time():.6f}"}
        ],
    }
    if channel is None:
        payload["container"] = {"type": "view", "view_id": "VHOME"}
        payload["view"] = {"id": "VHOME", "type": "home", "blocks": []}
    else:
        payload["container"] = {"type": "message", "message_ts": message_ts,
                                "channel_id": channel, "is_ephemeral": False}
        payload["channel"] = {"id": channel, "name": "general"}
        payload["message"] = {"ts": message_ts, "type": "message"}
        if response_url:
            payload["response_url"] = response_url
    return payload


def view_submission(
    view: dict[str, Any],
    values: dict[str, Any],
    *,
    response_url: str | None = None,
    channel: str = CHANNEL,
    metadata: Any = None,
) -> dict[str, Any]:
    """A view_submission payload shaped like Slack's, for the modal `view` with `values`
    (the response URL is the one Slack gives the channel select, for `channel`)."""
    submitted = copy.deepcopy(view)
    submitted["state"] = {"values": values}
    if metadata is not None:
        submitted["private_metadata"] = metadata
    payload: dict[str, Any] = {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "acme"},
        "user": {"id": USER, "username": USER.lower(), "name": USER.lower(), "team_id": TEAM},
        "api_app_id": "A0CALLBOT",
        "token": "legacy-verification-token",
        "trigger_id": f"{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}",
        "view": submitted,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    if response_url is not None:
        payload["response_urls"] = [{"block_id": "channel", "action_id": "value",
                                     "channel_id": channel, "response_url": response_url}]
    return payload


class Server:
    """The real aiohttp app on a real port; restartable on the same database file."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.http: aiohttp.ClientSession | None = None
        self._commands = 0

    async def start(self) -> None:
        app = create_app(self.settings)
        # Built as the real server builds it (bot.cli): timeouts, connection bound, no inflating.
        self.runner = make_runner(app, self.settings)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self.http = aiohttp.ClientSession()
        # The set-up checks have asked Retell: what a test queues in the stand-in from here
        # on (fail_next on list-agents, ...) is for the code under test, not for them.
        await app[SETUP_CHECKS].retell_answered()

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
            self.http = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    @property
    def ctx(self) -> AppContext:
        assert self.runner is not None
        return self.runner.app[CONTEXT]

    async def post(self, path: str, data: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        assert self.http is not None
        async with self.http.post(self.url + path, data=data, headers=headers) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text) if text else None
            except ValueError:
                return resp.status, text

    async def slash(
        self,
        command: str,
        text: str,
        *,
        user: str = USER,
        channel: str = CHANNEL,
        response_url: str,
        secret: str = SIGNING_SECRET,
        timestamp: int | None = None,
        trigger_id: str | None = None,
    ) -> tuple[int, Any]:
        """A slash command, form-encoded and signed exactly as Slack sends it."""
        self._commands += 1
        form = command_form(command, text, user=user, channel=channel,
                            response_url=response_url,
                            trigger_id=trigger_id or f"{self._commands}.{uuid.uuid4().hex}")
        body = urlencode(form).encode()
        return await self.post("/slack/events", body, slack_headers(body, secret, timestamp))

    async def interactive(self, payload: dict[str, Any]) -> tuple[int, Any]:
        """A block action or view submission: form field `payload` holding JSON, signed."""
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post("/slack/events", body, slack_headers(body))

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry_num: int | None = None
    ) -> tuple[int, Any]:
        """An Events API callback as Slack sends it (JSON, signed, with retry headers)."""
        envelope = {
            "token": "legacy-verification-token",
            "team_id": TEAM,
            "api_app_id": "A0CALLBOT",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": TEAM, "user_id": BOT_USER, "is_bot": True, "enterprise_id": None}
            ],
        }
        body = json.dumps(envelope).encode()
        headers = slack_headers(body)
        headers["Content-Type"] = "application/json"
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return await self.post("/slack/events", body, headers)

    def outbox_idle(self) -> bool:
        """Every webhook answered is applied and everything queued for Slack delivered (or
        given up on)."""
        return not db_rows(self,
                           "SELECT 1 FROM outbox WHERE done_at IS NULL "
                           "UNION ALL SELECT 1 FROM webhook_inbox WHERE attempts < ?",
                           INBOX_MAX_ATTEMPTS)

    async def get(self, path: str) -> tuple[int, Any]:
        assert self.http is not None
        async with self.http.get(self.url + path) as resp:
            return resp.status, await resp.json()


def command_form(
    command: str,
    text: str,
    *,
    response_url: str,
    user: str = USER,
    channel: str = CHANNEL,
    trigger_id: str | None = None,
) -> dict[str, str]:
    """A slash command's form fields as Slack sends them (over HTTP or Socket Mode)."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "team_domain": "acme",
        "channel_id": channel,
        "channel_name": "general",
        "user_id": user,
        "user_name": user.lower(),
        "command": command,
        "text": text,
        "api_app_id": "A0CALLBOT",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or f"1.{uuid.uuid4().hex}",
    }


def slack_headers(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[
    str, str
]:
    return signed_headers(body, secret, timestamp)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(team_id=TEAM) as standin:
        yield standin


@pytest.fixture
async def retell() -> AsyncIterator[RetellStandIn]:
    async with RetellStandIn() as standin:
        yield standin


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "callbot.db"


def make_settings(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path | str, **overrides: Any
) -> Settings:
    """`db_path`: the test's database file (a PostgreSQL schema when the suite runs on
    PostgreSQL, see tests/support/stores.py), or a DATABASE_URL."""
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "RETELL_API_KEY": retell.api_key,
        "RETELL_FROM_NUMBER": retell.phone_numbers[0]["phone_number"],
        "RETELL_BASE_URL": retell.url,
        "DATABASE_URL": database_for(db_path),
        "CALLBOT_RETELL_TIMEOUT": 2.0,
        # Suites that inject one Retell failure expect to see it; retries have their own.
        "CALLBOT_RETELL_RETRIES": 0,
        # Slack's real pace (1 a second per channel) and backoff would make suites slow;
        # the reliability suites set them back to test them.
        "CALLBOT_SLACK_CHANNEL_RATE": 500,
        # Any time of day: suites run at any hour; the calling-hours suite sets its own.
        "CALLBOT_CALLING_HOURS": "any",
        "CALLBOT_OUTBOX_RETRY_BASE": 0.05,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


MakeServer = Callable[..., Awaitable[Server]]


@pytest.fixture
async def make_server(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> AsyncIterator[MakeServer]:
    """Servers with settings of the test's choosing (on the same stand-ins and file)."""
    servers: list[Server] = []

    async def make(**settings: Any) -> Server:
        srv = Server(make_settings(slack, retell, db_path, **settings))
        await srv.start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        await srv.stop()


@pytest.fixture
async def server(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> AsyncIterator[Server]:
    srv = Server(make_settings(slack, retell, db_path))
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
def sound_database(db_path: Path) -> Iterator[None]:
    """For fault tests: whatever failed, the database file must pass integrity_check."""
    yield
    if db_path.exists() and not on_postgres():
        conn = sqlite3.connect(db_path)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()


@pytest.fixture(autouse=True)
def _fresh_schemas() -> Iterator[None]:
    """On PostgreSQL: the schemas a test's database files stood for are dropped after it."""
    mark = created()
    yield
    drop_created(mark)


def pytest_sessionfinish(session: pytest.Session) -> None:
    drop_created()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only(why): what the test holds is SQLite's own (its file, its "
        "locks, its per-day sums); skipped, with the reason, when the suite runs on "
        "PostgreSQL")


def pytest_report_header(config: pytest.Config) -> str:
    return ("database: PostgreSQL (" + TEST_DATABASE_ENV + "), a schema per test"
            if on_postgres() else "database: SQLite, a file per test")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not on_postgres():
        return
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            why = marker.args[0] if marker.args else "SQLite's own behaviour"
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {why}"))


@pytest.fixture
async def pg_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL schema's DATABASE_URL, for tests of PostgreSQL itself
    (several instances, migrate-db). Skipped, saying why, when no server answers; under
    CI (CI=true) that is a failure instead."""
    server = postgres_server()
    why = await postgres_answers(server)
    if why is not None:
        message = f"PostgreSQL does not answer at {redact_url(server)}: {why}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    async with fresh_database(tmp_path, server) as url:
        yield url


@pytest.fixture(autouse=True)
def _quiet_bolt() -> None:
    logging.getLogger("slack_bolt").setLevel(logging.WARNING)


class StartServer(Protocol):
    def __call__(self, **overrides: Any) -> Awaitable[Server]: ...


@pytest.fixture
def start(make_server: StartServer) -> StartServer:
    """Start the real server with these settings (all on the same database); stopped after."""
    return make_server
