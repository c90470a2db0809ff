"""What the handlers share: built once at start-up by `bot.app`, passed to each `register`."""

from __future__ import annotations

from dataclasses import dataclass

from bot.calls import CallService
from bot.config import Settings
from bot.guard import Guard
from bot.home import HomePublisher
from bot.ingest import Ingest
from bot.metrics import Metrics
from bot.outbox import OutboxWorker
from bot.tasks import InFlight
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
