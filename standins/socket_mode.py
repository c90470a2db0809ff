"""A local stand-in for Slack's Socket Mode WebSocket server, for tests.

Why: in Socket Mode Slack pushes slash commands, interactions and events over a WebSocket
and waits for an ack on the same socket. Pointing the real slack_sdk ``SocketModeClient``
(through Bolt's ``AsyncSocketModeHandler``) at this server tests exactly the frames Slack
would exchange with the app, without mocks of our own code.

Usage::

    async with SlackStandIn() as slack, SocketModeStandIn(slack) as sm:
        app = AsyncApp(client=AsyncWebClient(token=slack.token, base_url=slack.api_url),
                       signing_secret="x")
        handler = AsyncSocketModeHandler(app, sm.app_token)
        await handler.connect_async()
        await sm.connected()
        ack = await sm.send_slash_command({"command": "/call", "text": "+15550100", ...})
        await handler.close_async()   # before the stand-ins close, or the client reconnects

How ``apps.connections.open`` is served: the Slack stand-in rejects any token other than the
bot token before it looks up a method handler, and it records the Authorization header only
redacted. So this stand-in puts a small gate in front of ``SlackStandIn._answer`` (on the
instance, removed again on close) that lets the app token through to the
``apps.connections.open`` handler it installs in ``slack._handlers``, and refuses the bot
token (``not_allowed_token_type``) and any other token (``invalid_auth``) like Slack does.
Failure injection (``slack.fail`` / ``slack.http_error``) still applies to the method.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from standins.loopback import LoopbackServer
from standins.slack import APP_ID, SlackStandIn

__all__ = ["SocketModeStandIn"]

METHOD = "apps.connections.open"

# Signature of SlackStandIn._answer, which the gate wraps.
_Answer = Callable[[str, dict[str, Any], str | None, Any, str | None], web.Response]


class SocketModeStandIn(LoopbackServer):
    """A WebSocket server speaking Slack's Socket Mode protocol, wired into a SlackStandIn."""

    def __init__(self, slack: SlackStandIn, app_token: str = "xapp-1-test") -> None:
        self.slack = slack
        self.app_token = app_token

        # Every envelope pushed to the app and every ack it sent back, in order.
        self.envelopes: list[dict[str, Any]] = []
        self.acks: list[dict[str, Any]] = []
        # Non-JSON or envelope-less text frames the app sent (should stay empty).
        self.unexpected: list[str] = []
        # Payloads of WebSocket pings received from the app (slack_sdk sends its own).
        self.pings: list[bytes] = []
        # Total connections that got a hello, including ones closed since.
        self.connections = 0
        self.tickets: list[str] = []

        self._live: list[web.WebSocketResponse] = []
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._cond = asyncio.Condition()
        self._original_answer: _Answer | None = None
        self._answer_was_overridden = False
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind an ephemeral port and hook apps.connections.open into the Slack stand-in."""
        if self._runner is not None:
            return
        if not callable(getattr(self.slack, "_answer", None)):
            raise RuntimeError("SlackStandIn has no _answer(); the app-token gate needs updating")
        app = web.Application()
        app.router.add_get("/link/", self._handle_ws)
        await self._serve(app, scheme="ws")
        self._closing = False

        self.slack._handlers[METHOD] = self._apps_connections_open
        instance_attrs = vars(self.slack)
        self._answer_was_overridden = "_answer" in instance_attrs
        self._original_answer = self.slack._answer
        instance_attrs["_answer"] = self._gate

    async def close(self) -> None:
        """Unhook from the Slack stand-in, close live sockets, stop the server; safe twice."""
        if self._runner is None:
            return
        self._closing = True
        self._unhook()
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        await self.disconnect_clients()
        await self._shutdown()

    def _unhook(self) -> None:
        if self.slack._handlers.get(METHOD) == self._apps_connections_open:
            del self.slack._handlers[METHOD]
        instance_attrs = vars(self.slack)
        if instance_attrs.get("_answer") == self._gate:
            if self._answer_was_overridden:
                instance_attrs["_answer"] = self._original_answer
            else:
                del instance_attrs["_answer"]
        self._original_answer = None

    # ------------------------------------------------------------------ apps.connections.open

    def _gate(
        self,
        method: str,
        args: dict[str, Any],
        authorization: str | None,
        body_token: Any,
        parse_error: str | None,
    ) -> web.Response:
        """Let the app token (and only it) reach apps.connections.open; pass the rest on."""
        original = self._original_answer
        if original is None:  # unhooked while a request was in flight
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if method != METHOD:
            return original(method, args, authorization, body_token, parse_error)
        token = body_token if authorization is None else authorization.removeprefix("Bearer ")
        if token == self.app_token:
            # Present the bot token to the stand-in's own check so failure injection applies.
            return original(method, args, f"Bearer {self.slack.token}", None, parse_error)
        if token == self.slack.token:
            return web.json_response({"ok": False, "error": "not_allowed_token_type"})
        return web.json_response({"ok": False, "error": "invalid_auth"})

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self.tickets.append(ticket)
        return {"ok": True, "url": f"{self.url}/link/?ticket={ticket}&app_id={APP_ID}"}

    # ------------------------------------------------------------------ WebSocket server

    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        if self._closing or request.query.get("ticket") not in self.tickets:
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        # autoping off so pings are recorded; each is answered below with its own payload,
        # which slack_sdk parses back into last_ping_pong_time.
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": len(self._live) + 1,
                    "debug_info": {
                        "host": "applink-standin",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": APP_ID},
                }
            )
            self._live.append(ws)
            self.connections += 1
            await self._notify()
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(msg.data)
                elif msg.type == WSMsgType.PING:
                    self.pings.append(msg.data)
                    await ws.pong(msg.data)
        finally:
            if ws in self._live:
                self._live.remove(ws)
            await self._notify()
        return ws

    async def _on_text(self, raw: str) -> None:
        try:
            ack = json.loads(raw)
        except ValueError:
            ack = None
        if not isinstance(ack, dict) or "envelope_id" not in ack:
            self.unexpected.append(raw)
            return
        self.acks.append(ack)
        future = self._pending.pop(str(ack["envelope_id"]), None)
        if future is not None and not future.done():
            future.set_result(ack)
        await self._notify()

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------ public API

    @property
    def live(self) -> int:
        """Number of currently open client WebSockets that got a hello."""
        return len(self._live)

    async def connected(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until a client is connected and greeted; a forgotten connect must not hang."""
        try:
            async with asyncio.timeout(timeout):
                async with self._cond:
                    await self._cond.wait_for(lambda: bool(self._live))
        except TimeoutError:
            raise TimeoutError(f"no Socket Mode client connected within {timeout}s") from None

    async def disconnect_clients(self) -> None:
        """Close every live WebSocket from the server side, as Slack does on a redeploy."""
        sockets, self._live = self._live, []
        await self._notify()
        for ws in sockets:
            with contextlib.suppress(ConnectionError):
                await ws.close()

    async def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's ``disconnect`` message; slack_sdk then opens a new connection."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "standin"}}
        for ws in list(self._live):
            await ws.send_json(message)

    async def send_slash_command(
        self,
        form: dict[str, str],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> dict[str, Any] | None:
        """Push a slash command; return the ack's payload (the immediate reply) or None."""
        envelope = {
            "envelope_id": str(uuid.uuid4()),
            "type": "slash_commands",
            "accepts_response_payload": True,
            "payload": dict(form),
        }
        return await self._send(envelope, timeout)

    async def send_interactive(
        self,
        payload: dict[str, Any],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> dict[str, Any] | None:
        """Push an interaction (block_actions, view_submission...); return the ack's payload."""
        envelope = {
            "envelope_id": str(uuid.uuid4()),
            "type": "interactive",
            "accepts_response_payload": True,
            "payload": copy.deepcopy(payload),
        }
        return await self._send(envelope, timeout)

    async def send_event(
        self,
        event_callback_body: dict[str, Any],
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> dict[str, Any] | None:
        """Push an Events API ``event_callback`` body; return the ack's payload (usually None)."""
        envelope = {
            "envelope_id": str(uuid.uuid4()),
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
            "payload": copy.deepcopy(event_callback_body),
        }
        return await self._send(envelope, timeout)

    async def _send(
        self,
        envelope: dict[str, Any],
        timeout: float,  # noqa: ASYNC109 - public senders pass their deadline down
    ) -> dict[str, Any] | None:
        """Send to the newest live socket (waiting for one) and wait for the matching ack."""
        envelope_id = envelope["envelope_id"]
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[envelope_id] = future
        try:
            async with asyncio.timeout(timeout):
                async with self._cond:
                    await self._cond.wait_for(lambda: bool(self._live))
                    ws = self._live[-1]
                self.envelopes.append(envelope)
                await ws.send_json(envelope)
                ack = await future
        except TimeoutError:
            raise TimeoutError(
                f"no ack for {envelope['type']} envelope {envelope_id} within {timeout}s "
                f"(live connections: {len(self._live)})"
            ) from None
        finally:
            self._pending.pop(envelope_id, None)
        payload = ack.get("payload")
        return payload if isinstance(payload, dict) else None
