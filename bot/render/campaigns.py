"""Campaigns in words, blocks and files: the card (the preview, then the live progress, then
the outcome, all one message updated in place), the notes in its thread, the summary, the
results file, the `/callcampaign` answers and its modal. Pure functions, no I/O.

Everything typed into the uploaded file, the form or by Retell is shown through `said()`
(cut, masked, escaped), as on the call card; the results file guards every text cell from
being read as a formula by a spreadsheet.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DateTimePickerElement,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.blocks.block_elements import FileInputElement
from slack_sdk.models.views import View

from bot.input.campaign_form import (
    BLOCK_CAMPAIGN_AGENT,
    BLOCK_CAMPAIGN_ATTEMPTS,
    BLOCK_CAMPAIGN_CALLER,
    BLOCK_CAMPAIGN_CONCURRENCY,
    BLOCK_CAMPAIGN_FILE,
    BLOCK_CAMPAIGN_NAME,
    BLOCK_CAMPAIGN_SPACING,
    BLOCK_CAMPAIGN_START,
    DEFAULT_SPACING_MINUTES,
    MAX_ATTEMPTS,
    MAX_SPACING_MINUTES,
    MIN_ATTEMPTS,
    MIN_SPACING_MINUTES,
    NAME_LIMIT,
    NO_AGENT,
)
from bot.input.phones import mask_phone, show_phone
from bot.render.blocks import (
    AGENT_LIMIT,
    REASON_LIMIT,
    Message,
    cut,
    date_token,
    said,
    to_blocks,
    user_mention,
)
from bot.render.catalog import DEFAULT_LANGUAGE, catalogue, counted, words
from bot.render.exports import csv_cell, decimal_text, guarded
from bot.render.refusals import short_refusal
from bot.render.words import (
    cost_words,
    count_words,
    duration_words,
    known_reason,
    percent_words,
    reason_words,
)
from bot.retell.client import Agent, CallerNumber
from storage.models import CallRecord, Campaign, CampaignCounts, CampaignRow

__all__ = [
    "ACTION_CAMPAIGN_CANCEL",
    "ACTION_CAMPAIGN_PAUSE",
    "ACTION_CAMPAIGN_RESULTS",
    "ACTION_CAMPAIGN_RESUME",
    "ACTION_CAMPAIGN_START",
    "BLOCK_CAMPAIGN_AGENT",
    "BLOCK_CAMPAIGN_ATTEMPTS",
    "BLOCK_CAMPAIGN_CALLER",
    "BLOCK_CAMPAIGN_CONCURRENCY",
    "BLOCK_CAMPAIGN_FILE",
    "BLOCK_CAMPAIGN_NAME",
    "BLOCK_CAMPAIGN_SPACING",
    "BLOCK_CAMPAIGN_START",
    "CAMPAIGN_INPUT",
    "CAMPAIGN_MODAL",
    "RESULTS_COLUMNS",
    "campaign_card",
    "campaign_failure",
    "campaign_form_errors",
    "campaign_list",
    "campaign_modal",
    "campaign_not_found",
    "campaign_not_now",
    "campaign_not_yours",
    "campaign_state_changed",
    "campaign_status",
    "campaign_summary",
    "campaign_usage",
    "progress_bar",
    "results_csv",
]

# Button action ids: a public contract with cards already posted in channels. Each button's
# value is the campaign's id.
ACTION_CAMPAIGN_START = "campaign_start"
ACTION_CAMPAIGN_CANCEL = "campaign_cancel"
ACTION_CAMPAIGN_PAUSE = "campaign_pause"
ACTION_CAMPAIGN_RESUME = "campaign_resume"
ACTION_CAMPAIGN_RESULTS = "campaign_results"
CAMPAIGN_MODAL = "campaign_modal"
CAMPAIGN_INPUT = "value"  # the action id of every input in the modal, as in the call modal
CARD_ACTIONS = "campaign_actions"
BAR_WIDTH = 10
MAX_BAD_LISTED = 10  # bad rows named on the preview; the rest are in the results file
MAX_CAMPAIGNS_LISTED = 25
NAME_SHOWN = NAME_LIMIT
TYPED_SHOWN = 40  # of what was typed in a bad row
ERROR_SHOWN = 200  # of Retell's error text in a thread note
MAX_OPTIONS = 100
STATE_EMOJI = {
    "draft": ":clipboard:",
    "running": ":arrow_forward:",
    "paused": ":double_vertical_bar:",
    "cancelled": ":x:",
    "done": ":checkered_flag:",
}
SKIPPED_KINDS = ("invalid", "duplicate", "refused")
# Results file: machine-readable English, one row per row of the upload.
RESULTS_COLUMNS = ("line", "number", "status", "attempts", "duration_s", "cost_usd",
                   "sentiment", "successful", "summary", "call_id")
FIELD_PREFIX = "field:"
INPUT_PREFIX = "input:"  # an input column named like one of ours (`status`) is renamed
# A spreadsheet reads a cell starting with one of these as a formula (CSV injection).


# -- pieces shared by the card and the answers -------------------------------------------------


def progress_bar(done: int, total: int, lang: str = DEFAULT_LANGUAGE) -> str:
    """`▓▓▓▓░░░░░░ 40%`: rounded down, so 100% is shown only when every row is through."""
    fraction = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
    filled = math.floor(fraction * BAR_WIDTH)
    shown = math.floor(fraction * 100) / 100
    return "▓" * filled + "░" * (BAR_WIDTH - filled) + " " + percent_words(shown, lang)


def _name(campaign: Campaign, full: bool) -> str:
    return said(campaign.name, NAME_SHOWN, show_full_numbers=full)


def _state(status: str, lang: str) -> str:
    key = f"campaign.state.{status}"
    if key in catalogue(DEFAULT_LANGUAGE):
        return words(lang, key)
    return said(status.replace("_", " "), 40)


def _title(campaign: Campaign, full: bool, lang: str) -> str:
    emoji = STATE_EMOJI.get(campaign.status, ":grey_question:")
    return f"{emoji} " + words(lang, "campaign.card.title", name=_name(campaign, full),
                               state=_state(campaign.status, lang))


def _who(campaign: Campaign, full: bool, lang: str) -> str:
    """The agent, the caller ID and the owner: who calls, from where, for whom."""
    agent = said(campaign.agent or words(lang, "campaign.card.number_agent"), AGENT_LIMIT,
                 show_full_numbers=full)
    caller = (show_phone(campaign.from_number, full=full) if campaign.from_number
              else words(lang, "campaign.card.default_caller"))
    line = words(lang, "campaign.card.who", agent=agent, caller=caller)
    owner = user_mention(campaign.owner)
    if owner:
        line += " · " + words(lang, "campaign.card.owner", user=owner)
    return line


def _when(epoch: float) -> str:
    """A moment in each reader's own zone (Slack's date token), UTC where Slack cannot."""
    if not (isinstance(epoch, int | float) and math.isfinite(epoch) and 0 <= epoch < 253e9):
        return "–"
    fallback = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return date_token(epoch, "{date_short_pretty} {time}", fallback)


def _seconds(seconds: float, lang: str) -> str:
    return duration_words(seconds * 1000, lang)


def _progress(counts: CampaignCounts, lang: str) -> str:
    through = counts.done + counts.cancelled
    return "`" + progress_bar(through, counts.rows, lang) + "` " + words(
        lang, "campaign.card.through", done=count_words(through, lang),
        rows=count_words(counts.rows, lang))


def _counters(counts: CampaignCounts, *, final: bool, lang: str) -> list[tuple[str, str]]:
    """The counters by catalogue name; zero refusals and cancellations are left out."""
    shown: list[tuple[str, int | str]] = [
        ("placed", counts.placed), ("connected", counts.connected),
        ("successful", counts.successful), ("no_answer", counts.no_answer),
        ("failed", counts.failed)]
    if counts.refused:
        shown.append(("refused", counts.refused))
    if counts.cancelled:
        shown.append(("cancelled", counts.cancelled))
    if final:
        if counts.skipped:
            shown.append(("skipped", counts.skipped))
        shown.append(("duration", duration_words(counts.duration_ms, lang)))
        shown.append(("cost", cost_words(counts.cost_cents, lang)))
    else:
        shown += [("waiting", counts.waiting), ("remaining", counts.remaining)]
    return [(words(lang, f"campaign.count.{name}"),
             count_words(value, lang) if isinstance(value, int) else value)
            for name, value in shown]


def _waiting_hours(counts: CampaignCounts, lang: str) -> str | None:
    if not counts.waiting_hours:
        return None
    number = count_words(counts.waiting_hours, lang)
    if counts.opens_at is None:
        return ":hourglass: " + counted(lang, "campaign.card.waiting_hours",
                                        counts.waiting_hours, count=number)
    return ":hourglass: " + counted(lang, "campaign.card.waiting_hours_until",
                                    counts.waiting_hours, count=number,
                                    date=_when(counts.opens_at))


def _eta(now: float, eta_s: float | None, lang: str) -> str | None:
    if eta_s is None or not math.isfinite(eta_s) or eta_s < 0:
        return None
    return ":stopwatch: " + words(lang, "campaign.card.eta", duration=_seconds(eta_s, lang),
                                  date=_when(now + eta_s))


def _retry_line(campaign: Campaign, lang: str) -> str:
    if campaign.attempts <= 1:
        return words(lang, "campaign.card.one_try")
    return words(lang, "campaign.card.retries", attempts=count_words(campaign.attempts, lang),
                 spacing=_seconds(campaign.retry_spacing, lang))


# -- the card -----------------------------------------------------------------------------------


def campaign_card(campaign: Campaign, counts: CampaignCounts, *, now: float,
                  bad: Sequence[CampaignRow] = (), estimate_s: float | None = None,
                  eta_s: float | None = None, show_full_numbers: bool = False,
                  lang: str = DEFAULT_LANGUAGE) -> Message:
    """The campaign's one message in the channel, in the state it is in: the preview
    (draft), the progress (running, paused) or the outcome (cancelled, done).

    `bad`: the rows skipped at the preview (listed there, the first few by line);
    `estimate_s`: how long the whole list should take; `eta_s`: how long the rest should."""
    full = show_full_numbers
    head = _title(campaign, full, lang) + "\n" + _who(campaign, full, lang)
    if campaign.file_name:
        head += "\n:page_facing_up: " + said(campaign.file_name, 100, show_full_numbers=full)
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=head))]
    if campaign.status == "draft":
        blocks += _preview_blocks(campaign, counts, now=now, bad=bad, estimate_s=estimate_s,
                                  full=full, lang=lang)
        text = words(lang, "campaign.text.draft", name=_name(campaign, full),
                     rows=count_words(counts.rows, lang),
                     read=count_words(counts.rows + counts.skipped, lang))
    elif campaign.status in ("running", "paused"):
        blocks += _progress_blocks(campaign, counts, now=now, eta_s=eta_s, lang=lang)
        text = words(lang, f"campaign.text.{campaign.status}", name=_name(campaign, full),
                     done=count_words(counts.done + counts.cancelled, lang),
                     rows=count_words(counts.rows, lang))
    else:
        blocks += _final_blocks(campaign, counts, lang=lang)
        key = "campaign.text.cancelled" if campaign.status == "cancelled" else "campaign.text.done"
        text = words(lang, key, name=_name(campaign, full),
                     connected=count_words(counts.connected, lang),
                     rows=count_words(counts.rows, lang))
    buttons = campaign_buttons(campaign, counts, lang)
    if buttons:
        blocks.append(ActionsBlock(block_id=CARD_ACTIONS, elements=buttons))
    return Message(text=text, blocks=to_blocks(blocks))


def _preview_blocks(campaign: Campaign, counts: CampaignCounts, *, now: float,
                    bad: Sequence[CampaignRow], estimate_s: float | None, full: bool,
                    lang: str) -> list[Block]:
    read = counts.rows + counts.skipped
    lines = [words(lang, "campaign.preview.rows", read=count_words(read, lang),
                   valid=count_words(counts.rows, lang),
                   skipped=count_words(counts.skipped, lang))]
    kinds = Counter(counts.skipped_by) or Counter(
        row.outcome if row.outcome in SKIPPED_KINDS else "invalid" for row in bad)
    if counts.skipped and sum(kinds.values()) == counts.skipped:
        parts = [counted(lang, f"campaign.preview.skipped.{kind}", kinds[kind],
                         count=count_words(kinds[kind], lang))
                 for kind in SKIPPED_KINDS if kinds[kind]]
        lines.append(words(lang, "campaign.preview.not_called", kinds=", ".join(parts)))
    if not counts.rows:
        lines.append(":warning: " + words(lang, "campaign.preview.nothing_to_call"))
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text="\n".join(lines)))]
    if bad:
        listed = sorted(bad, key=lambda r: r.line)[:MAX_BAD_LISTED]
        rows = [f"• {bad_row_words(row, show_full_numbers=full, lang=lang)}" for row in listed]
        more = max(len(bad), counts.skipped) - len(listed)
        if more > 0:
            rows.append("_" + words(lang, "campaign.preview.more_bad",
                                    count=count_words(more, lang)) + "_")
        blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(rows))))
    plan = [":repeat: " + _retry_line(campaign, lang)]
    if counts.rows and estimate_s is not None and math.isfinite(estimate_s) and estimate_s >= 0:
        plan.append(":stopwatch: " + words(lang, "campaign.preview.estimate",
                                           duration=_seconds(estimate_s, lang),
                                           concurrency=count_words(campaign.concurrency, lang)))
    waiting = _waiting_hours(counts, lang)
    if waiting:
        plan.append(waiting)
    if campaign.start_at is not None and campaign.start_at > now:
        plan.append(":alarm_clock: " + words(lang, "campaign.preview.starts_at",
                                             date=_when(campaign.start_at)))
    elif counts.rows:
        plan.append(":alarm_clock: " + words(lang, "campaign.preview.starts_on_start"))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text="\n".join(plan))]))
    return blocks


def _progress_blocks(campaign: Campaign, counts: CampaignCounts, *, now: float,
                     eta_s: float | None, lang: str) -> list[Block]:
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=_progress(counts, lang))),
        SectionBlock(fields=[MarkdownTextObject(text=f"*{label}*\n{value}")
                             for label, value in _counters(counts, final=False, lang=lang)]),
    ]
    notes = []
    if campaign.start_at is not None and campaign.start_at > now:
        notes.append(":alarm_clock: " + words(lang, "campaign.card.starts_at",
                                              date=_when(campaign.start_at)))
    waiting = _waiting_hours(counts, lang)
    if waiting:
        notes.append(waiting)
    if campaign.status == "paused":
        notes.append(":double_vertical_bar: " + words(lang, "campaign.card.paused_note"))
    else:
        eta = _eta(now, eta_s, lang)
        if eta:
            notes.append(eta)
    if notes:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="\n".join(notes))]))
    return blocks


def _final_blocks(campaign: Campaign, counts: CampaignCounts, *, lang: str) -> list[Block]:
    fields = _counters(counts, final=True, lang=lang)
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=words(
            lang, "campaign.card.final_rows", rows=count_words(counts.rows, lang)))),
        SectionBlock(fields=[MarkdownTextObject(text=f"*{label}*\n{value}")
                             for label, value in fields]),
    ]
    if campaign.finished_at is not None:
        key = ("campaign.card.cancelled_at" if campaign.status == "cancelled"
               else "campaign.card.finished_at")
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=words(lang, key, date=_when(campaign.finished_at)))]))
    return blocks


def campaign_buttons(campaign: Campaign, counts: CampaignCounts,
                     lang: str = DEFAULT_LANGUAGE) -> list[ButtonElement]:
    """Only what can be done in the campaign's state (the handler checks who may)."""
    value = str(campaign.id)
    status = campaign.status
    buttons: list[ButtonElement] = []
    if status == "draft":
        if counts.rows:
            buttons.append(ButtonElement(text=words(lang, "campaign.button.start"),
                                         action_id=ACTION_CAMPAIGN_START, value=value,
                                         style="primary"))
        buttons.append(_cancel_button(value, lang))
    elif status in ("running", "paused"):
        if status == "running":
            buttons.append(ButtonElement(text=words(lang, "campaign.button.pause"),
                                         action_id=ACTION_CAMPAIGN_PAUSE, value=value))
        else:
            buttons.append(ButtonElement(text=words(lang, "campaign.button.resume"),
                                         action_id=ACTION_CAMPAIGN_RESUME, value=value,
                                         style="primary"))
        buttons.append(_cancel_button(value, lang))
        buttons.append(ButtonElement(text=words(lang, "campaign.button.results"),
                                     action_id=ACTION_CAMPAIGN_RESULTS, value=value))
    elif status in ("cancelled", "done"):
        buttons.append(ButtonElement(text=words(lang, "campaign.button.results"),
                                     action_id=ACTION_CAMPAIGN_RESULTS, value=value))
    return buttons


