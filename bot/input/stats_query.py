"""Reading what people type after `/callstats`: a period, filters and options, in any order.

    /callstats [period] [agent:<name or id>] [user:@someone] [channel:#name]
               [campaign:<name>] [direction:in|out] [outcome:success|failed|no-answer]
               [by:agent|user|day|campaign] [chart] [fields[:a,b,...]] [export[:csv|jsonl]]

Periods: `today`, `yesterday`, `7d`, `30d`, `90d`, `this week`, `last month`, `all`, a day
`2026-11-01` or a range `2026-11-01..2026-11-15` (both days included); Thai `วันนี้`,
`เมื่อวาน`, `สัปดาห์นี้`, `เดือนที่แล้ว`, `ทั้งหมด` too. No period means `7d`. Days (and weeks,
which start on Monday, and months) follow the reader's time zone.

Pure functions, no I/O, linear in the text (capped before anything is read), like
bot/input/parsing.py. Mistakes are `StatsQueryError`s; render/mistakes.py words them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.input.mistakes import Mistake, typed
from bot.input.parsing import PLAIN_TYPING, split_words
from storage.models import CallFilter

MAX_STATS_QUERY_TEXT = 500  # longest `/callstats` text read; past it nothing is parsed
MAX_RANGE_DAYS = 3660  # about ten years
DAY = 86400.0

# The period keys render/ names (`stats.period.<key>`).
PERIODS = ("today", "yesterday", "7d", "30d", "90d", "this_week", "last_month", "all", "range")
ROLLING_DAYS = {"7d": 7, "30d": 30, "90d": 90}
# What people may type for a period (lower case; spaces inside collapsed to one).
_PERIOD_WORDS = {
    "today": "today", "yesterday": "yesterday", "7d": "7d", "30d": "30d", "90d": "90d",
    "this week": "this_week", "this_week": "this_week",
    "last month": "last_month", "last_month": "last_month", "all": "all",
    "วันนี้": "today", "เมื่อวาน": "yesterday", "เมื่อวานนี้": "yesterday",
    "สัปดาห์นี้": "this_week", "อาทิตย์นี้": "this_week",
    "เดือนที่แล้ว": "last_month", "เดือนก่อน": "last_month", "ทั้งหมด": "all",
}
_TWO_WORD_PERIODS = {("this", "week"), ("last", "month")}

# Options with a fixed set of values: what is typed -> what is kept.
_CHOICES: dict[str, dict[str, str]] = {
    "direction": {"in": "inbound", "out": "outbound", "inbound": "inbound",
                  "outbound": "outbound"},
    "outcome": {"success": "success", "failed": "failed", "no-answer": "no-answer",
                "no_answer": "no-answer"},
    "by": {"agent": "agent", "user": "user", "day": "day", "campaign": "campaign"},
    "export": {"csv": "csv", "jsonl": "jsonl"},
}
# What the mistake lists as the choices (the first spelling of each).
_SHOWN_CHOICES = {
    "direction": "`in`, `out`",
    "outcome": "`success`, `failed`, `no-answer`",
    "by": "`agent`, `user`, `day`, `campaign`",
    "export": "`csv`, `jsonl`",
}
# Options that need a value, with an example of one for the mistake.
_EXAMPLES = {
    "agent": "agent:Sales", "user": "user:@someone", "channel": "channel:#sales",
    "campaign": 'campaign:"Spring sale"', "direction": "direction:in",
    "outcome": "outcome:success", "by": "by:day",
}
_BARE = frozenset({"chart", "fields", "export"})  # options that may stand alone

# Slack's escaped mentions, `<@U123|name>` and `<#C123|name>`: the label is dropped (it may
# hold spaces or quotes), the id kept. No `<` or `>` inside, so each try stops at the next.
_MENTION_LABEL = re.compile(r"<([@#][A-Z0-9]+)\|[^<>]*>")
# Any other Slack link (`<http://spring.sale|spring.sale>`, `<tel:...>`): its label.
_SLACK_LINK = re.compile(r"<(?![@#!])(?:tel:|mailto:|https?://)?([^|<>]*)(?:\|([^<>]*))?>")
_USER = re.compile(r"<@([UW][A-Z0-9]+)>|([UW][A-Z0-9]{2,})")
_CHANNEL = re.compile(r"<#([CGD][A-Z0-9]+)>|([CGD][A-Z0-9]{2,})")
_DATE = r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
_RANGE = re.compile(rf"{_DATE}(?:\.\.{_DATE})?")
_DATE_LIKE = re.compile(r"[0-9]{4}-|.*\.\.", re.DOTALL)  # meant as a date, whatever follows
_DATE_PIECE = re.compile(r"[0-9.\-]+")  # a piece of a range typed with spaces around `..`


class StatsQueryError(Mistake):
    """`/callstats` text people can fix; render/mistakes.py tells them how."""


@dataclass(frozen=True, kw_only=True)
class StatsQuery:
    """One `/callstats` question. `since`/`until` are epoch seconds, half-open
    [since, until), None where unbounded; `now` is when it was asked and `zone` the reader's
    time zone (IANA; the one actually used), both needed for `previous()` and `by:day`."""

    period: str  # one of PERIODS
    since: float | None
    until: float | None
    now: float
    zone: str = "UTC"
    range_text: str | None = None  # for `range`: `YYYY-MM-DD..YYYY-MM-DD`
    agent: str | None = None  # an agent id or name, as typed
    user_id: str | None = None
    channel_id: str | None = None
    campaign: str | None = None  # a campaign's name (or whatever was typed): caller resolves
    direction: str | None = None  # inbound | outbound
    outcome: str | None = None  # success | failed | no-answer
    by: str | None = None  # agent | user | day | campaign: a breakdown
    chart: bool = False
    fields: tuple[str, ...] | None = None  # custom_analysis_data fields; None: all
    want_fields: bool = False  # `fields` was asked for (summarising them reads every call)
    export: str | None = None  # csv | jsonl: a file by DM

    def previous(self) -> tuple[float, float] | None:
        """The period to compare with, as (since, until); None for `all`.

        - `7d`/`30d`/`90d`: the same number of seconds just before `since`.
        - a range: the same number of calendar days just before its first day.
        - `yesterday`: the day before; `last month`: the month before (its own length).
        - `today` and `this week`, which are not over: the same stretch of the day (week)
          before, from its start to the same wall-clock time as `now`. So today until 10:00
          is compared with yesterday until 10:00, not with yesterday evening.
        Days are calendar days in `zone`, so a day across a DST change is 23 or 25 hours.
        """
        if self.since is None:
            return None
        if self.period in ROLLING_DAYS:
            return self.since - ROLLING_DAYS[self.period] * DAY, self.since
        tz = _zone(self.zone)
        first = datetime.fromtimestamp(self.since, tz).date()
        if self.period in ("today", "this_week"):
            back = timedelta(days=1 if self.period == "today" else 7)
            same_time = datetime.fromtimestamp(self.now, tz) - back
            return _midnight(first - back, tz), min(same_time.timestamp(), self.since)
        if self.period == "yesterday":
            return _midnight(first - timedelta(days=1), tz), self.since
        if self.period == "last_month":
            return _midnight((first - timedelta(days=1)).replace(day=1), tz), self.since
        if self.until is None:  # a range always has an end; a hand-made query may not
            return self.since - (self.now - self.since), self.since
        days = (datetime.fromtimestamp(self.until, tz).date() - first).days
        return _midnight(first - timedelta(days=days), tz), self.since

    def call_filter(self, *, campaign_id: int | None = None) -> CallFilter:
        """The calls this question is about. A campaign named in the text must be resolved
        by the caller to `campaign_id` (and answered as unknown when it is not): leaving it
        out would answer about every campaign, so that is refused with ValueError."""
        if self.campaign is not None and campaign_id is None:
            raise ValueError("campaign named in the query but not resolved to an id")
        return CallFilter(
            since=self.since, until=self.until, agent=self.agent, user_id=self.user_id,
            channel_id=self.channel_id, campaign_id=campaign_id, direction=self.direction,
            outcome=self.outcome,
        )


def parse_stats_query(text: str, *, zone: str, now: float) -> StatsQuery:
    """The question in `text` (`/callstats`'s text), asked at `now` (epoch seconds) by a
    reader in `zone` (IANA, e.g. "Asia/Bangkok"; an unknown zone is UTC). StatsQueryError
    for anything that cannot be read, naming what."""
    if len(text) > MAX_STATS_QUERY_TEXT:
        raise StatsQueryError("too_long", what="stats", length=len(text),
                              limit=MAX_STATS_QUERY_TEXT)
    tz = _zone(zone)
    tokens = _words(_normalise(text))
    period: str | None = None
    span: tuple[float | None, float | None] = (None, None)
    range_text: str | None = None
    options: dict[str, object] = {}
    at = 0
    while at < len(tokens):
        token = tokens[at]
        low = " ".join(token.lower().split())
        pair = (low, tokens[at + 1].lower()) if at + 1 < len(tokens) else None
        found: str | None = None
        if pair in _TWO_WORD_PERIODS:
            found, token = _PERIOD_WORDS[" ".join(pair)], f"{token} {tokens[at + 1]}"
            at += 1
        elif low in _PERIOD_WORDS:
            found = _PERIOD_WORDS[low]
        elif ":" not in token and _DATE_LIKE.match(token):
            found = "range"
        if found is not None:
            if period is not None:
                raise StatsQueryError("stats_two_periods", typed=typed(token))
            period = found
            if found == "range":
                span, range_text = _range(token, tz)
            else:
                span = _span(found, tz, now)
            at += 1
            continue
        key, colon, value = token.partition(":")
        key = key.lower()
        if key in _EXAMPLES and not colon:  # `agent Sales`: the colon is missing
            raise StatsQueryError("stats_no_value", key=key, example=_EXAMPLES[key])
        if not (key in _EXAMPLES or (key in _BARE and (not colon or key != "chart"))):
            raise StatsQueryError("stats_unknown_word", typed=typed(token))
        if key in options:
            raise StatsQueryError("stats_repeated", key=key)
        value = value.strip()
        if key in _EXAMPLES and not value and at + 1 < len(tokens):
            at += 1  # `agent: Sales`: the value is the next word
            value = tokens[at].strip()
        while key == "fields" and value.endswith(",") and at + 1 < len(tokens):
            at += 1  # `fields:a, b`
            value += tokens[at].strip()
        options[key] = _option(key, value)
        at += 1
    if period is None:
        period, span = "7d", _span("7d", tz, now)
    return StatsQuery(
        period=period, since=span[0], until=span[1], now=now, zone=tz.key,
        range_text=range_text,
        agent=_text(options.get("agent")), user_id=_text(options.get("user")),
        channel_id=_text(options.get("channel")), campaign=_text(options.get("campaign")),
        direction=_text(options.get("direction")), outcome=_text(options.get("outcome")),
        by=_text(options.get("by")), chart="chart" in options,
        fields=_fields(options.get("fields")), want_fields="fields" in options,
        export=_text(options.get("export")),
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return ZoneInfo("UTC")


def _midnight(day: date, tz: ZoneInfo) -> float:
    """The first moment of `day` in `tz` (where midnight is skipped by DST: the first one
    the day has)."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def _normalise(text: str) -> str:
    text = _MENTION_LABEL.sub(r"<\1>", text.translate(PLAIN_TYPING))
    return _SLACK_LINK.sub(lambda m: m.group(2) or m.group(1), text).strip()


def _words(text: str) -> list[str]:
    """Space-separated words ("quoted values" keep their spaces); `2026-11-01 .. 2026-11-15`
    is put back together as one range."""
    try:
        words = split_words(text)
    except ValueError as exc:
        code = "trailing_backslash" if "escaped" in str(exc) else "unclosed_quote"
        raise StatsQueryError(code) from None
    joined: list[str] = []
    for word in words:
        if (joined and (word.startswith("..") or joined[-1].endswith(".."))
                and _DATE_PIECE.fullmatch(word) and _DATE_PIECE.fullmatch(joined[-1])):
            joined[-1] += word
        else:
            joined.append(word)
    return joined


def _span(period: str, tz: ZoneInfo, now: float) -> tuple[float | None, float | None]:
    if period == "all":
        return None, None
    if period in ROLLING_DAYS:
        return now - ROLLING_DAYS[period] * DAY, None
    today = datetime.fromtimestamp(now, tz).date()
    if period == "today":
        return _midnight(today, tz), None
    if period == "yesterday":
        return _midnight(today - timedelta(days=1), tz), _midnight(today, tz)
    if period == "this_week":
        return _midnight(today - timedelta(days=today.weekday()), tz), None
    first_of_month = today.replace(day=1)  # last_month
    last_month = (first_of_month - timedelta(days=1)).replace(day=1)
    return _midnight(last_month, tz), _midnight(first_of_month, tz)


def _range(token: str, tz: ZoneInfo) -> tuple[tuple[float | None, float | None], str]:
    """`2026-11-01..2026-11-15` (or one day): from the first day's start to the end of the
    last, in `tz`."""
    match = _RANGE.fullmatch(token)
    if match is None:
        raise StatsQueryError("stats_bad_date", typed=typed(token))
    numbers = [int(n) for n in match.groups() if n is not None]
    days = []
    for at in range(0, len(numbers), 3):
        year, month, day = numbers[at:at + 3]
        try:
            days.append(date(year, month, day))
        except ValueError:  # no such day: `2026-02-30`, `2026-13-01`
            raise StatsQueryError("stats_bad_date",
                                  typed=f"{year:04d}-{month:02d}-{day:02d}") from None
    first, last = days[0], days[-1]
    if last < first:
        raise StatsQueryError("stats_bad_range", typed=typed(token))
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise StatsQueryError("stats_range_too_long", typed=typed(token), limit=MAX_RANGE_DAYS)
    try:
        end = _midnight(last + timedelta(days=1), tz)
    except OverflowError:  # the last day of year 9999 has no day after it
        raise StatsQueryError("stats_bad_date", typed=typed(token)) from None
    return (_midnight(first, tz), end), f"{first.isoformat()}..{last.isoformat()}"


def _option(key: str, value: str) -> object:
    """What an option's value means; `True` for `chart`."""
    if key == "chart":
        return True
    if key == "fields":
        return tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip())) or None
    if key == "export" and not value:
        return "csv"
    if not value:
        raise StatsQueryError("stats_no_value", key=key, example=_EXAMPLES[key])
    if key in _CHOICES:
        chosen = _CHOICES[key].get(value.lower())
        if chosen is None:
            raise StatsQueryError("stats_bad_value", key=key, typed=typed(value),
                                  choices=_SHOWN_CHOICES[key])
        return chosen
    if key == "user":
        found = _USER.fullmatch(value)
        if found is None:  # `@alice` as typed: Slack did not escape it, or it is no one
            raise StatsQueryError("stats_bad_user", typed=typed(value))
        return found.group(1) or found.group(2)
    if key == "channel":
        found = _CHANNEL.fullmatch(value)
        if found is None:
            raise StatsQueryError("stats_bad_channel", typed=typed(value))
        return found.group(1) or found.group(2)
    return value  # agent, campaign


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _fields(value: object) -> tuple[str, ...] | None:
    return value if isinstance(value, tuple) else None


