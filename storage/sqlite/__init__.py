"""SQLite store: WAL, one writer connection behind a lock, one reader for queries.

The implementation is split by the same lines as the interfaces in storage/base.py: one
part per concern, all on the connection in connection.py."""

from __future__ import annotations

from storage.sqlite.calls import CallsPart
from storage.sqlite.campaigns import CampaignsPart
from storage.sqlite.guard import GuardPart
from storage.sqlite.inbox import InboxPart
from storage.sqlite.installs import InstallsPart
from storage.sqlite.leases import LeasesPart
from storage.sqlite.outbox import OutboxPart
from storage.sqlite.rows import (
    INBOX_MAX_ATTEMPTS,
    LIVE_COUNT_SQL,
    NUMBER_RECENT_SQL,
    USER_RECENT_SQL,
)
from storage.sqlite.schedule import SchedulePart
from storage.sqlite.search import SearchPart
from storage.sqlite.stats import StatsPart
from storage.sqlite.upkeep import UpkeepPart

__all__ = ["INBOX_MAX_ATTEMPTS", "LIVE_COUNT_SQL", "NUMBER_RECENT_SQL", "USER_RECENT_SQL",
           "SQLiteStore"]


class SQLiteStore(CallsPart, InboxPart, GuardPart, OutboxPart, LeasesPart, SchedulePart,
                  CampaignsPart, StatsPart, SearchPart, InstallsPart, UpkeepPart):
    """The embedded default store.

Writes go through one connection in its own thread with group commit (see
storage/writer.py), so concurrent webhooks share an fsync; reads use a second
connection so `/callstats` never waits behind writes (WAL allows it).
    """