def _cancel_button(value: str, lang: str) -> ButtonElement:
    return ButtonElement(
        text=words(lang, "campaign.button.cancel"), action_id=ACTION_CAMPAIGN_CANCEL,
        value=value, style="danger",
        confirm=ConfirmObject(title=words(lang, "campaign.button.cancel_title"),
                              text=words(lang, "campaign.button.cancel_text"),
                              confirm=words(lang, "campaign.button.cancel"),
                              deny=words(lang, "campaign.button.keep"), style="danger"))


# -- rows: why one was skipped, or failed ---------------------------------------------------------


def _typed(text: str, full: bool) -> str:
    """What was typed in the file, inside backticks: cut, masked, inert."""
    return "`" + said(text, TYPED_SHOWN, show_full_numbers=full).replace("`", "'") + "`"


def _code(code: str) -> str:
    return said(code, 60)


def bad_row_words(row: CampaignRow, *, show_full_numbers: bool = False,
                  lang: str = DEFAULT_LANGUAGE) -> str:
    """`line 7: invalid number (`12ab`)`: a row skipped at the preview, and why."""
    code, _, typed = (row.detail or "").partition(":")
    if row.outcome == "refused":
        why = short_refusal(_code(code), lang) if code else words(lang, "campaign.bad.refused")
    elif row.outcome == "duplicate":
        why = words(lang, "campaign.bad.duplicate")
    elif code and f"campaign.bad.{code}" in catalogue(DEFAULT_LANGUAGE):
        why = words(lang, f"campaign.bad.{code}")
    else:
        why = words(lang, "campaign.bad.other", code=_code(code or "?"))
    if typed:
        why += f" ({_typed(typed, show_full_numbers)})"
    return words(lang, "campaign.line", line=count_words(row.line, lang)) + ": " + why


