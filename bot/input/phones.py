"""Phone numbers: parse what people type, hand Retell E.164, show people a masked form."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

from bot.input.mistakes import Mistake, typed

MASK = "•••"

_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "bad_country",
    NumberParseException.NOT_A_NUMBER: "not_a_number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too_short",
    NumberParseException.TOO_SHORT_NSN: "too_short",
    NumberParseException.TOO_LONG: "too_long",
}


class PhoneNumberError(Mistake):
    """A number people typed that Retell could not dial: `phone_empty`, or `phone_invalid`
    with why (`reason`) and, for a number without `+`, the region it was read in."""


@dataclass(frozen=True)
class PhoneNumber:
    e164: str
    international: str
    region: str | None


def parse_phone(text: str, default_region: str = "US") -> PhoneNumber:
    """Parse any common way of writing a number; national forms use `default_region`."""
    raw = text.strip()
    if not raw:
        raise PhoneNumberError("phone_empty")
    try:
        number = phonenumbers.parse(raw, default_region)
    except NumberParseException as exc:
        reason = _PARSE_ERRORS.get(exc.error_type, "unreadable")
        raise PhoneNumberError("phone_invalid", typed=typed(raw), reason=reason,
                               region=None) from None
    if not phonenumbers.is_valid_number(number):
        reason = ("wrong_length" if not phonenumbers.is_possible_number(number)
                  else "no_such_number")
        raise PhoneNumberError("phone_invalid", typed=typed(raw), reason=reason,
                               region=None if raw.startswith("+") else default_region)
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
            pass  # not a number (odd metadata, say): never echoed as it came
    return mask_phone(e164)


# -- numbers inside free text ---------------------------------------------------------------

# A run of digits that may be a phone number in any spelling: `14155550123`,
# `1 (415) 555-0123`, `415.555.0123`, Unicode digits too; a `+`, `%2B` (URL-encoded) or `(`
# just before it is read by hand. Separators are never digits and every repetition ends on a
# digit, so there is one way to match any text, and the pattern starts with a digit, so the
# engine skips text without digits quickly: the cost is linear, whatever the text.
_SEPARATORS = " \t\u00a0\u2009\u202f.\\-\u2010-\u2015/()"
_DIGIT_RUN = re.compile(r"\d+(?:[" + _SEPARATORS + r"]{1,3}\d+)*")
_DATE = re.compile(r"(?:19|20)\d\d([-/.])\d\d\1\d\d(?!\d)")
_FIRST_GROUP = re.compile(r"\d+[" + _SEPARATORS + r"]*")
_SEPARATOR_RUN = re.compile(r"[" + _SEPARATORS + r"]*")
_NON_DIGITS = re.compile(r"\D")
# Fewer digits than this is never a whole number (a masked number shows up to 7 digits).
MIN_NUMBER_DIGITS = 8
# mask_phone() asks phonenumbers (tens of µs); past this many numbers in one text, a
# cheaper mask keeps the cost of a hostile text bounded.
_FULL_MASKS_PER_TEXT = 32


def mask_numbers(text: str) -> str:
    """Mask every phone-like number in free text (error texts, summaries, log lines).

    A run of 8 or more digits, with or without `+`, spaces, dashes, dots, slashes or
    parentheses between them, is masked unless it reads as something else: an ISO date,
    a decimal such as a Slack timestamp (`1712345678.123456`), a Unix time in seconds or
    milliseconds (10 or 13 digits starting with 1), or digits glued to letters (ids such as
    `C0123456789` or `call_1234...abc`). Linear in the length of the text.
    """
    if not text:
        return text
    budget = [_FULL_MASKS_PER_TEXT]

    def masked(match: re.Match[str]) -> str:
        start, end = match.span()
        if end < len(text) and (text[end].isalnum() or text[end] == "_"):
            return match.group(0)  # glued to what follows: part of an id
        run = match.group(0)
        encoded_plus = text[max(start - 3, 0):start].lower() == "%2b"
        before = "+" if encoded_plus else text[start - 1] if start else ""
        pos = 0
        if before.isalnum() or before == "_":
            # Glued to what precedes (an id): keep its first group, read on after it.
            pos = _FIRST_GROUP.match(run).end()  # type: ignore[union-attr]
        while (date := _DATE.match(run, pos)) is not None:
            pos = _SEPARATOR_RUN.match(run, date.end()).end()  # type: ignore[union-attr]
        if pos:
            before = " "
        if pos >= len(run):
            return run
        return run[:pos] + _mask_run(run[pos:], before == "+", budget)

    return _DIGIT_RUN.sub(masked, text)


def _mask_run(run: str, plus: bool, budget: list[int]) -> str:
    digits = _NON_DIGITS.sub("", run)
    if len(digits) < MIN_NUMBER_DIGITS or _reads_as_other(run, digits):
        return run
    # Only the last 15 are ever shown or parsed; Unicode digits read as ASCII ones.
    ascii_digits = digits[-15:]
    if not ascii_digits.isascii():
        ascii_digits = "".join(str(unicodedata.decimal(c)) for c in ascii_digits)
    if plus and len(digits) <= 15 and budget[0] > 0:
        budget[0] -= 1
        shown = _cached_mask("+" + ascii_digits)
        return shown.removeprefix("+")  # the `+` before the run stays where it was
    return f"{MASK} {ascii_digits[-4:]}"


def _reads_as_other(run: str, digits: str) -> bool:
    if run.count(".") == 1 and len(digits) == len(run) - 1:
        return True  # a decimal: a Slack ts, a duration, an amount
    return run.isascii() and run.isdigit() and len(run) in (10, 13) and run[0] == "1"


@functools.lru_cache(maxsize=512)
def _cached_mask(e164: str) -> str:
    return mask_phone(e164)


_PHONE_CHARS = frozenset("0123456789+-(). ")


def phone_words(text: str, default_region: str = "US") -> str | None:
    """The E.164 number when `text` is nothing but a phone number in some spelling (a
    search for a number's calls), else None."""
    stripped = text.strip()
    if not stripped or not set(stripped) <= _PHONE_CHARS or sum(c.isdigit() for c in stripped) < 7:
        return None
    try:
        return parse_phone(stripped, default_region).e164
    except PhoneNumberError:
        return None
