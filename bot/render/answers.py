"""Answers to the person who asked for a call when a step fails on the way to placing it.

Each says what failed, whether a call was placed, and what to do, in words that fit the
cause: a Slack outage is not a missing invitation, a locked database is not a refusal.
"""

from __future__ import annotations

from bot.render.blocks import channel_link, said, user_mention
from bot.retell.client import RetellError

# Slack errors that mean the bot cannot post in the channel until someone changes that.
_MEMBERSHIP = frozenset({"not_in_channel", "channel_not_found"})
_TOKEN = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired",
                    "account_inactive"})
_DATABASE = {
    "locked": "the database is locked by another process",
    "full": "the database's disk is full",
    "unavailable": "the database cannot be written",
}


def retell_words(exc: RetellError, action: str = "the call") -> str:
    """A failure at Retell in words fit for the person who asked."""
    if exc.kind == "refused":
        return f"Retell refused {action}: {exc.reason}"
    if exc.kind == "rate_limited":
        return f"Retell is rate limiting this account ({exc.reason}). Try again in a minute."
    if exc.kind == "server_error":
        return f"Retell had a server error (HTTP {exc.status}): {exc.reason}. Try again."
    if exc.kind == "timeout":
        return f"Retell did not answer in time ({exc.reason})."
    if exc.kind == "bad_answer":
        return f"Retell answered with something I could not read ({exc.reason})."
    return f"Could not reach Retell ({exc.reason}). Try again shortly."


def hang_up_refused(reason: str, placed_by: str | None) -> str:
    """Why this person cannot hang up this call."""
    if reason == "not_theirs":
        who = user_mention(placed_by) or "the person who placed it"
        return f"Only {who} or an admin can hang up this call."
    return {
        "unknown_call": "I have no record of this call.",
        "ended": "This call has already ended.",
        "unknown_to_retell": "Retell no longer knows this call.",
    }.get(reason, "This call cannot be hung up.")


def card_not_posted(channel_id: str, error: str, status: int | None) -> str:
    """The call card could not be posted, so nothing was placed."""
    error = said(error, 100)
    where = channel_link(channel_id) if channel_id else "this conversation"
    if error in _MEMBERSHIP:
        return (f"I can't post the call card in {where} (`{error}`), so no call was placed. "
                "Invite me with `/invite @Callbot` (in a private channel, or use the "
                "channel's Integrations tab), then run the command again.")
    if error == "is_archived":
        return f"{where} is archived, so I can't post the call card there. No call was placed."
    if error in _TOKEN:
        return (f"Slack does not accept my token (`{error}`), so no call was placed. Ask "
                "whoever runs this app to check `SLACK_BOT_TOKEN`.")
    if error == "missing_scope":
        return ("I lack a Slack permission to post the call card (`missing_scope`), so no "
                "call was placed. Ask whoever runs this app to reinstall it.")
    if status == 429 or error == "ratelimited":
        return (f"Slack is rate limiting posts in {where} right now, so no call was placed. "
                "Try again in a minute.")
    if status is not None and status >= 500:
        return (f"Slack had an error (HTTP {status}) when I posted the call card, so no call "
                "was placed. Try again shortly.")
    if status is None:
        return ("Slack did not answer when I posted the call card (the connection failed), "
                "so no call was placed. Try again shortly.")
    return f"Slack refused the call card (`{error}`), so no call was placed."


def card_lost() -> str:
    """On a card Slack posted but never confirmed: the attempt ended there."""
    return ("Slack did not confirm this card when it was posted, so no call was placed. "
            "Run the command again to place it.")


def store_down_before(cause: str) -> str:
    """The rules could not be checked: nothing was posted or placed."""
    return (f"I couldn't check this call against the limits: {_DATABASE[cause]}. "
            "No call was placed; try again shortly.")


def failed_unrecorded(message: str) -> str:
    return message + " (The database could not record this attempt either.)"


def placed_not_recorded(call_id: str, cause: str | None) -> str:
    why = _DATABASE.get(cause or "", "the database failed")
    return (f"Retell placed the call (`{call_id}`), but I could not record it: {why}. "
            "Its card will catch up when the database takes writes again.")


def unexpected(name: str) -> str:
    return (f"Something went wrong while placing this call (`{name}`). Check its card "
            "before trying again: it shows whether a call was placed.")
