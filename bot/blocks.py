"""Block Kit rendering: pure functions from records to messages, inside Slack's limits.

Limits (slack-notes.md): 50 blocks a message, 3,000 characters a section text, 10 fields of
2,000, 40,000 characters of message text. Text that comes from a call (summaries,
transcripts) is escaped so it can never mention @channel or inject links.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.phones import show_phone
from bot.retell import DNC_REASON
from bot.words import (
    cost_words,
    duration_words,
    percent_words,
    reason_words,
    sentiment_words,
)
from storage.models import AuditRow, CallRecord, CallStats, DncEntry

SECTION_LIMIT = 3000
MAX_BLOCKS = 50
SUMMARY_SECTIONS = 4
TRANSCRIPT_SECTIONS = 3
FALLBACK_TEXT_LIMIT = 3000
# Longer transcripts go into the thread as a file rather than a wall of messages.
TRANSCRIPT_MESSAGE_LIMIT = 6000
# Button action ids: a public contract with cards already posted in channels.
ACTION_HANG_UP = "call_hang_up"
ACTION_REFRESH = "call_refresh"
ACTION_TRANSCRIPT = "call_transcript"
ACTION_CALL_AGAIN = "call_again"
# The number of a callee who asked not to be called went on the do-not-call list.
DNC_NOTE = (":no_entry: The callee asked not to be called again: the number is now on the "
            "do-not-call list.")
STATUS_WORDS = {
    "placing": "placing the call",
    "failed": "not placed",
    "registered": "dialing",
    "ongoing": "in progress",
    "ended": "ended",
    "not_connected": "not connected",
    "error": "error",
}


@dataclass(frozen=True)
class Message:
    text: str
    blocks: list[dict[str, Any]]


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: only &, < and > are special."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chunk_text(text: str, limit: int, max_chunks: int) -> tuple[list[str], int]:
    """Split on line breaks where possible; returns the chunks and how many chars were cut."""
    chunks: list[str] = []
    rest = text.strip()
    while rest and len(chunks) < max_chunks:
        if len(rest) <= limit:
            chunks.append(rest)
            rest = ""
            break
        cut = rest.rfind("\n", 0, limit)
        if cut < limit // 2:
            cut = rest.rfind(" ", 0, limit)
        if cut < limit // 2:
            cut = limit
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return chunks, len(rest)


def _render(blocks: list[Block]) -> list[dict[str, Any]]:
    # to_dict() runs slack_sdk's own validation of field lengths.
    rendered = [block.to_dict() for block in blocks]
    if len(rendered) > MAX_BLOCKS:
        raise ValueError(f"{len(rendered)} blocks is over Slack's limit of {MAX_BLOCKS}")
    return rendered


def _slack_date(epoch: float, fallback: str = "") -> str:
    return f"<!date^{int(epoch)}^{{date_short_pretty}} {{time}}|{fallback or int(epoch)}>"


def _slack_time(epoch: float) -> str:
    """A time Slack shows in each reader's zone; the fallback is UTC."""
    fallback = datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")
    return f"<!date^{int(epoch)}^{{time_secs}}|{fallback}>"


# -- the call card ---------------------------------------------------------------------------


def status_line(call: CallRecord) -> str:
    status = call.status
    if status == "placing":
        return ":hourglass_flowing_sand: Placing the call…"
    if status == "failed":
        return f":x: *Not placed*: {escape(call.error or 'unknown error')}"
    if status == "registered":
        return ":telephone_receiver: *Dialing…*"
    if status == "ongoing":
        return ":large_green_circle: *In progress*"
    reason = reason_words(call.disconnection_reason)
    if status == "not_connected":
        return f":no_entry_sign: *Not connected* · {reason}"
    if status == "error":
        return f":warning: *Error* · {reason}"
    if status == "ended":
        return f":checkered_flag: *Ended* · {duration_words(call.duration_ms)} · {reason}"
    return f":grey_question: *{escape(status.replace('_', ' ').capitalize())}*"


