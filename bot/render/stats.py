"""The `/callstats` answer: figures over a period, their change against the period of the
same length just before, a breakdown by agent, person, day or campaign, and the agents'
extracted fields summarised. Pure functions from a `StatsReport` to a message, inside
Slack's limits (50 blocks, 3,000 characters a section, 10 fields a section).

Conventions for changes (the previous period has calls, else none are shown):
counts, durations and money change as a relative percentage (`↑ 25% (was 8)`); rates
(connected, success) as a difference in percentage points (`↓ 3 pts (was 78%)`); equal
figures read `→ no change`; a change that rounds to nothing reads `<1%` / `<1 pt`; a
figure that was 0 before shows only its arrow and the old value (`↑ (was $0.00)`).

Names of agents and campaigns, field names and values are text from people or from an
LLM: they go through `said()` (cut, numbers masked, `<>&` escaped, `@channel` inert), and
mrkdwn's own markup characters are made inert where they would format the line.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from bot.input.phones import mask_numbers
from bot.input.stats_query import StatsQuery
from bot.render.blocks import (
    AGENT_LIMIT,
    MAX_BLOCKS,
    REASON_LIMIT,
    SECTION_LIMIT,
    Message,
    channel_link,
    mrkdwn_safe,
    said,
    to_blocks,
    user_mention,
)
from bot.render.catalog import DEFAULT_LANGUAGE, counted, words
from bot.render.words import (
    cost_words,
    count_words,
    duration_words,
    percent_words,
    reason_words,
    sentiment_words,
)
from storage.models import Breakdown, CallStats, FieldSummary, StatsReport

BREAKDOWN_KEYS = ("agent", "user", "day", "campaign")
SENTIMENTS = ("Positive", "Neutral", "Negative", "Unknown")
KEY_WIDTH = 24  # a breakdown table's first column, in monospace cells
BREAKDOWN_SECTIONS = 10  # a table longer than this many sections is cut (365 days fit)
FILTER_VALUE_LIMIT = 100
FILTERS_LIMIT = 1000  # the filter line under the title
FIELD_NAME_LIMIT = 60
FIELD_VALUE_LIMIT = 60
FIELD_TOP = 5
MAX_FIELDS = 10  # Slack's fields in one section
UP, DOWN = "↑", "↓"
# mrkdwn's markup characters, swapped for look-alikes that format nothing.
_INERT = str.maketrans({"*": "∗", "`": "ˋ", "~": "∼"})


def _inert(text: str) -> str:
    """Escaped text that cannot start or end bold, code or strike-through."""
    return text.translate(_INERT)


# -- filters -----------------------------------------------------------------------------------


def filter_words(*, agent: str | None = None, user_id: str | None = None,
                 channel_id: str | None = None, campaign: str | None = None,
                 direction: str | None = None, outcome: str | None = None,
                 lang: str = DEFAULT_LANGUAGE) -> list[str]:
    """The filters a question was asked with, worded for the line under the title (one
    string each, mrkdwn-safe): people see which calls the figures are about."""
    shown: list[str] = []
    if agent is not None:
        shown.append(words(lang, "stats.filter.agent", agent=_inert(said(agent, AGENT_LIMIT))))
    if user_id is not None:
        user = user_mention(user_id) or _inert(said(user_id, FILTER_VALUE_LIMIT))
        shown.append(words(lang, "stats.filter.user", user=user))
    if channel_id is not None:
        shown.append(words(lang, "stats.filter.channel", channel=_inert(channel_link(channel_id))))
    if campaign is not None:
        shown.append(words(lang, "stats.filter.campaign",
                           campaign=_inert(said(campaign, FILTER_VALUE_LIMIT))))
    for name, value in (("direction", direction), ("outcome", outcome)):
        if value is None:
            continue
        key = f"stats.filter.{name}.{value}"
        if key in _KNOWN_FILTERS:
            shown.append(words(lang, key))
        else:
            shown.append(words(lang, f"stats.filter.{name}",
                               **{name: _inert(said(value, FILTER_VALUE_LIMIT))}))
    return shown


_KNOWN_FILTERS = frozenset({
    "stats.filter.direction.inbound", "stats.filter.direction.outbound",
    "stats.filter.outcome.success", "stats.filter.outcome.failed",
    "stats.filter.outcome.no-answer",
})


# -- changes -----------------------------------------------------------------------------------


def relative_change(now: float | None, before: float | None, before_words: str,
                    lang: str = DEFAULT_LANGUAGE) -> str | None:
    """A count, duration or amount against the period before, as a relative percentage;
    None when either side is unknown."""
    if now is None or before is None or not (math.isfinite(now) and math.isfinite(before)):
        return None
    if now == before:
        return words(lang, "stats.change.same")
    arrow = UP if now > before else DOWN
    if before == 0:
        return words(lang, "stats.change.from", arrow=arrow, before=before_words)
    change = abs(now - before) / abs(before)
    amount = percent_words(change, lang)
    if amount == percent_words(0, lang):
        amount = "<" + percent_words(0.01, lang)
    return words(lang, "stats.change.by", arrow=arrow, change=amount, before=before_words)


def points_change(now: float | None, before: float | None,
                  lang: str = DEFAULT_LANGUAGE) -> str | None:
    """A rate against the period before, in percentage points (a relative change of a
    rate reads as a bigger move than it is); None when either side is unknown."""
    if now is None or before is None or not (math.isfinite(now) and math.isfinite(before)):
        return None
    if now == before:
        return words(lang, "stats.change.same")
    # The difference of the percentages as shown, so `75% (was 62%)` reads `13 pts`.
    points = abs(_shown_percent(now) - _shown_percent(before))
    amount = counted(lang, "stats.change.points", max(points, 1),
                     count=count_words(max(points, 1), lang))
    if points == 0:
        amount = "<" + amount
    return words(lang, "stats.change.by", arrow=UP if now > before else DOWN, change=amount,
                 before=percent_words(before, lang))


def _shown_percent(fraction: float) -> int:
    """A rate as percent_words rounds it: the decimal the float prints as, half to even."""
    return int(Decimal(str(fraction * 100)).quantize(Decimal("1"), rounding=ROUND_HALF_EVEN))


# -- figures -----------------------------------------------------------------------------------


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _per(cents: float, count: int) -> float | None:
    return cents / count if count else None


def latency_words(ms: float | None, lang: str = DEFAULT_LANGUAGE) -> str:
    """End-to-end latency in milliseconds: people compare it with ~1,000 ms, not minutes."""
    if ms is None or not math.isfinite(ms) or abs(ms) > 1e12:
        return "–"
    return words(lang, "stats.latency_ms", ms=count_words(round(ms), lang))


def figure_fields(stats: CallStats, lang: str = DEFAULT_LANGUAGE, *,
                  previous: CallStats | None = None,
                  latency_p50_ms: float | None = None) -> list[tuple[str, str]]:
    """(label key under `stats.`, value) for each figure, at most Slack's 10; the value of a
    figure with a change carries it on a second line. Values are mrkdwn-safe."""
    before = previous if previous is not None and previous.calls else None

    def with_change(value: str, change: Callable[[CallStats], str | None]) -> str:
        moved = change(before) if before is not None else None
        return f"{value}\n{moved}" if moved else value

    mix = stats.sentiments
    fields = [
        ("calls", with_change(count_words(stats.calls, lang), lambda b: relative_change(
            stats.calls, b.calls, count_words(b.calls, lang), lang))),
        ("connected_rate", with_change(
            words(lang, "stats.connected_detail",
                  rate=percent_words(_rate(stats.connected, stats.calls), lang),
                  connected=count_words(stats.connected, lang),
                  calls=count_words(stats.calls, lang)),
            lambda b: points_change(_rate(stats.connected, stats.calls),
                                    _rate(b.connected, b.calls), lang))),
        ("success_rate", with_change(
            words(lang, "stats.success_detail", rate=percent_words(stats.success_rate, lang),
                  successful=count_words(stats.successful, lang),
                  analyzed=count_words(stats.analyzed, lang)),
            lambda b: points_change(stats.success_rate, b.success_rate, lang))),
        ("sentiment", "  ".join(f"{sentiment_words(k, lang)} {count_words(mix.get(k, 0), lang)}"
                                for k in SENTIMENTS)),
        ("duration", with_change(
            words(lang, "stats.duration_detail",
                  average=duration_words(stats.avg_duration_ms, lang),
                  median=duration_words(stats.median_duration_ms, lang)),
            lambda b: relative_change(stats.avg_duration_ms, b.avg_duration_ms,
                                      duration_words(b.avg_duration_ms, lang), lang))),
        ("total_cost", with_change(cost_words(stats.total_cost_cents, lang), lambda b:
                                   relative_change(stats.total_cost_cents, b.total_cost_cents,
                                                   cost_words(b.total_cost_cents, lang), lang))),
        ("avg_cost", cost_words(_per(stats.total_cost_cents, stats.calls), lang)),
        ("cost_per_success", cost_words(_per(stats.total_cost_cents, stats.successful), lang)),
    ]
    if latency_p50_ms is not None:
        fields.append(("latency", latency_words(latency_p50_ms, lang)))
    if stats.failed_attempts:
        fields.append(("refused", count_words(stats.failed_attempts, lang)))
    return fields[:MAX_FIELDS]


def reasons_text(stats: CallStats, lang: str = DEFAULT_LANGUAGE) -> str | None:
    """The top disconnection reasons in plain words, one line each."""
    if not stats.top_reasons:
        return None
    lines = [f"• {said(reason_words(code, lang), REASON_LIMIT)}: {count_words(n, lang)}"
             for code, n in stats.top_reasons[:10]]
    return f"*{words(lang, 'stats.how_ended')}*\n" + "\n".join(lines)


def _compared_note(previous: CallStats | None, lang: str) -> str | None:
    if previous is None:
        return None
    if not previous.calls:
        return words(lang, "stats.compared_none")
    return words(lang, "stats.compared", calls=_calls(previous.calls, lang))


def _calls(count: int, lang: str) -> str:
    return counted(lang, "stats.calls_count", count, count=count_words(count, lang))


# -- the answer --------------------------------------------------------------------------------


def report_message(report: StatsReport, *, period_label: str, filters: Sequence[str] = (),
                   by: str | None = None, names: Mapping[str, str] | None = None,
                   lang: str = DEFAULT_LANGUAGE) -> Message:
    """The `/callstats` answer. `filters` are already worded (filter_words); `by` is one of
    BREAKDOWN_KEYS and shows `report.breakdown`; `names` maps campaign ids to names."""
    if by is not None and by not in BREAKDOWN_KEYS:
        raise ValueError(f"no breakdown by {by!r}")
    stats = report.stats
    title = words(lang, "stats.title", period=period_label)
    if filters:
        line = " · ".join(filters)
        title += "\n" + (line if len(line) <= FILTERS_LIMIT else line[:FILTERS_LIMIT - 1] + "…")
    if stats.calls == 0:
        return _empty_message(stats, report.previous, title, period_label, bool(filters), lang)
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=title)),
        SectionBlock(fields=[
            MarkdownTextObject(text=f"*{words(lang, f'stats.{name}')}*\n{value}")
            for name, value in figure_fields(stats, lang, previous=report.previous,
                                             latency_p50_ms=report.latency_p50_ms)]),
    ]
    note = _compared_note(report.previous, lang)
    if note:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=note)]))
    reasons = reasons_text(stats, lang)
    if reasons:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=reasons)))
    if by is not None and report.breakdown:
        room = min(BREAKDOWN_SECTIONS, MAX_BLOCKS - len(blocks) - 1)
        blocks += breakdown_blocks(report.breakdown, by, names=names, lang=lang,
                                   max_sections=room)
    if report.fields:
        blocks += field_blocks(report.fields, lang, max_sections=MAX_BLOCKS - len(blocks) - 1)
    text = words(lang, "stats.text", calls=stats.calls, period=period_label,
                 rate=percent_words(stats.success_rate, lang))
    return Message(text=text, blocks=to_blocks(blocks))


def _empty_message(stats: CallStats, previous: CallStats | None, title: str,
                   period_label: str, filtered: bool, lang: str) -> Message:
    """No calls: say so for the period asked about, and what the period before had."""
    if filtered:
        said_empty = words(lang, "stats.no_calls_matching", period=period_label)
    elif previous is None:  # all time: nothing was ever placed
        said_empty = words(lang, "stats.no_calls")
    else:
        said_empty = words(lang, "stats.no_calls_text", period=period_label)
    body = f"{title}\n{said_empty}"
    if stats.failed_attempts:
        body += " " + words(lang, "stats.refused_attempts",
                            count=count_words(stats.failed_attempts, lang))
    if previous is not None and previous.calls:
        body += "\n" + words(lang, "stats.previous_had", calls=_calls(previous.calls, lang))
    return Message(text=words(lang, "stats.no_calls_text", period=period_label),
                   blocks=to_blocks([SectionBlock(text=MarkdownTextObject(text=body))]))


# -- breakdowns --------------------------------------------------------------------------------


def _width(text: str) -> int:
    """Monospace cells `text` takes: Thai vowel and tone marks take none, wide signs two."""
    return sum(0 if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf")
               else 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def _fit(text: str, width: int) -> str:
    """`text` cut to `width` cells, with an ellipsis when cut."""
    if _width(text) <= width:
        return text
    out, used = [], 0
    for c in text:
        w = _width(c)
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + "…"


def _pad(text: str, width: int, right: bool = False) -> str:
    gap = " " * max(width - _width(text), 0)
    return gap + text if right else text + gap


def _cell(text: str) -> str:
    """Text from a person for a code block: one line, numbers masked, no backtick to end
    the block, cut to the key column (escaping comes after padding)."""
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c
                   for c in text[: KEY_WIDTH * 4])
    return _fit(mask_numbers(text).replace("`", "'").strip(), KEY_WIDTH)


def _row_key(row: Breakdown, by: str, names: Mapping[str, str] | None, lang: str) -> str:
    """A row's key as plain text (not yet escaped)."""
    if by == "campaign":
        if not row.key:
            return words(lang, "stats.by.no_campaign")
        name = (names or {}).get(row.key)
        return name if name else f"#{row.key}"
    return row.key or words(lang, "stats.by.none")


