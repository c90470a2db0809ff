"""Short replies to a person's command or button press (the answers placing gives are in
answers.py and placing.py, refusals in refusals.py)."""

from __future__ import annotations

from bot.render.blocks import user_mention

TRANSCRIPTS_OFF = "Transcripts are not posted in channels here (`CALLBOT_POST_TRANSCRIPTS`)."
NO_TRANSCRIPT_YET = "This call has no transcript yet."
TRANSCRIPT_ALREADY_POSTED = "The transcript is already in the card's thread."
NO_RECORD_OF_CALL = ":warning: I have no record of that call."
NO_NUMBER_TO_DIAL = ":warning: That call has no number I can dial."
NO_CHANNEL_FOR_CALL = ":warning: I don't know which channel that call belongs to."
CALL_AGAIN_ON_ITS_WAY = "You just pressed *Call again* on this card; that call is on its way."
COUNTING_CALLS = ":hourglass_flowing_sand: Counting calls…"
AUDIT_FILE_TITLE = "Callbot audit log"


def warning(text: str, usage: str | None = None) -> str:
    """A problem with what was typed, and how to type it."""
    return f":warning: {text}" + (f"\n{usage}" if usage else "")


def busy(reason: str, retry_after: int, in_hand: int) -> str:
    """Heavy stats turned away for now, and when to ask again."""
    if reason == "yours_running":
        return (":hourglass_flowing_sand: Your last stats request is still counting; its "
                f"answer comes here. Ask again in {retry_after} s.")
    return (f":hourglass_flowing_sand: Stats are busy ({in_hand} requests are counting). "
            f"Try again in {retry_after} s.")


def refused(text: str) -> str:
    """A rule said no."""
    return f":no_entry: {text}"


def dnc_added(shown: str, added: bool) -> str:
    return (f":no_entry: {shown} is now on the do-not-call list." if added
            else f"{shown} was already on the do-not-call list.")


def dnc_removed(shown: str, removed: bool) -> str:
    return (f":white_check_mark: {shown} is off the do-not-call list." if removed
            else f"{shown} was not on the do-not-call list.")


def dnc_not_listed(shown: str) -> str:
    return f"{shown} is not on the do-not-call list."


def dnc_listed(line: str) -> str:
    return "On the do-not-call list:\n" + line


def audit_exporting(count: int) -> str:
    return (f":inbox_tray: Exporting {count:,} audit entries; the CSV comes to you in a "
            "direct message.")


def audit_not_sent(error: str) -> str:
    return f":x: I could not send you the CSV (`{error}`)."


def audit_file_comment(count: int) -> str:
    return f"The audit log: {count:,} entries."


def audit_scope(user_id: str | None, shown_number: str | None) -> str:
    """Whose entries an audit answer lists."""
    if user_id:
        return f"for {user_mention(user_id) or user_id}"
    return f"for {shown_number}" if shown_number else "in all"


def agents_unavailable(retell_failure: str) -> str:
    return f":warning: {retell_failure} You can still call with the caller ID's own agent."