def outcome_line(call: CallRecord) -> str | None:
    """The call at a glance, once Retell's analysis is in."""
    if not call.analyzed:
        return None
    if call.successful is True:
        verdict = ":white_check_mark: Successful"
    elif call.successful is False:
        verdict = ":x: Not successful"
    else:
        verdict = ":grey_question: Success unknown"
    parts = [verdict, sentiment_words(call.sentiment), duration_words(call.duration_ms)]
    if call.cost_cents is not None:
        parts.append(cost_words(call.cost_cents))
    if call.in_voicemail:
        parts.append(":mailbox: Voicemail")
    return " · ".join(parts)


def timeline_line(call: CallRecord) -> str | None:
    """When the call reached each stage, in the reader's own time zone."""
    steps = [
        ("Placed", call.created_at if call.call_id else None),
        # Retell stamps a start on calls that never connected; they were never in progress.
        ("In progress", call.started_at if call.status != "not_connected" else None),
        ("Ended", call.ended_at),
        ("Analyzed", call.analyzed_at),
    ]
    shown = [f"{label} {_slack_time(at)}" for label, at in steps if at]
    return " → ".join(shown) or None


def card_buttons(call: CallRecord, *, post_transcripts: bool = True) -> list[ButtonElement]:
    """Only the buttons that make sense in the call's state."""
    buttons: list[ButtonElement] = []
    if call.call_id is None:
        if call.status == "failed" and call.id:
            buttons.append(_button("Try again", ACTION_CALL_AGAIN, f"#{call.id}", "primary"))
        return buttons
    if call.live:
        buttons.append(
            _button(
                "Hang up", ACTION_HANG_UP, call.call_id, "danger",
                confirm=ConfirmObject(
                    title="Hang up?",
                    text="The AI agent ends the call at once.",
                    confirm="Hang up",
                    deny="Keep talking",
                    style="danger",
                ),
            )
        )
    if not call.analyzed:
        buttons.append(_button("Refresh", ACTION_REFRESH, call.call_id))
    if call.transcript and post_transcripts:
        buttons.append(_button("Transcript", ACTION_TRANSCRIPT, call.call_id))
    if not call.live:
        label = "Call back" if call.direction == "inbound" else "Call again"
        buttons.append(_button(label, ACTION_CALL_AGAIN, call.call_id))
    return buttons


def _button(
    label: str, action_id: str, value: str, style: str | None = None,
    confirm: ConfirmObject | None = None,
) -> ButtonElement:
    return ButtonElement(text=label, action_id=action_id, value=value, style=style,
                         confirm=confirm)


def call_card(call: CallRecord, *, show_full_numbers: bool = False,
              post_transcripts: bool = True) -> Message:
    number = show_phone(call.to_number if call.direction != "inbound" else call.from_number,
                        full=show_full_numbers)
    agent = escape(call.agent_name or call.agent_id or "the number's default agent")
    if call.direction == "inbound":
        title = f":telephone_receiver: *Inbound call from {number}*"
        who = f"Agent: *{agent}*"
    else:
        title = f":telephone_receiver: *Call to {number}*"
        who = f"Agent: *{agent}*"
        if call.user_id:
            who += f" · Requested by <@{call.user_id}>"
    head = f"{title}\n{who}"
    if call.note:
        head += f"\n:memo: {escape(call.note)}"
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=head[:SECTION_LIMIT])),
        SectionBlock(text=MarkdownTextObject(text=status_line(call))),
    ]
    outcome = outcome_line(call)
    if outcome:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=outcome)))
    if call.disconnection_reason == DNC_REASON:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=DNC_NOTE)))
    context = []
    timeline = timeline_line(call)
    if timeline:
        context.append(timeline)
    if call.call_id:
        context.append(f"`{escape(call.call_id)}`")
    if context:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=" · ".join(context))]))
    buttons = card_buttons(call, post_transcripts=post_transcripts)
    if buttons:
        blocks.append(ActionsBlock(block_id="call_actions", elements=buttons))
    plain_status = STATUS_WORDS.get(call.status, call.status.replace("_", " "))
    text = f"Call to {number}: {plain_status}"
    if call.direction == "inbound":
        text = f"Inbound call from {number}: {plain_status}"
    return Message(text=text, blocks=_render(blocks))


