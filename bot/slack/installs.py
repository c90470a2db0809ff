"""Several workspaces: Slack's OAuth install flow on our own database, and a Slack client
that calls each workspace with its own bot token.

With SLACK_BOT_TOKEN the app serves one workspace and none of this is used. With
SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and SLACK_STATE_SECRET, Bolt runs the install flow
(/slack/install, /slack/oauth_redirect) and keeps each installation through
`StoreInstallations`; Bolt finds the token for each request itself. Work done outside a
request (the outbox, scheduled calls, campaigns, App Home) goes through a `TeamClient`,
which picks the token of the workspace the work is for: the team it is bound to, or the
one `TEAM` names for the task at hand."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from storage.base import InstallStore

log = logging.getLogger("bot.slack.installs")

# The workspace the current task works for (a request's team, a delivery's call's team).
TEAM: contextvars.ContextVar[str | None] = contextvars.ContextVar("slack_team", default=None)
# How long the install flow's state lives: Slack's consent screen, then back to us.
STATE_SECONDS = 10 * 60
# How long one instance trusts a token it read (another instance may have seen the app
# uninstalled; Slack then refuses the old token, which changes nothing).
TOKEN_SECONDS = 60.0


def team_scope(several: bool) -> str | None:
    """Whose calls the task at hand may see: with several workspaces, those of its own
    workspace only ("" for a task with none: no call); with one, every call (None)."""
    return (TEAM.get() or "") if several else None


@contextlib.contextmanager
def working_for(team_id: str | None) -> Iterator[None]:
    """Run the block for `team_id`'s workspace (its token for Slack calls made in it)."""
    token = TEAM.set(team_id)
    try:
        yield
    finally:
        TEAM.reset(token)


def _key(enterprise_id: str | None, team_id: str | None,
         is_enterprise_install: bool | None) -> tuple[str, str]:
    """The row of an installation: an org-wide install is the org's, not one team's."""
    return enterprise_id or "", "" if is_enterprise_install else team_id or ""


def _to_json(installation: Installation) -> str:
    values = installation.to_dict_for_copying()
    return json.dumps({k: v.timestamp() if isinstance(v, datetime) else v
                       for k, v in values.items()})


