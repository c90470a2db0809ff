"""The `/callstats` report: figures, changes against the period before, breakdowns, the
extracted fields, in English and Thai, always inside Slack's limits."""

from __future__ import annotations

import html
import json
import re
import unicodedata
from dataclasses import replace
from typing import Any

import pytest

from bot.render.stats import (
    KEY_WIDTH,
    filter_words,
    points_change,
    relative_change,
    report_message,
)
from storage.models import Breakdown, CallStats, FieldSummary, StatsReport

_THAI = re.compile(r"[\u0e00-\u0e7f]")
PERIOD = "the last 7 days"

NOW = CallStats(calls=10, failed_attempts=2, analyzed=8, successful=6,
                sentiments={"Positive": 5, "Neutral": 2, "Negative": 1, "Unknown": 2},
                connected=9, avg_duration_ms=90_500, median_duration_ms=60_000,
                total_cost_cents=123.4,
                top_reasons=[("user_hangup", 6), ("dial_no_answer", 1)])
BEFORE = CallStats(calls=8, failed_attempts=0, analyzed=8, successful=5,
                   sentiments={"Positive": 4, "Neutral": 4, "Negative": 0, "Unknown": 0},
                   connected=8, avg_duration_ms=100_000, median_duration_ms=60_000,
                   total_cost_cents=123.4, top_reasons=[])
EMPTY = replace(NOW, calls=0, failed_attempts=0, analyzed=0, successful=0, connected=0,
                sentiments={}, avg_duration_ms=None, median_duration_ms=None,
                total_cost_cents=0.0, top_reasons=[])


def dump(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def fields_of(blocks: list[dict[str, Any]]) -> dict[str, str]:
    """Each figure's label -> its value (and change), from the fields section."""
    found = {}
    for block in blocks:
        for f in block.get("fields", []):
            label, _, value = f["text"].partition("\n")
            found[label.strip("*")] = value
    return found


def sections(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]


def contexts(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]


def assert_within_limits(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= 50
    for block in blocks:
        assert len(block.get("text", {}).get("text", "")) <= 3000
        assert len(block.get("fields", [])) <= 10
        assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))


def cells(text: str) -> int:
    """Monospace cells, as a reader sees them (entities shown as their character)."""
    return sum(0 if unicodedata.category(c) in ("Mn", "Me", "Cf") else 1
               for c in html.unescape(text))


def table_of(section: str) -> list[str]:
    """The lines inside a section's code block."""
    inside = section.split("```\n", 1)[1].rsplit("\n```", 1)[0]
    return inside.split("\n")


def report(**kw: Any) -> StatsReport:
    return StatsReport(**{"stats": NOW, **kw})


# -- figures and changes -----------------------------------------------------------------------


def test_figures_and_their_changes_against_the_period_before() -> None:
    message = report_message(report(previous=BEFORE, latency_p50_ms=812.4),
                             period_label=PERIOD)
    figures = fields_of(message.blocks)
    assert figures["Calls"] == "10\n↑ 25% (was 8)"
    assert figures["Connected"] == "90% (9 of 10)\n↓ 10 pts (was 100%)"
    # 75% against 62% (5 of 8 rounds half to even): the points are those of the shown rates.
    assert figures["Success rate"] == "75% (6 of 8 analyzed)\n↑ 13 pts (was 62%)"
    assert figures["Duration"] == "avg 1m 30s · median 1m 00s\n↓ 10% (was 1m 40s)"
    assert figures["Total cost"] == "$1.23\n→ no change"
    assert figures["Average cost per call"] == "$0.12"
    assert figures["Cost per successful call"] == "$0.21"
    assert figures["Latency (p50)"] == "812 ms"
    assert figures["Refused by Retell"] == "2"
    assert ":smiley: Positive 5" in figures["Sentiment"]
    assert len(figures) == 10
    assert any("same length just before (8 calls)" in c for c in contexts(message.blocks))
    assert "*How calls ended*\n• Customer hung up: 6\n• No answer: 1" in sections(message.blocks)
    assert message.text == "10 calls in the last 7 days, success rate 75%"
    assert_within_limits(message.blocks)


def test_equal_periods_read_no_change() -> None:
    figures = fields_of(report_message(report(previous=NOW), period_label=PERIOD).blocks)
    changed = [label for label, value in figures.items() if "\n" in value]
    assert changed == ["Calls", "Connected", "Success rate", "Duration", "Total cost"]
    assert all(figures[label].endswith("\n→ no change") for label in changed)
    shown = "\n".join(figures.values())
    assert "↑" not in shown and "↓" not in shown


