"""Calling hours in the callee's local time: windows, days, zones, overrides, next opening."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.guard.hours import (
    ALL_DAYS,
    CallingHours,
    HoursError,
    Window,
    parse_days,
    parse_overrides,
    parse_window,
    places,
    verdict,
)

DEFAULT = CallingHours(Window(8 * 60, 21 * 60))
NEW_YORK = "+12125550123"
SAN_FRANCISCO = "+14155550123"
FLORIDA = "+13055550123"
LONDON = "+442079460123"
BANGKOK = "+66812345678"
RUSSIA_MOBILE = "+79161234567"  # one number, sixteen zones from Europe/Bucharest to Kamchatka


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_settings_are_read_and_bad_ones_say_how_to_write_them() -> None:
    assert parse_window("08:00-21:00") == Window(480, 1260)
    assert parse_window("any") is None
    assert parse_window("00:00-24:00") == Window(0, 1440)
    for bad in ("8-21", "21:00-08:00", "08:00-08:00", "25:00-26:00", "08:00"):
        with pytest.raises(HoursError):
            parse_window(bad)
    assert parse_days("") == ALL_DAYS
    assert parse_days("mon-fri") == frozenset(range(5))
    assert parse_days("sat-mon") == frozenset({5, 6, 0})
    with pytest.raises(HoursError):
        parse_days("weekdays")
    assert parse_overrides("US-FL=08:00-20:00, GB=09:00-20:00") == {
        "US-FL": Window(480, 1200), "GB": Window(540, 1200)}
    with pytest.raises(HoursError):
        parse_overrides("Florida=08:00-20:00")


def test_a_number_has_its_zones_and_its_state() -> None:
    assert places(FLORIDA, states=True) == (("America/New_York",), ("US-FL", "US"))
    assert places(SAN_FRANCISCO, states=True) == (("America/Los_Angeles",), ("US-CA", "US"))
    assert places(FLORIDA) == (("America/New_York",), ("US",))  # no state asked: not read
    assert places(BANGKOK) == (("Asia/Bangkok",), ("TH",))
    zones, keys = places(RUSSIA_MOBILE)
    assert len(zones) > 5 and keys == ("RU",)


def test_the_window_is_in_the_callees_own_time() -> None:
    # 13:30 UTC: 08:30 in New York, 05:30 in San Francisco, 13:30 in London, 20:30 Bangkok.
    now = at("2026-12-01T13:30:00")
    assert verdict(DEFAULT, NEW_YORK, now).open
    assert verdict(DEFAULT, LONDON, now).open
    assert verdict(DEFAULT, BANGKOK, now).open
    shut = verdict(DEFAULT, SAN_FRANCISCO, now)
    assert not shut.open and shut.opens_at == at("2026-12-01T16:00:00")  # 08:00 in SF
    [(zone, local)] = shut.local_times(now)
    assert zone == "America/Los_Angeles" and (local.hour, local.minute) == (5, 30)
    # 14:30 UTC is 21:30 in Bangkok: closed until 08:00 there, 01:00 UTC next day.
    late = verdict(DEFAULT, BANGKOK, at("2026-12-01T14:30:00"))
    assert not late.open and late.opens_at == at("2026-12-02T01:00:00")


def test_days_are_the_callees_days() -> None:
    weekdays = CallingHours(Window(480, 1260), parse_days("mon-fri"))
    saturday_noon = at("2026-12-05T17:00:00")  # Saturday 12:00 in New York
    shut = verdict(weekdays, NEW_YORK, saturday_noon)
    assert not shut.open and shut.opens_at == at("2026-12-07T13:00:00")  # Monday 08:00 EST
    # Friday 23:00 UTC is already Saturday 07:00 in Bangkok: closed there.
    assert not verdict(weekdays, BANGKOK, at("2026-12-04T23:30:00")).open


def test_an_override_for_a_state_or_country_wins() -> None:
    hours = CallingHours(Window(480, 1260), ALL_DAYS, parse_overrides("US-FL=08:00-20:00"))
    half_past_eight_pm_eastern = at("2026-12-02T01:30:00")  # 20:30 EST
    assert not verdict(hours, FLORIDA, half_past_eight_pm_eastern).open
    assert verdict(hours, NEW_YORK, half_past_eight_pm_eastern).open  # same zone, no override


def test_several_zones_must_all_be_open() -> None:
    """The Russian mobile spans UTC+2 (Bucharest) to UTC+12 (Kamchatka): 08:00-21:00 holds
    in all of them only from 06:00 to 09:00 UTC; 09:00-17:00 never does."""
    shut = verdict(DEFAULT, RUSSIA_MOBILE, at("2026-12-01T09:00:00"))  # 21:00 in Kamchatka
    assert not shut.open and shut.opens_at == at("2026-12-02T06:00:00")  # 08:00 Bucharest
    assert verdict(DEFAULT, RUSSIA_MOBILE, at("2026-12-02T08:59:00")).open
    office = CallingHours(Window(9 * 60, 17 * 60))
    never = verdict(office, RUSSIA_MOBILE, at("2026-12-01T09:00:00"))
    assert not never.open and never.opens_at is None
    wide = CallingHours(Window(0, 1440))
    assert verdict(wide, RUSSIA_MOBILE, at("2026-12-01T09:00:00")).open


def test_any_hours_and_unknown_zones() -> None:
    anytime = CallingHours(None)
    assert verdict(anytime, "+999", at("2026-12-01T03:00:00")).open
    unknown = verdict(DEFAULT, "+8812345678", at("2026-12-01T12:00:00"))  # satellite, no zone
    assert not unknown.open and unknown.zones == () and unknown.opens_at is None


def test_the_refusal_says_their_time_and_when_it_opens_in_both_languages() -> None:
    from bot.guard.admission import Refused, hours_may
    from bot.render.refusals import refusal_words

    now = at("2026-12-01T13:30:00")  # 05:30 in San Francisco
    try:
        hours_may(DEFAULT, SAN_FRANCISCO, now.timestamp())
    except Refused as refused:
        english, thai = refusal_words(refused, "en"), refusal_words(refused, "th")
    else:
        raise AssertionError("05:30 is outside 08:00-21:00")
    assert "It is Tue 05:30 in America/Los_Angeles for +1 415 ••• 0123" in english
    assert "(08:00-21:00, their time)" in english
    opens = int(at("2026-12-01T16:00:00").timestamp())
    assert f"<!date^{opens}^" in english and "(Tue 08:00 their time)" in english
    assert "ตอนนี้เป็นเวลา" in thai and "America/Los_Angeles" in thai and f"<!date^{opens}^" in thai
    hours_may(DEFAULT, NEW_YORK, now.timestamp())  # 08:30 in New York: no refusal


@pytest.mark.slow
def test_the_geocoder_is_loaded_only_for_state_overrides() -> None:
    """phonenumbers' geocoder holds about 100 MB once imported: the app loads it only when
    an override names a state (bench/: peak RSS after 10,000 calls)."""
    import subprocess
    import sys

    probe = ("import sys, bot.app, handlers; "
             "print('phonenumbers.geocoder' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
    places(FLORIDA, states=True)
    assert "phonenumbers.geocoder" in sys.modules  # read when asked
