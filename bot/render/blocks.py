"""Block Kit rendering: pure functions from records to messages, inside Slack's limits.

Limits (slack-notes.md): 50 blocks a message, 3,000 characters a section text, 10 fields of
2,000, 40,000 characters of message text.

Everything that came from Retell, from call metadata or from a person (statuses, reasons,
agent names, error texts, summaries, transcripts, notes) goes through `said()` before it
reaches a mrkdwn field or a fallback `text`: cut to a bound, phone numbers masked in every
spelling (unless CALLBOT_SHOW_FULL_NUMBERS), escaped so `<!channel>`, `<@U…>` or
`<https://evil|click>` are shown, never pinged or linked, and `@channel` typed plainly broken
so Slack's automatic parsing cannot turn it into a mention. Ids are shown as mentions only
when they look like Slack ids. Every function here does work bounded by those cuts, whatever
the size of what Retell sent, so rendering never holds the event loop for long.
"""

from __future__ import annotations

import json
import math
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

from bot.input.phones import mask_numbers, show_phone
from bot.render.catalog import DEFAULT_LANGUAGE, catalogue, counted, words
from bot.render.words import (
    cost_words,
    count_words,
    duration_words,
    reason_words,
    sentiment_words,
)
from bot.retell.client import DNC_REASON
from storage.models import DNC_CALLEE_ASKED, AuditRow, CallRecord, DncEntry

SECTION_LIMIT = 3000
MAX_BLOCKS = 50
SUMMARY_SECTIONS = 4
TRANSCRIPT_SECTIONS = 3
FALLBACK_TEXT_LIMIT = 3000
# Longer transcripts go into the thread as a file rather than a wall of messages.
TRANSCRIPT_MESSAGE_LIMIT = 6000
# A file holds at most this much of a transcript (about three hours of speech); the rest is
# in Retell. It bounds the work of rendering one, whatever Retell sent.
TRANSCRIPT_FILE_LIMIT = 200_000
# Cuts for text from a call, before escaping (which at most quintuples it).
AGENT_LIMIT = 200
NOTE_LIMIT = 200
ERROR_LIMIT = 500
REASON_LIMIT = 200
SUMMARY_FALLBACK_LIMIT = 600
EXTRACTED_FIELDS = 25  # the agent's extracted fields shown in a summary, at most
FILE_EXTRACTED_FIELDS = 200  # ... and in a transcript file
FILE_VALUE_LIMIT = 4000  # characters of a summary or one field's value in a file
EXTRACTED_VALUE_LIMIT = 300
# Button action ids: a public contract with cards already posted in channels.
ACTION_HANG_UP = "call_hang_up"
ACTION_REFRESH = "call_refresh"
ACTION_TRANSCRIPT = "call_transcript"
ACTION_CALL_AGAIN = "call_again"
STATUSES = frozenset({"placing", "failed", "registered", "ongoing", "ended", "not_connected",
                      "error"})


@dataclass(frozen=True)
class Message:
    text: str
    blocks: list[dict[str, Any]]


_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
_SLACK_CHANNEL = re.compile(r"[CGD][A-Z0-9]{2,}")
# `@channel` typed plainly: a word joiner after the `@` keeps Slack from parsing it.
_BROADCAST = re.compile(r"@(?=(?:channel|here|everyone)\b)", re.IGNORECASE)
_SPACE = re.compile(r"\s*")


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: only &, < and > are special."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn_safe(text: str) -> str:
    """Escaped, and `@here`/`@channel`/`@everyone` unable to notify anyone."""
    return _BROADCAST.sub("@\u2060", escape(text))


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def said(text: str, limit: int, *, show_full_numbers: bool = False) -> str:
    """Text from a call, Retell or a person, for a mrkdwn field or a fallback `text`."""
    if not show_full_numbers:
        # Mask a little past the cut so a number straddling it is masked whole.
        text = mask_numbers(text[: limit + 40])
    return mrkdwn_safe(cut(text, limit))


def user_mention(user_id: str | None) -> str:
    """`<@U…>` only for what looks like a Slack user id; anything else is not shown."""
    return f"<@{user_id}>" if user_id and _SLACK_USER.fullmatch(user_id) else ""


