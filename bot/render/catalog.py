"""Sentences by key, in every language the app speaks, from gettext catalogues.

The catalogues are `.po` files under `bot/render/locales/<lang>/LC_MESSAGES/callbot.po`,
read once with Babel: translators and their tools (Poedit, Weblate, `msgfmt --check`) work
on them as they are. The msgids are keys (`input.no_number`), not English, so a sentence
missing from one language is a missing key, which `tests/unit/test_catalog.py` catches, and
English wording can change without touching the Thai file's ids. Placeholders are
`str.format` fields (`{name}`), flagged `python-brace-format`.

Only `bot/render` calls this module: rules and use cases hand it data, never sentences.
"""

from __future__ import annotations

import functools
from pathlib import Path

from babel import Locale
from babel.messages.pofile import read_po

LOCALES = Path(__file__).with_name("locales")
DOMAIN = "callbot"
LANGUAGES = ("en", "th")
DEFAULT_LANGUAGE = "en"


def language(code: str | None, fallback: str = DEFAULT_LANGUAGE) -> str:
    """One of LANGUAGES for a Slack locale (`th-TH`, `en-GB`) or a setting (`th`)."""
    base = (code or "").replace("_", "-").split("-", 1)[0].lower()
    return base if base in LANGUAGES else fallback


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """Key -> sentence for one language; entries without a translation are left out."""
    path = LOCALES / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as file:
        parsed = read_po(file, locale=lang, domain=DOMAIN)
    return {str(m.id): str(m.string) for m in parsed if m.id and isinstance(m.string, str)
            and m.string}


def words(lang: str, key: str, /, **facts: object) -> str:
    """The sentence `key` in `lang` (English where a translation is missing), filled in.

    An unknown key raises KeyError: that is a bug in the code, found by the tests."""
    template = catalogue(language(lang)).get(key)
    if template is None:
        template = catalogue(DEFAULT_LANGUAGE)[key]
    return template.format(**facts)



def counted(lang: str, key: str, count: int, /, **facts: object) -> str:
    """`key.one` or `key.other` (CLDR's plural form of `count` in the language; Thai has
    only `other`), filled in with `count` and `facts`."""
    lang = language(lang)
    form = str(Locale.parse(lang).plural_form(count))
    chosen = f"{key}.{form}" if f"{key}.{form}" in catalogue(DEFAULT_LANGUAGE) else f"{key}.other"
    return words(lang, chosen, **facts)