@pytest.mark.parametrize("previous", [None, EMPTY])
def test_no_changes_without_calls_before(previous: CallStats | None) -> None:
    message = report_message(report(previous=previous), period_label=PERIOD)
    figures = fields_of(message.blocks)
    assert all("\n" not in value for value in figures.values()), figures
    notes = contexts(message.blocks)
    if previous is None:
        assert notes == []
    else:
        assert notes == ["No calls in the period of the same length just before: "
                         "nothing to compare with."]


def test_small_changes_and_changes_from_nothing_still_show_a_direction() -> None:
    now = replace(NOW, calls=1000, connected=501, analyzed=1000, successful=400,
                  avg_duration_ms=None, total_cost_cents=50.0)
    before = replace(NOW, calls=999, connected=500, analyzed=1000, successful=400,
                     avg_duration_ms=60_000, total_cost_cents=0.0)
    figures = fields_of(report_message(report(stats=now, previous=before),
                                       period_label=PERIOD).blocks)
    assert figures["Calls"].endswith("↑ <1% (was 999)")
    assert figures["Connected"].endswith("↑ <1 pt (was 50%)")  # 50.05% -> 50.1%
    assert figures["Success rate"].endswith("→ no change")
    assert figures["Total cost"].endswith("↑ (was $0.00)")
    assert "\n" not in figures["Duration"]  # no connected call now: no average to compare


def test_change_helpers_on_their_own() -> None:
    assert relative_change(12, 10, "10") == "↑ 20% (was 10)"
    assert relative_change(7, 10, "10") == "↓ 30% (was 10)"
    assert relative_change(None, 10, "10") is None
    assert relative_change(5, float("nan"), "–") is None
    assert points_change(0.6, 0.5) == "↑ 10 pts (was 50%)"
    assert points_change(0.49, 0.5) == "↓ 1 pt (was 50%)"
    assert points_change(0.5, None) is None
    assert relative_change(12, 10, "10", "th") == "↑ 20% (เดิม 10)"
    assert points_change(0.6, 0.5, "th") == "↑ 10 จุด (เดิม 50%)"


def test_the_figures_people_had_from_the_first_answer_are_all_there() -> None:
    stats = CallStats(calls=10, failed_attempts=2, analyzed=8, successful=6,
                      sentiments={"Positive": 5, "Neutral": 2, "Negative": 1, "Unknown": 2},
                      connected=9, avg_duration_ms=90_500, median_duration_ms=60_000,
                      total_cost_cents=123.4, top_reasons=[("user_hangup", 6),
                                                           ("dial_no_answer", 1)])
    message = report_message(report(stats=stats), period_label="the last 7 days")
    body = json.dumps(message.blocks, ensure_ascii=False)
    for part in ("*Calls*\\n10", "75% (6 of 8 analyzed)", ":smiley: Positive 5",
                 ":grey_question: Unknown 2", "avg 1m 30s", "median 1m 00s", "$1.23",
                 "Customer hung up: 6", "No answer: 1", "Refused by Retell*\\n2"):
        assert part in body, part
    empty = report_message(report(stats=replace(stats, calls=0, failed_attempts=0)),
                           period_label="today")
    assert "No calls yet" in json.dumps(empty.blocks)


# -- empty periods and filters -----------------------------------------------------------------


def test_an_empty_period_says_so_and_what_came_before() -> None:
    message = report_message(report(stats=replace(EMPTY, failed_attempts=3), previous=BEFORE),
                             period_label=PERIOD)
    [body] = sections(message.blocks)
    assert body == ("*Calls in the last 7 days*\nNo calls in the last 7 days "
                    "(3 attempts Retell refused.)\n"
                    "The period of the same length just before had 8 calls.")
    assert message.text == "No calls in the last 7 days"
    assert len(message.blocks) == 1


def test_an_empty_period_with_filters_names_them() -> None:
    filters = filter_words(agent="Sales", direction="inbound")
    message = report_message(report(stats=EMPTY), period_label=PERIOD, filters=filters,
                             by="agent")
    [body] = sections(message.blocks)
    assert body == ("*Calls in the last 7 days*\nagent: Sales · inbound calls\n"
                    "No calls in the last 7 days match these filters.")


def test_filters_are_worded_and_inert() -> None:
    assert filter_words(agent=None, user_id=None, channel_id=None, campaign=None,
                        direction=None, outcome=None) == []
    shown = filter_words(agent="<!channel> *Sales*", user_id="U0ABC", channel_id="C0XYZ",
                         campaign="Spring `promo`", direction="outbound",
                         outcome="no-answer")
    assert shown == ["agent: &lt;!channel&gt; ∗Sales∗", "placed by <@U0ABC>", "in <#C0XYZ>",
                     "campaign: Spring ˋpromoˋ", "outbound calls", "unanswered calls"]
    odd = filter_words(user_id="<@U0EVIL>", outcome="<b>", direction="sideways")
    assert odd == ["placed by &lt;@U0EVIL&gt;", "direction: sideways", "outcome: &lt;b&gt;"]
    thai = filter_words(agent="Sales", outcome="success", lang="th")
    assert thai == ["เอเจนต์: Sales", "สายที่สำเร็จ"]