def channel_link(channel_id: str | None) -> str:
    """`<#C…>` only for what looks like a Slack channel id; anything else, escaped text."""
    if channel_id and _SLACK_CHANNEL.fullmatch(channel_id):
        return f"<#{channel_id}>"
    return mrkdwn_safe(cut(channel_id or "the channel", 40))


def chunk_text(text: str, limit: int, max_chunks: int) -> tuple[list[str], int]:
    """Split on line breaks where possible; returns the chunks and how many chars were cut.

    Works on positions, never on copies of the rest, so its cost is one pass over `text`
    plus the chunks it returns."""
    chunks: list[str] = []
    text = text.strip()
    pos, end = 0, len(text)
    while pos < end and len(chunks) < max_chunks:
        if end - pos <= limit:
            chunks.append(text[pos:])
            pos = end
            break
        size = text.rfind("\n", pos, pos + limit) - pos
        if size < limit // 2:
            size = text.rfind(" ", pos, pos + limit) - pos
        if size < limit // 2:
            size = limit
        chunks.append(text[pos:pos + size].rstrip())
        pos = _SPACE.match(text, pos + size).end()  # type: ignore[union-attr]
    return chunks, end - pos


def to_blocks(blocks: list[Block]) -> list[dict[str, Any]]:
    # to_dict() runs slack_sdk's own validation of field lengths.
    rendered = [block.to_dict() for block in blocks]
    if len(rendered) > MAX_BLOCKS:
        raise ValueError(f"{len(rendered)} blocks is over Slack's limit of {MAX_BLOCKS}")
    return rendered


def date_token(epoch: float, fmt: str, fallback: str) -> str:
    """Slack's date markup: shown in each reader's own zone with `fmt`'s tokens
    (`{date_short_pretty}`, `{time}`, ...), `fallback` where Slack cannot."""
    return f"<!date^{int(epoch)}^{fmt}|{fallback}>"


def slack_date(epoch: float, fallback: str = "") -> str:
    """A date and time Slack shows in each reader's zone."""
    if not _is_time(epoch):
        return "–"
    return date_token(epoch, "{date_short_pretty} {time}", fallback or str(int(epoch)))


def _slack_time(epoch: float) -> str:
    """A time Slack shows in each reader's zone; the fallback is UTC."""
    if not _is_time(epoch):
        return "–"
    fallback = datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")
    return date_token(epoch, "{time_secs}", fallback)


def _is_time(epoch: float) -> bool:
    """A stamp a card can show (not NaN, infinite or past the year 9999)."""
    return isinstance(epoch, int | float) and math.isfinite(epoch) and 0 <= epoch < 253e9


# -- the call card ---------------------------------------------------------------------------


def status_line(call: CallRecord, *, show_full_numbers: bool = False,
                lang: str = DEFAULT_LANGUAGE) -> str:
    status = call.status
    if status == "placing":
        return ":hourglass_flowing_sand: " + words(lang, "card.placing")
    if status == "failed":
        error = said(call.error or words(lang, "card.unknown_error"), ERROR_LIMIT,
                     show_full_numbers=show_full_numbers)
        return ":x: " + words(lang, "card.failed", error=error)
    if status == "registered":
        return ":telephone_receiver: " + words(lang, "card.dialing")
    if status == "ongoing":
        return ":large_green_circle: " + words(lang, "card.ongoing")
    reason = said(reason_words(call.disconnection_reason, lang), REASON_LIMIT,
                  show_full_numbers=show_full_numbers)
    if status == "not_connected":
        return ":no_entry_sign: " + words(lang, "card.not_connected", reason=reason)
    if status == "error":
        return ":warning: " + words(lang, "card.error", reason=reason)
    if status == "ended":
        return ":checkered_flag: " + words(lang, "card.ended", reason=reason,
                                           duration=duration_words(call.duration_ms, lang))
    return f":grey_question: *{status_words(status, lang)}*"


