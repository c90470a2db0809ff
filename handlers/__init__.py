"""Slack listeners by surface, the Retell webhook and the health routes.

Each listener parses, acks, calls one use case and renders the answer; `register_all` is
the one place Bolt learns of them (as in Slack's Bolt starter template)."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.context import AppContext
from handlers import actions, campaigns, commands, events, installs, scheduling, stats, views


def register_all(app: AsyncApp, ctx: AppContext) -> None:
    """Every Slack listener: slash commands, buttons, the modal and App Home, events."""
    commands.register(app, ctx)
    stats.register(app, ctx)
    actions.register(app, ctx)
    views.register(app, ctx)
    campaigns.register(app, ctx)  # before events: its file_share listener matches first
    events.register(app, ctx)
    scheduling.register(app, ctx)
    installs.register(app, ctx)
