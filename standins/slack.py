"""A local stand-in for the Slack Web API, for tests.

Why: the app talks to Slack only through slack_sdk's ``AsyncWebClient`` (and Bolt's
``respond()``, which uses ``AsyncWebhookClient``). Pointing those real clients at this server
tests exactly the HTTP traffic Slack would see, without mocks of our own code.

Usage::

    async with SlackStandIn() as slack:
        client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
        await client.chat_postMessage(channel="C1", text="hi")
        assert slack.messages("C1")[0]["text"] == "hi"

Fault injection, from the most targeted to the most statistical: ``fail()`` (``ok: false``),
``http_error()`` (the next N calls get an HTTP status), ``faults()`` (a seeded share of calls
is rate limited, fails with 500, or is performed and then cut off), ``channel_rate_limit()``
(Slack's ~1 post/s per channel), ``delay()`` (latency, to stop the app mid-request) and
``answer()`` (a 200 answer of your choosing, e.g. ``{"ok": true}`` without a ``ts``);
``hold()`` keeps calls waiting, undone, until ``release()``.

Membership: the bot is a member of every channel unless ``not_member(channel)`` says it is
not. In a public channel it is not in, it may still post (``chat:write.public``) but
``conversations.history`` / ``replies`` answer ``not_in_channel`` until
``conversations.join``; a private channel it is not in refuses posts too and cannot be
joined.

Files: ``add_file()`` plays a person uploading one (``files.info`` then knows it); the
``url_private`` / ``url_private_download`` of any file answer its bytes only with the bot
token as ``Authorization: Bearer``, and otherwise (like Slack) a 200 HTML sign-in page, so an
app that forgets the header gets HTML, not the file. ``downloads`` records each attempt;
``uploaded(channel)`` reads back what the app uploaded there.

Scopes: ``auth.test`` answers with an ``x-oauth-scopes`` header, as Slack does, listing
``scopes`` (by default every scope manifest.yml asks for; ``None``: no header at all).

Workspaces and installs: the constructor's ``token`` is the bot token of the default workspace
(``team_id``). ``issue_code(team_id)`` plays a person approving the install on Slack's
authorize page: that workspace gets its own bot token and bot user (a reinstall while
installed keeps them, as Slack does), and the single-use code (10 minutes, timed by ``clock``)
is what the browser brings back. ``oauth.v2.access`` exchanges it for the token, checking
``client_id`` / ``client_secret`` (HTTP Basic, as slack_sdk sends them, or form fields) and the
``redirect_uri`` the code was issued for. Every call is attributed to the workspace whose token
made it (``SlackCall.team_id``, ``calls_by()``) and acts as that workspace's bot (``auth.test``,
the ``user`` / ``team`` of its messages). ``revoke(team_id)`` plays an uninstall: the token is
then refused (``token_revoked``) and it returns the ``tokens_revoked`` / ``app_uninstalled``
events Slack would send. Channels and messages are one store for all workspaces (Slack's
channel ids are unique across workspaces), so give each workspace its own channel ids.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import dataclasses
import json
import random
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from standins.loopback import LoopbackServer

__all__ = ["SlackCall", "SlackStandIn", "SlackWorkspace"]

BOT_ID = "B0BOT"
APP_ID = "A0APP"
# The scopes a token is granted by default: manifest.yml's oauth_config.scopes.bot
# (tests/unit/test_setup_scopes.py keeps the two the same).
DEFAULT_SCOPES = (
    "commands", "chat:write", "chat:write.public", "app_mentions:read", "channels:history",
    "groups:history", "im:history", "mpim:history", "channels:join", "files:write", "files:read",
    "im:write", "users:read",
)
# Fields that slack_sdk (or a form-encoded caller) sends as JSON strings.
_JSON_FIELDS = ("blocks", "attachments", "metadata", "view", "files")
# The methods through which the app changes what people see in Slack.
WRITE_METHODS = (
    "chat.postMessage",
    "chat.update",
    "files.getUploadURLExternal",
    "files.completeUploadExternal",
)
# Key set on a response that must not be sent: the connection is cut after the work.
_DROP = web.ResponseKey("slack_standin_drop", bool)
FAULT_KINDS = ("rate_limited", "server_error", "drop_after", "channel_rate_limited")
# Methods Slack answers without a token: the install exchange authenticates the app itself.
_NO_TOKEN_METHODS = frozenset({"oauth.v2.access"})
# How long an OAuth code from Slack's authorize page can be exchanged (Slack: ten minutes).
CODE_TTL_SECONDS = 600.0

Handler = Callable[[dict[str, Any]], dict[str, Any]]

# Slack's filetype -> the mimetype it reports (and serves the download with).
MIMETYPES = {
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "text": "text/plain",
    "json": "application/json",
    "pdf": "application/pdf",
    "png": "image/png",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# The filetype Slack detects from a file name's extension, for the files the app uploads.
_FILETYPE_BY_EXT = {"csv": "csv", "tsv": "tsv", "txt": "text", "json": "json", "pdf": "pdf",
                    "png": "png", "xlsx": "xlsx"}
# What Slack answers a file URL fetched without a valid token: a sign-in page, HTTP 200.
LOGIN_PAGE = (
    "<!DOCTYPE html>\n<html lang=\"en-US\"><head><meta charset=\"utf-8\">"
    "<title>Slack</title></head><body><div id=\"page_contents\">"
    "<h1>Sign in to your workspace</h1><form id=\"signin_form\" action=\"/\" method=\"post\">"
    "<input type=\"email\" name=\"email\"><input type=\"password\" name=\"password\">"
    "<button type=\"submit\">Sign in</button></form></div></body></html>\n"
)


@dataclass
class SlackCall:
    """One recorded Web API call: what the app asked Slack to do."""

    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    # The workspace whose bot token made the call (also when that token is revoked); None
    # without a token, or with one the stand-in never issued (oauth.v2.access, app tokens).
    team_id: str | None = None


@dataclass
class SlackWorkspace:
    """A workspace the app is installed in, with the bot token Slack issued for it."""

    team_id: str
    team_name: str
    token: str
    bot_user_id: str
    bot_id: str
    # Who approved the install (the ``authed_user`` of oauth.v2.access); None by default.
    installer: str | None = None
    # The error the token is refused with once revoked (uninstalled); None while it works.
    revoked_with: str | None = None


@dataclass
class _Grant:
    """A code from Slack's authorize page, not yet exchanged by oauth.v2.access."""

    workspace: SlackWorkspace
    installer: str
    redirect_uri: str | None
    expires_at: float
    used: bool = False