def status_words(status: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """A status in words, for a card or a fallback text; an unknown one is escaped."""
    if status in STATUSES:
        known = words(lang, f"status.{status}")
        return known[:1].upper() + known[1:]
    return said(status.replace("_", " ").capitalize(), 60)


def outcome_line(call: CallRecord, lang: str = DEFAULT_LANGUAGE) -> str | None:
    """The call at a glance, once Retell's analysis is in."""
    if not call.analyzed:
        return None
    if call.successful is True:
        verdict = ":white_check_mark: " + words(lang, "card.successful")
    elif call.successful is False:
        verdict = ":x: " + words(lang, "card.not_successful")
    else:
        verdict = ":grey_question: " + words(lang, "card.success_unknown")
    parts = [verdict, sentiment_words(call.sentiment, lang),
             duration_words(call.duration_ms, lang)]
    if call.cost_cents is not None:
        parts.append(cost_words(call.cost_cents, lang))
    if call.in_voicemail:
        parts.append(":mailbox: " + words(lang, "card.voicemail"))
    return " · ".join(parts)


def timeline_line(call: CallRecord, lang: str = DEFAULT_LANGUAGE) -> str | None:
    """When the call reached each stage, in the reader's own time zone."""
    steps = [
        ("placed", call.created_at if call.call_id else None),
        # Retell stamps a start on calls that never connected; they were never in progress.
        ("in_progress", call.started_at if call.status != "not_connected" else None),
        ("ended", call.ended_at),
        ("analyzed", call.analyzed_at),
    ]
    shown = [f"{words(lang, f'card.step.{step}')} {_slack_time(at)}" for step, at in steps if at]
    return " → ".join(shown) or None


def card_buttons(call: CallRecord, *, post_transcripts: bool = True,
                 lang: str = DEFAULT_LANGUAGE) -> list[ButtonElement]:
    """Only the buttons that make sense in the call's state."""
    buttons: list[ButtonElement] = []
    if call.call_id is None:
        if call.status == "failed" and call.id:
            buttons.append(_button(words(lang, "button.try_again"), ACTION_CALL_AGAIN,
                                   f"#{call.id}", "primary"))
        return buttons
    if call.live:
        hang_up = words(lang, "button.hang_up")
        buttons.append(
            _button(
                hang_up, ACTION_HANG_UP, call.call_id, "danger",
                confirm=ConfirmObject(
                    title=words(lang, "button.hang_up_title"),
                    text=words(lang, "button.hang_up_text"),
                    confirm=hang_up,
                    deny=words(lang, "button.keep_talking"),
                    style="danger",
                ),
            )
        )
    if not call.analyzed:
        buttons.append(_button(words(lang, "button.refresh"), ACTION_REFRESH, call.call_id))
    if call.transcript and post_transcripts:
        buttons.append(_button(words(lang, "button.transcript"), ACTION_TRANSCRIPT,
                               call.call_id))
    if not call.live:
        label = "button.call_back" if call.direction == "inbound" else "button.call_again"
        buttons.append(_button(words(lang, label), ACTION_CALL_AGAIN, call.call_id))
    return buttons


def _button(
    label: str, action_id: str, value: str, style: str | None = None,
    confirm: ConfirmObject | None = None,
) -> ButtonElement:
    return ButtonElement(text=label, action_id=action_id, value=value, style=style,
                         confirm=confirm)


def call_card(call: CallRecord, *, show_full_numbers: bool = False,
              post_transcripts: bool = True, lang: str = DEFAULT_LANGUAGE,
              simulated: bool = False) -> Message:
    number = show_phone(call.other_number,
                        full=show_full_numbers)
    full = show_full_numbers
    agent = said(call.agent_name or call.agent_id or words(lang, "card.default_agent"),
                 AGENT_LIMIT, show_full_numbers=full)
    inbound = call.direction == "inbound"
    title = ":telephone_receiver: " + words(
        lang, "card.title_inbound" if inbound else "card.title_outbound", number=number)
    who = words(lang, "card.agent", agent=agent)
    requester = user_mention(call.user_id)
    if requester and not inbound:
        who += " · " + words(lang, "card.requested_by", user=requester)
    head = f"{title}\n{who}"
    if call.note:
        # A person's own words, but shown to the channel: masked like everything else.
        head += f"\n:memo: {said(call.note, NOTE_LIMIT, show_full_numbers=full)}"
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=head[:SECTION_LIMIT])),
        SectionBlock(text=MarkdownTextObject(text=status_line(call, show_full_numbers=full,
                                                              lang=lang))),
    ]
    outcome = outcome_line(call, lang)
    if outcome:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=outcome)))
    if call.disconnection_reason == DNC_REASON:
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text=":no_entry: " + words(lang, "card.dnc_note"))))
    context = []
    if simulated:
        context.append(":test_tube: " + words(lang, "card.simulated"))
    timeline = timeline_line(call, lang)
    if timeline:
        context.append(timeline)
    if call.call_id:
        context.append(f"`{said(call.call_id, 100, show_full_numbers=True)}`")
    if context:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=" · ".join(context))]))
    buttons = card_buttons(call, post_transcripts=post_transcripts, lang=lang)
    if buttons:
        blocks.append(ActionsBlock(block_id="call_actions", elements=buttons))
    plain_status = (words(lang, f"status.{call.status}") if call.status in STATUSES
                    else said(call.status.replace("_", " "), 60))
    text = words(lang, "card.text_inbound" if inbound else "card.text_outbound",
                 number=number, status=plain_status)
    return Message(text=text, blocks=to_blocks(blocks))