def already_placed_card(call: CallRecord, *, show_full_numbers: bool = False) -> Message:
    """A retry that Retell answered with the call it had already placed: point at the
    card that follows that call, rather than keep a second card that never moves."""
    number = show_phone(call.to_number, full=show_full_numbers)
    text = (f":information_source: Retell had already placed this call to {number}; "
            "it was not placed twice. Its card above follows it.")
    context = f"`{escape(call.call_id)}`" if call.call_id else ""
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=text))]
    if context:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=context)]))
    return Message(text=f"Call to {number}: already placed", blocks=_render(blocks))


# -- the analysis reply in the card's thread ---------------------------------------------------


def analysis_reply(call: CallRecord, *, post_transcripts: bool = True,
                   post_recordings: bool = True) -> Message:
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text="Call summary", emoji=True))]
    summary = call.summary or "Retell sent no summary for this call."
    chunks, cut = chunk_text(escape(summary), SECTION_LIMIT, SUMMARY_SECTIONS)
    blocks += [SectionBlock(text=MarkdownTextObject(text=c)) for c in chunks]
    if cut:
        blocks.append(_cut_note(cut, "summary", call.public_log_url))
    if call.successful is None:
        success = "Unknown"
    else:
        success = ":white_check_mark: Yes" if call.successful else ":x: No"
    fields = [
        f"*Sentiment*\n{sentiment_words(call.sentiment)}",
        f"*Successful*\n{success}",
        f"*Duration*\n{duration_words(call.duration_ms)}",
        f"*Cost*\n{cost_words(call.cost_cents)}",
        f"*Ended because*\n{reason_words(call.disconnection_reason)}",
    ]
    if call.in_voicemail:
        fields.append("*Voicemail*\nYes")
    blocks.append(SectionBlock(fields=[MarkdownTextObject(text=f) for f in fields]))
    links = []
    if call.recording_url and post_recordings:
        links.append(f":studio_microphone: <{_safe_url(call.recording_url)}|Recording>")
    # Retell's call log holds the transcript and the recording: only when both may be shown.
    if call.public_log_url and post_transcripts and post_recordings:
        links.append(f":page_facing_up: <{_safe_url(call.public_log_url)}|Call log>")
    if links:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="   ".join(links))))
    if call.transcript and post_transcripts:
        blocks.append(DividerBlock())
        blocks += transcript_blocks(call.transcript, call.public_log_url)
    text = f"Call summary: {escape(summary)}"
    if len(text) > FALLBACK_TEXT_LIMIT:
        text = text[: FALLBACK_TEXT_LIMIT - 1] + "…"
    return Message(text=text, blocks=_render(blocks))


def transcript_blocks(
    transcript: str, log_url: str | None = None, max_sections: int = TRANSCRIPT_SECTIONS
) -> list[Block]:
    """The start of a transcript as plain text (no mrkdwn surprises), with a note on the rest."""
    blocks: list[Block] = [ContextBlock(elements=[MarkdownTextObject(text="*Transcript*")])]
    chunks, cut = chunk_text(transcript, SECTION_LIMIT, max_sections)
    blocks += [SectionBlock(text=PlainTextObject(text=c, emoji=False)) for c in chunks]
    if cut:
        blocks.append(_cut_note(cut, "transcript", log_url))
    return blocks


