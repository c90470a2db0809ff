"""`/callstats` text: periods in the reader's time zone, filters and options in any order,
the period to compare with, the filter handed to storage, and every mistake worded."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime

import pytest

from bot.input.mistakes import Mistake
from bot.input.stats_query import (
    MAX_RANGE_DAYS,
    MAX_STATS_QUERY_TEXT,
    StatsQuery,
    StatsQueryError,
    parse_stats_query,
)
from bot.render.mistakes import mistake
from storage.models import CallFilter

BANGKOK = "Asia/Bangkok"  # UTC+7, no DST
NEW_YORK = "America/New_York"  # DST 2026: from March 8 to November 1
DAY = 86400.0
_THAI = re.compile(r"[\u0e00-\u0e7f]")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


# Wednesday 09:00 in Bangkok, still Tuesday 21:00 in New York.
NOW = utc(2026, 11, 25, 2, 0)


def ask(text: str, zone: str = BANGKOK, now: float = NOW) -> StatsQuery:
    return parse_stats_query(text, zone=zone, now=now)


def refused(text: str, zone: str = BANGKOK) -> StatsQueryError:
    with pytest.raises(StatsQueryError) as caught:
        ask(text, zone)
    return caught.value


# -- periods ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "7d", "7D"])
def test_no_period_or_7d_is_the_last_seven_days_rolling(text: str) -> None:
    query = ask(text)
    assert (query.period, query.since, query.until) == ("7d", NOW - 7 * DAY, None)


@pytest.mark.parametrize(("text", "days"), [("30d", 30), ("90d", 90), ("30D", 30)])
def test_rolling_windows_end_now(text: str, days: int) -> None:
    query = ask(text, NEW_YORK)
    assert (query.period, query.since, query.until) == (text.lower(), NOW - days * DAY, None)


def test_all_has_no_bounds() -> None:
    query = ask("all")
    assert (query.period, query.since, query.until) == ("all", None, None)


def test_today_starts_at_the_readers_midnight() -> None:
    bangkok, new_york = ask("today", BANGKOK), ask("today", NEW_YORK)
    assert (bangkok.period, bangkok.until) == ("today", None)
    assert bangkok.since == utc(2026, 11, 24, 17)  # Nov 25 00:00 +07
    assert new_york.since == utc(2026, 11, 24, 5)  # Nov 24 00:00 -05: still Tuesday there
    assert (bangkok.zone, new_york.zone) == (BANGKOK, NEW_YORK)


def test_yesterday_is_the_whole_day_before() -> None:
    query = ask("yesterday", BANGKOK)
    assert (query.period, query.since, query.until) == (
        "yesterday", utc(2026, 11, 23, 17), utc(2026, 11, 24, 17))
    assert ask("yesterday", NEW_YORK).since == utc(2026, 11, 23, 5)


def test_yesterday_across_the_end_of_dst_is_25_hours() -> None:
    query = ask("yesterday", NEW_YORK, now=utc(2026, 11, 2, 15))  # Monday 10:00 EST
    assert (query.since, query.until) == (utc(2026, 11, 1, 4), utc(2026, 11, 2, 5))
    assert query.until - query.since == 25 * 3600  # type: ignore[operator]


@pytest.mark.parametrize("text", ["this week", "This  Week", "THIS_WEEK", '"this week"'])
def test_this_week_starts_on_monday_in_the_readers_zone(text: str) -> None:
    query = ask(text)
    assert (query.period, query.since, query.until) == ("this_week", utc(2026, 11, 22, 17), None)
    assert ask(text, NEW_YORK).since == utc(2026, 11, 23, 5)


def test_this_week_on_a_monday_and_on_a_sunday() -> None:
    monday = ask("this week", BANGKOK, now=utc(2026, 11, 23, 1))  # Mon 08:00 +07
    sunday = ask("this week", BANGKOK, now=utc(2026, 11, 29, 10))  # Sun 17:00 +07
    assert monday.since == sunday.since == utc(2026, 11, 22, 17)


@pytest.mark.parametrize("text", ["last month", "Last Month", "last_month"])
def test_last_month_is_the_calendar_month_before(text: str) -> None:
    query = ask(text)
    assert (query.period, query.since, query.until) == (
        "last_month", utc(2026, 9, 30, 17), utc(2026, 10, 31, 17))


def test_last_month_in_new_york_follows_dst_at_each_end() -> None:
    november = ask("last month", NEW_YORK, now=utc(2026, 12, 10, 12))
    assert (november.since, november.until) == (utc(2026, 11, 1, 4), utc(2026, 12, 1, 5))
    assert november.until - november.since == 30 * DAY + 3600  # type: ignore[operator]
    march = ask("last month", NEW_YORK, now=utc(2026, 4, 10, 12))
    assert (march.since, march.until) == (utc(2026, 3, 1, 5), utc(2026, 4, 1, 4))
    assert march.until - march.since == 31 * DAY - 3600  # type: ignore[operator]


def test_last_month_in_january_is_last_years_december() -> None:
    query = ask("last month", NEW_YORK, now=utc(2027, 1, 15, 12))
    assert (query.since, query.until) == (utc(2026, 12, 1, 5), utc(2027, 1, 1, 5))


def test_a_range_covers_both_days_whole_in_the_readers_zone() -> None:
    query = ask("2026-11-01..2026-11-15")
    assert (query.period, query.range_text) == ("range", "2026-11-01..2026-11-15")
    assert (query.since, query.until) == (utc(2026, 10, 31, 17), utc(2026, 11, 15, 17))
    new_york = ask("2026-11-01..2026-11-15", NEW_YORK)  # starts in EDT, ends in EST
    assert (new_york.since, new_york.until) == (utc(2026, 11, 1, 4), utc(2026, 11, 16, 5))


@pytest.mark.parametrize(("text", "normalised"), [
    ("2026-11-1..2026-11-5", "2026-11-01..2026-11-05"),
    ("2026-11-01 .. 2026-11-05", "2026-11-01..2026-11-05"),
    ("2026-11-01.. 2026-11-05", "2026-11-01..2026-11-05"),
    ("2026-11-01 ..2026-11-05", "2026-11-01..2026-11-05"),
    ("2026-11-05..2026-11-05", "2026-11-05..2026-11-05"),
    ("2026-11-05", "2026-11-05..2026-11-05"),  # one day
])
def test_range_spellings(text: str, normalised: str) -> None:
    query = ask(text, "UTC")
    assert (query.period, query.range_text) == ("range", normalised)
    first, last = normalised.split("..")
    assert query.since == datetime.fromisoformat(first).replace(tzinfo=UTC).timestamp()
    assert query.until == datetime.fromisoformat(last).replace(tzinfo=UTC).timestamp() + DAY


def test_a_range_of_exactly_the_longest_length_is_read() -> None:
    query = ask("2020-01-01..2030-01-07", "UTC")  # 3,660 days, both ends included
    assert query.until - query.since == MAX_RANGE_DAYS * DAY  # type: ignore[operator]


@pytest.mark.parametrize(("text", "period"), [
    ("วันนี้", "today"), ("เมื่อวาน", "yesterday"), ("เมื่อวานนี้", "yesterday"),
    ("สัปดาห์นี้", "this_week"), ("เดือนที่แล้ว", "last_month"), ("ทั้งหมด", "all"),
])
def test_thai_period_words(text: str, period: str) -> None:
    assert ask(text).period == period
    assert ask(text).since == ask(period).since


def test_an_unknown_zone_is_utc() -> None:
    query = ask("today", "Mars/Olympus_Mons")
    assert (query.zone, query.since) == ("UTC", utc(2026, 11, 25))
    assert ask("today", "").zone == "UTC"


def test_the_moment_asked_is_kept() -> None:
    assert ask("all").now == NOW


# -- filters and options ----------------------------------------------------------------


def test_every_filter_and_option_at_once() -> None:
    query = ask('yesterday agent:"Sales Bot" user:<@U0A1|alice> channel:<#C0B2|sales> '
                'campaign:"Spring sale" direction:out outcome:no-answer by:campaign chart '
                "fields:score,budget export:jsonl")
    assert query == StatsQuery(
        period="yesterday", since=utc(2026, 11, 23, 17), until=utc(2026, 11, 24, 17), now=NOW,
        zone=BANGKOK, agent="Sales Bot", user_id="U0A1", channel_id="C0B2",
        campaign="Spring sale", direction="outbound", outcome="no-answer", by="campaign",
        chart=True, fields=("score", "budget"), want_fields=True, export="jsonl",
    )


def test_nothing_but_a_period_leaves_every_filter_open() -> None:
    query = ask("today")
    assert (query.agent, query.user_id, query.channel_id, query.campaign, query.direction,
            query.outcome, query.by, query.chart, query.fields, query.export,
            query.range_text) == (None,) * 7 + (False, None, None, None)


def test_filters_in_any_order_read_the_same() -> None:
    tokens = ["30d", "agent:agent_0123", "user:<@U0A1>", "direction:in", "chart"]
    first = ask(" ".join(tokens))
    assert (first.period, first.agent, first.user_id, first.direction, first.chart) == (
        "30d", "agent_0123", "U0A1", "inbound", True)
    for order in itertools.permutations(tokens):
        assert ask(" ".join(order)) == first, order


def test_a_two_word_period_among_filters() -> None:
    query = ask("outcome:failed last month by:agent")
    assert (query.period, query.outcome, query.by) == ("last_month", "failed", "agent")


def test_keywords_ignore_case_and_values_keep_theirs() -> None:
    query = ask("TODAY Agent:SalesBot DIRECTION:IN Outcome:Success BY:Day CHART Export:CSV")
    assert (query.period, query.agent, query.direction, query.outcome, query.by,
            query.chart, query.export) == ("today", "SalesBot", "inbound", "success", "day",
                                           True, "csv")


@pytest.mark.parametrize(("text", "user_id"), [
    ("user:<@U0A1>", "U0A1"),
    ("user:<@U0A1|alice>", "U0A1"),
    ("user:<@U0A1|alice smith>", "U0A1"),  # a label with a space is one word still
    ('user:<@W0A1|al"ice>', "W0A1"),  # nor does a quote in it open a quoted value
    ("user:U0A1B2", "U0A1B2"),
    ("user: <@U0A1>", "U0A1"),  # the value may follow the colon after a space
])
def test_user_from_a_mention_or_an_id(text: str, user_id: str) -> None:
    assert ask(text).user_id == user_id


@pytest.mark.parametrize(("text", "channel_id"), [
    ("channel:<#C0A1>", "C0A1"), ("channel:<#C0A1|sales>", "C0A1"),
    ("channel:C0A1B2", "C0A1B2"), ("channel:G0A1B2", "G0A1B2"),
])
def test_channel_from_a_link_or_an_id(text: str, channel_id: str) -> None:
    assert ask(text).channel_id == channel_id


@pytest.mark.parametrize(("text", "campaign"), [
    ("campaign:Spring", "Spring"),
    ('campaign:"Spring sale"', "Spring sale"),
    ('"campaign:Spring sale"', "Spring sale"),
    ("campaign:“Spring sale”", "Spring sale"),  # Slack's smart quotes
    ("campaign:<http://spring.sale|spring.sale>", "spring.sale"),  # Slack made it a link
    ("campaign: Spring", "Spring"),
])
def test_campaign_names(text: str, campaign: str) -> None:
    assert ask(text).campaign == campaign


@pytest.mark.parametrize(("text", "agent"), [
    ("agent:Sales", "Sales"), ('agent:"Sales Bot"', "Sales Bot"),
    ("agent:agent_0123abcd", "agent_0123abcd"), ("agent:v2:beta", "v2:beta"),
    ("agent: Sales 30d", "Sales"),
])
def test_agent_names_and_ids(text: str, agent: str) -> None:
    assert ask(text).agent == agent


@pytest.mark.parametrize(("text", "direction", "outcome"), [
    ("direction:in", "inbound", None), ("direction:out", "outbound", None),
    ("direction:inbound", "inbound", None), ("direction:outbound", "outbound", None),
    ("outcome:success", None, "success"), ("outcome:failed", None, "failed"),
    ("outcome:no-answer", None, "no-answer"), ("outcome:no_answer", None, "no-answer"),
])
def test_direction_and_outcome(text: str, direction: str | None, outcome: str | None) -> None:
    query = ask(text)
    assert (query.direction, query.outcome) == (direction, outcome)


@pytest.mark.parametrize("by", ["agent", "user", "day", "campaign"])
def test_breakdowns(by: str) -> None:
    assert ask(f"by:{by}").by == by


@pytest.mark.parametrize(("text", "fields"), [
    ("", None), ("fields", None), ("fields:", None), ("fields:,", None),
    ("fields:score", ("score",)),
    ("fields:score,Budget", ("score", "Budget")),
    ("fields:score, budget", ("score", "budget")),  # a space after the comma
    ("fields:a,a,b", ("a", "b")),
    ('fields:"lead score,budget"', ("lead score", "budget")),
])
def test_fields(text: str, fields: tuple[str, ...] | None) -> None:
    assert ask(text).fields == fields


@pytest.mark.parametrize(("text", "export"), [
    ("", None), ("export", "csv"), ("export:", "csv"), ("export:csv", "csv"),
    ("export:JSONL", "jsonl"),
])
def test_export(text: str, export: str | None) -> None:
    assert ask(text).export == export


def test_chart() -> None:
    assert ask("chart").chart is True
    assert ask("7d").chart is False


# -- the period to compare with ---------------------------------------------------------


def test_previous_of_a_rolling_window_is_the_same_window_just_before() -> None:
    assert ask("7d").previous() == (NOW - 14 * DAY, NOW - 7 * DAY)
    assert ask("90d").previous() == (NOW - 180 * DAY, NOW - 90 * DAY)


def test_previous_of_all_is_none() -> None:
    assert ask("all").previous() is None


def test_previous_of_today_is_yesterday_up_to_the_same_time() -> None:
    # Wednesday 09:00 in Bangkok: Tuesday 00:00 to 09:00.
    assert ask("today").previous() == (utc(2026, 11, 23, 17), utc(2026, 11, 24, 2))


def test_previous_of_this_week_is_last_week_up_to_the_same_time() -> None:
    assert ask("this week").previous() == (utc(2026, 11, 15, 17), utc(2026, 11, 18, 2))


def test_previous_of_today_the_day_after_dst_ends_keeps_the_wall_clock() -> None:
    query = ask("today", NEW_YORK, now=utc(2026, 11, 2, 15))  # Monday 10:00 EST
    assert query.previous() == (utc(2026, 11, 1, 4), utc(2026, 11, 1, 15))  # Sun 10:00 EST


def test_previous_of_yesterday_is_the_day_before_it() -> None:
    query = ask("yesterday", NEW_YORK, now=utc(2026, 11, 3, 15))
    assert query.previous() == (utc(2026, 11, 1, 4), utc(2026, 11, 2, 5))  # 25 hours


def test_previous_of_last_month_is_the_calendar_month_before_it() -> None:
    query = ask("last month", NEW_YORK, now=utc(2026, 12, 10, 12))  # November
    assert query.previous() == (utc(2026, 10, 1, 4), utc(2026, 11, 1, 4))  # October
    january = ask("last month", BANGKOK, now=utc(2027, 2, 3))  # January 2027
    assert january.previous() == (utc(2026, 11, 30, 17), utc(2026, 12, 31, 17))


def test_previous_of_a_range_is_as_many_days_just_before() -> None:
    query = ask("2026-11-01..2026-11-15")  # 15 days
    assert query.previous() == (utc(2026, 10, 16, 17), utc(2026, 10, 31, 17))
    one_day = ask("2026-03-08", NEW_YORK)  # the 23-hour day DST starts
    assert one_day.previous() == (utc(2026, 3, 7, 5), utc(2026, 3, 8, 5))


def test_previous_ends_no_later_than_the_period_starts() -> None:
    for text in ["today", "yesterday", "7d", "30d", "90d", "this week", "last month",
                 "2026-11-01..2026-11-15"]:
        for zone in (BANGKOK, NEW_YORK):
            query = ask(text, zone)
            previous = query.previous()
            assert previous is not None and query.since is not None
            assert previous[0] < previous[1] <= query.since, (text, zone)


def test_previous_of_a_hand_made_period_without_an_end_is_as_long_just_before() -> None:
    query = StatsQuery(period="range", since=NOW - 100, until=None, now=NOW)
    assert query.previous() == (NOW - 200, NOW - 100)


# -- the filter handed to storage -------------------------------------------------------


def test_call_filter_carries_every_filter() -> None:
    query = ask("2026-11-01..2026-11-15 agent:Sales user:<@U0A1> channel:<#C0B2> "
                "campaign:Spring direction:in outcome:failed by:day chart export")
    assert query.call_filter(campaign_id=7) == CallFilter(
        since=utc(2026, 10, 31, 17), until=utc(2026, 11, 15, 17), agent="Sales",
        user_id="U0A1", channel_id="C0B2", campaign_id=7, direction="inbound",
        outcome="failed",
    )


def test_call_filter_of_a_bare_period() -> None:
    assert ask("all").call_filter() == CallFilter()
    assert ask("today").call_filter() == CallFilter(since=utc(2026, 11, 24, 17))


def test_a_campaign_named_but_not_resolved_is_not_silently_dropped() -> None:
    with pytest.raises(ValueError, match="not resolved"):
        ask("campaign:Spring").call_filter()


# -- mistakes ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "code", "facts"), [
    ("foo", "stats_unknown_word", {"typed": "foo"}),
    ("7d yesterday-ish", "stats_unknown_word", {"typed": "yesterday-ish"}),
    ("this", "stats_unknown_word", {"typed": "this"}),
    ("last week", "stats_unknown_word", {"typed": "last"}),
    ("color:red", "stats_unknown_word", {"typed": "color:red"}),
    ("chart:yes", "stats_unknown_word", {"typed": "chart:yes"}),
    ("2026/11/01", "stats_unknown_word", {"typed": "2026/11/01"}),
    ("today 7d", "stats_two_periods", {"typed": "7d"}),
    ("7d 7d", "stats_two_periods", {"typed": "7d"}),
    ("this week last month", "stats_two_periods", {"typed": "last month"}),
    ("2026-11-01 today", "stats_two_periods", {"typed": "today"}),
    ("agent:a agent:b", "stats_repeated", {"key": "agent"}),
    ("user:<@U0A1> USER:<@U0A2>", "stats_repeated", {"key": "user"}),
    ("channel:C0A1B2 channel:C0A1B2", "stats_repeated", {"key": "channel"}),
    ("campaign:a campaign:b", "stats_repeated", {"key": "campaign"}),
    ("direction:in direction:out", "stats_repeated", {"key": "direction"}),
    ("outcome:failed outcome:success", "stats_repeated", {"key": "outcome"}),
    ("by:day by:agent", "stats_repeated", {"key": "by"}),
    ("chart chart", "stats_repeated", {"key": "chart"}),
    ("fields fields:a", "stats_repeated", {"key": "fields"}),
    ("export export:csv", "stats_repeated", {"key": "export"}),
    ("agent:", "stats_no_value", {"key": "agent", "example": "agent:Sales"}),
    ("agent", "stats_no_value", {"key": "agent", "example": "agent:Sales"}),
    ("7d user:", "stats_no_value", {"key": "user", "example": "user:@someone"}),
    ("by:", "stats_no_value", {"key": "by", "example": "by:day"}),
    ("direction", "stats_no_value", {"key": "direction", "example": "direction:in"}),
    ("direction:sideways", "stats_bad_value",
     {"key": "direction", "typed": "sideways", "choices": "`in`, `out`"}),
    ("outcome:busy", "stats_bad_value",
     {"key": "outcome", "typed": "busy", "choices": "`success`, `failed`, `no-answer`"}),
    ("by:week", "stats_bad_value",
     {"key": "by", "typed": "week", "choices": "`agent`, `user`, `day`, `campaign`"}),
    ("export:xml", "stats_bad_value",
     {"key": "export", "typed": "xml", "choices": "`csv`, `jsonl`"}),
    ("user:@alice", "stats_bad_user", {"typed": "@alice"}),  # not escaped by Slack
    ("user:alice", "stats_bad_user", {"typed": "alice"}),
    ("user:<!here>", "stats_bad_user", {"typed": "<!here>"}),
    ("channel:#sales", "stats_bad_channel", {"typed": "#sales"}),
    ("channel:general", "stats_bad_channel", {"typed": "general"}),
    ("2026-02-29", "stats_bad_date", {"typed": "2026-02-29"}),  # 2026 is not a leap year
    ("2026-11-01..2026-13-01", "stats_bad_date", {"typed": "2026-13-01"}),
    ("2026-11-31..2026-12-02", "stats_bad_date", {"typed": "2026-11-31"}),
    ("0000-01-01", "stats_bad_date", {"typed": "0000-01-01"}),
    ("9999-12-31", "stats_bad_date", {"typed": "9999-12-31"}),  # no day after it
    ("2026-11-01..", "stats_bad_date", {"typed": "2026-11-01.."}),
    ("..2026-11-01", "stats_bad_date", {"typed": "..2026-11-01"}),
    ("2026-11-01...2026-11-03", "stats_bad_date", {"typed": "2026-11-01...2026-11-03"}),
    ("2026-11", "stats_bad_date", {"typed": "2026-11"}),
    ("2026-11-15..2026-11-01", "stats_bad_range", {"typed": "2026-11-15..2026-11-01"}),
    ("2020-01-01..2030-01-08", "stats_range_too_long",
     {"typed": "2020-01-01..2030-01-08", "limit": MAX_RANGE_DAYS}),
    ('campaign:"Spring', "unclosed_quote", {}),
    ("agent:a\\", "trailing_backslash", {}),
])
def test_mistakes_name_the_problem(text: str, code: str, facts: dict[str, object]) -> None:
    error = refused(text)
    assert (error.code, error.facts) == (code, facts)
    assert isinstance(error, Mistake)
    english, thai = mistake(error, "en"), mistake(error, "th")
    assert english and _THAI.search(thai), (english, thai)
    for name in ("key", "example"):
        if name in facts:
            assert f"`{facts[name]}" in english and f"`{facts[name]}" in thai


def test_too_long_text_is_refused_before_it_is_read() -> None:
    error = refused("x" * (MAX_STATS_QUERY_TEXT + 1))  # not read: no unknown word
    assert (error.code, error.facts) == (
        "too_long", {"what": "stats", "length": MAX_STATS_QUERY_TEXT + 1,
                     "limit": MAX_STATS_QUERY_TEXT})
    assert mistake(error, "en") == (
        "The text after `/callstats` is 501 characters long; at most 500 are read.")
    padded = "today" + " " * (MAX_STATS_QUERY_TEXT - len("today"))
    assert ask(padded).period == "today"


def test_mistakes_read_clearly_in_english() -> None:
    assert mistake(refused("foo"), "en").startswith("I don't know `foo` here.")
    assert mistake(refused("today 7d"), "en") == (
        "`7d` is a second period: ask about one period at a time.")
    assert mistake(refused("by:day by:day"), "en") == (
        "`by` is given more than once: give it once.")
    assert mistake(refused("agent:"), "en") == "`agent:` needs a value, e.g. `agent:Sales`."
    assert mistake(refused("direction:up"), "en") == (
        "`up` is not a choice for `direction:`; use one of `in`, `out`.")
    assert mistake(refused("2026-02-30"), "en") == (
        "`2026-02-30` is not a date: write a day as `2026-11-01` and a range as "
        "`2026-11-01..2026-11-15`.")
    assert mistake(refused("2026-11-15..2026-11-01"), "en") == (
        "`2026-11-15..2026-11-01` ends before it starts: put the first day first.")
    assert mistake(refused("2000-01-01..2026-01-01"), "en") == (
        "`2000-01-01..2026-01-01` is longer than 3,660 days: ask about a shorter range.")
    assert "after `user:` type @" in mistake(refused("user:@alice"), "en")
    assert "after `channel:` type #" in mistake(refused("channel:#sales"), "en")


def test_what_was_typed_is_echoed_inert() -> None:
    words = mistake(refused("<!channel>"), "en")  # an unknown word that would ping
    assert "<!channel>" not in words and "&lt;!channel&gt;" in words


def test_the_first_mistake_is_the_one_named() -> None:
    assert refused("foo agent:a agent:b").facts == {"typed": "foo"}
    assert refused("agent:a agent:b foo").facts == {"key": "agent"}


@pytest.mark.parametrize("text", ["<" * 500, "<@" * 250, "<#C" * 166, '"' * 499 + "x",
                                  "2026-" * 100, ".." * 250, "a:" * 250])
def test_hostile_text_is_a_mistake_not_a_crash(text: str) -> None:
    with pytest.raises(StatsQueryError):
        ask(text)


def test_fields_are_summarised_only_when_asked_for() -> None:
    assert ask("30d").want_fields is False
    assert ask("30d fields").want_fields is True and ask("30d fields").fields is None
    assert ask("30d fields:a,b").want_fields is True


@pytest.mark.slow  # a year of quarter hours in each zone
@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kathmandu",
                                  "America/Santiago", "Asia/Beirut", "Australia/Lord_Howe"])
def test_day_in_names_each_quarter_hour_as_the_zone_does_across_changes_of_offset(
        zone: str) -> None:
    """Every quarter hour over a year, asked in order then backwards (what the chart and
    `by:day` ask), named as a fresh time-zone lookup names it."""
    from datetime import datetime as dt
    from zoneinfo import ZoneInfo

    from bot.calls.insights import day_in

    tz = ZoneInfo(zone)
    quarters = [1_735_689_600.0 + 900 * i for i in range(366 * 96)]  # from 2025-01-01
    for order in (quarters, quarters[::-1]):
        day = day_in(zone)
        assert [day(q) for q in order] == [dt.fromtimestamp(q, tz).strftime("%Y-%m-%d")
                                          for q in order]