def _row_figures(row: Breakdown, lang: str) -> list[str]:
    return [count_words(row.calls, lang), percent_words(_rate(row.connected, row.calls), lang),
            percent_words(_rate(row.successful, row.analyzed), lang),
            duration_words(row.avg_duration_ms, lang), cost_words(row.cost_cents, lang)]


def breakdown_lines(rows: Sequence[Breakdown], by: str, *,
                    names: Mapping[str, str] | None = None,
                    lang: str = DEFAULT_LANGUAGE) -> tuple[str | None, list[str]]:
    """The table's header and rows, aligned in monospace and escaped for a code block
    (header None for by:user, whose rows are lines with mentions: a code block would show
    `<@U…>` as text)."""
    if by == "user":
        lines = []
        for row in rows:
            who = user_mention(row.key) or (_inert(said(row.key, FILTER_VALUE_LIMIT)) if row.key
                                            else words(lang, "stats.by.none"))
            calls, connected, success, average, cost = _row_figures(row, lang)
            lines.append(" · ".join([
                f"• {who}", counted(lang, "stats.calls_count", row.calls, count=calls),
                words(lang, "stats.by.connected", rate=connected),
                words(lang, "stats.by.success", rate=success),
                words(lang, "stats.by.avg", duration=average), cost]))
        return None, lines
    head = [words(lang, f"stats.col.{by}")] + [
        words(lang, f"stats.col.{c}") for c in ("calls", "connected", "success", "avg", "cost")]
    table = [[_cell(_row_key(row, by, names, lang)), *_row_figures(row, lang)] for row in rows]
    widths = [max(_width(line[i]) for line in [head, *table]) for i in range(len(head))]

    def aligned(cells: list[str]) -> str:
        first = _pad(cells[0], widths[0])
        rest = [_pad(c, w, right=True) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return mrkdwn_safe("  ".join([first, *rest]).rstrip())

    return aligned(head), [aligned(cells) for cells in table]


def breakdown_blocks(rows: Sequence[Breakdown], by: str, *,
                     names: Mapping[str, str] | None = None, lang: str = DEFAULT_LANGUAGE,
                     max_sections: int = BREAKDOWN_SECTIONS) -> list[Block]:
    """`/callstats by:<key>`: an aligned monospace table (Slack has no table block), or
    lines for by:user; cut to `max_sections` sections and a note on what was left out."""
    head, lines = breakdown_lines(rows, by, names=names, lang=lang)
    title = f"*{words(lang, f'stats.by.{by}')}*"
    texts, left = pack_sections(title, lines, max_sections, table_head=head)
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=t)) for t in texts]
    if left:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=counted(
            lang, "stats.by.more", left, count=count_words(left, lang)))]))
    return blocks