@dataclass(frozen=True)
class TextFile:
    """Something too long for a message, uploaded as a text file instead."""

    filename: str
    title: str
    content: str
    comment: str


_SPEAKER = re.compile(r"^(Agent|User|Transfer[_ ]target)\s*:\s?(.*)$", re.IGNORECASE)


def speaker_turns(transcript: str) -> list[tuple[str, str]]:
    """Retell's `Agent: ...` / `User: ...` lines as turns; unlabelled lines continue a turn."""
    turns: list[tuple[str, str]] = []
    for line in transcript.splitlines():
        match = _SPEAKER.match(line.strip())
        if match:
            speaker = match.group(1).replace("_", " ").capitalize()
            turns.append((speaker, match.group(2).strip()))
        elif line.strip():
            if turns:
                turns[-1] = (turns[-1][0], f"{turns[-1][1]}\n{line.strip()}")
            else:
                turns.append(("", line.strip()))
    return turns


def transcript_post(call: CallRecord, *, show_full_numbers: bool = False) -> Message | TextFile:
    """Short transcripts as a message in the thread, long ones as a file: never over a limit."""
    transcript = (call.transcript or "").strip()
    turns = speaker_turns(transcript)
    lines = [f"*{who}:* {escape(said)}" if who else escape(said) for who, said in turns]
    sections: list[str] = []
    for line in lines:
        if sections and len(sections[-1]) + len(line) + 1 <= SECTION_LIMIT:
            sections[-1] += "\n" + line
        elif len(line) <= SECTION_LIMIT:
            sections.append(line)
        else:
            sections = []  # one turn alone is over a section: only a file can hold it
            break
    number = show_phone(call.to_number if call.direction != "inbound" else call.from_number,
                        full=show_full_numbers)
    title = f"Transcript of the call {'from' if call.direction == 'inbound' else 'to'} {number}"
    if sections and len(transcript) <= TRANSCRIPT_MESSAGE_LIMIT:
        blocks: list[Block] = [ContextBlock(elements=[MarkdownTextObject(text=f"*{title}*")])]
        blocks += [SectionBlock(text=MarkdownTextObject(text=chunk)) for chunk in sections]
        fallback = f"{title}\n{escape(transcript[:FALLBACK_TEXT_LIMIT])}"
        return Message(text=fallback, blocks=_render(blocks))
    content = "\n".join(f"{who}: {said}" if who else said for who, said in turns)
    return TextFile(
        filename=f"transcript-{call.call_id or call.id}.txt",
        title=title,
        content=f"{title} ({call.call_id})\n\n{content}\n",
        comment=f":page_facing_up: {title}: {len(turns):,} turns, as a file.",
    )


def _cut_note(cut: int, what: str, log_url: str | None) -> Block:
    note = f"_… {cut:,} more characters of the {what} not shown._"
    if log_url:
        note += f" <{_safe_url(log_url)}|Full call log>"
    return ContextBlock(elements=[MarkdownTextObject(text=note)])


def _safe_url(url: str) -> str:
    """Links only for http(s); `|` and `>` would end a Slack link early."""
    if not url.startswith(("https://", "http://")):
        return "about:blank"
    return url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")


# -- answers to people -------------------------------------------------------------------------


