"""Calling-hours windows relative to the present, so suites run at any hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


def window_around(zone: str, *, open_now: bool) -> str:
    """A window (HH:MM-HH:MM) that holds now in `zone`, or one that does not: later today
    (in 2 hours), or earlier today in the late evening; never across midnight."""
    local = datetime.now(UTC).astimezone(ZoneInfo(zone))
    if open_now:
        start = max(local - timedelta(minutes=30), local.replace(hour=0, minute=0))
        end = min(local + timedelta(minutes=30), local.replace(hour=23, minute=59))
    else:
        start = local + timedelta(hours=2)
        end = start + timedelta(hours=1)
        if end.date() != local.date():  # late evening: a window earlier today instead
            start = local.replace(hour=0, minute=0)
            end = local - timedelta(hours=1)
    return f"{start:%H:%M}-{end:%H:%M}"