def pack_sections(title: str, lines: Sequence[str], max_sections: int, *,
                  table_head: str | None = None) -> tuple[list[str], int]:
    """Whole lines into section texts of at most SECTION_LIMIT characters, the title on the
    first, each inside a code block under `table_head` when one is given; returns the texts
    and how many lines did not fit in `max_sections`."""
    opener = f"```\n{table_head}\n" if table_head is not None else ""
    closer = "\n```" if table_head is not None else ""
    texts: list[str] = []
    lead = f"{title}\n{opener}"
    body: list[str] = []
    size = 0
    for i, line in enumerate(lines):
        if len(texts) >= max_sections:
            return texts, len(lines) - i
        room = SECTION_LIMIT - len(lead) - len(closer)
        if body and size + 1 + len(line) > room:
            texts.append(lead + "\n".join(body) + closer)
            if len(texts) >= max_sections:
                return texts, len(lines) - i
            lead, body, size = opener, [], 0
            room = SECTION_LIMIT - len(lead) - len(closer)
        if len(line) > room:  # never for lines made here; a guard, not a layout
            line = line[: room - 1] + "…"
        size += len(line) + (1 if body else 0)
        body.append(line)
    if body and len(texts) < max_sections:
        texts.append(lead + "\n".join(body) + closer)
    return texts, 0


