"""How long a campaign should take, as the preview says: the runner's three bounds (calls at
once, calls per second, each callee's calling hours) walked through in order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.calls.campaigns import estimate
from bot.guard.hours import CallingHours, parse_window, verdict

DAY = 86400.0
T0 = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC


def numbers(count: int) -> list[str]:
    return [f"+1415555{i:04d}" for i in range(count)]


def test_nothing_to_call_takes_no_time() -> None:
    assert estimate([], start=T0, concurrency=5, rate=1.0, call_seconds=120) == 0.0


def test_calls_at_once_bound_a_list_of_long_calls() -> None:
    # 100 calls of 2 minutes, 5 at a time: 20 rounds; each round's starts a second apart.
    took = estimate(numbers(100), start=T0, concurrency=5, rate=1.0, call_seconds=120)
    assert 20 * 120 <= took <= 20 * 120 + 5


def test_the_rate_bounds_a_list_of_short_calls() -> None:
    # 100 calls of 10 s with room for 50 at once: one a second is the bound.
    took = estimate(numbers(100), start=T0, concurrency=50, rate=1.0, call_seconds=10)
    assert took == pytest.approx(99 + 10)


def test_rows_wait_for_their_window_and_carry_on_at_the_next_days_opening() -> None:
    # Open for the first 1,000 s of each day from T0: ten 100 s calls fit in a day.
    def opening(_number: str, at: float) -> float | None:
        into = (at - T0) % DAY
        return at if into < 1000 else at - into + DAY

    took = estimate(numbers(25), start=T0, concurrency=1, rate=10.0, call_seconds=100)
    assert took == pytest.approx(2500)  # without hours: back to back
    took = estimate(numbers(25), start=T0, concurrency=1, rate=10.0, call_seconds=100,
                    opening=opening)
    assert took == pytest.approx(2 * DAY + 5 * 100)  # ten, ten, then the last five


def test_a_list_that_opens_later_starts_then() -> None:
    took = estimate(numbers(10), start=T0, concurrency=10, rate=100.0, call_seconds=60,
                    opening=lambda _n, at: max(at, T0 + 3600))
    assert took == pytest.approx(3600 + 0.09 + 60)


def test_numbers_that_never_open_are_left_out() -> None:
    never = set(numbers(3))
    took = estimate(numbers(13), start=T0, concurrency=1, rate=10.0, call_seconds=60,
                    opening=lambda n, at: None if n in never else at)
    assert took == pytest.approx(10 * 60)


def test_with_real_calling_hours_zones_open_one_after_another() -> None:
    """09:00-17:00 in each callee's zone: at 11:06 UTC London is open, Bangkok (18:06) is
    closed until its 09:00 (02:00 UTC tomorrow), Los Angeles (03:06) until 17:00 UTC."""
    hours = CallingHours(parse_window("09:00-17:00"))

    def opening(number: str, at: float) -> float | None:
        found = verdict(hours, number, datetime.fromtimestamp(at, UTC))
        if found.open:
            return at
        return found.opens_at.timestamp() if found.opens_at else None

    london, bangkok, los_angeles = "+442079460958", "+6621234567", "+14155550100"
    start = datetime(2026, 11, 18, 11, 6, 40, tzinfo=UTC).timestamp()
    assert estimate([london], start=start, concurrency=1, rate=1.0, call_seconds=60,
                    opening=opening) == pytest.approx(60)
    la_opens = datetime(2026, 11, 18, 17, 0, tzinfo=UTC).timestamp()
    bkk_opens = datetime(2026, 11, 19, 2, 0, tzinfo=UTC).timestamp()
    took = estimate([london, bangkok, los_angeles], start=start, concurrency=3, rate=1.0,
                    call_seconds=60, opening=opening)
    assert took == pytest.approx(bkk_opens + 60 - start)
    assert la_opens < bkk_opens