def already_placed_card(call: CallRecord, *, show_full_numbers: bool = False,
                        lang: str = DEFAULT_LANGUAGE) -> Message:
    """A retry that Retell answered with the call it had already placed: point at the
    card that follows that call, rather than keep a second card that never moves."""
    number = show_phone(call.to_number, full=show_full_numbers)
    text = ":information_source: " + words(lang, "card.already_placed", number=number)
    context = f"`{said(call.call_id, 100, show_full_numbers=True)}`" if call.call_id else ""
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=text))]
    if context:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=context)]))
    return Message(text=words(lang, "card.already_placed_text", number=number),
                   blocks=to_blocks(blocks))


# -- the analysis reply in the card's thread ---------------------------------------------------


def analysis_reply(call: CallRecord, *, post_transcripts: bool = True,
                   post_recordings: bool = True, show_full_numbers: bool = False,
                   lang: str = DEFAULT_LANGUAGE) -> Message:
    full = show_full_numbers
    # Retell's call log holds the transcript and the recording: only when both may be shown,
    # in the links and in every "cut" note alike.
    log_url = call.public_log_url if post_transcripts and post_recordings else None
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=words(lang, "summary.header"),
                                                            emoji=True))]
    summary = call.summary or words(lang, "summary.none")
    # Only what can be shown is masked and escaped (a little past it, so that a number on
    # the edge is masked whole): the work is bounded, not the summary.
    room = SECTION_LIMIT * SUMMARY_SECTIONS + 40
    shown_part = summary[:room] if full else mask_numbers(summary[:room])
    chunks, left = chunk_text(mrkdwn_safe(shown_part), SECTION_LIMIT, SUMMARY_SECTIONS)
    left += max(len(summary) - room, 0)
    blocks += [SectionBlock(text=MarkdownTextObject(text=c)) for c in chunks]
    if left:
        blocks.append(_cut_note(left, "summary", log_url, lang))
    if call.successful is None:
        success = words(lang, "summary.unknown")
    elif call.successful:
        success = ":white_check_mark: " + words(lang, "summary.yes")
    else:
        success = ":x: " + words(lang, "summary.no")
    reason = said(reason_words(call.disconnection_reason, lang), REASON_LIMIT,
                  show_full_numbers=full)
    fields = [
        ("sentiment", sentiment_words(call.sentiment, lang)),
        ("successful", success),
        ("duration", duration_words(call.duration_ms, lang)),
        ("cost", cost_words(call.cost_cents, lang)),
        ("ended_because", reason),
    ]
    if call.in_voicemail:
        fields.append(("voicemail", words(lang, "summary.yes")))
    blocks.append(SectionBlock(fields=[
        MarkdownTextObject(text=f"*{words(lang, f'summary.{name}')}*\n{value}")
        for name, value in fields]))
    noted = extracted_text(call.extracted, lang, show_full_numbers=full)
    if noted:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=noted)))
    links = []
    if call.recording_url and post_recordings:
        links.append(f":studio_microphone: <{_safe_url(call.recording_url)}|"
                     f"{words(lang, 'summary.recording')}>")
    if log_url:
        links.append(f":page_facing_up: <{_safe_url(log_url)}|{words(lang, 'summary.call_log')}>")
    if links:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="   ".join(links))))
    if call.transcript and post_transcripts:
        blocks.append(DividerBlock())
        blocks += transcript_blocks(call.transcript, log_url, show_full_numbers=full, lang=lang)
    text = words(lang, "summary.text",
                 summary=said(summary, SUMMARY_FALLBACK_LIMIT, show_full_numbers=full))
    return Message(text=cut(text, FALLBACK_TEXT_LIMIT), blocks=to_blocks(blocks))