@dataclass(frozen=True)
class _Context:
    """Who is calling, for the handler of the call being answered (handlers take only args)."""

    workspace: SlackWorkspace | None
    authorization: str | None


@dataclass
class _Failure:
    """A Slack-style ``ok: false`` answer to inject (HTTP 200, like Slack)."""

    method: str
    error: str
    channel: str | None
    remaining: int | None


@dataclass
class _Answer:
    """A 200 answer given instead of doing the work (a malformed or unexpected reply)."""

    method: str
    body: dict[str, Any]
    channel: str | None
    remaining: int | None


@dataclass
class _HttpFailure:
    """An HTTP-level failure to inject (429 rate limit, 5xx)."""

    method: str
    status: int
    retry_after: int | None
    remaining: int


@dataclass(frozen=True)
class _Faults:
    """The shares of ``faults()``; one seeded draw per matching call picks at most one."""

    methods: frozenset[str]
    rate_limited: float
    server_error: float
    drop_after: float
    retry_after: int


@dataclass
class _Bucket:
    """A token bucket for one channel's chat.postMessage calls."""

    tokens: float
    stamp: float


def _error_response(status: int, retry_after: int | None) -> web.Response:
    """An HTTP-level error as Slack sends it: 429 always carries Retry-After."""
    if retry_after is None and status == 429:
        retry_after = 1
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    error = "ratelimited" if status == 429 else f"http_{status}"
    return web.json_response({"ok": False, "error": error}, status=status, headers=headers)


def _cursor(ts: str) -> str:
    """An opaque cursor in Slack's own style: base64 of ``next_ts:<ts>``."""
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _cursor_ts(cursor: str) -> tuple[int, int] | None:
    """The ts key a cursor points at, or None if it is not one of ours."""
    try:
        prefix, _, ts = base64.b64decode(cursor, validate=True).decode().partition(":")
        return _ts_key(ts) if prefix == "next_ts" and ts else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _ts_key(ts: str) -> tuple[int, int]:
    """Sort key for Slack ts strings; floats lose precision at microseconds."""
    seconds, _, frac = str(ts).partition(".")
    return int(seconds or 0), int((frac or "0").ljust(6, "0")[:6])