def failure_reason(row: CampaignRow, call: CallRecord | None,
                   lang: str = DEFAULT_LANGUAGE) -> str:
    """Why a row's call did not do its work, in plain words: the rule that refused it, how
    Retell says the call ended, or why Retell did not place it."""
    code = (row.detail or "").partition(":")[0]
    if row.outcome == "refused":
        return short_refusal(_code(code), lang) if code else words(lang, "campaign.bad.refused")
    if call is not None and call.disconnection_reason:
        return said(reason_words(call.disconnection_reason, lang), REASON_LIMIT)
    kind = call.error_kind if call is not None and call.error_kind else code
    if kind and f"campaign.error_kind.{kind}" in catalogue(DEFAULT_LANGUAGE):
        text = words(lang, f"campaign.error_kind.{kind}")
        if call is not None and call.error:
            text += ": " + said(call.error, ERROR_SHOWN)
        return text
    if call is not None and call.error:
        return said(call.error, ERROR_SHOWN)
    if code and f"refusal_short.{code}" in catalogue(DEFAULT_LANGUAGE):
        return short_refusal(code, lang)
    if code and known_reason(code):
        return reason_words(code, lang)
    return said(reason_words(code or None, lang), REASON_LIMIT)


def campaign_failure(row: CampaignRow, call: CallRecord | None, *, show_full_numbers: bool,
                     lang: str = DEFAULT_LANGUAGE) -> str:
    """The note in the card's thread for a row worth a look: which line, which number,
    why, after how many tries, and the call to find in Retell."""
    full = show_full_numbers
    parts = [words(lang, "campaign.line", line=count_words(row.line, lang)),
             show_phone(row.number, full=full) if row.number
             else words(lang, "campaign.failure.no_number"),
             failure_reason(row, call, lang)]
    if row.attempts > 1:
        parts.append(counted(lang, "campaign.failure.tries", row.attempts,
                             count=count_words(row.attempts, lang)))
    call_id = call.call_id if call is not None and call.call_id else row.call_id
    if call_id:
        parts.append(f"`{said(call_id, 100, show_full_numbers=True).replace('`', '')}`")
    return ":warning: " + " · ".join(parts)


