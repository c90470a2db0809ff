"""What the person who asked for a call is told, for each outcome of placing it."""

from __future__ import annotations

from bot.calls.placing import (
    AgentUnknown,
    Broke,
    CardFailed,
    NotAllowed,
    Outcome,
    Placed,
    PlacedNotRecorded,
    RetellRefused,
    StoreDown,
)
from bot.calls.service import AgentLookupError
from bot.render import answers
from bot.render.blocks import ERROR_LIMIT, said
from bot.render.catalog import DEFAULT_LANGUAGE, words
from bot.render.refusals import refusal_words


def agent_unknown(error: AgentLookupError, lang: str = DEFAULT_LANGUAGE) -> str:
    """Why the agent named could not be used, with the agents there are (raw: the caller
    makes the whole sentence safe)."""
    if error.kind == "unavailable" and error.cause is not None:
        return answers.retell_words(error.cause, "agents", lang)
    listing = ", ".join(f"`{name}`" for name in error.candidates)
    return words(lang, f"agent.{error.kind}", wanted=error.wanted, listing=listing)


def placing_answer(outcome: Outcome, *, show_full_numbers: bool = False,
                   lang: str = DEFAULT_LANGUAGE, simulated: bool = False) -> str | None:
    """None when there is nothing to say (the card shows a placed call). Texts that are on
    the card too (Retell's refusal, a call not recorded) are in the card's language."""
    text = _answer(outcome, show_full_numbers, lang)
    if text is not None and simulated:
        text += " " + words(lang, "simulated_note")
    return text


def _answer(outcome: Outcome, show_full_numbers: bool, lang: str) -> str | None:
    match outcome:
        case Placed():
            return None
        case AgentUnknown(error):
            return f":warning: {said(agent_unknown(error, lang), ERROR_LIMIT)}"
        case NotAllowed(refusal):
            return f":no_entry: {refusal_words(refusal, lang)}"
        case CardFailed(channel_id, error, status):
            return f":x: {answers.card_not_posted(channel_id, error, status, lang)}"
        case RetellRefused(message):
            return f":x: {said(message, ERROR_LIMIT, show_full_numbers=show_full_numbers)}"
        case PlacedNotRecorded(message):
            return f":warning: {said(message, ERROR_LIMIT, show_full_numbers=show_full_numbers)}"
        case StoreDown(cause):
            return f":x: {answers.store_down_before(cause, lang)}"
        case Broke(name):
            return f":x: {answers.unexpected(name, lang)}"
