"""Phone parsing and masking: pure functions."""

from __future__ import annotations

import pytest

from bot.input.phones import PhoneNumberError, mask_phone, parse_phone, show_phone
from tests.support.mistakes import says


@pytest.mark.parametrize(
    ("typed", "region", "e164"),
    [
        ("+1 415 555 0123", "US", "+14155550123"),
        ("(415) 555-0123", "US", "+14155550123"),
        ("415.555.0123", "US", "+14155550123"),
        ("+44 20 7946 0123", "US", "+442079460123"),
        ("020 7946 0123", "GB", "+442079460123"),
        ("+33 1 23 45 67 89", "US", "+33123456789"),
    ],
)
def test_common_forms_become_e164(typed: str, region: str, e164: str) -> None:
    assert parse_phone(typed, region).e164 == e164


@pytest.mark.parametrize(
    ("typed", "fragment"),
    [
        ("", "No phone number"),
        ("12", "not a valid phone number"),
        ("+1 415 555", "not a valid phone number"),
        ("555-0123", "not a valid phone number"),
        ("+999 1234 5678", "country code"),
        ("hello", "not a valid phone number"),
    ],
)
def test_invalid_numbers_say_why(typed: str, fragment: str) -> None:
    with says(kind=PhoneNumberError, pattern=fragment):
        parse_phone(typed, "US")


def test_national_form_hint_names_the_region() -> None:
    with says(kind=PhoneNumberError, pattern="read as a US number"):
        parse_phone("020 7946 012", "US")


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+14155550123", "+1 415 ••• 0123"),
        ("+442079460123", "+44 20 ••• 0123"),
        ("+4930123456", "+49 30 ••• 3456"),
    ],
)
def test_mask_keeps_country_prefix_and_last_digits(e164: str, masked: str) -> None:
    assert mask_phone(e164) == masked


def test_mask_never_shows_the_middle_digits() -> None:
    for e164 in ("+14155550123", "+442079460123", "+33123456789", "+819012345678"):
        masked = mask_phone(e164)
        digits = "".join(ch for ch in masked if ch.isdigit())
        assert "•••" in masked
        assert len(digits) <= len(e164) - 3, masked


def test_mask_of_garbage_and_missing() -> None:
    assert mask_phone(None) == "unknown number"
    assert mask_phone("not-a-number-77") == "•••77"


def test_show_full_only_when_allowed() -> None:
    assert show_phone("+14155550123", full=True) == "+1 415-555-0123"
    assert show_phone("+14155550123", full=False) == "+1 415 ••• 0123"
