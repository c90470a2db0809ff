"""The catalogues: every key in every language, the same placeholders, every code worded."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from bot.input.mistakes import Mistake
from bot.render.catalog import LANGUAGES, LOCALES, catalogue, counted, language, words
from bot.render.mistakes import mistake

ROOT = Path(__file__).resolve().parents[2]
_RAISED = re.compile(r"(?:CommandError|PhoneNumberError|WhenError|ContactsError"
                     r"|StatsQueryError|Mistake)\(\s*\"([a-z0-9_]+)\"")
_THAI = re.compile(r"[\u0e00-\u0e7f]")


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def test_every_language_has_every_key() -> None:
    keys = {lang: set(catalogue(lang)) for lang in LANGUAGES}
    for lang in LANGUAGES:
        assert keys[lang] == keys["en"], (lang, keys[lang] ^ keys["en"])


def test_placeholders_are_the_same_in_every_language() -> None:
    for key, english in catalogue("en").items():
        for lang in LANGUAGES:
            assert _fields(catalogue(lang)[key]) == _fields(english), (lang, key)


def test_entries_with_placeholders_are_flagged_for_translators() -> None:
    # Babel recomputes the flag from the msgid (a key, with no fields), so read the file.
    for lang in LANGUAGES:
        text = (LOCALES / lang / "LC_MESSAGES" / "callbot.po").read_text()
        for entry in text.split("\n\n"):
            key = re.search(r'^msgid "(.+)"$', entry, re.MULTILINE)
            if key and _fields(catalogue(lang)[key.group(1)]):
                assert "#, python-brace-format" in entry, (lang, key.group(1))


def test_thai_is_written_in_thai() -> None:
    # Keys whose sentence is only markup or names may stay Latin; the rest must not be
    # English left untranslated.
    untranslated = [key for key, text in catalogue("th").items()
                    if not _THAI.search(text) and text == catalogue("en")[key]]
    assert untranslated == []


def test_every_mistake_raised_in_the_parsers_is_worded() -> None:
    codes = set()
    for path in (ROOT / "bot" / "input").glob("*.py"):
        codes |= set(_RAISED.findall(path.read_text()))
    assert {"no_number", "phone_invalid", "modal_no_channel"} <= codes
    for code in codes - {"phone_invalid"}:
        for lang in LANGUAGES:
            assert f"mistake.{code}" in catalogue(lang), code


@pytest.mark.parametrize(("locale", "expected"), [
    ("th-TH", "th"), ("th", "th"), ("en-GB", "en"), ("en_US", "en"), ("fr-FR", "en"),
    ("", "en"), (None, "en"),
])
def test_slack_locales_map_to_a_language(locale: str | None, expected: str) -> None:
    assert language(locale) == expected


def test_thai_mistake_is_thai_with_its_facts_filled() -> None:
    error = Mistake("variable_too_long", name="note", limit=2000)
    assert mistake(error, "en") == "`note` is longer than 2,000 characters."
    thai = mistake(error, "th")
    assert _THAI.search(thai) and "`note`" in thai and "2,000" in thai


def test_an_unknown_key_is_a_bug_not_a_silent_blank() -> None:
    with pytest.raises(KeyError):
        words("en", "no.such.key")


def test_a_language_it_does_not_speak_falls_back_to_english() -> None:
    assert words("fr", "mistake.no_number") == words("en", "mistake.no_number")



def test_counted_picks_the_plural_form_of_the_language() -> None:
    assert counted("en", "dnc.numbers", 1, count="1") == "1 number"
    assert counted("en", "dnc.numbers", 2, count="2") == "2 numbers"
    assert counted("th", "dnc.numbers", 1, count="1") == "1 เบอร์"  # Thai: one form


def test_audit_actions_and_outcomes_are_worded_and_unknown_codes_shown_as_stored() -> None:
    from bot.render.blocks import audit_line
    from storage.models import AuditRow

    row = AuditRow(1, 0.0, "call", "refused", "U0A1", "C0A1", "/call", "+1 415 ••• 0123",
                   None, "limit_per_hour", None)
    thai = audit_line(row, "th")
    assert "โทร" in thai and "*ถูกปฏิเสธ*" in thai and "limit_per_hour" in thai
    assert "*refused*" in audit_line(row, "en")
    newer = AuditRow(2, 0.0, "campaign_start", "queued", None, None, None, None, None,
                     None, None)
    assert "campaign start" in audit_line(newer, "th") and "*queued*" in audit_line(newer, "th")


def test_english_numbers_read_exactly_as_babel_writes_them() -> None:
    """English skips loading Babel's locale data (memory); it must not read differently."""
    import random

    from babel.numbers import format_currency, format_decimal, format_percent

    from bot.render.words import cost_words, count_words, percent_words

    pick = random.Random(7)
    cents = [0, 4.2, 123456.5, -250, 99.995, *(pick.uniform(-1e6, 1e6) for _ in range(500)),
             *(pick.randint(0, 10**6) / 100 for _ in range(500))]
    for c in cents:
        assert cost_words(c, "en") == format_currency(c / 100, "USD", locale="en"), c
    for f in [0, 0.5, 0.125, 0.145, 0.155, 1, *(pick.random() for _ in range(500))]:
        assert percent_words(f, "en") == format_percent(f, locale="en"), f
    for n in [0, 7, 1234567, 4.5, 1234.5678, 0.0005, *(pick.uniform(0, 1e5) for _ in range(500))]:
        assert count_words(n, "en") == format_decimal(n, locale="en"), n


def test_a_callees_do_not_call_request_reads_in_the_readers_language() -> None:
    from bot.render.blocks import dnc_line
    from storage.models import DNC_CALLEE_ASKED, DncEntry

    asked = DncEntry("+14155550123", DNC_CALLEE_ASKED, None, "call_abc", 0.0)
    assert "asked on a call not to be called again" in dnc_line(asked, lang="en")
    thai = dnc_line(asked, lang="th")
    assert "ขอระหว่างการโทรว่าไม่ให้โทรมาอีก" in thai and "asked on a call" not in thai
    typed = DncEntry("+14155550123", "asked on a call not to be called again", "U0ADMIN",
                     None, 0.0)  # an admin's own words stay as typed
    assert "asked on a call not to be called again" in dnc_line(typed, lang="th")
