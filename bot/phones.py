"""Phone numbers: parse what people type, hand Retell E.164, show people a masked form."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

MASK = "•••"

_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "the country code is not valid",
    NumberParseException.NOT_A_NUMBER: "that is not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "it is too short",
    NumberParseException.TOO_SHORT_NSN: "it is too short",
    NumberParseException.TOO_LONG: "it is too long",
}


class PhoneNumberError(ValueError):
    """A number people typed that Retell could not dial; the message says why."""


@dataclass(frozen=True)
class PhoneNumber:
    e164: str
    international: str
    region: str | None


def parse_phone(text: str, default_region: str = "US") -> PhoneNumber:
    """Parse any common way of writing a number; national forms use `default_region`."""
    raw = text.strip()
    if not raw:
        raise PhoneNumberError("no phone number given")
    try:
        number = phonenumbers.parse(raw, default_region)
    except NumberParseException as exc:
        reason = _PARSE_ERRORS.get(exc.error_type, "it could not be read")
        raise PhoneNumberError(f"`{raw}` is not a valid phone number: {reason}") from None
    if not phonenumbers.is_valid_number(number):
        if not phonenumbers.is_possible_number(number):
            reason = "it has the wrong number of digits"
        else:
            reason = "no such number exists in that numbering plan"
        hint = ""
        if not raw.startswith("+"):
            hint = f" (read as a {default_region} number; start with + and a country code)"
        raise PhoneNumberError(f"`{raw}` is not a valid phone number: {reason}{hint}")
    return PhoneNumber(
        e164=phonenumbers.format_number(number, PhoneNumberFormat.E164),
        international=phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
        region=phonenumbers.region_code_for_number(number),
    )


def mask_phone(e164: str | None) -> str:
    """Hide the middle of a number: `+14155550123` -> `+1 415 ••• 0123`.

    Keeps the country code, the first group (area or mobile prefix) and the last four
    digits, which is enough to tell calls apart without exposing whole numbers in
    channels and logs.
    """
    if not e164:
        return "unknown number"
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        digits = re.sub(r"\D", "", e164)
        return f"{MASK}{digits[-2:]}" if digits else MASK
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    parts = re.split(r"[\s\-]+", international)
    country = parts[0] if parts and parts[0].startswith("+") else f"+{number.country_code}"
    nsn = phonenumbers.national_significant_number(number)
    head = parts[1] if len(parts) > 2 else ""
    tail_len = 4 if len(nsn) >= 8 else 2
    if len(nsn) - len(head) - tail_len < 2:
        head = ""
    tail = nsn[-tail_len:]
    return " ".join(p for p in (country, head, MASK, tail) if p)


def show_phone(e164: str | None, *, full: bool) -> str:
    """What a channel post shows: the full international form only when allowed."""
    if full and e164:
        try:
            number = phonenumbers.parse(e164, None)
            return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
        except NumberParseException:
            return e164
    return mask_phone(e164)