def extracted_text(extracted: dict[str, Any], lang: str = DEFAULT_LANGUAGE, *,
                   show_full_numbers: bool = False) -> str | None:
    """The agent's own extracted fields (survey answers, a booked time), one line each,
    within one section: booleans as yes/no, numbers in the language's way, the rest cut."""
    if not extracted:
        return None
    lines = [f"*{words(lang, 'summary.extracted')}*"]
    items = list(extracted.items())
    room = SECTION_LIMIT - len(lines[0]) - 60
    shown = 0
    for name, value in items[:EXTRACTED_FIELDS]:
        line = (f"• {said(str(name).replace('_', ' '), 60)}: "
                f"{_extracted_value(value, lang, show_full_numbers)}")
        if len(line) + 1 > room:
            break
        lines.append(line)
        room -= len(line) + 1
        shown += 1
    if shown < len(items):
        lines.append("_" + words(lang, "summary.extracted_more",
                                 count=count_words(len(items) - shown, lang)) + "_")
    return "\n".join(lines)


def _extracted_value(value: Any, lang: str, show_full_numbers: bool) -> str:
    if isinstance(value, bool):
        return words(lang, "summary.yes" if value else "summary.no")
    if isinstance(value, int | float) and math.isfinite(value):
        return count_words(value, lang)
    if value is None:
        return "–"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return said(text, EXTRACTED_VALUE_LIMIT, show_full_numbers=show_full_numbers)


def transcript_blocks(
    transcript: str, log_url: str | None = None, max_sections: int = TRANSCRIPT_SECTIONS,
    *, show_full_numbers: bool = False, lang: str = DEFAULT_LANGUAGE,
) -> list[Block]:
    """The start of a transcript as plain text (no mrkdwn surprises), with a note on the rest.

    `log_url` is put in the note only as given: pass None unless the call log may be shown."""
    blocks: list[Block] = [ContextBlock(elements=[MarkdownTextObject(
        text=f"*{words(lang, 'transcript.label')}*")])]
    room = SECTION_LIMIT * max_sections + 40
    head = transcript[:room] if show_full_numbers else mask_numbers(transcript[:room])
    chunks, left = chunk_text(head, SECTION_LIMIT, max_sections)
    left += max(len(transcript) - room, 0)
    blocks += [SectionBlock(text=PlainTextObject(text=c, emoji=False)) for c in chunks]
    if left:
        blocks.append(_cut_note(left, "transcript", log_url, lang))
    return blocks


@dataclass(frozen=True)
class TextFile:
    """Something too long for a message, uploaded as a text file instead."""

    filename: str
    title: str
    content: str
    comment: str


_SPEAKER = re.compile(r"^(Agent|User|Transfer[_ ]target)\s*:\s?(.*)$", re.IGNORECASE)


def speaker_turns(transcript: str, lang: str = DEFAULT_LANGUAGE) -> list[tuple[str, str]]:
    """Retell's `Agent: ...` / `User: ...` lines as turns, speakers named in `lang`;
    unlabelled lines continue a turn.

    Linear: a turn's lines are collected and joined once, not re-joined per line."""
    turns: list[tuple[str, list[str]]] = []
    for line in transcript.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        match = _SPEAKER.match(stripped)
        if match:
            role = match.group(1).replace(" ", "_").lower()
            speaker = words(lang, f"transcript.speaker.{role}")
            turns.append((speaker, [match.group(2).strip()]))
        elif turns:
            turns[-1][1].append(stripped)
        else:
            turns.append(("", [stripped]))
    return [(who, "\n".join(lines)) for who, lines in turns]


