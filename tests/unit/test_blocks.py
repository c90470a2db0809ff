"""Rendering: pure functions from records to Block Kit, always inside Slack's limits."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from bot.render.blocks import analysis_reply, call_card, chunk_text, escape
from storage.models import STAGE_ANALYZED, STAGE_ENDED, CallRecord


def record(**kw: Any) -> CallRecord:
    base = CallRecord(
        id=1, call_id="call_abc", direction="outbound", status="registered", stage=0,
        created_at=1_795_000_000.0, updated_at=1_795_000_000.0, user_id="U0ALICE",
        to_number="+14155550123", agent_name="Sales Follow-up",
    )
    return replace(base, **kw)


def texts(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def assert_within_limits(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= 50
    for block in blocks:
        text = block.get("text", {}).get("text", "")
        assert len(text) <= 3000
        for f in block.get("fields", []):
            assert len(f["text"]) <= 2000
        assert len(block.get("fields", [])) <= 10


def test_card_masks_the_number_and_names_requester_and_agent() -> None:
    card = call_card(record())
    body = texts(card.blocks)
    assert "+1 415 ••• 0123" in body
    assert "5550123" not in body and "555-0123" not in body
    assert "<@U0ALICE>" in body and "Sales Follow-up" in body
    assert "Dialing" in body
    assert card.text == "Call to +1 415 ••• 0123: dialing"


def test_card_can_show_full_number_when_allowed() -> None:
    assert "+1 415-555-0123" in texts(call_card(record(), show_full_numbers=True).blocks)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"status": "ongoing"}, "In progress"),
        ({"status": "ended", "stage": STAGE_ENDED, "duration_ms": 95_000,
          "disconnection_reason": "user_hangup"}, "Ended* · 1m 35s · Customer hung up"),
        ({"status": "not_connected", "disconnection_reason": "dial_no_answer"}, "No answer"),
        ({"status": "ended", "disconnection_reason": "voicemail_reached"}, "Voicemail"),
        ({"status": "ended", "disconnection_reason": "brand_new_reason"}, "Brand new reason"),
        ({"status": "failed", "error": "Retell refused the call: <b>"}, "&lt;b&gt;"),
    ],
)
def test_card_status_lines(fields: dict[str, Any], expected: str) -> None:
    assert expected in texts(call_card(record(**fields)).blocks)


def test_card_outcome_at_a_glance_once_analyzed() -> None:
    call = record(status="ended", stage=STAGE_ANALYZED, duration_ms=95_000, successful=True,
                  sentiment="Positive", cost_cents=13.2)
    body = texts(call_card(call).blocks)
    assert ":white_check_mark: Successful · :smiley: Positive · 1m 35s · $0.13" in body
    assert "Successful" not in texts(call_card(replace(call, stage=STAGE_ENDED)).blocks)


def test_inbound_card_shows_caller() -> None:
    card = call_card(record(direction="inbound", from_number="+442079460123", user_id=None))
    assert "Inbound call from +44 20 ••• 0123" in texts(card.blocks)


def test_analysis_reply_has_every_figure() -> None:
    call = record(status="ended", stage=STAGE_ANALYZED, duration_ms=61_000, successful=False,
                  sentiment="Negative", cost_cents=7.0, summary="Customer declined.",
                  disconnection_reason="agent_hangup", transcript="Agent: Hi\nUser: No",
                  recording_url="https://r.example/rec.wav",
                  public_log_url="https://r.example/log")
    reply = analysis_reply(call)
    body = texts(reply.blocks)
    for part in ("Customer declined.", ":slightly_frowning_face: Negative", ":x: No", "1m 01s",
                 "$0.07", "Agent ended the call", "<https://r.example/rec.wav|Recording>",
                 "Agent: Hi\\nUser: No"):
        assert part in body, part
    assert_within_limits(reply.blocks)


def test_huge_summary_and_transcript_stay_within_limits() -> None:
    words = ("lorem ipsum dolor sit amet " * 2000)[:50_000]
    call = record(stage=STAGE_ANALYZED, summary=words, transcript=("Agent: " + words),
                  public_log_url="https://r.example/log")
    reply = analysis_reply(call)
    assert_within_limits(reply.blocks)
    assert len(reply.text) <= 3000
    body = texts(reply.blocks)
    assert "more characters of the summary not shown" in body
    assert "more characters of the transcript not shown" in body
    assert len(body) < 40_000


def test_a_transcript_with_no_line_breaks_is_still_cut() -> None:
    call = record(stage=STAGE_ANALYZED, summary="x" * 50_000, transcript="y" * 50_000)
    assert_within_limits(analysis_reply(call).blocks)


def test_call_text_cannot_ping_channel_or_inject_links() -> None:
    call = record(stage=STAGE_ANALYZED, summary="<!channel> see <https://evil|here> & more",
                  recording_url="javascript:alert(1)")
    body = texts(analysis_reply(call).blocks)
    assert "<!channel>" not in body and "<https://evil" not in body
    assert "&lt;!channel&gt;" in body and "&amp; more" in body
    assert "javascript:" not in body


def test_chunk_text_prefers_line_breaks_and_reports_cut() -> None:
    text = "\n".join(f"line {i}" for i in range(1000))
    chunks, cut = chunk_text(text, 100, 3)
    assert len(chunks) == 3 and all(len(c) <= 100 for c in chunks)
    assert all(c.startswith("line") for c in chunks)
    # Three chunks, each ended at a line break that is dropped: the rest is what was cut.
    assert cut == len(text) - sum(len(c) for c in chunks) - 3
    assert escape("a<b>&") == "a&lt;b&gt;&amp;"


# -- privacy and bounded rendering -------------------------------------------------------------


def test_cut_notes_link_the_call_log_only_when_both_switches_allow() -> None:
    words = "lorem ipsum " * 3000
    call = record(stage=STAGE_ANALYZED, summary=words, transcript="Agent: " + words,
                  recording_url="https://r.example/rec.wav",
                  public_log_url="https://r.example/log")
    assert "https://r.example/log|Full call log" in texts(analysis_reply(call).blocks)
    for switches in ({"post_recordings": False}, {"post_transcripts": False},
                     {"post_recordings": False, "post_transcripts": False}):
        body = texts(analysis_reply(call, **switches).blocks)
        assert "more characters of the summary not shown" in body
        assert "r.example/log" not in body and "call log" not in body.lower(), switches


def test_numbers_in_texts_from_retell_are_masked_unless_full_numbers_are_shown() -> None:
    call = record(stage=STAGE_ANALYZED, status="ended",
                  summary="Callee asked to be called on (415) 555-0199 instead.",
                  disconnection_reason="transfer_to_+14155550199_failed",
                  transcript="User: my other number is 415.555.0199",
                  note="or 415 555 0199", agent_name="Line +1-415-555-0199")
    masked = texts(analysis_reply(call).blocks) + texts(call_card(call).blocks)
    masked += analysis_reply(call).text
    assert "555-0199" not in masked and "555.0199" not in masked and "555 0199" not in masked
    assert "••• 0199" in masked
    full = texts(analysis_reply(call, show_full_numbers=True).blocks)
    assert "(415) 555-0199" in full
    failed = record(id=3, call_id=None, status="failed",
                    error="Retell refused the call: invalid number +14155550199")
    assert "+1 415 ••• 0199" in texts(call_card(failed).blocks)


def test_numbers_that_are_not_phone_numbers_are_left_alone() -> None:
    call = record(stage=STAGE_ANALYZED, summary="Order 2026-11-24, total $1,234.56, ref 42.")
    assert "Order 2026-11-24, total $1,234.56, ref 42." in texts(analysis_reply(call).blocks)


def test_odd_figures_from_retell_render_without_failing() -> None:
    call = record(status="ended", stage=STAGE_ANALYZED, duration_ms=float("nan"),
                  cost_cents=float("inf"), started_at=float("nan"), ended_at=1e300,
                  disconnection_reason="x" * 4000, successful=True)
    card = call_card(call)
    assert_within_limits(card.blocks)
    assert "x" * 200 not in texts(card.blocks)
    assert_within_limits(analysis_reply(call).blocks)


def test_chunk_text_counts_what_it_leaves_after_trimming_spaces() -> None:
    text = "a" * 150 + " " * 500 + "b" * 150
    chunks, left = chunk_text(text, 100, 2)
    assert chunks == ["a" * 100, "a" * 50] and left == 150
