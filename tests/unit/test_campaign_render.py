"""A campaign in words, blocks and files: the card in each state, the thread notes, the
summary, the results CSV, the `/callcampaign` answers and its modal. Pure functions."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from typing import Any

import pytest

from bot.input.campaign_form import (
    BLOCK_CAMPAIGN_AGENT,
    BLOCK_CAMPAIGN_ATTEMPTS,
    BLOCK_CAMPAIGN_CALLER,
    BLOCK_CAMPAIGN_CONCURRENCY,
    BLOCK_CAMPAIGN_FILE,
    BLOCK_CAMPAIGN_NAME,
    BLOCK_CAMPAIGN_SPACING,
    BLOCK_CAMPAIGN_START,
    NO_AGENT,
)
from bot.render.blocks import MAX_BLOCKS, SECTION_LIMIT, Message
from bot.render.campaigns import (
    ACTION_CAMPAIGN_CANCEL,
    ACTION_CAMPAIGN_PAUSE,
    ACTION_CAMPAIGN_RESULTS,
    ACTION_CAMPAIGN_RESUME,
    ACTION_CAMPAIGN_START,
    CAMPAIGN_MODAL,
    MAX_BAD_LISTED,
    campaign_card,
    campaign_failure,
    campaign_list,
    campaign_modal,
    campaign_not_found,
    campaign_not_now,
    campaign_not_yours,
    campaign_state_changed,
    campaign_status,
    campaign_summary,
    campaign_usage,
    progress_bar,
    results_csv,
)
from bot.retell.client import Agent, CallerNumber
from storage.models import (
    STAGE_ANALYZED,
    STAGE_PLACED,
    CallRecord,
    Campaign,
    CampaignCounts,
    CampaignRow,
)

T0 = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC
_THAI = re.compile(r"[\u0e00-\u0e7f]")
ALL_ACTIONS = {ACTION_CAMPAIGN_START, ACTION_CAMPAIGN_CANCEL, ACTION_CAMPAIGN_PAUSE,
               ACTION_CAMPAIGN_RESUME, ACTION_CAMPAIGN_RESULTS}
CALLER = "+14155550100"


def campaign(**kw: Any) -> Campaign:
    base = Campaign(id=12, name="Spring follow-up", owner="U0ALICE", channel_id="C0SALES",
                    status="draft", concurrency=5, attempts=3, retry_spacing=3600.0,
                    created_at=T0, agent="Sales Follow-up", from_number=CALLER,
                    columns=("customer_name", "plan"), file_name="contacts.csv")
    return replace(base, **kw)


def row(line: int, **kw: Any) -> CampaignRow:
    base = CampaignRow(id=line, campaign_id=12, line=line, number="+14155550123",
                       status="done")
    return replace(base, **kw)


RUNNING = CampaignCounts(rows=100, skipped=4, waiting=48, waiting_hours=12,
                         opens_at=T0 + 3600, live=5, placed=60, connected=30, successful=21,
                         no_answer=8, failed=2, refused=3, cancelled=4, duration_ms=5_400_000,
                         cost_cents=1234.5)
FINISHED = CampaignCounts(rows=100, skipped=4, placed=130, connected=60, successful=45,
                          no_answer=20, failed=15, refused=5, duration_ms=12_000_000,
                          cost_cents=4321.0)
SKIPPED = [
    row(9, number="+14155550124", status="skipped", outcome="refused", detail="do_not_call"),
    row(4, number=None, status="skipped", outcome="invalid", detail="no_number"),
    row(5, number=None, status="skipped", outcome="invalid", detail="invalid_number:12ab"),
    row(7, status="skipped", outcome="duplicate", detail="duplicate:415-555-0123"),
]


def actions(message: Message) -> dict[str, dict[str, Any]]:
    """The card's buttons by action id, as Slack receives them."""
    found = [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    by_id = {e["action_id"]: e for e in found}
    assert len(by_id) == len(found), "two buttons with one action"
    return by_id


def text_of(message: Message) -> str:
    """Every text in the blocks, in order."""
    parts: list[str] = []
    for block in message.blocks:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts += [f["text"] for f in block.get("fields", [])]
        if block["type"] == "context":
            parts += [e["text"] for e in block["elements"]]
    return "\n".join(parts)


def fields(message: Message) -> dict[str, str]:
    """The counters: `*label*\\nvalue` fields, by label."""
    out: dict[str, str] = {}
    for block in message.blocks:
        for field in block.get("fields", []):
            label, value = field["text"].split("\n", 1)
            out[label.strip("*")] = value
    return out


def assert_within_slack_limits(message: Message) -> None:
    assert 1 <= len(message.blocks) <= MAX_BLOCKS
    assert message.text and "\n" not in message.text
    for block in message.blocks:
        assert len(block.get("text", {}).get("text", "")) <= SECTION_LIMIT
        assert len(block.get("fields", [])) <= 10


# -- the card: the preview ---------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "th"])
def test_the_preview_says_how_many_rows_wait_for_calling_hours_and_until_when(
        lang: str) -> None:
    opens = int(T0 + 3 * 3600)
    card = campaign_card(campaign(), CampaignCounts(rows=10, waiting_hours=4, opens_at=opens),
                         now=T0, estimate_s=4 * 3600, lang=lang)
    assert_within_slack_limits(card)
    text = text_of(card)
    assert f"<!date^{opens}^" in text
    if lang == "en":
        assert "4 wait for calling hours (until <!date^" in text
        assert "About 4h 00m at 5 calls at once, calling hours included." in text
    else:
        assert "4 แถวรอช่วงเวลาที่โทรได้" in text
    none_wait = text_of(campaign_card(campaign(), CampaignCounts(rows=10), now=T0, lang=lang))
    assert "<!date^" not in none_wait


@pytest.mark.parametrize("lang", ["en", "th"])
def test_the_preview_offers_start_and_cancel_only(lang: str) -> None:
    card = campaign_card(campaign(), CampaignCounts(rows=96, skipped=4), now=T0, bad=SKIPPED,
                         estimate_s=5400, lang=lang)
    assert_within_slack_limits(card)
    buttons = actions(card)
    assert set(buttons) == {ACTION_CAMPAIGN_START, ACTION_CAMPAIGN_CANCEL}
    assert all(b["value"] == "12" for b in buttons.values())
    assert buttons[ACTION_CAMPAIGN_START]["style"] == "primary"
    confirm = buttons[ACTION_CAMPAIGN_CANCEL]["confirm"]
    assert confirm["style"] == "danger" and confirm["title"]["text"]
    text = text_of(card)
    assert "*100*" in text and "*96*" in text and "*4*" in text  # read, to call, not called
    assert "<@U0ALICE>" in text and "Sales Follow-up" in text
    assert "+1 415 ••• 0100" in text and "5550100" not in text
    if lang == "th":
        assert _THAI.search(text) and "บรรทัด 4" in text and "1 ชม. 30 นาที" in text
        assert "ไม่ถูกต้อง 2, ซ้ำ 1, ถูกปฏิเสธตามนโยบาย 1" in text
    else:
        assert "Not called: 2 invalid, 1 duplicate, 1 refused by policy." in text
        assert "About 1h 30m at 5 calls at once" in text
        assert "Up to 3 tries per number, 1h 00m apart" in text
        assert "Nothing is called until someone presses Start." in text
        assert card.text == "Campaign Spring follow-up: preview, 96 of 100 rows to call"


def test_bad_rows_are_listed_by_line_with_why() -> None:
    text = text_of(campaign_card(campaign(), CampaignCounts(rows=96, skipped=4), now=T0,
                                 bad=SKIPPED))
    listed = [line for line in text.splitlines() if line.startswith("• Line")]
    assert listed == [
        "• Line 4: no number",
        "• Line 5: not a phone number that can be dialled (`12ab`)",
        "• Line 7: the same number as an earlier row (`••• 0123`)",  # masked
        "• Line 9: the number is on the do-not-call list",
    ]


def test_at_most_ten_bad_rows_are_listed_and_the_rest_counted() -> None:
    bad = [row(n, number=None, status="skipped", outcome="invalid", detail="no_number")
           for n in range(2, 10_002)]
    card = campaign_card(campaign(), CampaignCounts(rows=0, skipped=len(bad)), now=T0,
                         bad=bad)
    assert_within_slack_limits(card)
    text = text_of(card)
    assert text.count("• Line") == MAX_BAD_LISTED
    assert "• Line 11: no number" in text and "• Line 12:" not in text
    assert "…and 9,990 more; every one is in the results file." in text
    # Nothing to call: no Start, only Cancel, and the reason said.
    assert set(actions(card)) == {ACTION_CAMPAIGN_CANCEL}
    assert "No row can be called" in text


def test_what_was_typed_in_a_bad_row_is_escaped_and_masked() -> None:
    typed = "<!channel> `x` @here +1 415 555 0199"
    bad = [row(3, number=None, status="skipped", outcome="invalid",
               detail=f"invalid_number:{typed}")]
    masked = text_of(campaign_card(campaign(), CampaignCounts(rows=1, skipped=1), now=T0,
                                   bad=bad))
    line = next(x for x in masked.splitlines() if x.startswith("• Line 3"))
    assert "<!channel>" not in line and "&lt;!channel&gt;" in line
    assert "`x`" not in line and "'x'" in line
    assert "@here" not in line  # a word joiner keeps it from notifying anyone
    assert "555 0199" not in line and "0199" in line
    full = text_of(campaign_card(campaign(), CampaignCounts(rows=1, skipped=1), now=T0,
                                 bad=bad, show_full_numbers=True))
    assert "+1 415 555 0199" in full


def test_an_unknown_code_and_a_refusal_the_version_does_not_know_are_shown_inert() -> None:
    bad = [row(2, status="skipped", outcome="invalid", detail="odd<b>"),
           row(3, status="skipped", outcome="refused", detail="new_rule")]
    text = text_of(campaign_card(campaign(), CampaignCounts(rows=1, skipped=2), now=T0,
                                 bad=bad))
    assert "• Line 2: cannot be used (`odd&lt;b&gt;`)" in text
    assert "• Line 3: That is not allowed here (`new_rule`)." in text


def test_with_only_the_first_bad_rows_the_total_is_said_without_a_wrong_breakdown() -> None:
    text = text_of(campaign_card(campaign(), CampaignCounts(rows=5, skipped=30), now=T0,
                                 bad=SKIPPED))
    assert "not called: *30*" in text and "Not called:" not in text
    assert text.count("• Line") == 4 and "…and 26 more" in text


def test_a_start_time_is_shown_in_each_readers_zone() -> None:
    card = campaign_card(campaign(start_at=T0 + 7200), CampaignCounts(rows=3), now=T0)
    assert f"<!date^{int(T0 + 7200)}^" in text_of(card)
    assert "Nothing is called until" not in text_of(card)


def test_full_caller_id_only_when_allowed() -> None:
    masked = campaign_card(campaign(), CampaignCounts(rows=1), now=T0)
    full = campaign_card(campaign(), CampaignCounts(rows=1), now=T0, show_full_numbers=True)
    assert "+1 415 ••• 0100" in text_of(masked)
    assert "+1 415-555-0100" in text_of(full) and "•••" not in text_of(full)


def test_defaults_are_named_when_no_agent_or_caller_id_was_chosen() -> None:
    text = text_of(campaign_card(campaign(agent=None, from_number=None, owner="not-an-id"),
                                 CampaignCounts(rows=1), now=T0))
    assert "each caller ID's own agent" in text and "the default caller ID" in text
    assert "not-an-id" not in text


# -- the card: running and paused ------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "th"])
def test_a_running_card_shows_progress_counters_and_its_buttons(lang: str) -> None:
    card = campaign_card(campaign(status="running", started_at=T0), RUNNING, now=T0,
                         eta_s=1800, lang=lang)
    assert_within_slack_limits(card)
    assert set(actions(card)) == {ACTION_CAMPAIGN_PAUSE, ACTION_CAMPAIGN_CANCEL,
                                  ACTION_CAMPAIGN_RESULTS}
    assert "confirm" in actions(card)[ACTION_CAMPAIGN_CANCEL]
    text = text_of(card)
    # done (30 + 8 + 2 + 3 = 43) and cancelled (4): 47 of 100.
    assert "`▓▓▓▓░░░░░░ 47%`" in text
    assert f"<!date^{int(T0 + 3600)}^" in text  # waiting for calling hours until then
    assert f"<!date^{int(T0 + 1800)}^" in text  # the ETA
    counters = fields(card)
    if lang == "en":
        assert counters == {"Calls placed": "60", "Connected": "30", "Successful": "21",
                            "No answer": "8", "Failed": "2", "Refused by policy": "3",
                            "Cancelled": "4", "Waiting": "48", "Remaining": "53"}
        assert "12 wait for calling hours (until <!date^" in text
        assert "About 30m 00s left" in text
        assert card.text == "Campaign Spring follow-up: running, 47 of 100 rows through"
    else:
        assert counters["รับสาย"] == "30" and counters["คงเหลือ"] == "53"
        assert "12 แถวรอช่วงเวลาที่โทรได้" in text and "30 นาที 0 วินาที" in text


def test_a_paused_card_offers_resume_not_pause_and_no_eta() -> None:
    card = campaign_card(campaign(status="paused"), RUNNING, now=T0, eta_s=1800)
    assert set(actions(card)) == {ACTION_CAMPAIGN_RESUME, ACTION_CAMPAIGN_CANCEL,
                                  ACTION_CAMPAIGN_RESULTS}
    text = text_of(card)
    assert "Paused: no new calls until it is resumed." in text
    assert "left" not in text and f"<!date^{int(T0 + 1800)}^" not in text


def test_zero_refusals_and_cancellations_are_left_out_and_one_waits_in_the_singular() -> None:
    counts = CampaignCounts(rows=10, waiting=9, waiting_hours=1, live=1, placed=1)
    card = campaign_card(campaign(status="running"), counts, now=T0)
    assert "Refused by policy" not in fields(card) and "Cancelled" not in fields(card)
    assert ":hourglass: 1 waits for calling hours" in text_of(card)
    assert "until" not in text_of(card)  # no opening time known


@pytest.mark.parametrize(("done", "total", "bar"), [
    (0, 100, "░░░░░░░░░░ 0%"),
    (40, 100, "▓▓▓▓░░░░░░ 40%"),
    (999, 1000, "▓▓▓▓▓▓▓▓▓░ 99%"),  # not yet all: never 100%
    (3, 3, "▓▓▓▓▓▓▓▓▓▓ 100%"),
    (0, 0, "░░░░░░░░░░ 0%"),
    (7, 5, "▓▓▓▓▓▓▓▓▓▓ 100%"),
])
def test_progress_bar(done: int, total: int, bar: str) -> None:
    assert progress_bar(done, total) == bar


# -- the card: the end -----------------------------------------------------------------------


@pytest.mark.parametrize(("status", "lang"), [("done", "en"), ("cancelled", "en"),
                                              ("done", "th"), ("cancelled", "th")])
def test_a_finished_card_keeps_only_results(status: str, lang: str) -> None:
    card = campaign_card(campaign(status=status, finished_at=T0 + 600), FINISHED, now=T0,
                         eta_s=99, lang=lang)
    assert_within_slack_limits(card)
    assert set(actions(card)) == {ACTION_CAMPAIGN_RESULTS}
    assert actions(card)[ACTION_CAMPAIGN_RESULTS]["value"] == "12"
    text = text_of(card)
    assert f"<!date^{int(T0 + 600)}^" in text and "▓" not in text
    counters = fields(card)
    if lang == "en":
        assert counters["Connected"] == "60" and counters["Not called (preview)"] == "4"
        assert counters["Total duration"] == "3h 20m" and counters["Cost"] == "$43.21"
        assert card.text == (f"Campaign Spring follow-up: "
                             f"{'finished' if status == 'done' else 'cancelled'}, "
                             "60 of 100 connected")
    else:
        assert counters["ค่าใช้จ่าย"] == "US$43.21" and _THAI.search(card.text)


def test_a_campaign_name_is_escaped_everywhere() -> None:
    named = campaign(name="<!channel> *Q4* +1 415 555 0199")
    card = campaign_card(named, CampaignCounts(rows=1), now=T0)
    for text in (text_of(card), card.text, campaign_summary(named, FINISHED),
                 campaign_status(named, FINISHED, now=T0, eta_s=None),
                 campaign_list([(named, FINISHED)]),
                 campaign_state_changed(named, "pause", "U0BOB")):
        assert "<!channel>" not in text and "&lt;!channel&gt;" in text
        assert "555 0199" not in text


# -- thread notes ------------------------------------------------------------------------------


def call(**kw: Any) -> CallRecord:
    base = CallRecord(id=1, call_id="call_abc", direction="outbound", status="not_connected",
                      stage=STAGE_ANALYZED, created_at=T0, updated_at=T0,
                      to_number="+14155550123")
    return replace(base, **kw)


def test_a_failure_note_says_line_number_why_tries_and_call() -> None:
    note = campaign_failure(row(14, attempts=3, outcome="no_answer", call_id="call_abc"),
                            call(disconnection_reason="dial_no_answer"),
                            show_full_numbers=False, lang="en")
    assert note == ":warning: Line 14 · +1 415 ••• 0123 · No answer · after 3 tries · `call_abc`"
    full = campaign_failure(row(14, attempts=1, outcome="failed"),
                            call(disconnection_reason="dial_busy"), show_full_numbers=True,
                            lang="en")
    assert "+1 415-555-0123" in full and "Line busy" in full and "after" not in full


def test_a_retell_error_kind_is_worded_with_retells_text_escaped() -> None:
    failed = call(call_id=None, status="failed", stage=STAGE_PLACED, error_kind="refused",
                  error="from_number <+14155550100> not owned")
    note = campaign_failure(row(3, outcome="failed"), failed, show_full_numbers=False,
                            lang="en")
    assert "Retell refused the call: from_number &lt;+1 415 ••• 0100&gt; not owned" in note
    thai = campaign_failure(row(3, outcome="failed"), failed, show_full_numbers=False,
                            lang="th")
    assert "Retell ปฏิเสธการโทร" in thai and "บรรทัด 3" in thai


def test_a_refusal_or_a_code_with_no_call_is_worded() -> None:
    refused = campaign_failure(row(5, outcome="refused", detail="limit_per_number"), None,
                               show_full_numbers=False, lang="en")
    assert "the number's daily cap was reached" in refused
    timeout = campaign_failure(row(6, outcome="failed", detail="timeout"), None,
                               show_full_numbers=False, lang="en")
    assert "Retell did not answer in time" in timeout
    odd = campaign_failure(row(7, number=None, outcome="failed", detail="<weird_code>"), None,
                           show_full_numbers=False, lang="en")
    assert "no number" in odd and "&lt;weird code&gt;" in odd and "<weird" not in odd


def test_the_runners_own_codes_read_as_words() -> None:
    unknown = campaign_failure(row(8, outcome="failed", detail="agent_unknown"), None,
                               show_full_numbers=False, lang="en")
    assert "the agent is not known to Retell" in unknown
    refused = campaign_failure(row(8, outcome="failed", detail="retell_refused"), None,
                               show_full_numbers=False, lang="th")
    assert "Retell ปฏิเสธการโทร" in refused


# -- the summary ----------------------------------------------------------------------------------


def test_the_summary_gives_the_mix_with_shares_and_the_totals() -> None:
    text = campaign_summary(campaign(status="done"), FINISHED, lang="en")
    assert text.splitlines() == [
        ":checkered_flag: Campaign *Spring follow-up* finished.",
        "100 rows to call; 4 not called (invalid, duplicate or refused at the preview).",
        "• Connected: 60 (60%) · of which successful: 45 (75%)",
        "• No answer: 20 (20%)",
        "• Failed: 15 (15%)",
        "• Refused by policy: 5 (5%)",
        "Calls placed: *130* · Total duration: *3h 20m* · Cost: *$43.21*",
    ]


def test_a_cancelled_summary_in_thai_counts_the_cancelled_rows() -> None:
    counts = replace(FINISHED, refused=0, cancelled=5)
    text = campaign_summary(campaign(status="cancelled"), counts, lang="th")
    assert text.startswith(":x: แคมเปญ *Spring follow-up* ถูกยกเลิกแล้ว")
    assert "• ยกเลิก: 5 ราย (5%)" in text and "ถูกปฏิเสธ" not in text.splitlines()[3]
    assert "US$43.21" in text and "3 ชม. 20 นาที" in text


def test_a_summary_of_nothing_divides_by_nothing() -> None:
    text = campaign_summary(campaign(status="cancelled"), CampaignCounts(), lang="en")
    assert "• Connected: 0 (–) · of which successful: 0 (–)" in text


# -- the results file ------------------------------------------------------------------------------


def results_rows() -> list[tuple[CampaignRow, CallRecord | None]]:
    answered = call(status="ended", duration_ms=65_432, cost_cents=12.5, sentiment="Positive",
                    successful=True, summary="ลูกค้าสนใจแพ็กเกจ; call back on +1 415 555 0177",
                    extracted={"score": 5, "interested": True, "items": ["a", "ข"],
                               "detail": {"b": 2, "a": 1}, "note": "=SUM(A1)", "ratio": 0.25})
    other = call(call_id="call_def", disconnection_reason="dial_no_answer",
                 extracted={"score": None, "callback": "@later", "interested": False})
    return [
        (row(3, number="+14155550124", attempts=2, outcome="no_answer", call_id="call_def",
             variables={"customer_name": "Bo", "plan": "-basic"}), other),
        (row(2, attempts=1, outcome="success", call_id="call_abc",
             variables={"customer_name": "=HYPERLINK(\"http://x\")", "plan": "สมาชิก"}),
         answered),
        (row(4, number=None, status="skipped", outcome="invalid", detail="no_number",
             variables={"customer_name": "+cmd"}), None),
        (row(5, status="waiting", attempts=0), None),
    ]


def parse(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM: Excel then reads UTF-8 (Thai)
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_results_csv_row_by_row() -> None:
    data = results_csv(campaign(status="done"), results_rows(), show_full_numbers=False)
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig")))
    assert next(reader) == [
        "line", "customer_name", "plan", "number", "status", "attempts", "duration_s",
        "cost_usd", "sentiment", "successful", "summary", "call_id", "field:callback",
        "field:detail", "field:interested", "field:items", "field:note", "field:ratio",
        "field:score"]
    first, second, skipped, waiting = parse(data)
    assert first == {
        "line": "2", "customer_name": "'=HYPERLINK(\"http://x\")", "plan": "สมาชิก",
        "number": "'+1 415 ••• 0123", "status": "success", "attempts": "1",
        "duration_s": "65.432", "cost_usd": "0.125", "sentiment": "Positive",
        "successful": "true", "summary": "ลูกค้าสนใจแพ็กเกจ; call back on +1 415 ••• 0177",
        "call_id": "call_abc", "field:callback": "", "field:detail": '{"a": 1, "b": 2}',
        "field:interested": "true", "field:items": '["a", "ข"]', "field:note": "'=SUM(A1)",
        "field:ratio": "0.25", "field:score": "5"}
    assert second["line"] == "3" and second["plan"] == "'-basic"
    assert second["status"] == "no_answer" and second["attempts"] == "2"
    assert second["successful"] == "" and second["duration_s"] == ""
    assert second["field:callback"] == "'@later" and second["field:interested"] == "false"
    assert second["field:score"] == "" and second["call_id"] == "call_def"
    assert skipped["status"] == "invalid" and skipped["number"] == ""
    assert skipped["customer_name"] == "'+cmd" and skipped["field:score"] == ""
    assert waiting["status"] == "waiting" and waiting["attempts"] == "0"


def test_results_csv_with_full_numbers() -> None:
    data = results_csv(campaign(status="done"), results_rows(), show_full_numbers=True)
    first = parse(data)[0]
    assert first["number"] == "'+14155550123"
    assert first["summary"].endswith("+1 415 555 0177")


def test_every_cell_that_could_run_as_a_formula_is_guarded() -> None:
    for start in ("=", "+", "-", "@", "\t", "\r"):
        text = f"{start}1+1"
        rows = [(row(2, variables={"customer_name": text}),
                 call(summary=text, extracted={"f": text}))]
        got = parse(results_csv(campaign(columns=("customer_name",)), rows,
                                show_full_numbers=True))[0]
        for column in ("customer_name", "summary", "field:f"):
            assert got[column] == "'" + text, (start, column)


def test_an_input_column_named_like_a_results_column_keeps_its_values() -> None:
    rows = [(row(2, variables={"status": "vip", "line": "7"}), None)]
    got = parse(results_csv(campaign(columns=("status", "line")), rows,
                            show_full_numbers=False))[0]
    assert got["input:status"] == "vip" and got["input:line"] == "7"
    assert got["status"] == "done" and got["line"] == "2"


def test_a_results_file_with_no_calls_has_no_field_columns() -> None:
    data = results_csv(campaign(columns=()), [], show_full_numbers=False)
    assert data == "\ufeffline,number,status,attempts,duration_s,cost_usd,sentiment,successful,summary,call_id\r\n".encode()  # noqa: E501


# -- /callcampaign answers ----------------------------------------------------------------------


def test_the_list_shows_each_campaign_state_and_progress() -> None:
    listed = campaign_list([(campaign(status="running"), RUNNING),
                            (campaign(id=13, name="Survey", status="done"), FINISHED)])
    lines = listed.splitlines()
    assert lines[0] == "*Campaigns*"
    assert lines[1].startswith("• *Spring follow-up* · Running · `▓▓▓▓░░░░░░ 47%` (47/100)")
    assert "by <@U0ALICE>" in lines[1] and f"<!date^{int(T0)}^" in lines[1]
    assert lines[2].startswith("• *Survey* · Finished · `▓▓▓▓▓▓▓▓▓▓ 100%` (100/100)")
    assert campaign_list([], lang="th") == "ยังไม่มีแคมเปญ เริ่มได้ด้วย `/callcampaign`"


def test_a_long_list_is_cut() -> None:
    many = [(campaign(id=n, name=f"c{n}"), CampaignCounts(rows=1)) for n in range(40)]
    listed = campaign_list(many)
    assert listed.count("\n• ") == 25 and listed.endswith("_…and 15 older ones._")


@pytest.mark.parametrize("lang", ["en", "th"])
def test_status_answers_with_the_cards_figures(lang: str) -> None:
    text = campaign_status(campaign(status="running"), RUNNING, now=T0, eta_s=600, lang=lang)
    assert "`▓▓▓▓░░░░░░ 47%`" in text and f"<!date^{int(T0 + 600)}^" in text
    assert "<@U0ALICE>" in text
    if lang == "en":
        assert "Connected: *30*" in text and "Remaining: *53*" in text
    else:
        assert "รับสาย: *30*" in text
    draft = campaign_status(campaign(), CampaignCounts(rows=9, skipped=1), now=T0, eta_s=None,
                            lang=lang)
    assert "*10*" in draft and "*9*" in draft
    done = campaign_status(campaign(status="done"), FINISHED, now=T0, eta_s=60, lang=lang)
    assert "▓" not in done and f"<!date^{int(T0 + 60)}^" not in done


def test_short_answers() -> None:
    assert campaign_not_yours("U0ALICE", "en") == (
        "Only <@U0ALICE> or an admin can do that with this campaign.")
    assert "its owner" in campaign_not_yours("", "en")
    assert campaign_not_found("<@U0X> `q`", "en") == (
        "No campaign is named `&lt;@U0X&gt; 'q'`. `/callcampaign list` shows them all.")
    assert campaign_state_changed(campaign(), "pause", "U0BOB", "en") == (
        ":double_vertical_bar: Campaign *Spring follow-up* paused by <@U0BOB>.")
    assert campaign_state_changed(campaign(), "cancel", "U0BOB", "th") == (
        ":x: <@U0BOB> ยกเลิกแคมเปญ *Spring follow-up* แล้ว")
    assert campaign_state_changed(campaign(), "re<start>", "bad", "en") == (
        "Campaign *Spring follow-up*: re&lt;start&gt; by someone.")
    assert "/callcampaign status <name>" in campaign_usage("en")
    assert _THAI.search(campaign_usage("th")) and _THAI.search(campaign_not_now("th"))


# -- the modal -------------------------------------------------------------------------------------


AGENTS = [Agent("agent_b", "Survey"), Agent("agent_a", "appointment reminder")]
NUMBERS = [CallerNumber(CALLER, "Sales line"), CallerNumber("+14155550199")]


@pytest.mark.parametrize("lang", ["en", "th"])
def test_the_modal_has_every_field(lang: str) -> None:
    view = campaign_modal(AGENTS, NUMBERS, default_concurrency=3, max_concurrency=20,
                          metadata=json.dumps({"channel_id": "C0SALES"}), lang=lang)
    assert view["type"] == "modal" and view["callback_id"] == CAMPAIGN_MODAL
    assert 1 <= len(view["title"]["text"]) <= 24 and 1 <= len(view["submit"]["text"]) <= 24
    assert json.loads(view["private_metadata"]) == {"channel_id": "C0SALES"}
    blocks = {b["block_id"]: b for b in view["blocks"]}
    assert list(blocks) == [BLOCK_CAMPAIGN_NAME, BLOCK_CAMPAIGN_AGENT, BLOCK_CAMPAIGN_CALLER,
                            BLOCK_CAMPAIGN_FILE, BLOCK_CAMPAIGN_CONCURRENCY,
                            BLOCK_CAMPAIGN_ATTEMPTS, BLOCK_CAMPAIGN_SPACING,
                            BLOCK_CAMPAIGN_START]
    assert blocks[BLOCK_CAMPAIGN_NAME]["element"]["max_length"] == 80
    agent = blocks[BLOCK_CAMPAIGN_AGENT]["element"]
    assert [o["value"] for o in agent["options"]] == [NO_AGENT, "agent_a", "agent_b"]
    assert agent["initial_option"]["value"] == NO_AGENT
    caller = blocks[BLOCK_CAMPAIGN_CALLER]
    assert caller["optional"] is True
    assert [o["text"]["text"] for o in caller["element"]["options"]] == [
        f"Sales line ({CALLER})", "+14155550199"]
    assert blocks[BLOCK_CAMPAIGN_FILE]["element"] == {
        "type": "file_input", "action_id": "value", "filetypes": ["csv"], "max_files": 1}
    numbers = {k: blocks[k]["element"] for k in (BLOCK_CAMPAIGN_CONCURRENCY,
                                                 BLOCK_CAMPAIGN_ATTEMPTS,
                                                 BLOCK_CAMPAIGN_SPACING)}
    assert all(e["type"] == "number_input" and e["is_decimal_allowed"] is False
               for e in numbers.values())
    assert [(str(e["min_value"]), str(e["max_value"]), str(e["initial_value"]))
            for e in numbers.values()] == [("1", "20", "3"), ("1", "5", "1"),
                                           ("1", "10080", "60")]
    start = blocks[BLOCK_CAMPAIGN_START]
    assert start["optional"] is True and start["element"]["type"] == "datetimepicker"
    if lang == "th":
        assert _THAI.search(view["title"]["text"])
        assert "20" in blocks[BLOCK_CAMPAIGN_CONCURRENCY]["hint"]["text"]


def test_the_modal_without_caller_ids_and_with_too_many_agents() -> None:
    agents = [Agent(f"agent_{n:03}", f"Agent {n:03} " + "x" * 80) for n in range(150)]
    view = campaign_modal(agents, [], default_concurrency=50, max_concurrency=8, metadata="{}")
    blocks = {b["block_id"]: b for b in view["blocks"]}
    assert BLOCK_CAMPAIGN_CALLER not in blocks  # no options: Slack refuses an empty select
    options = blocks[BLOCK_CAMPAIGN_AGENT]["element"]["options"]
    assert len(options) == 100 and all(len(o["text"]["text"]) <= 75 for o in options)
    assert "150" in blocks[BLOCK_CAMPAIGN_AGENT]["hint"]["text"]
    # A default over the limit is brought within it.
    assert str(blocks[BLOCK_CAMPAIGN_CONCURRENCY]["element"]["initial_value"]) == "8"