def campaign_failures_more(lang: str = DEFAULT_LANGUAGE) -> str:
    """Said once when the thread has had its share of failure notes: the rest are in the
    results file, so a list that fails wholesale does not flood the channel."""
    return ":information_source: " + words(lang, "campaign.failure.more")


# -- the end --------------------------------------------------------------------------------------


def campaign_summary(campaign: Campaign, counts: CampaignCounts, *,
                     lang: str = DEFAULT_LANGUAGE) -> str:
    """Posted when a campaign ends: how the rows ended, as counts and shares of the rows
    called, and what it took (calls placed, time on the phone, cost)."""
    name = _name(campaign, False)
    cancelled = campaign.status == "cancelled"
    key = "campaign.summary.cancelled" if cancelled else "campaign.summary.done"
    emoji = ":x:" if cancelled else ":checkered_flag:"
    lines = [f"{emoji} " + words(lang, key, name=name)]
    lines.append(words(lang, "campaign.summary.rows", rows=count_words(counts.rows, lang),
                       skipped=count_words(counts.skipped, lang)))

    def share(count: int, of: int) -> str:
        return words(lang, "campaign.summary.share", count=count_words(count, lang),
                     percent=percent_words(count / of if of else None, lang))

    mix = [("connected", counts.connected), ("no_answer", counts.no_answer),
           ("failed", counts.failed)]
    mix += [(k, n) for k, n in (("refused", counts.refused), ("cancelled", counts.cancelled)) if n]
    for kind, count in mix:
        line = f"• {words(lang, f'campaign.count.{kind}')}: {share(count, counts.rows)}"
        if kind == "connected":
            rate = counts.successful / counts.connected if counts.connected else None
            line += " · " + words(lang, "campaign.summary.successful",
                                  count=count_words(counts.successful, lang),
                                  percent=percent_words(rate, lang))
        lines.append(line)
    lines.append(words(lang, "campaign.summary.totals",
                       placed=count_words(counts.placed, lang),
                       duration=duration_words(counts.duration_ms, lang),
                       cost=cost_words(counts.cost_cents, lang)))
    return "\n".join(lines)


