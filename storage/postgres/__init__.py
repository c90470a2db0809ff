"""PostgreSQL store: an asyncpg pool shared by several instances of the app.

Split by the same lines as storage/base.py and the SQLite store, one part per concern, all
on the pool in connection.py. Work meant for one instance (delivery of a call's Slack
work, the poller, retention, the scheduler, campaign rows) is claimed with leases kept in
the database, and rows are claimed with `FOR UPDATE SKIP LOCKED`, so any number of
instances may share one database."""

from __future__ import annotations

from storage.postgres.calls import CallsPart
from storage.postgres.campaigns import CampaignsPart
from storage.postgres.guard import GuardPart
from storage.postgres.inbox import InboxPart
from storage.postgres.installs import InstallsPart
from storage.postgres.leases import LeasesPart
from storage.postgres.outbox import OutboxPart
from storage.postgres.schedule import SchedulePart
from storage.postgres.search import SearchPart
from storage.postgres.stats import StatsPart
from storage.postgres.upkeep import UpkeepPart

__all__ = ["PostgresStore"]


class PostgresStore(CallsPart, InboxPart, GuardPart, OutboxPart, LeasesPart, SchedulePart,
                    CampaignsPart, StatsPart, SearchPart, InstallsPart, UpkeepPart):
    """The store for several instances on one PostgreSQL server."""