def test_filters_show_under_the_title() -> None:
    message = report_message(report(), period_label=PERIOD,
                             filters=filter_words(user_id="U0ABC", outcome="failed"))
    assert sections(message.blocks)[0] == ("*Calls in the last 7 days*\n"
                                           "placed by <@U0ABC> · failed calls")


# -- breakdowns --------------------------------------------------------------------------------


def row(key: str, calls: int = 4, connected: int = 3, analyzed: int = 3, successful: int = 2,
        avg: float | None = 60_000, cost: float = 40.0) -> Breakdown:
    return Breakdown(key, calls, connected, analyzed, successful, avg, cost)


def breakdown_sections(message_blocks: list[dict[str, Any]], title: str) -> list[str]:
    texts = sections(message_blocks)
    start = next(i for i, t in enumerate(texts) if t.startswith(title))
    return [t for t in texts[start:] if t.startswith(title) or t.startswith("```")]


def test_by_agent_is_an_aligned_table_with_odd_names_made_harmless() -> None:
    rows = (row("Sales ```bot```", 6, 5, 5, 3, 60_000, 80.0),
            row("*b* <!channel> & <@U0A>", 3), row("x" * 80 + " +14155550123"),
            row(""))
    message = report_message(report(breakdown=rows), period_label=PERIOD, by="agent")
    [table] = breakdown_sections(message.blocks, "*By agent*")
    assert table.startswith("*By agent*\n```\n") and table.endswith("\n```")
    assert table.count("```") == 2  # a name cannot end the code block
    lines = table_of(table)
    assert lines[0].split() == ["Agent", "Calls", "Conn.", "Success", "Avg", "Cost"]
    assert lines[1].split() == ["Sales", "'''bot'''", "6", "83%", "60%", "1m", "00s", "$0.80"]
    assert "&lt;!channel&gt;" in lines[2] and "&amp;" in lines[2] and "<!channel>" not in table
    assert "&lt;@U0A&gt;" in lines[2] and "<@U0A>" not in table and "*b*" in lines[2]
    assert "x" * (KEY_WIDTH - 1) + "…" in lines[3] and "4155550123" not in table
    assert lines[4].startswith("(none)")
    assert len({cells(line) for line in lines}) == 1, [cells(line) for line in lines]
    assert_within_limits(message.blocks)


def test_by_user_lines_keep_mentions_out_of_code_blocks() -> None:
    rows = (row("U0ABC", 12, 10, 10, 5, 90_000, 123.4), row("U0DEF", 1, 1, 0, 0, None, 2.0),
            row("<!here>"), row(""))
    message = report_message(report(breakdown=rows), period_label=PERIOD, by="user")
    [part] = breakdown_sections(message.blocks, "*By person*")
    assert "```" not in part
    assert part.split("\n") == [
        "*By person*",
        "• <@U0ABC> · 12 calls · 83% connected · 50% success · avg 1m 30s · $1.23",
        "• <@U0DEF> · 1 call · 100% connected · – success · avg – · $0.02",
        "• &lt;!here&gt; · 4 calls · 75% connected · 67% success · avg 1m 00s · $0.40",
        "• (none) · 4 calls · 75% connected · 67% success · avg 1m 00s · $0.40",
    ]


def test_by_day_lists_days_in_order() -> None:
    rows = (row("2025-05-01", 2), row("2025-05-02", 10))
    message = report_message(report(breakdown=rows), period_label=PERIOD, by="day")
    [table] = breakdown_sections(message.blocks, "*By day*")
    lines = table_of(table)
    assert lines[0].startswith("Day ")
    assert [line.split()[:2] for line in lines[1:]] == [["2025-05-01", "2"],
                                                        ["2025-05-02", "10"]]


def test_by_campaign_shows_names_when_known() -> None:
    rows = (row("7"), row("8"), row(""))
    message = report_message(report(breakdown=rows), period_label=PERIOD, by="campaign",
                             names={"7": "Spring `promo` <b>"})
    [table] = breakdown_sections(message.blocks, "*By campaign*")
    lines = table_of(table)
    assert lines[0].startswith("Campaign ")
    assert lines[1].startswith("Spring 'promo' &lt;b&gt;")
    assert lines[2].startswith("#8 ")
    assert lines[3].startswith("(not a campaign)")


def test_a_breakdown_is_only_by_a_known_key() -> None:
    with pytest.raises(ValueError, match="no breakdown by 'number'"):
        report_message(report(breakdown=(row("a"),)), period_label=PERIOD, by="number")