def results_csv(campaign: Campaign, rows: Iterable[tuple[CampaignRow, CallRecord | None]], *,
                show_full_numbers: bool) -> bytes:
    """Every row of the upload with how it ended, for a spreadsheet (UTF-8 with a BOM, so
    Excel reads Thai) or a program (English column names, codes as stored).

    The input's own columns come back beside the outcome, then one `field:<name>` column
    per field the agent extracted on any call. Free text from the call (summary, fields)
    has its phone numbers masked unless full numbers may be shown; the input columns are
    the uploader's own data and come back as uploaded."""
    full = show_full_numbers
    listed = sorted(rows, key=lambda pair: pair[0].line)
    fields = sorted({str(name) for _, call in listed if call is not None
                     for name in call.extracted})
    ours = set(RESULTS_COLUMNS) | {FIELD_PREFIX + f for f in fields}
    inputs = [(name, INPUT_PREFIX + name if name in ours else name) for name in campaign.columns]
    header = ["line", *(shown for _, shown in inputs), *RESULTS_COLUMNS[1:],
              *(FIELD_PREFIX + f for f in fields)]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([guarded(h) for h in header])
    for row, call in listed:
        number = (row.number if full else mask_phone(row.number)) if row.number else ""
        cells = [str(row.line)]
        cells += [guarded(row.variables.get(name, "")) for name, _ in inputs]
        cells += [guarded(number), row.outcome or row.status, str(row.attempts)]
        if call is not None:
            duration = call.duration_ms / 1000 if call.duration_ms is not None else None
            cost = call.cost_cents / 100 if call.cost_cents is not None else None
            cells += [decimal_text(duration, 3), decimal_text(cost, 4),
                      csv_cell(call.sentiment, full), csv_cell(call.successful, full),
                      csv_cell(call.summary, full),
                      csv_cell(call.call_id, True)]
            cells += [csv_cell(call.extracted.get(f), full) for f in fields]
        else:
            cells += ["", "", "", "", "", csv_cell(row.call_id, True)]
            cells += [""] * len(fields)
        writer.writerow(cells)
    return out.getvalue().encode("utf-8-sig")