SEARCH_FILTERS = frozenset({"agent", "user", "channel", "campaign", "direction", "outcome"})
MAX_SEARCH_WORDS = 200  # characters of words to search for


def parse_search_query(text: str, *, zone: str, now: float) -> tuple[str, StatsQuery]:
    """`/callsearch <words> [filters]`: the words to look for, and the calls to look in
    (the same filters and periods as `/callstats`; all time when no period is given). A
    word that is a period (`today`) or a filter (`agent:x`) is read as one."""
    if len(text) > MAX_STATS_QUERY_TEXT:
        raise StatsQueryError("too_long", what="stats", length=len(text),
                              limit=MAX_STATS_QUERY_TEXT)
    tokens = _words(_normalise(text))
    searched: list[str] = []
    filters: list[str] = []
    at = 0
    while at < len(tokens):
        token = tokens[at]
        low = token.lower()
        pair = (low, tokens[at + 1].lower()) if at + 1 < len(tokens) else None
        key = low.partition(":")[0]
        if pair in _TWO_WORD_PERIODS:
            filters.append(f"{token} {tokens[at + 1]}")
            at += 2
            continue
        if low in _PERIOD_WORDS or (":" in token and key in SEARCH_FILTERS) or (
                ":" not in token and _RANGE.fullmatch(token)):
            filters.append(f'"{token}"' if " " in token else token)
        else:
            searched.append(token)
        at += 1
    words = " ".join(searched).strip()
    if not words:
        raise StatsQueryError("search_no_words")
    if len(words) > MAX_SEARCH_WORDS:
        raise StatsQueryError("too_long", what="search", length=len(words),
                              limit=MAX_SEARCH_WORDS)
    query = parse_stats_query(" ".join(filters), zone=zone, now=now)
    if not any(f.lower() in _PERIOD_WORDS or _RANGE.fullmatch(f) or
               tuple(f.lower().split()) in _TWO_WORD_PERIODS for f in filters):
        query = parse_stats_query(" ".join([*filters, "all"]), zone=zone, now=now)
    return words, query
