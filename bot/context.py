"""What the handlers share: built once at start-up by `bot.app`, passed to each `register`."""

from __future__ import annotations

from dataclasses import dataclass

from bot.calls.campaigns import Campaigns
from bot.calls.ingest import Ingest
from bot.calls.insights import Insights
from bot.calls.placing import Placing
from bot.calls.scheduling import Scheduling
from bot.calls.service import CallService
from bot.config import Settings
from bot.guard.admission import Guard
from bot.runtime.drawing import Drawing
from bot.runtime.metrics import Metrics
from bot.runtime.tasks import InFlight
from bot.slack.home import HomePublisher
from bot.slack.installs import team_scope
from bot.slack.outbox import OutboxWorker
from bot.slack.people import Languages
from storage.base import Store


@dataclass
class AppContext:
    settings: Settings
    store: Store
    calls: CallService
    outbox: OutboxWorker
    home: HomePublisher
    metrics: Metrics
    inflight: InFlight
    guard: Guard
    ingest: Ingest
    placing: Placing
    languages: Languages  # each person's language, for answers and App Home
    scheduling: Scheduling
    campaigns: Campaigns
    insights: Insights
    drawing: Drawing  # charts, in a worker process

    def team_scope(self) -> str | None:
        """Whose calls the request at hand may see (bot/slack/installs.team_scope)."""
        return team_scope(self.settings.oauth)