def results_filename(campaign: Campaign) -> str:
    """`campaign-12-results.csv`: the id names it (a name may hold anything)."""
    return f"campaign-{campaign.id}-results.csv"


# -- /callcampaign answers ------------------------------------------------------------------------


def campaign_list(campaigns: Sequence[tuple[Campaign, CampaignCounts]], *,
                  lang: str = DEFAULT_LANGUAGE) -> str:
    """`/callcampaign list`: newest first as given, each with its state and progress."""
    if not campaigns:
        return words(lang, "campaign.list.empty")
    lines = [words(lang, "campaign.list.title")]
    for campaign, counts in campaigns[:MAX_CAMPAIGNS_LISTED]:
        through = counts.done + counts.cancelled
        lines.append("• " + words(
            lang, "campaign.list.line", name=_name(campaign, False),
            state=_state(campaign.status, lang),
            progress=f"`{progress_bar(through, counts.rows, lang)}`",
            done=count_words(through, lang), rows=count_words(counts.rows, lang),
            user=user_mention(campaign.owner) or "?", date=_when(campaign.created_at)))
    if len(campaigns) > MAX_CAMPAIGNS_LISTED:
        lines.append("_" + words(lang, "campaign.list.more",
                                 count=count_words(len(campaigns) - MAX_CAMPAIGNS_LISTED,
                                                   lang)) + "_")
    return "\n".join(lines)


