"""Answers to the person who asked for a call when a step fails on the way to placing it.

Each says what failed, whether a call was placed, and what to do, in words that fit the
cause: a Slack outage is not a missing invitation, a locked database is not a refusal.
"""

from __future__ import annotations

from bot.render.blocks import channel_link, said, user_mention
from bot.render.catalog import DEFAULT_LANGUAGE, words
from bot.retell.client import RetellError

# Slack errors that mean the bot cannot post in the channel until someone changes that.
_MEMBERSHIP = frozenset({"not_in_channel", "channel_not_found"})
_TOKEN = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired",
                    "account_inactive"})
DATABASE_CAUSES = frozenset({"locked", "full", "unavailable"})
# What was asked of Retell, for "Retell refused ...": call | agents | hang_up | read_call.
RETELL_ACTIONS = frozenset({"call", "agents", "hang_up", "read_call"})


def retell_words(exc: RetellError, action: str = "call", lang: str = DEFAULT_LANGUAGE) -> str:
    """A failure at Retell in words fit for the person who asked; `action` is what was
    asked (one of RETELL_ACTIONS). Retell's own reason is quoted as Retell gave it."""
    facts: dict[str, object] = {"reason": exc.reason, "status": exc.status}
    if exc.kind == "refused":
        facts["action"] = words(lang, f"retell.action.{action}")
    kind = exc.kind if exc.kind in ("refused", "rate_limited", "server_error", "timeout",
                                    "bad_answer") else "unreachable"
    return words(lang, f"retell.{kind}", **facts)


def retell_failed_call(exc: RetellError, lang: str = DEFAULT_LANGUAGE) -> str:
    """Why Retell did not place a call, and whether it still might."""
    text = retell_words(exc, "call", lang)
    if exc.uncertain:
        text += " " + words(lang, "retell.may_still_place")
    return text


def hang_up_refused(reason: str, placed_by: str | None, lang: str = DEFAULT_LANGUAGE) -> str:
    """Why this person cannot hang up this call."""
    if reason == "not_theirs":
        who = user_mention(placed_by) or words(lang, "hang_up.placer")
        return words(lang, "hang_up.not_theirs", who=who)
    if reason in ("unknown_call", "ended", "unknown_to_retell"):
        return words(lang, f"hang_up.{reason}")
    return words(lang, "hang_up.other")


def card_not_posted(channel_id: str, error: str, status: int | None,
                    lang: str = DEFAULT_LANGUAGE) -> str:
    """The call card could not be posted, so nothing was placed."""
    error = said(error, 100)
    where = (channel_link(channel_id) if channel_id
             else words(lang, "card_not_posted.this_conversation"))
    if error in _MEMBERSHIP:
        key = "membership"
    elif error == "is_archived":
        key = "archived"
    elif error in _TOKEN:
        key = "token"
    elif error == "missing_scope":
        key = "missing_scope"
    elif status == 429 or error == "ratelimited":
        key = "rate_limited"
    elif status is not None and status >= 500:
        key = "slack_error"
    elif status is None:
        key = "no_answer"
    else:
        key = "refused"
    return words(lang, f"card_not_posted.{key}", where=where, error=error, status=status)


def card_lost(lang: str = DEFAULT_LANGUAGE) -> str:
    """On a card Slack posted but never confirmed: the attempt ended there."""
    return words(lang, "card_lost")


def database_words(cause: str | None, lang: str = DEFAULT_LANGUAGE) -> str:
    return words(lang, f"database.{cause if cause in DATABASE_CAUSES else 'failed'}")


def store_down_before(cause: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """The rules could not be checked: nothing was posted or placed."""
    return words(lang, "store_down_before", why=database_words(cause, lang))


def failed_unrecorded(message: str, lang: str = DEFAULT_LANGUAGE) -> str:
    return words(lang, "failed_unrecorded", message=message)


def placed_not_recorded(call_id: str, cause: str | None, lang: str = DEFAULT_LANGUAGE) -> str:
    return words(lang, "placed_not_recorded", call_id=call_id,
                 why=database_words(cause, lang))


def unexpected(name: str, lang: str = DEFAULT_LANGUAGE) -> str:
    return words(lang, "unexpected", name=name)


class CardWords:
    """What the use cases record on a card (bot/calls/words.py's protocol), from here."""

    def retell_failed(self, exc: RetellError, lang: str) -> str:
        return retell_failed_call(exc, lang)

    def failed_unrecorded(self, message: str, lang: str) -> str:
        return failed_unrecorded(message, lang)

    def placed_not_recorded(self, call_id: str, cause: str | None, lang: str) -> str:
        return placed_not_recorded(call_id, cause, lang)

    def card_lost(self, lang: str) -> str:
        return card_lost(lang)

    def unexpected(self, name: str, lang: str) -> str:
        return unexpected(name, lang)