def test_a_long_breakdown_is_cut_within_limits_and_counted() -> None:
    rows = tuple(row(f"agent & <{n}> " + "y" * 30) for n in range(1000))
    message = report_message(report(breakdown=rows), period_label=PERIOD, by="agent")
    assert_within_limits(message.blocks)
    tables = breakdown_sections(message.blocks, "*By agent*")
    shown = sum(len(table_of(t)) - 1 for t in tables)  # less each section's header
    assert all(t.count("```") == 2 for t in tables) and len(tables) == 10
    [note] = [c for c in contexts(message.blocks) if "not shown" in c]
    assert note == f"{1000 - shown:,} more rows not shown"


# -- extracted fields --------------------------------------------------------------------------


def test_fields_are_summarised_by_their_kind() -> None:
    fields = (
        FieldSummary("wants_callback", "boolean", 10, yes=7, no=3),
        FieldSummary("score", "number", 9, mean=7.333333, median=8, low=1, high=10),
        FieldSummary("plan", "text", 8, top=(("gold", 5), ("*silver* <!here>", 2))),
        FieldSummary("notes", "text", 8),
        FieldSummary("odd*name*", "number", 1, mean=float("nan"), median=None, low=2,
                     high=2),
    )
    message = report_message(report(fields=fields), period_label=PERIOD)
    [part] = [t for t in sections(message.blocks) if t.startswith("*Extracted fields*")]
    assert part.split("\n")[1:] == [
        "• *wants callback* (10 calls): yes 7 (70%) · no 3",
        "• *score* (9 calls): mean 7.33 · median 8 · min 1 · max 10",
        "• *plan* (8 calls): “gold” 5 · “∗silver∗ &lt;!here&gt;” 2",
        "• *notes* (8 calls): answers too varied to list",
        "• *odd∗name∗* (1 call): mean – · median – · min 2 · max 2",
    ]


def test_many_fields_and_long_values_stay_within_limits() -> None:
    fields = tuple(
        FieldSummary(f"field {n} " + "&" * 100, "text", 5,
                     top=tuple(("<&>" * 40 + str(v), 1) for v in range(5)))
        for n in range(300))
    rows = tuple(row(f"agent {n}") for n in range(1000))
    message = report_message(report(previous=BEFORE, breakdown=rows, fields=fields),
                             period_label=PERIOD, by="agent")
    assert_within_limits(message.blocks)
    assert len(message.blocks) == 50
    listed = [t for t in sections(message.blocks) if "calls): " in t]
    shown = sum(t.count("\n• ") + t.startswith("• ") for t in listed)
    assert shown > 0
    [note] = [c for c in contexts(message.blocks) if "fields not shown" in c]
    assert note == f"{300 - shown} more fields not shown"


# -- Thai --------------------------------------------------------------------------------------


def test_thai_report_reads_in_thai() -> None:
    fields = (FieldSummary("callback", "boolean", 4, yes=3, no=1),
              FieldSummary("score", "number", 4, mean=2, median=2, low=1, high=3),
              FieldSummary("notes", "text", 4))
    message = report_message(
        report(previous=BEFORE, latency_p50_ms=900, breakdown=(row("Sales"), row("")),
               fields=fields),
        period_label="7 วันที่ผ่านมา", filters=filter_words(direction="inbound", lang="th"),
        by="agent", lang="th")
    figures = fields_of(message.blocks)
    assert all(_THAI.search(label) for label in figures), figures
    assert figures["จำนวนสาย"] == "10\n↑ 25% (เดิม 8)"
    assert figures["รับสาย"] == "90% (รับสาย 9 จาก 10 สาย)\n↓ 10 จุด (เดิม 100%)"
    assert figures["ความหน่วง (p50)"] == "900 มิลลิวินาที"
    body = dump(message.blocks)
    for thai in ("สายเข้า", "แยกตามเอเจนต์", "(ไม่ระบุ)", "ข้อมูลที่เอเจนต์เก็บได้",
                 "ใช่ 3 (75%) · ไม่ใช่ 1", "คำตอบหลากหลายเกินกว่าจะแสดง", "เทียบกับช่วงเวลา"):
        assert thai in body, thai
    for english in ("was ", " pts", "Calls", "Connected", "By agent", "Extracted fields",
                    "(none)", "answers too varied", "same length", "inbound", "yes ", "mean "):
        assert english not in body, english
    assert message.text == "10 สายใน7 วันที่ผ่านมา อัตราความสำเร็จ 75%"


def test_thai_empty_period() -> None:
    message = report_message(report(stats=EMPTY, previous=BEFORE),
                             period_label="วันนี้ (UTC)", lang="th")
    [body] = sections(message.blocks)
    assert body == ("*การโทรในวันนี้ (UTC)*\nไม่มีการโทรในวันนี้ (UTC)\n"
                    "ช่วงเวลาที่ยาวเท่ากันก่อนหน้ามี 8 สาย")