def campaign_status(campaign: Campaign, counts: CampaignCounts, *, now: float,
                    eta_s: float | None, lang: str = DEFAULT_LANGUAGE) -> str:
    """`/callcampaign status <name>`: the card's figures as text, for one person."""
    final = campaign.status in ("cancelled", "done")
    lines = [_title(campaign, False, lang), _who(campaign, False, lang),
             words(lang, "campaign.card.final_rows", rows=count_words(counts.rows, lang))
             if final else _progress(counts, lang)]
    if campaign.status == "draft":
        lines.append(words(lang, "campaign.preview.rows",
                           read=count_words(counts.rows + counts.skipped, lang),
                           valid=count_words(counts.rows, lang),
                           skipped=count_words(counts.skipped, lang)))
    else:
        lines.append(" · ".join(f"{label}: *{value}*" for label, value
                                in _counters(counts, final=final, lang=lang)))
    if not final:
        waiting = _waiting_hours(counts, lang)
        if waiting:
            lines.append(waiting)
    if campaign.status == "running":
        eta = _eta(now, eta_s, lang)
        if eta:
            lines.append(eta)
    return "\n".join(lines)


def campaign_not_yours(owner: str, lang: str = DEFAULT_LANGUAGE) -> str:
    return words(lang, "campaign.not_yours",
                 owner=user_mention(owner) or words(lang, "campaign.its_owner"))


def campaign_not_now(lang: str = DEFAULT_LANGUAGE) -> str:
    """A button pressed on a card whose campaign has moved on (started, ended) since."""
    return words(lang, "campaign.not_now")


def campaign_not_found(name: str, lang: str = DEFAULT_LANGUAGE) -> str:
    return words(lang, "campaign.not_found", name=said(name, NAME_SHOWN).replace("`", "'"))


CHANGES = ("start", "pause", "resume", "cancel")


def campaign_state_changed(campaign: Campaign, action: str, by: str,
                           lang: str = DEFAULT_LANGUAGE) -> str:
    """Said in the card's thread when someone starts, pauses, resumes or cancels it.
    `action`: start | pause | resume | cancel."""
    key = f"campaign.changed.{action}" if action in CHANGES else "campaign.changed.other"
    return words(lang, key, name=_name(campaign, False),
                 user=user_mention(by) or words(lang, "campaign.someone"),
                 action=said(action.replace("_", " "), 40))


def campaign_usage(lang: str = DEFAULT_LANGUAGE) -> str:
    return words(lang, "usage.campaign")


# -- the modal -----------------------------------------------------------------------------------


def _label(text: str) -> str:
    """Option labels stop at 75 characters."""
    return text if len(text) <= 75 else text[:74] + "…"