def _basic_credentials(authorization: str) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` of an HTTP Basic ``Authorization`` header, or None if it
    is malformed (latin-1, as aiohttp and so slack_sdk encode it)."""
    try:
        decoded = base64.b64decode(authorization.removeprefix("Basic ").strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.decode("latin-1").partition(":")
    return (user, password) if colon else None


def _truthy(value: Any) -> bool:
    """Slack booleans arrive as true/false in JSON and "1"/"0"/"true" in forms."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _channel_of(args: dict[str, Any]) -> str | None:
    """The channel a call targets, whichever argument name the method uses."""
    channel = args.get("channel") or args.get("channel_id")
    return str(channel) if channel is not None else None


def _public(message: dict[str, Any]) -> dict[str, Any]:
    """A stored message as Slack returns it: no internal keys, no empty fields."""
    return {k: copy.deepcopy(v) for k, v in message.items() if v is not None and k != "channel"}


def _metadata_error(metadata: Any) -> str | None:
    """Slack refuses metadata that is not ``{"event_type": str, "event_payload": {...}}``."""
    if metadata in (None, "", {}):
        return None
    if (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and isinstance(metadata.get("event_payload"), dict)
    ):
        return None
    return "invalid_metadata_format"


def signed_headers(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers of a request signed exactly as Slack signs it (v0, over the timestamp and
    the body), for anything that plays Slack towards the app: tests, the bench, the demo."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body.decode())
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature or "",
    }


class SlackStandIn(LoopbackServer):
    """An aiohttp server on 127.0.0.1 that answers Slack Web API methods and records calls."""

    def __init__(
        self,
        token: str = "xoxb-test-token",
        *,
        team_id: str = "T0TEST",
        bot_user_id: str = "U0BOT",
        scopes: Iterable[str] | None = DEFAULT_SCOPES,
        client_id: str = "1234.5678",
        client_secret: str = "stand-in-client-secret",
    ) -> None:
        # The default workspace's bot token, team and bot user (read at construction).
        self.token = token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        # The app's credentials, which oauth.v2.access checks.
        self.client_id = client_id
        self.client_secret = client_secret
        # What auth.test says the token was granted (x-oauth-scopes); None sends no header.
        self.scopes: list[str] | None = list(scopes) if scopes is not None else None

        self.calls: list[SlackCall] = []
        self.responses: list[tuple[str, dict[str, Any]]] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {}
        # Files the app uploads (files.getUploadURLExternal / completeUploadExternal).
        self.files: dict[str, dict[str, Any]] = {}
        # Files people upload (``add_file``): {"file": Slack's file object, "content": bytes}.
        # Kept apart from ``files`` so tests that scan what the app sent never see them.
        self.user_files: dict[str, dict[str, Any]] = {}
        # Every GET of a file URL: (file id, whether it carried the bot token).
        self.downloads: list[tuple[str, bool]] = []
        # Overrides merged into the fake users.info / conversations.info answers.
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}

        self._messages: list[dict[str, Any]] = []
        self._failures: list[_Failure] = []
        self._answers: list[_Answer] = []
        self._http_failures: list[_HttpFailure] = []
        self._home_by_user: dict[str, str] = {}
        self._seq = 0
        self._last_micros = 0
        self._cond = asyncio.Condition()
        self._closing = asyncio.Event()

        # How many faults of each kind were injected (never reset), so a test can assert
        # that its faults really happened.
        self.fault_counts: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        # The clock of channel_rate_limit(); a test may replace it to move time by hand.
        self.clock: Callable[[], float] = time.monotonic
        self._faults: _Faults | None = None
        self._rng = random.Random(0)
        self._delay: tuple[float, frozenset[str] | None] = (0.0, None)
        self._hold: frozenset[str] = frozenset()
        self._released = asyncio.Event()
        self._channel_limit: tuple[float, int] | None = None
        self._buckets: dict[str, _Bucket] = {}

        # The current install of each workspace, and every bot token ever issued (revoked
        # ones too, so their calls are still attributed and refused as Slack refuses them).
        default = SlackWorkspace(team_id, "Test Team", token, bot_user_id, BOT_ID)
        self._workspaces: dict[str, SlackWorkspace] = {team_id: default}
        self._tokens: dict[str, SlackWorkspace] = {token: default}
        self._codes: dict[str, _Grant] = {}
        self._context: _Context | None = None

        self._handlers: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "oauth.v2.access": self._oauth_v2_access,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.info": self._conversations_info,
            "conversations.open": self._conversations_open,
            "conversations.join": self._conversations_join,
            "users.info": self._users_info,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.info": self._files_info,
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind an ephemeral port so parallel test runs never collide."""
        if self._runner is not None:
            return
        self._closing = asyncio.Event()
        # Slack takes files up to 1 GB; aiohttp's default body limit is 1 MiB.
        app = web.Application(client_max_size=100 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_post("/response/{key}", self._handle_response)
        app.router.add_get("/files-pri/{file_id}", self._handle_download)
        app.router.add_get("/files-pri/{file_id}/{rest:.+}", self._handle_download)
        await self._serve(app)

    async def close(self) -> None:
        """Stop the server, cutting short any ``delay()`` still in progress."""
        self._closing.set()
        await self._shutdown()

    @property
    def api_url(self) -> str:
        """Value for ``AsyncWebClient(base_url=...)``; the trailing slash matters to urljoin."""
        return f"{self.url}/api/"

    # ------------------------------------------------------------------ inspection

    def calls_to(self, method: str) -> list[SlackCall]:
        """Recorded calls of one Web API method, in order."""
        return [c for c in self.calls if c.method == method]

    def calls_by(self, team_id: str | None) -> list[SlackCall]:
        """Recorded calls made with ``team_id``'s bot token (any of its installs), in order;
        ``None``: the calls made without a token or with one the stand-in never issued."""
        return [c for c in self.calls if c.team_id == team_id]

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Top-level messages (and thread broadcasts) of a channel, oldest first."""
        return [
            copy.deepcopy(m)
            for m in self._messages
            if m["channel"] == channel
            and (m["thread_ts"] in (None, m["ts"]) or m.get("reply_broadcast"))
        ]

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """Replies to the message ``ts``, oldest first, without the parent."""
        return [copy.deepcopy(m) for m in self._replies(channel, ts)]

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """One stored message (top-level or reply), or None."""
        found = self._find(channel, ts)
        return copy.deepcopy(found) if found is not None else None

    def uploaded(self, channel: str) -> list[dict[str, Any]]:
        """Files the app uploaded and shared into ``channel``, in upload order: each as
        ``{id, name, title, content (bytes), thread_ts, initial_comment}``."""
        return [
            {
                "id": file_id,
                "name": entry["filename"],
                "title": entry["title"],
                "content": entry["content"],
                "thread_ts": entry["thread_ts"],
                "initial_comment": entry["initial_comment"],
            }
            for file_id, entry in self.files.items()
            if entry["completed"] and entry["channel"] == channel
        ]

    def add_file(
        self, name: str, content: bytes, *, filetype: str = "csv", user: str | None = None
    ) -> dict[str, Any]:
        """Register a file as if ``user`` had uploaded it in Slack; returns Slack's file
        object, as a ``file_input`` submission or a ``file_share`` event would carry it."""
        file_id = self._next_id("F")
        obj = self._file_object(
            file_id,
            name=name,
            title=name,
            filetype=filetype,
            size=len(content),
            user=user or "U0USER",
        )
        self.user_files[file_id] = {"file": obj, "content": bytes(content)}
        return copy.deepcopy(obj)

    def responses_for(self, key: str) -> list[dict[str, Any]]:
        """JSON bodies posted to ``response_url(key)``, in order."""
        return [body for k, body in self.responses if k == key]

    def response_url(self, key: str = "default") -> str:
        """A response_url to put in a slash command or interaction payload."""
        return f"{self.url}/response/{key}"

    # ------------------------------------------------------------------ workspaces and installs

    def workspace(self, team_id: str) -> SlackWorkspace:
        """A copy of the current install of ``team_id`` (token, bot user, revoked or not);
        KeyError if the app was never installed there."""
        return dataclasses.replace(self._workspaces[team_id])

    def issue_code(
        self,
        team_id: str,
        *,
        team_name: str | None = None,
        installer: str = "U0INSTALLER",
        redirect_uri: str | None = None,
    ) -> str:
        """What Slack's authorize page hands the browser once ``installer`` approves installing
        the app in ``team_id``: a code for ``oauth.v2.access``, usable once, for 10 minutes.

        The workspace's bot token is live from now on. A workspace the app is installed in
        keeps its token and bot user; one never installed, or uninstalled (``revoke``), gets a
        new token (an uninstalled one keeps its bot user, as in Slack). ``redirect_uri`` is the
        one the authorize URL carried: the exchange must then send the same.
        """
        current = self._workspaces.get(team_id)
        name = team_name or (current.team_name if current else f"Workspace {team_id}")
        if current is None or current.revoked_with is not None:
            token = f"xoxb-{team_id}-{secrets.token_hex(12)}"
            current = SlackWorkspace(
                team_id=team_id,
                team_name=name,
                token=token,
                bot_user_id=current.bot_user_id if current else self._next_id("U"),
                bot_id=current.bot_id if current else self._next_id("B"),
            )
            self._workspaces[team_id] = self._tokens[token] = current
        current.team_name = name
        current.installer = installer
        code = f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(20)}"
        self._codes[code] = _Grant(
            current, installer, redirect_uri, self.clock() + CODE_TTL_SECONDS
        )
        return code

    def revoke(self, team_id: str, *, error: str = "token_revoked") -> list[dict[str, Any]]:
        """Uninstall the app from ``team_id``: its bot token is refused with ``error`` from now
        on, and codes not yet exchanged stop working. Returns the Events API payloads Slack
        sends on an uninstall (``tokens_revoked`` for the bot, then ``app_uninstalled``), to
        deliver to the app; ``[]`` if it was already uninstalled. KeyError if never installed.
        """
        current = self._workspaces[team_id]
        if current.revoked_with is not None:
            return []
        current.revoked_with = error
        return [
            self._event_callback(
                team_id, {"type": "tokens_revoked",
                          "tokens": {"oauth": [], "bot": [current.bot_user_id]}}
            ),
            self._event_callback(team_id, {"type": "app_uninstalled"}),
        ]

    def _event_callback(self, team_id: str, event: dict[str, Any]) -> dict[str, Any]:
        """An Events API payload as Slack posts it to the app's Request URL."""
        return {
            "token": "stand-in-verification-token",
            "team_id": team_id,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": self._next_id("Ev"),
            "event_time": int(time.time()),
        }

    def _workspace_of(self, authorization: str | None, body_token: Any) -> SlackWorkspace | None:
        """The install whose bot token a call carries (Bearer header, else a ``token`` field)."""
        if authorization is not None:
            if not authorization.startswith("Bearer "):
                return None
            token: Any = authorization.removeprefix("Bearer ")
        else:
            token = body_token
        return self._tokens.get(token) if isinstance(token, str) else None

    def _acting(self) -> SlackWorkspace:
        """The workspace whose bot the call being answered acts as (default outside calls)."""
        context = self._context
        if context is not None and context.workspace is not None:
            return context.workspace
        return self._workspaces[self.team_id]

    # ------------------------------------------------------------------ failure injection

    def fail(
        self,
        method: str,
        error: str,
        *,
        channel: str | None = None,
        times: int | None = None,
    ) -> None:
        """Answer matching calls with ``{"ok": false, "error": error}``; times=None is forever."""
        self._failures.append(_Failure(method, error, channel, times))

    def answer(
        self,
        method: str,
        body: dict[str, Any],
        *,
        channel: str | None = None,
        times: int | None = None,
    ) -> None:
        """Answer matching calls with ``body`` (HTTP 200) without doing anything: Slack
        answering what the app does not expect. times=None is forever."""
        self._answers.append(_Answer(method, copy.deepcopy(body), channel, times))

    def not_member(self, channel: str) -> None:
        """The bot is not in ``channel`` (public unless its id starts with G or the
        ``channels`` override says ``is_private``); ``conversations.join`` changes that."""
        self.channels.setdefault(channel, {})["is_member"] = False

    def is_member(self, channel: str) -> bool:
        return bool(self.channels.get(channel, {}).get("is_member", True))

    def _is_private(self, channel: str) -> bool:
        override = self.channels.get(channel, {})
        return bool(override.get("is_private", channel.startswith(("G", "D"))))

    def http_error(
        self,
        method: str,
        status: int,
        *,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls with an HTTP error; 429 always has Retry-After."""
        self._http_failures.append(_HttpFailure(method, status, retry_after, times))

    def faults(
        self,
        *,
        methods: Iterable[str] = WRITE_METHODS,
        rate_limited: float = 0.0,
        server_error: float = 0.0,
        drop_after: float = 0.0,
        retry_after: int = 1,
        seed: int = 0,
    ) -> None:
        """Make a seeded share of calls to ``methods`` fail the ways real Slack fails.

        Each share is a probability per call (their sum at most 1):
        ``rate_limited``: HTTP 429, ``Retry-After: retry_after``, ``ratelimited``; nothing done.
        ``server_error``: HTTP 500; nothing done.
        ``drop_after``: the call is performed (the message IS stored or updated), then the
        connection is cut without an answer, so the client cannot know the outcome.
        The same seed and the same sequence of calls give the same faults; all shares at
        zero turn this off. ``fault_counts`` counts what was injected.
        """
        shares = (rate_limited, server_error, drop_after)
        if min(shares) < 0 or sum(shares) > 1:
            raise ValueError(f"shares must be >= 0 and add up to at most 1, got {shares}")
        self._rng = random.Random(seed)
        self._faults = (
            _Faults(frozenset(methods), rate_limited, server_error, drop_after, retry_after)
            if sum(shares) > 0
            else None
        )

    def channel_rate_limit(self, per_second: float, burst: int = 1) -> None:
        """Answer chat.postMessage with 429 (Retry-After: 1) when a channel gets posts faster
        than ``per_second`` after a burst of ``burst``, like Slack's ~1 message/s per channel.

        Nothing is posted on a 429; each one counts in ``fault_counts["channel_rate_limited"]``.
        Time comes from ``self.clock``.
        """
        if per_second <= 0 or burst < 1:
            raise ValueError("per_second must be > 0 and burst >= 1")
        self._channel_limit = (per_second, burst)
        self._buckets.clear()

    def delay(self, seconds: float, methods: Iterable[str] | None = None) -> None:
        """Answer Web API calls (all, or only ``methods``) ``seconds`` late; 0 turns it off.

        The call is recorded and performed first, then the answer waits: a test can wait for
        the call and stop the app while it is in flight, and Slack has already done the work.
        """
        self._delay = (max(seconds, 0.0), frozenset(methods) if methods is not None else None)

    def hold(self, methods: Iterable[str]) -> None:
        """Keep calls to ``methods`` waiting (recorded, not yet done) until ``release()``:
        the app is then mid-request for as long as a test needs, e.g. to let work pile up."""
        self._hold = frozenset(methods)
        self._released = asyncio.Event()

    def release(self) -> None:
        """Let held calls go on (they are then performed and answered); hold no more."""
        self._hold = frozenset()
        self._released.set()

    def clear_faults(self) -> None:
        """Slack is healthy again: drop every fail/http_error rule, share, limit and delay.

        ``fault_counts`` is kept, so a test can still assert what happened before.
        """
        self._failures.clear()
        self._answers.clear()
        self._http_failures.clear()
        self._faults = None
        self._channel_limit = None
        self._buckets.clear()
        self._delay = (0.0, None)

    def _draw_fault(self, method: str) -> str | None:
        """One draw per matching call, so a seed replays the same faults."""
        faults = self._faults
        if faults is None or method not in faults.methods:
            return None
        draw = self._rng.random()
        for kind, share in (
            ("rate_limited", faults.rate_limited),
            ("server_error", faults.server_error),
            ("drop_after", faults.drop_after),
        ):
            if draw < share:
                return kind
            draw -= share
        return None

    def _channel_allows(self, channel: str) -> bool:
        """Take a token from the channel's bucket; False when it is empty."""
        if self._channel_limit is None:
            return True
        per_second, burst = self._channel_limit
        now = self.clock()
        bucket = self._buckets.setdefault(channel, _Bucket(float(burst), now))
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.stamp) * per_second)
        bucket.stamp = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _take_http_failure(self, method: str) -> _HttpFailure | None:
        for rule in self._http_failures:
            if rule.method == method and rule.remaining > 0:
                rule.remaining -= 1
                return rule
        return None

    def _take_answer(self, method: str, args: dict[str, Any]) -> _Answer | None:
        return _take(self._answers, method, args)

    def _take_failure(self, method: str, args: dict[str, Any]) -> _Failure | None:
        return _take(self._failures, method, args)

    # ------------------------------------------------------------------ waiting

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a forgotten wrapper must not hang a test
    ) -> None:
        """Wait until ``predicate()`` holds, re-checked whenever a request is recorded.

        Why: the app replies in background tasks; tests wait on the effect, not on sleeps.
        A predicate that cannot be evaluated yet (the card it unpacks is not posted: an
        earlier request, such as the start-up auth.test, woke it) counts as not holding.
        """

        def holds() -> bool:
            try:
                return predicate()
            except (LookupError, ValueError):
                return False

        try:
            async with asyncio.timeout(timeout):
                async with self._cond:
                    await self._cond.wait_for(holds)
        except TimeoutError:
            raise AssertionError(f"condition not met within {timeout}s\n{self.summary()}") from None

    def summary(self) -> str:
        """Readable list of recorded calls and responses, for assertion messages."""
        lines = [f"recorded {len(self.calls)} Web API call(s):"]
        for call in self.calls[-30:]:
            brief = {
                k: (v[:80] + "..." if isinstance(v, str) and len(v) > 80 else v)
                for k, v in call.args.items()
                if k in ("channel", "channel_id", "ts", "thread_ts", "text", "user", "view_id")
            }
            team = f" by {call.team_id}" if call.team_id not in (None, self.team_id) else ""
            lines.append(f"  {call.method} {brief}{team}")
        lines.append(f"recorded {len(self.responses)} response_url post(s):")
        lines.extend(f"  {key}: {str(body)[:120]}" for key, body in self.responses[-10:])
        return "\n".join(lines)

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------ HTTP handlers

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            args = await self._parse_args(request)
        except ValueError:
            args = {}
            parse_error: str | None = "invalid_json"
        else:
            parse_error = None
        body_token = args.pop("token", None)
        headers = {
            k: ("(redacted)" if k.lower() == "authorization" else v)
            for k, v in request.headers.items()
        }
        caller = self._workspace_of(request.headers.get("Authorization"), body_token)
        self.calls.append(SlackCall(method=method, args=args, headers=headers,
                                    team_id=caller.team_id if caller is not None else None))
        if method in self._hold:
            await self._notify()
            released = asyncio.ensure_future(self._released.wait())
            closing = asyncio.ensure_future(self._closing.wait())
            await asyncio.wait([released, closing], return_when=asyncio.FIRST_COMPLETED)
            released.cancel()
            closing.cancel()
        try:
            response = self._answer(
                method, args, request.headers.get("Authorization"), body_token, parse_error
            )
        finally:
            await self._notify()
        seconds, methods = self._delay
        if seconds > 0 and (methods is None or method in methods):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)
        if response.get(_DROP):
            # The work is done and recorded; now vanish without a word, like a connection
            # lost on the way back. Nothing can be written any more, so stop aiohttp trying.
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        return response

    def _answer(
        self,
        method: str,
        args: dict[str, Any],
        authorization: str | None,
        body_token: Any,
        parse_error: str | None,
    ) -> web.Response:
        """The answer to one call; ``answer[_DROP]`` asks to cut the connection instead.

        The signature is fixed: SocketModeStandIn wraps ``_answer`` on the instance.
        """
        if parse_error is not None:
            return web.json_response({"ok": False, "error": parse_error})
        workspace = None
        if method not in _NO_TOKEN_METHODS:
            workspace = self._workspace_of(authorization, body_token)
            if workspace is None:
                return web.json_response({"ok": False, "error": "invalid_auth"})
            if workspace.revoked_with is not None:
                return web.json_response({"ok": False, "error": workspace.revoked_with})
        http_failure = self._take_http_failure(method)
        if http_failure is not None:
            return _error_response(http_failure.status, http_failure.retry_after)
        fault = self._draw_fault(method)
        if fault == "rate_limited" and self._faults is not None:
            self.fault_counts[fault] += 1
            return _error_response(429, self._faults.retry_after)
        if fault == "server_error":
            self.fault_counts[fault] += 1
            return _error_response(500, None)
        if method == "chat.postMessage" and not self._channel_allows(str(_channel_of(args))):
            self.fault_counts["channel_rate_limited"] += 1
            return _error_response(429, 1)
        failure = self._take_failure(method, args)
        if failure is not None:
            return web.json_response({"ok": False, "error": failure.error})
        canned = self._take_answer(method, args)
        if canned is not None:
            return web.json_response(canned.body)
        handler = self._handlers.get(method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        self._context = _Context(workspace, authorization)
        try:
            answer = web.json_response(handler(args))
        finally:
            self._context = None
        if method == "auth.test" and self.scopes is not None:
            answer.headers["x-oauth-scopes"] = ",".join(self.scopes)
        if fault == "drop_after":
            self.fault_counts[fault] += 1
            answer[_DROP] = True
        return answer

    async def _parse_args(self, request: web.Request) -> dict[str, Any]:
        """Merge query string and body (JSON, urlencoded or multipart) like Slack does."""
        args: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                raw = await request.text()
                if raw.strip():
                    body = json.loads(raw)  # JSONDecodeError is a ValueError
                    if not isinstance(body, dict):
                        raise ValueError("JSON body must be an object")
                    args.update(body)
            elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        args[key] = {
                            "filename": value.filename,
                            "content_type": value.content_type,
                            "content": value.file.read(),
                        }
                    else:
                        args[key] = value
        for key in _JSON_FIELDS:
            raw_value = args.get(key)
            if isinstance(raw_value, str):
                try:
                    args[key] = json.loads(raw_value)
                except ValueError:
                    pass  # leave it as sent; Slack would reject it, the test can see it
        return args

    async def _handle_upload(self, request: web.Request) -> web.Response:
        """The pre-signed upload URL from files.getUploadURLExternal (no token, like Slack)."""
        file_id = request.match_info["file_id"]
        entry = self.files.get(file_id)
        if entry is None:
            return web.Response(status=404, text="file not found")
        entry["content"] = await request.read()
        entry["uploaded"] = True
        await self._notify()
        return web.Response(text=f"OK - {len(entry['content'])}")

    async def _handle_download(self, request: web.Request) -> web.Response:
        """A file's url_private(_download): the bytes only with a live bot token in the
        Authorization header; without it, Slack's sign-in page (200, HTML)."""
        file_id = request.match_info["file_id"]
        caller = self._workspace_of(request.headers.get("Authorization") or "", None)
        authorized = caller is not None and caller.revoked_with is None
        self.downloads.append((file_id, authorized))
        await self._notify()
        if not authorized:
            return web.Response(text=LOGIN_PAGE, content_type="text/html")
        found = self._file_content(file_id)
        if found is None:
            return web.Response(
                status=404, text="<html><body>File not found</body></html>",
                content_type="text/html",
            )
        content, obj = found
        disposition = f"attachment; filename*=UTF-8''{quote(obj['name'], safe='')}"
        return web.Response(
            body=content,
            content_type=obj["mimetype"],
            headers={"Content-Disposition": disposition},
        )

    async def _handle_response(self, request: web.Request) -> web.Response:
        """A response_url: Bolt's respond() posts JSON here."""
        key = request.match_info["key"]
        raw = await request.text()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = {"_raw": raw}
        self.responses.append((key, body))
        await self._notify()
        return web.Response(text="ok")

    # ------------------------------------------------------------------ helpers

    def _next_ts(self) -> str:
        """Unique, increasing ts strings from the wall clock, as Slack's are: apps may use
        them as times (e.g. `oldest=` when looking back for a message of their own)."""
        self._seq += 1
        self._last_micros = max(int(time.time() * 1_000_000), self._last_micros + 100)
        micros = self._last_micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}0{self._seq:08X}"

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        for m in self._messages:
            if m["channel"] == channel and m["ts"] == ts:
                return m
        return None

    def _replies(self, channel: str, ts: str) -> list[dict[str, Any]]:
        return [
            m
            for m in self._messages
            if m["channel"] == channel and m["thread_ts"] == ts and m["ts"] != ts
        ]

    def _with_thread_info(
        self, message: dict[str, Any], *, metadata: bool = True
    ) -> dict[str, Any]:
        """Add the reply_count / latest_reply fields Slack puts on thread parents."""
        out = self._listed(message, metadata=metadata)
        replies = self._replies(message["channel"], message["ts"])
        if replies:
            out["thread_ts"] = message["ts"]
            out["reply_count"] = len(replies)
            out["reply_users"] = sorted({r["user"] for r in replies})
            out["latest_reply"] = replies[-1]["ts"]
        return out

    @staticmethod
    def _listed(message: dict[str, Any], *, metadata: bool) -> dict[str, Any]:
        """A message as history/replies list it: metadata only when include_all_metadata."""
        out = _public(message)
        if not metadata:
            out.pop("metadata", None)
        return out

    @staticmethod
    def _page(
        items: list[dict[str, Any]], args: dict[str, Any], default_limit: int, newest_first: bool
    ) -> tuple[list[dict[str, Any]], str] | str:
        """One page of ``items`` (already in answer order) and the next cursor, or an error.

        Why cursors hold a ts rather than an offset: messages posted between two pages must
        not shift the next page, as they do not in Slack.
        """
        try:
            limit = int(args.get("limit") or default_limit)
        except (TypeError, ValueError):
            return "invalid_limit"
        limit = min(limit, 1000) if limit > 0 else default_limit
        start = 0
        if args.get("cursor"):
            edge = _cursor_ts(str(args["cursor"]))
            if edge is None:
                return "invalid_cursor"
            start = next(
                (
                    i
                    for i, m in enumerate(items)
                    if (_ts_key(m["ts"]) <= edge if newest_first else _ts_key(m["ts"]) >= edge)
                ),
                len(items),
            )
        page, rest = items[start : start + limit], items[start + limit :]
        return page, _cursor(rest[0]["ts"]) if rest else ""

    @staticmethod
    def _window(messages: list[dict[str, Any]], args: dict[str, Any]) -> list[dict[str, Any]]:
        """Apply oldest / latest / inclusive as Slack does (exclusive by default)."""
        inclusive = _truthy(args.get("inclusive", False))

        def inside(ts: str, bound: Any, sign: int) -> bool:
            key, edge = _ts_key(ts), _ts_key(str(bound))
            return (key > edge if sign > 0 else key < edge) or (inclusive and key == edge)

        out = messages
        if args.get("oldest") not in (None, ""):
            out = [m for m in out if inside(m["ts"], args["oldest"], +1)]
        if args.get("latest") not in (None, ""):
            out = [m for m in out if inside(m["ts"], args["latest"], -1)]
        return out

    # ------------------------------------------------------------------ methods

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        """Who the token is: its workspace and that workspace's bot user."""
        workspace = self._acting()
        return {
            "ok": True,
            "url": f"{self.url}/",
            "team": workspace.team_name,
            "user": "callbot",
            "team_id": workspace.team_id,
            "user_id": workspace.bot_user_id,
            "bot_id": workspace.bot_id,
            "is_enterprise_install": False,
        }

    def _oauth_v2_access(self, args: dict[str, Any]) -> dict[str, Any]:
        """The install exchange: the app's credentials and a code for the workspace's bot token.

        Credentials come by HTTP Basic auth (what slack_sdk sends) or as form fields. Checked
        in Slack's order: client, secret, grant type, code, redirect_uri. A failed exchange
        leaves the code usable; a successful one uses it up.
        """
        context = self._context
        authorization = context.authorization if context is not None else None
        client_id, client_secret = args.get("client_id"), args.get("client_secret")
        if authorization is not None and authorization.startswith("Basic "):
            basic = _basic_credentials(authorization)
            if basic is None:
                return {"ok": False, "error": "invalid_client_id"}
            client_id, client_secret = basic
        if client_id != self.client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if client_secret != self.client_secret:
            return {"ok": False, "error": "bad_client_secret"}
        grant_type = args.get("grant_type")
        if grant_type == "refresh_token":
            return {"ok": False, "error": "invalid_refresh_token"}  # no token rotation here
        if grant_type not in (None, "", "authorization_code"):
            return {"ok": False, "error": "invalid_grant_type"}
        grant = self._codes.get(str(args.get("code") or ""))
        if (
            grant is None
            or grant.used
            or self.clock() >= grant.expires_at
            or grant.workspace.revoked_with is not None
        ):
            return {"ok": False, "error": "invalid_code"}
        if grant.redirect_uri is not None and args.get("redirect_uri") != grant.redirect_uri:
            return {"ok": False, "error": "bad_redirect_uri"}
        grant.used = True
        workspace = grant.workspace
        scopes = self.scopes if self.scopes is not None else list(DEFAULT_SCOPES)
        return {
            "ok": True,
            "app_id": APP_ID,
            "authed_user": {"id": grant.installer},
            "scope": ",".join(scopes),
            "token_type": "bot",
            "access_token": workspace.token,
            "bot_user_id": workspace.bot_user_id,
            "team": {"id": workspace.team_id, "name": workspace.team_name},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    def _new_message(self, args: dict[str, Any]) -> dict[str, Any]:
        workspace = self._acting()
        return {
            "type": "message",
            "channel": str(args["channel"]),
            "ts": self._next_ts(),
            "thread_ts": str(args["thread_ts"]) if args.get("thread_ts") else None,
            "user": workspace.bot_user_id,
            "bot_id": workspace.bot_id,
            "app_id": APP_ID,
            "team": workspace.team_id,
            "text": args.get("text") or "",
            "blocks": args.get("blocks") or None,
            "attachments": args.get("attachments") or None,
            "metadata": args.get("metadata") or None,
            "reply_broadcast": True if _truthy(args.get("reply_broadcast", False)) else None,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            return {"ok": False, "error": "no_text"}
        if error := _metadata_error(args.get("metadata")):
            return {"ok": False, "error": error}
        channel = str(args["channel"])
        if not self.is_member(channel) and self._is_private(channel):
            return {"ok": False, "error": "not_in_channel"}  # chat:write.public: public only
        message = self._new_message(args)
        self._messages.append(message)
        return {
            "ok": True,
            "channel": message["channel"],
            "ts": message["ts"],
            "message": _public(message),
        }

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._find(str(args.get("channel", "")), str(args.get("ts", "")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            return {"ok": False, "error": "no_text"}
        if error := _metadata_error(args.get("metadata")):
            return {"ok": False, "error": error}
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in args:
                message[key] = args[key] or ("" if key == "text" else None)
        message["edited"] = {"user": self._acting().bot_user_id, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": message["channel"],
            "ts": message["ts"],
            "text": message["text"],
            "message": _public(message),
        }

    def _chat_get_permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        """A message's link, as Slack makes it (`/archives/<channel>/p<ts without the dot>`);
        `message_not_found` for a message the stand-in never stored."""
        channel, ts = str(args.get("channel") or ""), str(args.get("message_ts") or "")
        if self._find(channel, ts) is None:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": channel,
                "permalink": f"{self.url}/archives/{channel}/p{ts.replace('.', '')}"}

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("user"):
            return {"ok": False, "error": "user_not_found"}
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            return {"ok": False, "error": "no_text"}
        message = self._new_message(args)
        message["to_user"] = str(args["user"])
        self.ephemerals.append(message)
        return {"ok": True, "message_ts": message["ts"]}

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages newest first, windowed by oldest/latest, cursor-paginated."""
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if refused := self._history_refused(str(channel)):
            return {"ok": False, "error": refused}
        top = self._window(self.messages(str(channel)), args)
        top.reverse()
        paged = self._page(top, args, 100, newest_first=True)
        if isinstance(paged, str):
            return {"ok": False, "error": paged}
        page, next_cursor = paged
        metadata = _truthy(args.get("include_all_metadata", False))
        return {
            "ok": True,
            "messages": [self._with_thread_info(m, metadata=metadata) for m in page],
            "has_more": bool(next_cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """Parent then replies oldest first; the parent only opens the first page, as in Slack."""
        channel, ts = str(args.get("channel", "")), str(args.get("ts", ""))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if refused := self._history_refused(channel):
            return {"ok": False, "error": refused}
        parent = self._find(channel, ts)
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        thread = [parent, *self._window(self._replies(channel, ts), args)]
        paged = self._page(thread, args, 1000, newest_first=False)
        if isinstance(paged, str):
            return {"ok": False, "error": paged}
        page, next_cursor = paged
        metadata = _truthy(args.get("include_all_metadata", False))
        return {
            "ok": True,
            "messages": [
                self._with_thread_info(m, metadata=metadata)
                if m is parent
                else self._listed(m, metadata=metadata)
                for m in page
            ],
            "has_more": bool(next_cursor),
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _history_refused(self, channel: str) -> str | None:
        """Reading a channel needs membership: a private one the bot is not in does not
        exist as far as it can tell; a public one says not_in_channel."""
        if self.is_member(channel):
            return None
        return "channel_not_found" if self._is_private(channel) else "not_in_channel"

    def _conversations_join(self, args: dict[str, Any]) -> dict[str, Any]:
        """Join a public channel (scope channels:join); private ones need an invite."""
        channel = str(args.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if self._is_private(channel):
            return {"ok": False, "error": "method_not_supported_for_channel_type"}
        if self.channels.get(channel, {}).get("is_archived"):
            return {"ok": False, "error": "is_archived"}
        already = self.is_member(channel)
        self.channels.setdefault(channel, {})["is_member"] = True
        answer: dict[str, Any] = {"ok": True,
                                  "channel": self._conversations_info(args)["channel"]}
        if already:
            answer["warning"] = "already_in_channel"
            answer["response_metadata"] = {"warnings": ["already_in_channel"]}
        return answer

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = args.get("user")
        if not user_id:
            return {"ok": False, "error": "user_not_found"}
        user_id = str(user_id)
        name = f"user-{user_id.lower()}"
        user: dict[str, Any] = {
            "id": user_id,
            "team_id": self._acting().team_id,
            "name": name,
            "real_name": f"User {user_id}",
            "deleted": False,
            "is_bot": any(w.bot_user_id == user_id for w in self._workspaces.values()),
            "is_admin": False,
            "tz": "America/New_York",
            "tz_label": "Eastern Standard Time",
            "tz_offset": -18000,
            "profile": {
                "real_name": f"User {user_id}",
                "display_name": name,
                "email": f"{name}@example.com",
            },
        }
        user.update(copy.deepcopy(self.users.get(user_id, {})))
        # Slack adds the locale only when asked (include_locale); `users[id]["locale"]` sets it.
        if _truthy(args.get("include_locale")):
            user.setdefault("locale", "en-US")
        else:
            user.pop("locale", None)
        return {"ok": True, "user": user}

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = args.get("channel")
        if not channel_id:
            return {"ok": False, "error": "channel_not_found"}
        channel_id = str(channel_id)
        is_im = channel_id.startswith("D")
        channel: dict[str, Any] = {
            "id": channel_id,
            "name": f"channel-{channel_id.lower()}",
            "is_channel": not is_im,
            "is_group": False,
            "is_im": is_im,
            "is_private": channel_id.startswith("G") or is_im,
            "is_archived": False,
            "is_member": True,
            "context_team_id": self._acting().team_id,
            "created": 1_732_000_000,
        }
        channel.update(copy.deepcopy(self.channels.get(channel_id, {})))
        return {"ok": True, "channel": channel}

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        """A DM with one user: Slack answers the same D… id every time for that user."""
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if len(users) != 1:
            return {"ok": False, "error": "users_list_not_supplied" if not users
                    else "not_implemented"}
        return {"ok": True, "channel": {"id": "D" + users[0].lstrip("UW")}}

    def _store_view(
        self,
        view: dict[str, Any],
        *,
        view_id: str | None = None,
        root: str | None = None,
        previous: str | None = None,
    ) -> dict[str, Any]:
        view_id = view_id or self._next_id("V")
        workspace = self._acting()
        stored = {
            **copy.deepcopy(view),
            "id": view_id,
            "team_id": workspace.team_id,
            "state": {"values": {}},
            "hash": f"1732400000.{self._next_id('h')}",
            "root_view_id": root or view_id,
            "previous_view_id": previous,
            "app_id": APP_ID,
            "bot_id": workspace.bot_id,
        }
        self.views[view_id] = stored
        return stored

    @staticmethod
    def _view_arg(args: dict[str, Any]) -> dict[str, Any] | None:
        view = args.get("view")
        return view if isinstance(view, dict) else None

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        view = self._view_arg(args)
        if view is None or not (args.get("trigger_id") or args.get("interactivity_pointer")):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "view": copy.deepcopy(self._store_view(view))}

    def _views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._views_open(args)

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view = self._view_arg(args)
        if view is None:
            return {"ok": False, "error": "invalid_arguments"}
        existing: dict[str, Any] | None = None
        if args.get("view_id"):
            existing = self.views.get(str(args["view_id"]))
        elif args.get("external_id"):
            existing = next(
                (v for v in self.views.values() if v.get("external_id") == args["external_id"]),
                None,
            )
        else:
            return {"ok": False, "error": "invalid_arguments"}
        if existing is None:
            return {"ok": False, "error": "not_found"}
        if args.get("hash") and args["hash"] != existing["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        stored = self._store_view(
            view,
            view_id=existing["id"],
            root=existing["root_view_id"],
            previous=existing.get("previous_view_id"),
        )
        return {"ok": True, "view": copy.deepcopy(stored)}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        view = self._view_arg(args)
        user_id = args.get("user_id")
        if view is None or not user_id:
            return {"ok": False, "error": "invalid_arguments"}
        existing_id = self._home_by_user.get(str(user_id))
        if existing_id and args.get("hash") and args["hash"] != self.views[existing_id]["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        stored = self._store_view(view, view_id=existing_id)
        self._home_by_user[str(user_id)] = stored["id"]
        return {"ok": True, "view": copy.deepcopy(stored)}

    def _file_object(
        self,
        file_id: str,
        *,
        name: str,
        title: str,
        filetype: str,
        size: int,
        user: str,
        created: int | None = None,
        team: str | None = None,
    ) -> dict[str, Any]:
        """Slack's file object (the fields apps read), with URLs served by this stand-in."""
        base = f"{self.url}/files-pri/{file_id}"
        quoted = quote(name, safe="")
        created = int(time.time()) if created is None else created
        return {
            "id": file_id,
            "created": created,
            "timestamp": created,
            "name": name,
            "title": title,
            "mimetype": MIMETYPES.get(filetype, "application/octet-stream"),
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": user,
            "user_team": team or self.team_id,
            "editable": False,
            "size": size,
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{base}/{quoted}",
            "url_private_download": f"{base}/download/{quoted}",
            "permalink": f"{self.url}/files/{file_id}",
            "is_starred": False,
            "has_rich_preview": False,
            "file_access": "visible",
        }

    def _uploaded_object(self, file_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        """The file object of a file the app uploaded (type from its name's extension)."""
        ext = entry["filename"].rpartition(".")[2].lower() if "." in entry["filename"] else ""
        return self._file_object(
            file_id,
            name=entry["filename"],
            title=entry["title"] or entry["filename"],
            filetype=_FILETYPE_BY_EXT.get(ext, "binary"),
            size=len(entry["content"]),
            user=entry.get("user") or self.bot_user_id,
            created=entry.get("created"),
            team=entry.get("team"),
        )

    def _file_content(self, file_id: str) -> tuple[bytes, dict[str, Any]] | None:
        """Bytes and file object of a person's file or a completed upload of the app."""
        if file_id in self.user_files:
            stored = self.user_files[file_id]
            return stored["content"], stored["file"]
        entry = self.files.get(file_id)
        if entry is None or not entry["completed"]:
            return None
        return entry["content"], self._uploaded_object(file_id, entry)

    def _files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        """files.info: the same file object a file_input submission or file_share carries."""
        file_id = args.get("file")
        if not file_id:
            return {"ok": False, "error": "invalid_arguments"}
        found = self._file_content(str(file_id))
        if found is None:
            return {"ok": False, "error": "file_not_found"}
        return {
            "ok": True,
            "file": copy.deepcopy(found[1]),
            "comments": [],
            "response_metadata": {"next_cursor": ""},
        }

    def _files_get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        filename, length = args.get("filename"), args.get("length")
        if not filename or length in (None, ""):
            return {"ok": False, "error": "invalid_arguments"}
        file_id = self._next_id("F")
        workspace = self._acting()
        self.files[file_id] = {
            "user": workspace.bot_user_id,
            "team": workspace.team_id,
            "content": b"",
            "title": None,
            "filename": str(filename),
            "length": int(length),
            "created": int(time.time()),
            "channel": None,
            "thread_ts": None,
            "initial_comment": None,
            "uploaded": False,
            "completed": False,
        }
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        """Complete uploads and, given a channel, share them in one message as Slack does.

        Why the message: in Slack an uploaded file shared to a channel (or thread) is a
        message there, with ``files`` and the ``initial_comment`` as text, so
        conversations.replies shows it. Slack shares asynchronously; this does it at once.
        """
        items = args.get("files")
        if not isinstance(items, list) or not items:
            return {"ok": False, "error": "invalid_arguments"}
        if args.get("channel_id"):
            channels = [str(args["channel_id"])]
        else:
            channels = [c for c in str(args.get("channels") or "").split(",") if c]
        for item in items:
            entry = self.files.get(str(item.get("id"))) if isinstance(item, dict) else None
            if entry is None or not entry["uploaded"]:
                return {"ok": False, "error": "file_not_found"}
        answered = []
        for item in items:
            file_id = str(item["id"])
            entry = self.files[file_id]
            entry.update(
                title=item.get("title") or entry["filename"],
                channel=channels[0] if channels else None,
                thread_ts=args.get("thread_ts") or None,
                initial_comment=args.get("initial_comment") or None,
                completed=True,
            )
            answered.append(self._uploaded_object(file_id, entry))
        for channel in channels:
            share = {
                "channel": channel,
                "thread_ts": args.get("thread_ts"),
                "text": args.get("initial_comment"),
            }
            message = self._new_message(share)
            message.update(files=copy.deepcopy(answered), upload=True, display_as_bot=False)
            self._messages.append(message)
        return {"ok": True, "files": answered}


_R = TypeVar("_R", "_Answer", "_Failure")


def _take(rules: list[_R], method: str, args: dict[str, Any]) -> _R | None:
    """The first rule for `method` (and the call's channel, if the rule names one) that has
    uses left, counting this one."""
    for rule in rules:
        if rule.method != method or (rule.remaining is not None and rule.remaining <= 0):
            continue
        if rule.channel is not None and _channel_of(args) != rule.channel:
            continue
        if rule.remaining is not None:
            rule.remaining -= 1
        return rule
    return None
