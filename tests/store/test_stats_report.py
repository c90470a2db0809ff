"""`/callstats`'s figures from the store (SQLite or PostgreSQL) on known data: filters, the
previous period, breakdowns, calls per day in the reader's zone, the extracted fields by
type, empty periods and calls with no analysis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from storage.base import Store
from storage.models import STAGE_ANALYZED, STAGE_ENDED, CallFilter, CallRecord
from tests.support.stores import store_for

DAY = 86400.0
T0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC).timestamp()  # a Tuesday, noon UTC


def call(n: int, at: float, **kw: Any) -> CallRecord:
    base: dict[str, Any] = dict(
        id=0, call_id=f"call_{n}", direction="outbound", status="ended", stage=STAGE_ANALYZED,
        created_at=at, updated_at=at, user_id="U1", channel_id="C1", agent_id="agent_a",
        agent_name="Sales", to_number=f"+1415555{n:04d}", duration_ms=60_000,
        disconnection_reason="user_hangup", sentiment="Positive", successful=True,
        cost_cents=10.0, latency_ms=1000.0 + n)
    base.update(kw)
    return CallRecord(**base)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with store_for(tmp_path / "stats.db") as s:
        await s.import_calls([
            # this week: 4 calls of Sales (U1), 2 of Survey (U2), 1 unanswered, 1 unanalysed
            call(1, T0),
            call(2, T0 + 60, successful=False, sentiment="Negative", cost_cents=20.0,
                 latency_ms=3000.0),
            call(3, T0 + 120, extracted={"will_attend": True, "rating": 4, "city": "Bangkok"}),
            call(4, T0 + 180, extracted={"will_attend": False, "rating": 2, "city": "Bangkok"}),
            call(5, T0 - DAY, user_id="U2", agent_id="agent_b", agent_name="Survey",
                 extracted={"will_attend": True, "rating": 5, "city": "Chiang Mai"}),
            call(6, T0 - DAY, user_id="U2", agent_id="agent_b", agent_name="Survey",
                 campaign_id=7, direction="inbound"),
            call(7, T0 - 2 * DAY, duration_ms=0, disconnection_reason="dial_no_answer",
                 successful=None, sentiment=None, stage=STAGE_ENDED, cost_cents=0.0,
                 latency_ms=None),
            call(8, T0 - 2 * DAY, successful=None, sentiment=None, stage=STAGE_ENDED),
            # the week before: 2 calls
            call(9, T0 - 8 * DAY), call(10, T0 - 9 * DAY, successful=False),
        ])
        yield s


def week(until: float = T0 + 3600) -> CallFilter:
    return CallFilter(since=until - 7 * DAY, until=until)


async def test_the_figures_of_a_period_and_the_one_before(store: Store) -> None:
    flt = week()
    before = CallFilter(since=flt.since - 7 * DAY, until=flt.since)  # type: ignore[operator]
    report = await store.report(flt, previous=before)
    s = report.stats
    assert (s.calls, s.connected, s.analyzed, s.successful) == (8, 7, 6, 5)
    assert s.total_cost_cents == 10 * 6 + 20
    assert s.sentiments["Negative"] == 1 and s.sentiments["Unknown"] == 2
    assert dict(s.top_reasons)["dial_no_answer"] == 1
    assert report.latency_p50_ms == 1005.0  # the median of seven: 1001, 1003..1006, 1008, 3000
    assert report.previous is not None and report.previous.calls == 2
    assert report.previous.successful == 1


async def test_filters_all_hold_together(store: Store) -> None:
    survey = await store.report(CallFilter(agent="survey"), with_fields=False)
    assert survey.stats.calls == 2
    by_id = await store.report(CallFilter(agent="agent_b"), with_fields=False)
    assert by_id.stats.calls == 2
    mine = await store.report(CallFilter(user_id="U1", outcome="no-answer"), with_fields=False)
    assert mine.stats.calls == 1
    failed = await store.report(CallFilter(outcome="failed"), with_fields=False)
    assert failed.stats.calls == 2  # calls 2 and 10 were judged unsuccessful
    inbound = await store.report(CallFilter(direction="inbound", campaign_id=7),
                                 with_fields=False)
    assert inbound.stats.calls == 1
    empty = await store.report(CallFilter(since=T0 + DAY), with_fields=False)
    assert empty.stats.calls == 0 and empty.latency_p50_ms is None
    assert empty.stats.median_duration_ms is None


async def test_breakdowns_by_agent_user_campaign_and_day_in_the_readers_zone(
    store: Store
) -> None:
    by_agent = await store.report(week(), by="agent", with_fields=False)
    assert [(b.key, b.calls, b.successful) for b in by_agent.breakdown] == \
        [("Sales", 6, 3), ("Survey", 2, 2)]
    by_user = await store.report(week(), by="user", with_fields=False)
    assert {b.key: b.calls for b in by_user.breakdown} == {"U1": 6, "U2": 2}
    by_campaign = await store.report(week(), by="campaign", with_fields=False)
    assert {b.key: b.calls for b in by_campaign.breakdown} == {"": 7, "7": 1}

    def bangkok(epoch: float) -> str:
        return datetime.fromtimestamp(epoch, ZoneInfo("Asia/Bangkok")).strftime("%Y-%m-%d")

    by_day = await store.report(week(), by="day", days_in=bangkok, with_fields=False)
    assert [(b.key, b.calls) for b in by_day.breakdown] == \
        [("2026-11-08", 2), ("2026-11-09", 2), ("2026-11-10", 4)]
    assert [(d.day, d.successful, d.failed, d.no_answer, d.other)
            for d in by_day.days] == [("2026-11-08", 0, 0, 1, 1), ("2026-11-09", 2, 0, 0, 0),
                                      ("2026-11-10", 3, 1, 0, 0)]


async def test_extracted_fields_are_summarised_by_their_type(store: Store) -> None:
    report = await store.report(week())
    fields = {f.name: f for f in report.fields}
    assert set(fields) == {"will_attend", "rating", "city"}
    assert (fields["will_attend"].kind, fields["will_attend"].yes,
            fields["will_attend"].no) == ("boolean", 2, 1)
    rating = fields["rating"]
    assert (rating.kind, rating.mean, rating.median, rating.low, rating.high) == \
        ("number", pytest.approx(11 / 3), 4.0, 2.0, 5.0)
    assert fields["city"].kind == "text"
    assert fields["city"].top == (("Bangkok", 2), ("Chiang Mai", 1))
    picked = await store.report(week(), fields=("rating",))
    assert [f.name for f in picked.fields] == ["rating"]