def campaign_modal(agents: Sequence[Agent], numbers: Sequence[CallerNumber], *,
                   default_concurrency: int, max_concurrency: int, metadata: str,
                   lang: str = DEFAULT_LANGUAGE) -> dict[str, Any]:
    """`/callcampaign`: the views.open payload. Submitting posts the preview; nothing is
    called before its Start button."""
    agent_options = [Option(value=NO_AGENT, label=words(lang, "modal.number_agent"))]
    ordered = sorted(agents, key=lambda a: (a.agent_name or a.agent_id).casefold())
    agent_options += [Option(value=a.agent_id, label=_label(a.agent_name or a.agent_id))
                      for a in ordered[: MAX_OPTIONS - 1]]
    blocks: list[Block] = [
        InputBlock(block_id=BLOCK_CAMPAIGN_NAME, label=words(lang, "campaign.modal.name"),
                   element=PlainTextInputElement(action_id=CAMPAIGN_INPUT,
                                                 max_length=NAME_LIMIT),
                   hint=words(lang, "campaign.modal.name_hint")),
        InputBlock(block_id=BLOCK_CAMPAIGN_AGENT, label=words(lang, "modal.agent"),
                   element=StaticSelectElement(action_id=CAMPAIGN_INPUT, options=agent_options,
                                               initial_option=agent_options[0]),
                   hint=(words(lang, "modal.agents_cut", shown=MAX_OPTIONS - 1,
                               total=count_words(len(ordered), lang))
                         if len(ordered) > MAX_OPTIONS - 1 else None)),
    ]
    if numbers:
        blocks.append(InputBlock(
            block_id=BLOCK_CAMPAIGN_CALLER, label=words(lang, "modal.caller"), optional=True,
            element=StaticSelectElement(action_id=CAMPAIGN_INPUT, options=[
                Option(value=n.phone_number, label=_label(
                    f"{n.nickname} ({n.phone_number})" if n.nickname else n.phone_number))
                for n in numbers[:MAX_OPTIONS]]),
            hint=words(lang, "campaign.modal.caller_hint")))
    concurrency = min(max(default_concurrency, 1), max(max_concurrency, 1))
    blocks += [
        InputBlock(block_id=BLOCK_CAMPAIGN_FILE, label=words(lang, "campaign.modal.file"),
                   element=FileInputElement(action_id=CAMPAIGN_INPUT, filetypes=["csv"],
                                            max_files=1),
                   hint=words(lang, "campaign.modal.file_hint")),
        InputBlock(block_id=BLOCK_CAMPAIGN_CONCURRENCY,
                   label=words(lang, "campaign.modal.concurrency"),
                   element=NumberInputElement(action_id=CAMPAIGN_INPUT, is_decimal_allowed=False,
                                              min_value=1, max_value=max(max_concurrency, 1),
                                              initial_value=concurrency),
                   hint=words(lang, "campaign.modal.concurrency_hint",
                              limit=count_words(max(max_concurrency, 1), lang))),
        InputBlock(block_id=BLOCK_CAMPAIGN_ATTEMPTS,
                   label=words(lang, "campaign.modal.attempts"),
                   element=NumberInputElement(action_id=CAMPAIGN_INPUT, is_decimal_allowed=False,
                                              min_value=MIN_ATTEMPTS, max_value=MAX_ATTEMPTS,
                                              initial_value=MIN_ATTEMPTS),
                   hint=words(lang, "campaign.modal.attempts_hint")),
        InputBlock(block_id=BLOCK_CAMPAIGN_SPACING,
                   label=words(lang, "campaign.modal.spacing"),
                   element=NumberInputElement(action_id=CAMPAIGN_INPUT, is_decimal_allowed=False,
                                              min_value=MIN_SPACING_MINUTES,
                                              max_value=MAX_SPACING_MINUTES,
                                              initial_value=DEFAULT_SPACING_MINUTES),
                   hint=words(lang, "campaign.modal.spacing_hint")),
        InputBlock(block_id=BLOCK_CAMPAIGN_START, label=words(lang, "campaign.modal.start"),
                   optional=True, element=DateTimePickerElement(action_id=CAMPAIGN_INPUT),
                   hint=words(lang, "campaign.modal.start_hint")),
    ]
    return View(type="modal", callback_id=CAMPAIGN_MODAL,
                title=words(lang, "campaign.modal.title"),
                submit=words(lang, "campaign.modal.submit"), close=words(lang, "modal.close"),
                blocks=blocks, private_metadata=metadata).to_dict()


def campaign_form_errors(errors: Mapping[str, str], lang: str = DEFAULT_LANGUAGE, *,
                         max_concurrency: int, max_days: int) -> dict[str, str]:
    """Slack's `response_action: errors`: each field's mistake code as a sentence. The
    bounds that are settings (not constants) come from the caller, who read the form
    with them."""
    facts: dict[str, object] = {
        "attempts_low": count_words(MIN_ATTEMPTS, lang),
        "attempts_high": count_words(MAX_ATTEMPTS, lang),
        "spacing_low": count_words(MIN_SPACING_MINUTES, lang),
        "spacing_high": count_words(MAX_SPACING_MINUTES, lang),
        "concurrency_high": count_words(max_concurrency, lang),
        "days": count_words(max_days, lang),
    }
    out: dict[str, str] = {}
    for block, code in errors.items():
        key = f"mistake.{code}"
        if key in catalogue(DEFAULT_LANGUAGE):
            out[block] = cut(words(lang, key, **facts), 2000)
        else:  # a code this version does not word: still a sentence, never a KeyError
            out[block] = words(lang, "campaign.form_other", code=_code(code))
    return out