# -- extracted fields --------------------------------------------------------------------------


def _number(value: float | None, lang: str) -> str:
    if value is None or not math.isfinite(value) or abs(value) > 1e15:
        return "–"
    return count_words(round(value, 2), lang)


def field_line(summary: FieldSummary, lang: str = DEFAULT_LANGUAGE) -> str:
    """One extracted field over the calls, by its kind: booleans as yes/no counts, numbers
    as mean/median/min/max, short text as its top values with counts."""
    if summary.kind == "boolean":
        judged = summary.yes + summary.no
        told = words(lang, "stats.fields.boolean", yes=count_words(summary.yes, lang),
                     no=count_words(summary.no, lang),
                     share=percent_words(_rate(summary.yes, judged), lang))
    elif summary.kind == "number":
        told = words(lang, "stats.fields.number", mean=_number(summary.mean, lang),
                     median=_number(summary.median, lang), low=_number(summary.low, lang),
                     high=_number(summary.high, lang))
    elif summary.top:
        told = " · ".join(f"“{_inert(said(value, FIELD_VALUE_LIMIT))}” {count_words(n, lang)}"
                          for value, n in summary.top[:FIELD_TOP])
    else:
        told = words(lang, "stats.fields.varied")
    name = _inert(said(summary.name.replace("_", " ").strip() or "–", FIELD_NAME_LIMIT))
    return words(lang, "stats.fields.line", name=name, calls=_calls(summary.count, lang),
                 summary=told)


def field_blocks(fields: Sequence[FieldSummary], lang: str = DEFAULT_LANGUAGE, *,
                 max_sections: int = MAX_BLOCKS - 1) -> list[Block]:
    """The extracted fields, one line each, in as many sections as fit; a note counts the
    fields left out."""
    if max_sections < 1:
        return []
    title = f"*{words(lang, 'stats.fields.title')}*"
    # Each line is bounded (name, five values): a section holds at least one, so looking at
    # more fields than sections of 3,000 characters could hold is never needed.
    wanted = fields[: max_sections * (SECTION_LIMIT // 20)]
    texts, left = pack_sections(title, [field_line(f, lang) for f in wanted], max_sections)
    left += len(fields) - len(wanted)
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=t)) for t in texts]
    if left:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=counted(
            lang, "stats.fields.more", left, count=count_words(left, lang)))]))
    return blocks


def period_label(query: StatsQuery, lang: str = DEFAULT_LANGUAGE) -> str:
    """The period a query asked about, in words (a range as its dates)."""
    if query.period == "range" and query.range_text:
        return words(lang, "stats.period.range", range=query.range_text)
    return words(lang, f"stats.period.{query.period}")
