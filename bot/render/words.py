"""Plain words for Retell's codes and for numbers people read, in the reader's language.
Pure functions; the sentences are in the catalogues (bot/render/locales)."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal

from babel.dates import format_datetime
from babel.numbers import format_currency, format_decimal, format_percent

from bot.guard.hours import callee_time
from bot.render.catalog import DEFAULT_LANGUAGE, catalogue, words

SENTIMENT_EMOJI = {
    "Positive": ":smiley:",
    "Neutral": ":neutral_face:",
    "Negative": ":slightly_frowning_face:",
    "Unknown": ":grey_question:",
}


# A code Retell adds is a short snake_case word; anything longer is cut (rendering escapes it).
REASON_CODE_LIMIT = 100


def reason_words(code: str | None, lang: str = DEFAULT_LANGUAGE) -> str:
    """Known codes get curated words; new ones Retell adds still read as words."""
    if not code:
        return words(lang, "reason.unknown")
    key = f"reason.{code}"
    if key in catalogue(DEFAULT_LANGUAGE):
        return words(lang, key)
    if len(code) > REASON_CODE_LIMIT:
        code = code[: REASON_CODE_LIMIT - 1] + "…"
    return code.replace("_", " ").capitalize()


def known_reason(code: str) -> bool:
    return f"reason.{code}" in catalogue(DEFAULT_LANGUAGE)


def duration_words(ms: float | None, lang: str = DEFAULT_LANGUAGE) -> str:
    if ms is None or not math.isfinite(ms) or abs(ms) > 1e12:
        return "–"
    seconds = round(ms / 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return words(lang, "duration.hours", hours=hours, minutes=minutes)
    if minutes:
        return words(lang, "duration.minutes", minutes=minutes, seconds=secs)
    return words(lang, "duration.seconds", seconds=secs)


def _even(value: float, step: str) -> Decimal:
    """Rounded as Babel rounds: the decimal the float prints as, half to even."""
    return Decimal(str(value)).quantize(Decimal(step), rounding=ROUND_HALF_EVEN)


# English is written as Babel's `en` writes it, without loading Babel's locale data (about
# 4 MB once loaded: bench/, peak RSS); every other language goes through Babel.


def cost_words(cents: float | None, lang: str = DEFAULT_LANGUAGE) -> str:
    """Retell bills in US dollars: `$1.23` in English, `US$1.23` in Thai."""
    if cents is None or not math.isfinite(cents):
        return "–"
    if lang == "en":
        dollars = _even(cents / 100, "0.01")
        return f"{'-' if dollars < 0 else ''}${abs(dollars):,.2f}"
    return str(format_currency(cents / 100, "USD", locale=lang))


def percent_words(fraction: float | None, lang: str = DEFAULT_LANGUAGE) -> str:
    if fraction is None or not math.isfinite(fraction):
        return "–"
    if lang == "en":
        return f"{_even(fraction * 100, '1'):,.0f}%"
    return str(format_percent(fraction, locale=lang))


def count_words(count: float, lang: str = DEFAULT_LANGUAGE) -> str:
    """A count (or a measured number) with the language's grouping: 12,345; 4.5."""
    if lang == "en":
        if isinstance(count, int) or float(count).is_integer():
            return f"{int(count):,}"
        return f"{_even(count, '0.001').normalize():,f}"
    return str(format_decimal(count, locale=lang))


def their_clock(number: str, epoch: float, lang: str = DEFAULT_LANGUAGE) -> str:
    """A moment as the callee reads it on their own clock: `Tue 08:00`."""
    return str(format_datetime(callee_time(number, epoch), "EEE HH:mm", locale=lang))


def sentiment_words(sentiment: str | None, lang: str = DEFAULT_LANGUAGE) -> str:
    label = sentiment if sentiment in SENTIMENT_EMOJI else "Unknown"
    return f"{SENTIMENT_EMOJI[label]} {words(lang, f'sentiment.{label}')}"
