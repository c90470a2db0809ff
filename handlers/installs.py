"""An uninstall, or the app's tokens revoked: with several workspaces the workspace's
installation (its token) is deleted; with one, the log says SLACK_BOT_TOKEN stopped
working. The workspace's calls and history stay, pruned by retention as any are."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.context import AppContext

log = logging.getLogger(__name__)


def register(app: AsyncApp, ctx: AppContext) -> None:
    async def forget(context: AsyncBoltContext, why: str) -> None:
        store = app.installation_store
        if ctx.settings.oauth and store is not None:
            await store.async_delete_all(enterprise_id=context.enterprise_id,
                                         team_id=context.team_id)
            return
        log.warning("slack: %s in workspace %s: SLACK_BOT_TOKEN no longer works; reinstall "
                    "the app and put its new token in SLACK_BOT_TOKEN", why, context.team_id)

    @app.event("app_uninstalled")
    async def app_uninstalled(context: AsyncBoltContext) -> None:
        await forget(context, "the app was uninstalled")

    @app.event("tokens_revoked")
    async def tokens_revoked(event: dict[str, Any], context: AsyncBoltContext) -> None:
        if (event.get("tokens") or {}).get("bot"):  # people's own tokens: we keep none
            await forget(context, "the bot's token was revoked")