def transcript_post(call: CallRecord, *, show_full_numbers: bool = False,
                    lang: str = DEFAULT_LANGUAGE) -> Message | TextFile:
    """Short transcripts as a message in the thread, long ones as a file: never over a limit.

    At most TRANSCRIPT_FILE_LIMIT characters are read, so the work is bounded whatever
    Retell sent."""
    raw = call.transcript or ""
    left_out = max(len(raw) - TRANSCRIPT_FILE_LIMIT, 0)
    transcript = raw[:TRANSCRIPT_FILE_LIMIT].strip()
    if not show_full_numbers:
        transcript = mask_numbers(transcript)
    number = show_phone(call.other_number,
                        full=show_full_numbers)
    title = words(lang, "transcript.title_from" if call.direction == "inbound"
                  else "transcript.title_to", number=number)
    if left_out or len(transcript) > TRANSCRIPT_MESSAGE_LIMIT:
        return _transcript_file(call, title, speaker_turns(transcript, lang), left_out, lang,
                                show_full_numbers)
    turns = speaker_turns(transcript, lang)
    lines = [f"*{who}:* {mrkdwn_safe(text)}" if who else mrkdwn_safe(text)
             for who, text in turns]
    sections: list[str] = []
    for line in lines:
        if sections and len(sections[-1]) + len(line) + 1 <= SECTION_LIMIT:
            sections[-1] += "\n" + line
        elif len(line) <= SECTION_LIMIT:
            sections.append(line)
        else:
            sections = []  # one turn alone is over a section: only a file can hold it
            break
    if sections:
        blocks: list[Block] = [ContextBlock(elements=[MarkdownTextObject(text=f"*{title}*")])]
        blocks += [SectionBlock(text=MarkdownTextObject(text=chunk)) for chunk in sections]
        fallback = f"{title}\n{mrkdwn_safe(transcript[:SUMMARY_FALLBACK_LIMIT])}"
        return Message(text=cut(fallback, FALLBACK_TEXT_LIMIT), blocks=to_blocks(blocks))
    return _transcript_file(call, title, turns, left_out, lang, show_full_numbers)


def _transcript_file(call: CallRecord, title: str, turns: list[tuple[str, str]],
                     left_out: int, lang: str, show_full_numbers: bool) -> TextFile:
    """A plain-text file: nothing in it is read as markup, so it is kept as said. It opens
    with the summary and the agent's extracted fields, so the file stands on its own."""
    content = "\n".join(f"{who}: {text}" if who else text for who, text in turns)
    if left_out:
        content += "\n\n" + words(lang, "transcript.rest_in_retell",
                                   count=count_words(left_out, lang))
    head = _file_head(call, lang, show_full_numbers)
    if head:
        content = f"{head}\n\n{words(lang, 'transcript.label')}:\n{content}"
    return TextFile(
        filename=f"transcript-{_file_safe(call.call_id or str(call.id))}.txt",
        title=title,
        content=f"{title} ({cut(str(call.call_id), 100)})\n\n{content}\n",
        comment=":page_facing_up: " + words(lang, "transcript.file_comment", title=title,
                                            turns=count_words(len(turns), lang)),
    )


def _file_head(call: CallRecord, lang: str, show_full_numbers: bool) -> str:
    """The summary and every extracted field in plain text (a file has room for them all;
    each value is still cut, and numbers in it masked unless allowed)."""

    def plain(text: str, limit: int) -> str:
        text = text if show_full_numbers else mask_numbers(text[: limit + 40])
        return cut(" ".join(text.split()), limit)

    parts = []
    if call.summary:
        parts.append(f"{words(lang, 'summary.header')}:\n{plain(call.summary, FILE_VALUE_LIMIT)}")
    if call.extracted:
        lines = [f"{words(lang, 'summary.extracted')}:"]
        for name, value in list(call.extracted.items())[:FILE_EXTRACTED_FIELDS]:
            if isinstance(value, bool | int | float) or value is None:
                shown = _extracted_value(value, lang, show_full_numbers)
            else:
                shown = plain(value if isinstance(value, str)
                              else json.dumps(value, ensure_ascii=False), FILE_VALUE_LIMIT)
            lines.append(f"- {plain(str(name).replace('_', ' '), 100)}: {shown}")
        if len(call.extracted) > FILE_EXTRACTED_FIELDS:
            lines.append(words(lang, "summary.extracted_more", count=count_words(
                len(call.extracted) - FILE_EXTRACTED_FIELDS, lang)))
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name[:100])


def _cut_note(left: int, what: str, log_url: str | None, lang: str) -> Block:
    note = words(lang, f"summary.cut.{what}", count=count_words(left, lang))
    if log_url:
        note += f" <{_safe_url(log_url)}|{words(lang, 'summary.full_log')}>"
    return ContextBlock(elements=[MarkdownTextObject(text=note)])


