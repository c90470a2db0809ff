"""Events API listeners. A mention gets a short how-to in its thread."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.context import AppContext
from bot.parsing import CALL_USAGE, STATS_USAGE

log = logging.getLogger(__name__)


def register(app: AsyncApp, ctx: AppContext) -> None:
    async def app_mention(event: dict[str, Any], client: AsyncWebClient) -> None:
        # Bolt has already acked; Slack's retries of the same event would only repeat help.
        log.info("app_mention channel=%s user=%s", event.get("channel"), event.get("user"))
        await client.chat_postMessage(
            channel=event["channel"],
            thread_ts=event.get("thread_ts") or event["ts"],
            text=f"I place AI phone calls through Retell.\n{CALL_USAGE}\n{STATS_USAGE}",
        )

    app.event("app_mention")(app_mention)
