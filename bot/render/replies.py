"""Short replies to a person's command or button press (the answers placing gives are in
answers.py and placing.py, refusals in refusals.py), in the reader's language."""

from __future__ import annotations

from bot.render.blocks import user_mention
from bot.render.catalog import DEFAULT_LANGUAGE, counted, words
from bot.render.words import count_words

# Replies that are one sentence and no facts, by name: `say(name, lang)`.
_PLAIN = {
    "transcripts_off": "",
    "no_transcript_yet": "",
    "transcript_already_posted": "",
    "no_record_of_call": ":warning: ",
    "no_number_to_dial": ":warning: ",
    "no_channel_for_call": ":warning: ",
    "call_again_on_its_way": "",
    "counting_calls": ":hourglass_flowing_sand: ",
}


def say(name: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """One of the plain replies (`transcripts_off`, `no_record_of_call`, ...)."""
    return _PLAIN[name] + words(lang, f"reply.{name}")


def warning(text: str, usage: str | None = None) -> str:
    """A problem with what was typed, and how to type it."""
    return f":warning: {text}" + (f"\n{usage}" if usage else "")


def busy(reason: str, retry_after: int, in_hand: int, lang: str = DEFAULT_LANGUAGE) -> str:
    """Heavy stats turned away for now, and when to ask again."""
    if reason == "yours_running":
        return ":hourglass_flowing_sand: " + words(lang, "reply.busy_yours",
                                                    seconds=retry_after)
    return ":hourglass_flowing_sand: " + words(lang, "reply.busy_full", count=in_hand,
                                                seconds=retry_after)


def refused(text: str) -> str:
    """A rule said no."""
    return f":no_entry: {text}"


def dnc_added(shown: str, added: bool, lang: str = DEFAULT_LANGUAGE) -> str:
    return (":no_entry: " + words(lang, "reply.dnc_added", number=shown) if added
            else words(lang, "reply.dnc_already", number=shown))


def dnc_removed(shown: str, removed: bool, lang: str = DEFAULT_LANGUAGE) -> str:
    return (":white_check_mark: " + words(lang, "reply.dnc_removed", number=shown) if removed
            else words(lang, "reply.dnc_was_not_listed", number=shown))


def dnc_not_listed(shown: str, lang: str = DEFAULT_LANGUAGE) -> str:
    return words(lang, "reply.dnc_not_listed", number=shown)


def dnc_listed(line: str, lang: str = DEFAULT_LANGUAGE) -> str:
    return words(lang, "reply.dnc_listed") + "\n" + line


def audit_exporting(count: int, lang: str = DEFAULT_LANGUAGE) -> str:
    return ":inbox_tray: " + words(lang, "reply.audit_exporting",
                                   count=count_words(count, lang))


def audit_not_sent(error: str, lang: str = DEFAULT_LANGUAGE) -> str:
    return ":x: " + words(lang, "reply.audit_not_sent", error=error)


def audit_file_title(lang: str = DEFAULT_LANGUAGE) -> str:
    return words(lang, "reply.audit_file_title")


def audit_file_comment(count: int, lang: str = DEFAULT_LANGUAGE) -> str:
    return words(lang, "reply.audit_file_comment", count=count_words(count, lang))


def audit_scope(user_id: str | None, shown_number: str | None,
                lang: str = DEFAULT_LANGUAGE) -> str:
    """Whose entries an audit answer lists."""
    if user_id:
        return words(lang, "audit.scope_user", user=user_mention(user_id) or user_id)
    if shown_number:
        return words(lang, "audit.scope_number", number=shown_number)
    return words(lang, "audit.scope_all")


def agents_unavailable(retell_failure: str, lang: str = DEFAULT_LANGUAGE) -> str:
    return ":warning: " + words(lang, "reply.agents_unavailable", failure=retell_failure)


def chart_title(period: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """The title drawn on the calls-per-day chart, and its file's."""
    return words(lang, "stats.chart_title", period=period)


def export_comment(count: int, own_only: bool, cut: bool, lang: str = DEFAULT_LANGUAGE) -> str:
    """What the exported file is, said with it in the DM."""
    text = counted(lang, "stats.export_comment", count, count=count_words(count, lang))
    if own_only:
        text += " " + words(lang, "stats.export_own_only")
    if cut:
        text += " " + words(lang, "stats.export_cut")
    return text