def stats_message(stats: CallStats, period_label: str) -> Message:
    title = f"*Calls in {period_label}*"
    if stats.calls == 0:
        body = f"{title}\nNo calls yet."
        if stats.failed_attempts:
            body += f" ({stats.failed_attempts} attempts Retell refused.)"
        blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=body))]
        return Message(text=f"No calls in {period_label}", blocks=_render(blocks))
    mix = stats.sentiments
    rate = percent_words(stats.success_rate)
    fields = [
        f"*Calls*\n{stats.calls:,}",
        f"*Success rate*\n{rate} ({stats.successful:,} of {stats.analyzed:,} analyzed)",
        "*Sentiment*\n"
        + "  ".join(f"{sentiment_words(k)} {mix.get(k, 0):,}" for k in
                    ("Positive", "Neutral", "Negative", "Unknown")),
        f"*Duration*\navg {duration_words(stats.avg_duration_ms)} · "
        f"median {duration_words(stats.median_duration_ms)}",
        f"*Total cost*\n{cost_words(stats.total_cost_cents)}",
    ]
    if stats.failed_attempts:
        fields.append(f"*Refused by Retell*\n{stats.failed_attempts:,}")
    blocks = [
        SectionBlock(text=MarkdownTextObject(text=title)),
        SectionBlock(fields=[MarkdownTextObject(text=f) for f in fields]),
    ]
    if stats.top_reasons:
        lines = [f"• {reason_words(code)}: {n:,}" for code, n in stats.top_reasons]
        blocks.append(
            SectionBlock(text=MarkdownTextObject(text="*How calls ended*\n" + "\n".join(lines)))
        )
    text = f"{stats.calls} calls in {period_label}, success rate {rate}"
    return Message(text=text, blocks=_render(blocks))


def not_in_channel_text(channel_id: str, error: str) -> str:
    return (
        f"I can't post the call card in <#{channel_id}> (`{error}`), so no call was placed. "
        "Invite me with `/invite @Callbot` (in a private channel, or use the channel's "
        "Integrations tab), then run the command again."
    )


# -- guardrail answers (ephemeral, to the person who asked) -----------------------------------


def dnc_list_message(entries: list[DncEntry], total: int, *,
                     show_full_numbers: bool = False) -> Message:
    if not entries:
        return _text_message("The do-not-call list is empty.")
    title = f"*Do-not-call list* ({total:,} number{'s' if total != 1 else ''}"
    title += f", newest {len(entries)} shown)" if total > len(entries) else ")"
    lines = [dnc_line(e, show_full_numbers=show_full_numbers) for e in entries]
    return _lines_message(title, lines, f"Do-not-call list: {total} numbers")


def dnc_line(entry: DncEntry, *, show_full_numbers: bool = False) -> str:
    who = f"<@{entry.added_by}>" if entry.added_by else "the callee, on a call"
    why = f" · {escape(entry.reason)}" if entry.reason else ""
    return (f"• {show_phone(entry.number, full=show_full_numbers)} · added by {who} "
            f"{_slack_date(entry.added_at)}{why}")


def audit_message(rows: list[AuditRow], what: str) -> Message:
    if not rows:
        return _text_message(f"No audit entries {what}.")
    lines = [audit_line(r) for r in rows]
    return _lines_message(f"*Audit log* ({len(rows)} entries {what}, newest first)", lines,
                          f"Audit log: {len(rows)} entries")


def audit_line(row: AuditRow) -> str:
    """Numbers here are the masked form the log keeps; it never had the full one."""
    who = f"<@{row.user_id}>" if row.user_id else "Retell"
    parts = [_slack_date(row.at), who,
             escape(row.action.replace("_", " ")), f"*{escape(row.outcome)}*"]
    if row.reason:
        parts[-1] += f" ({escape(row.reason)})"
    for extra in (row.number, row.agent):
        if extra:
            parts.append(escape(extra))
    if row.channel_id:
        parts.append(f"<#{row.channel_id}>")
    if row.source:
        parts.append(f"via {escape(row.source)}")
    return "• " + " · ".join(parts)


def _text_message(text: str) -> Message:
    return Message(text=text, blocks=_render([SectionBlock(text=MarkdownTextObject(text=text))]))


def _lines_message(title: str, lines: list[str], fallback: str) -> Message:
    chunks, cut = chunk_text(title + "\n" + "\n".join(lines), SECTION_LIMIT, MAX_BLOCKS - 1)
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=c)) for c in chunks]
    if cut:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"{cut:,} more characters not shown")]))
    return Message(text=fallback, blocks=_render(blocks))