def _safe_url(url: str) -> str:
    """Links only for http(s); `|` and `>` would end a Slack link early."""
    if not url.startswith(("https://", "http://")):
        return "about:blank"
    return url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")


# -- answers to people -------------------------------------------------------------------------


# -- guardrail answers (ephemeral, to the person who asked) -----------------------------------


def dnc_list_message(entries: list[DncEntry], total: int, *,
                     show_full_numbers: bool = False, lang: str = DEFAULT_LANGUAGE) -> Message:
    if not entries:
        return text_message(words(lang, "dnc.empty"))
    numbers = counted(lang, "dnc.numbers", total, count=count_words(total, lang))
    title = (words(lang, "dnc.title_newest", numbers=numbers, shown=len(entries))
             if total > len(entries) else words(lang, "dnc.title", numbers=numbers))
    lines = [dnc_line(e, show_full_numbers=show_full_numbers, lang=lang) for e in entries]
    return _lines_message(title, lines, words(lang, "dnc.fallback", count=total), lang)


def dnc_reason(entry: DncEntry, lang: str = DEFAULT_LANGUAGE) -> str | None:
    """Why a number is on the list: an admin's own words as typed, or, for an entry a
    callee's request added, the reader's words for it."""
    if entry.added_by is None and entry.call_id and entry.reason == DNC_CALLEE_ASKED:
        return words(lang, "dnc.callee_asked")
    return entry.reason


def dnc_line(entry: DncEntry, *, show_full_numbers: bool = False,
             lang: str = DEFAULT_LANGUAGE) -> str:
    who = user_mention(entry.added_by) or words(
        lang, "dnc.by_someone" if entry.added_by else "dnc.by_callee")
    reason = dnc_reason(entry, lang)
    why = f" · {said(reason, 300, show_full_numbers=show_full_numbers)}" if reason else ""
    return "• " + words(lang, "dnc.line", number=show_phone(entry.number, full=show_full_numbers),
                        who=who, date=slack_date(entry.added_at)) + why


def audit_message(rows: list[AuditRow], scope: str, lang: str = DEFAULT_LANGUAGE) -> Message:
    if not rows:
        return text_message(words(lang, "audit.none", scope=scope))
    lines = [audit_line(r, lang) for r in rows]
    return _lines_message(words(lang, "audit.title", count=len(rows), scope=scope), lines,
                          words(lang, "audit.fallback", count=len(rows)), lang)


def audit_line(row: AuditRow, lang: str = DEFAULT_LANGUAGE) -> str:
    """Numbers here are the masked form the log keeps; it never had the full one. Reasons
    are the log's own codes or an admin's words, shown as they are stored."""
    who = user_mention(row.user_id) or (words(lang, "audit.by_someone") if row.user_id
                                        else "Retell")
    parts = [slack_date(row.at), who, _logged(lang, "action", row.action),
             f"*{_logged(lang, 'outcome', row.outcome)}*"]
    if row.reason:
        parts[-1] += f" ({said(row.reason, 300)})"
    for extra in (row.number, row.agent):
        if extra:
            parts.append(said(extra, AGENT_LIMIT))
    if row.channel_id:
        parts.append(channel_link(row.channel_id))
    if row.source:
        parts.append(words(lang, "audit.via", source=said(row.source, 40)))
    return "• " + " · ".join(parts)


def _logged(lang: str, kind: str, code: str) -> str:
    """An audit action or outcome in words; a code this version does not know, as stored."""
    key = f"audit.{kind}.{code}"
    return words(lang, key) if key in catalogue(DEFAULT_LANGUAGE) else said(
        code.replace("_", " "), 60)


def text_message(text: str) -> Message:
    return Message(text=text, blocks=to_blocks([SectionBlock(text=MarkdownTextObject(text=text))]))


def _lines_message(title: str, lines: list[str], fallback: str, lang: str) -> Message:
    chunks, left = chunk_text(title + "\n" + "\n".join(lines), SECTION_LIMIT, MAX_BLOCKS - 1)
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=c)) for c in chunks]
    if left:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=words(lang, "message.more_not_shown", count=count_words(left, lang)))]))
    return Message(text=fallback, blocks=to_blocks(blocks))
