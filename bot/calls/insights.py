"""Questions about the call history: `/callstats` with its periods, filters, breakdowns and
extracted fields, and the calls an export streams. No Slack types here; the answer is data
that bot/render words (and draws: the chart is rendered by the caller, off the loop)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from bot.input.stats_query import StatsQuery
from storage.base import CampaignStore, StatsStore
from storage.models import CallFilter, StatsReport


class UnknownCampaign(Exception):
    """`campaign:<name>` names no campaign."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True)
class Insight:
    report: StatsReport
    campaigns: dict[str, str]  # campaign id (as text) -> name, for the breakdown's keys
    filter: CallFilter


class InsightStore(StatsStore, CampaignStore, Protocol):
    """What insights read."""


def day_in(zone: str) -> Callable[[float], str]:
    """epoch -> the day (YYYY-MM-DD) it falls on in `zone`. Thousands of quarter hours are
    asked in order, so the last day's span is kept: one time-zone lookup per day, not per
    quarter hour. A span whose midnight the zone skips or repeats is not kept (exact)."""
    tz = ZoneInfo(zone)
    span: list[Any] = [0.0, 0.0, ""]  # [start, end) of the last day found, and its name

    def day(epoch: float) -> str:
        if span[0] <= epoch < span[1]:
            return str(span[2])
        local = datetime.fromtimestamp(epoch, tz)
        name = local.strftime("%Y-%m-%d")
        start = datetime(local.year, local.month, local.day, tzinfo=tz).timestamp()
        end = (datetime(local.year, local.month, local.day, tzinfo=tz)
               + timedelta(days=1)).timestamp()
        if (start <= epoch < end
                and datetime.fromtimestamp(start, tz).strftime("%Y-%m-%d") == name
                and datetime.fromtimestamp(start - 1, tz).strftime("%Y-%m-%d") != name
                and datetime.fromtimestamp(end, tz).strftime("%Y-%m-%d") != name
                and datetime.fromtimestamp(end - 1, tz).strftime("%Y-%m-%d") == name):
            span[:] = [start, end, name]
        return name

    return day


class Insights:
    def __init__(self, store: InsightStore) -> None:
        self.store = store

    async def call_filter(self, query: StatsQuery, *, only_user: str | None = None,
                          team_id: str | None = None) -> CallFilter:
        """The calls a query is about; `only_user`: whatever it said, only theirs;
        `team_id`: only that workspace's (its campaigns too)."""
        campaign_id = None
        if query.campaign is not None:
            found = await self.store.find_campaigns(name=query.campaign, limit=1,
                                                   team_id=team_id)
            if not found:
                raise UnknownCampaign(query.campaign)
            campaign_id = found[0].id
        flt = replace(query.call_filter(campaign_id=campaign_id), team_id=team_id)
        return replace(flt, user_id=only_user) if only_user else flt

    async def report(self, query: StatsQuery, *, team_id: str | None = None) -> Insight:
        flt = await self.call_filter(query, team_id=team_id)
        before = query.previous()
        previous = replace(flt, since=before[0], until=before[1]) if before else None
        want_days = query.chart or query.by == "day"
        report = await self.store.report(
            flt, previous=previous, by=query.by, fields=query.fields,
            with_fields=query.want_fields,
            days_in=day_in(query.zone) if want_days else None)
        names: dict[str, str] = {}
        if query.by == "campaign":
            for row in report.breakdown:
                if row.key.isdigit():
                    campaign = await self.store.get_campaign(int(row.key))
                    if campaign is not None:
                        names[row.key] = campaign.name
        return Insight(report, names, flt)
