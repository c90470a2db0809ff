"""What people are told when something they typed cannot be used, and how to type it."""

from __future__ import annotations

from bot.input.mistakes import Mistake
from bot.input.phones import mask_numbers
from bot.render.catalog import DEFAULT_LANGUAGE, words
from bot.render.words import count_words

ECHO_LIMIT = 40
# Facts that hold text a person typed: echoed short, masked and inert.
_TYPED = frozenset({"typed", "name", "line", "wanted"})


def shown(text: str, limit: int = ECHO_LIMIT) -> str:
    """Something a person typed, echoed back inside backticks: short, numbers masked,
    nothing Slack reads as a mention, a link or the end of the code span."""
    text = mask_numbers(text[: limit * 2])
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")


def mistake(error: Mistake, lang: str = DEFAULT_LANGUAGE) -> str:
    """The sentence for one input mistake, in `lang`."""
    facts: dict[str, object] = {}
    for name, value in error.facts.items():
        if name in _TYPED and isinstance(value, str):
            facts[name] = shown(value)
        elif isinstance(value, int):
            facts[name] = count_words(value, lang)
        elif name == "what":
            facts[name] = words(lang, f"mistake.what.{value}")
        elif name == "reason":
            facts[name] = words(lang, f"mistake.phone_reason.{value}")
        else:
            facts[name] = value
    if error.code == "phone_invalid" and error.facts.get("region"):
        return words(lang, "mistake.phone_invalid_read_as", **facts)
    return words(lang, f"mistake.{error.code}", **facts)


def usage(command: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """How to type `/call`, `/callstats`, `/calldnc`, `/callaudit`, or a message (`message`)."""
    if command == "message":
        return words(lang, "usage.message", call=usage("call", lang), stats=usage("stats", lang))
    return words(lang, f"usage.{command}")


def period_words(key: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """A `/callstats` period by its key: `today`, `7d`, `30d`, `all`."""
    return words(lang, f"stats.period.{key}")