class TeamTokens:
    """Each workspace's bot token, read from the installations (kept briefly in memory)."""

    def __init__(self, store: InstallStore, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.clock = clock
        self._known: dict[str, tuple[str | None, float]] = {}

    async def installation(self, enterprise_id: str | None, team_id: str | None,
                           is_enterprise_install: bool | None = False) -> Installation | None:
        data = await self.store.find_install(*_key(enterprise_id, team_id,
                                                  is_enterprise_install))
        return None if data is None else Installation(**json.loads(data))

    async def bot_token(self, team_id: str) -> str | None:
        now = self.clock()
        known = self._known.get(team_id)
        if known is not None and known[1] > now:
            return known[0]
        found = await self.installation(None, team_id)
        token = found.bot_token if found is not None else None
        self._known[team_id] = (token, now + TOKEN_SECONDS)
        return token

    def forget(self, team_id: str | None) -> None:
        self._known.pop(team_id or "", None)


class StoreInstallations(AsyncInstallationStore):
    """Bolt's installation store, on our database: one installation per workspace (the
    latest); bot tokens only, as the app asks for no user scopes."""

    def __init__(self, store: InstallStore, tokens: TeamTokens,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.tokens = tokens
        self.clock = clock

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_save(self, installation: Installation) -> None:
        enterprise_id, team_id = _key(installation.enterprise_id, installation.team_id,
                                      installation.is_enterprise_install)
        await self.store.save_install(enterprise_id, team_id, _to_json(installation),
                                      self.clock())
        self.tokens.forget(team_id)
        log.info("installed in workspace %s", team_id or enterprise_id)

    async def async_save_bot(self, bot: Bot) -> None:
        """Unused: `async_save` keeps the whole installation, the bot's token in it."""

    async def async_find_bot(self, *, enterprise_id: str | None, team_id: str | None,
                             is_enterprise_install: bool | None = False) -> Bot | None:
        found = await self.tokens.installation(enterprise_id, team_id, is_enterprise_install)
        return found.to_bot() if found is not None and found.bot_token else None

    async def async_find_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        found = await self.tokens.installation(enterprise_id, team_id, is_enterprise_install)
        if found is None or (user_id is not None and found.user_id != user_id):
            return None
        return found

    async def async_delete_bot(self, *, enterprise_id: str | None,
                               team_id: str | None) -> None:
        await self.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(self, *, enterprise_id: str | None,
                                        team_id: str | None,
                                        user_id: str | None = None) -> None:
        if user_id is None:  # one person's tokens: we keep none of a person's own
            await self.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_all(self, *, enterprise_id: str | None,
                               team_id: str | None) -> None:
        """The app was uninstalled or its tokens revoked: the workspace's tokens go. Its
        calls and history stay (retention prunes them as it prunes any)."""
        deleted = 0
        for key in {_key(enterprise_id, team_id, False), _key(enterprise_id, team_id, True)}:
            if key[1] or not team_id:
                deleted += await self.store.delete_install(*key)
        self.tokens.forget(team_id)
        log.info("uninstalled from workspace %s: %d installation(s) deleted",
                 team_id or enterprise_id, deleted)


class StoreStates(AsyncOAuthStateStore):
    """The install flow's one-time states, in the database so that any instance can take
    Slack's callback. Only a keyed hash of each state is kept: someone who reads the
    database cannot finish an install with a state from it."""

    def __init__(self, store: InstallStore, secret: str,
                 clock: Callable[[], float] = time.time, expires_in: float = STATE_SECONDS):
        self.store = store
        self.secret = secret.encode()
        self.clock = clock
        self.expires_in = expires_in

    @property
    def logger(self) -> logging.Logger:
        return log

    def _key(self, state: str) -> str:
        return hmac.new(self.secret, state.encode(), hashlib.sha256).hexdigest()

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(24)
        now = self.clock()
        await self.store.issue_state(self._key(state), now + self.expires_in, now)
        return state

    async def async_consume(self, state: str) -> bool:
        return await self.store.consume_state(self._key(state), self.clock())


class TeamClient(AsyncWebClient):
    """A Slack client for work done outside a request, in a setup with several workspaces:
    a call made without a token goes out with the bot token of the bound team, else of
    the team `TEAM` names. A workspace with no installation gets no token, and Slack's
    `not_authed` says so where the call was made."""

    def __init__(self, *, tokens: TeamTokens, team: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tokens = tokens
        # Not slack_sdk's own team_id, which it would add to every request's parameters.
        self.team = team

    def bound(self, team_id: str | None) -> TeamClient:
        """The same client, for `team_id`'s workspace whatever task uses it."""
        return TeamClient(tokens=self.tokens, team=team_id, base_url=self.base_url,
                          timeout=self.timeout, session=self.session, logger=self._logger,
                          retry_handlers=list(self.retry_handlers))

    async def api_call(  # type: ignore[override]
        self, api_method: str, *, http_verb: str = "POST", files: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None, params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> AsyncSlackResponse:
        given = any(p is not None and "token" in p for p in (params, json, data))
        if self.token is None and auth is None and not given:
            team = self.team or TEAM.get()
            token = await self.tokens.bot_token(team) if team else None
            if token is not None:
                params = {**(params or {}), "token": token}
        return await super().api_call(api_method, http_verb=http_verb, files=files,
                                      data=data, params=params, json=json, headers=headers,
                                      auth=auth)


def for_team(client: AsyncWebClient, team_id: str | None) -> AsyncWebClient:
    """`client` for work of `team_id`'s workspace (itself with one workspace's token)."""
    return client.bound(team_id) if isinstance(client, TeamClient) else client
