"""Calling hours in the called person's local time. Pure functions, no I/O.

A number's time zones come from `phonenumbers` (a US area code has one; a US toll-free
number or a Russian mobile has many). Where a number maps to several zones the window must
hold in all of them, since we cannot know which one the person is in; a number with no known
zone is refused unless calling hours are `any`. Overrides are per country (`GB`) or, for the
US and Canada, per state or province (`US-FL`), read from `phonenumbers`' geocoder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS = frozenset(range(7))
UNKNOWN_ZONE = "Etc/Unknown"
# How far ahead the next opening is looked for: a week and a day covers any set of days.
SEARCH_DAYS = 8
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
_REGION = re.compile(r"^[A-Z]{2}(?:-[A-Z]{2})?$")

US_STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA",
    "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD",
    "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS",
    "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
    "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY",
    "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK",
    "Oregon": "OR", "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC",
    "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT",
    "Virginia": "VA", "Washington": "WA", "West Virginia": "WV", "Wisconsin": "WI",
    "Wyoming": "WY", "Washington D.C.": "DC", "Washington DC": "DC",
    "Alberta": "AB", "British Columbia": "BC", "Manitoba": "MB", "New Brunswick": "NB",
    "Newfoundland and Labrador": "NL", "Nova Scotia": "NS", "Ontario": "ON",
    "Prince Edward Island": "PE", "Quebec": "QC", "Saskatchewan": "SK",
}
_STATE_CODE = re.compile(r",\s*([A-Z]{2})$")


class HoursError(ValueError):
    """A calling-hours setting that cannot be read; the message says how to write it."""


@dataclass(frozen=True)
class Window:
    """From `start` to `end`, minutes after local midnight (end excluded)."""

    start: int
    end: int

    def holds(self, minute: int) -> bool:
        return self.start <= minute < self.end

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class CallingHours:
    window: Window | None  # None: any time, any day, any number
    days: frozenset[int] = ALL_DAYS  # 0 is Monday
    overrides: dict[str, Window] = field(default_factory=dict)  # "GB", "US-FL"


@dataclass(frozen=True)
class Verdict:
    """Whether a call may go now; where not, the callee's local times and when it opens."""

    open: bool
    zones: tuple[str, ...] = ()
    window: Window | None = None
    opens_at: datetime | None = None  # UTC; None: not within SEARCH_DAYS (or no zone)

    def local_times(self, at: datetime) -> list[tuple[str, datetime]]:
        return [(zone, at.astimezone(_zone(zone))) for zone in self.zones]


def parse_window(text: str) -> Window | None:
    """`08:00-21:00`, or `any` (None)."""
    text = text.strip().lower()
    if text in ("any", "always", "24h"):
        return None
    match = _WINDOW.match(text)
    if not match:
        raise HoursError(f"must be HH:MM-HH:MM such as 08:00-21:00, or any; not {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end > 24 * 60 or end <= start:
        raise HoursError(f"must end after it starts, on the same day: {text!r}")
    return Window(start, end)


def parse_days(text: str) -> frozenset[int]:
    """`mon-fri`, `mon,wed,fri`, `sat-sun`; empty means every day."""
    days: set[int] = set()
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise HoursError(f"must be days such as mon-fri or mon,wed,fri; not {part!r}")
        a, b = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days) or ALL_DAYS


def parse_overrides(text: str) -> dict[str, Window]:
    """`US-FL=08:00-20:00,GB=09:00-20:00`."""
    overrides: dict[str, Window] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        region, _, window = part.partition("=")
        region = region.strip().upper()
        if not _REGION.match(region) or not window:
            raise HoursError(f"must be pairs such as US-FL=08:00-20:00; not {part!r}")
        parsed = parse_window(window)
        if parsed is None:
            raise HoursError(f"an override needs hours, not any: {part!r}")
        overrides[region] = parsed
    return overrides


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@cache
def places(e164: str, states: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(time zones, override keys most specific first) for a number; `states`: read the US
    state or Canadian province too (only when an override names one: phonenumbers'
    geocoder holds about 100 MB of data once loaded)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return (), ()
    zones = []
    for name in timezone.time_zones_for_number(number):
        if name == UNKNOWN_ZONE:
            continue
        try:
            _zone(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        zones.append(name)
    region = phonenumbers.region_code_for_number(number) or ""
    keys: list[str] = []
    if states and region in ("US", "CA"):
        from phonenumbers import geocoder

        where = geocoder.description_for_number(number, "en")
        code = _STATE_CODE.search(where)
        state = code.group(1) if code else US_STATES.get(where.strip())
        if state:
            keys.append(f"{region}-{state}")
    if region:
        keys.append(region)
    return tuple(zones), tuple(keys)


def callee_time(e164: str, epoch: float) -> datetime:
    """`epoch` on the callee's clock: the number's first zone (UTC when it has none)."""
    zones, _ = places(e164)
    return datetime.fromtimestamp(epoch, _zone(zones[0]) if zones else UTC)


def _open_at(hours: CallingHours, window: Window, zones: tuple[str, ...], at: datetime) -> bool:
    for name in zones:
        local = at.astimezone(_zone(name))
        if local.weekday() not in hours.days or not window.holds(local.hour * 60 + local.minute):
            return False
    return True


def verdict(hours: CallingHours, e164: str, now: datetime) -> Verdict:
    """May `e164` be called at `now` (aware)? If not, when the window next holds in every one
    of its zones (searched a week and a day ahead)."""
    if hours.window is None:
        return Verdict(True)
    zones, keys = places(e164, states=any("-" in key for key in hours.overrides))
    window = next((hours.overrides[k] for k in keys if k in hours.overrides), hours.window)
    if not zones:
        return Verdict(False, (), window, None)
    now = now.astimezone(UTC)
    if _open_at(hours, window, zones, now):
        return Verdict(True, zones, window)
    # The earliest instant all zones are open is the start of the window in one of them.
    candidates: list[datetime] = []
    for name in zones:
        today = now.astimezone(_zone(name)).date()
        for offset in range(SEARCH_DAYS):
            day: date = today + timedelta(days=offset)
            start = datetime(day.year, day.month, day.day, window.start // 60,
                             window.start % 60, tzinfo=_zone(name)).astimezone(UTC)
            if start > now:
                candidates.append(start)
    opens = next((c for c in sorted(candidates) if _open_at(hours, window, zones, c)), None)
    return Verdict(False, zones, window, opens)
