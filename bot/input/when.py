"""When a scheduled call should go: `at tomorrow 9am`, `at 2026-12-01 09:30`, `at friday 14:00`,
`in 2 hours`, read with `dateparser` in the requester's own time zone. Pure functions (the
caller runs `parse_when` off the event loop: dateparser does real work on odd text).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.input.mistakes import Mistake, typed

MAX_WHEN_TEXT = 60  # "at next Wednesday 14:30" is 23; past this nothing is read
# A time of day must be said: "tuesday" alone is ambiguous (which hour?).
_HAS_TIME = re.compile(r"\d|\b(?:noon|midnight)\b|เที่ยง", re.IGNORECASE)
_KEYWORD = re.compile(r"\s(at|in)\s+(\S.*)$", re.IGNORECASE | re.DOTALL)
_TIME_ONLY = re.compile(r"^\s*\d{1,2}(?:[:.]\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)?\s*$",
                        re.IGNORECASE)
LANGUAGES = ["en", "th"]  # what the text may be written in (others are not tried: speed)


class WhenError(Mistake):
    """A time people can fix: unreadable, without a time of day, past, too far ahead."""


def split_when(text: str) -> tuple[str, str, str] | None:
    """(the call's own text, `at` or `in`, the time text) when `text` ends with one: the
    last ` at ` or ` in ` outside quotes, so an agent named "Check in" still works when a
    time follows it (and a value with " at " in it is quoted anyway)."""
    match = None
    for found in _KEYWORD.finditer(text):
        match = found
    if match is None:
        return None
    before = text[: match.start()]
    if before.count('"') % 2 or before.count("'") % 2:  # inside a quoted value
        return None
    return before.rstrip(), match.group(1).lower(), match.group(2).strip()


def parse_when(keyword: str, text: str, zone: str, now: datetime, max_days: int) -> datetime:
    """The moment `text` names, aware, in `zone` (the requester's); WhenError otherwise."""
    if len(text) > MAX_WHEN_TEXT:
        raise WhenError("when_too_long", limit=MAX_WHEN_TEXT)
    phrase = f"in {text}" if keyword == "in" else text
    if not _HAS_TIME.search(phrase):
        raise WhenError("when_no_time", typed=typed(text))
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    local_now = now.astimezone(tz)
    import dateparser  # here: its data costs memory only once someone schedules a call

    found = dateparser.parse(phrase, languages=LANGUAGES, settings={
        "PREFER_DATES_FROM": "future",
        "TIMEZONE": zone if tz.key == zone else "UTC",
        "RETURN_AS_TIMEZONE_AWARE": True,
        "RELATIVE_BASE": local_now.replace(tzinfo=None),
    })
    if found is None:
        raise WhenError("when_unreadable", typed=typed(text))
    when = found.astimezone(tz)
    if when <= now and _TIME_ONLY.match(text):  # "at 9am" at 10am: tomorrow's 9am
        when = (found + timedelta(days=1)).astimezone(tz)
    if when <= now:
        raise WhenError("when_past", typed=typed(text))
    if when - now > timedelta(days=max_days):
        raise WhenError("when_too_far", limit=max_days)
    return when
