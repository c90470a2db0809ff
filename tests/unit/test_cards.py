"""The call card's buttons and timeline, and the transcript reply: pure functions, no I/O."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.render.blocks import (
    ACTION_CALL_AGAIN,
    ACTION_HANG_UP,
    ACTION_REFRESH,
    ACTION_TRANSCRIPT,
    SECTION_LIMIT,
    TRANSCRIPT_MESSAGE_LIMIT,
    Message,
    TextFile,
    call_card,
    card_buttons,
    speaker_turns,
    timeline_line,
    transcript_post,
)
from storage.models import (
    STAGE_ANALYZED,
    STAGE_ENDED,
    STAGE_PLACED,
    STAGE_STARTED,
    CallRecord,
)

T0 = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC


def record(**kw: Any) -> CallRecord:
    base = CallRecord(
        id=7, call_id="call_abc", direction="outbound", status="registered",
        stage=STAGE_PLACED, created_at=T0, updated_at=T0, user_id="U0ALICE",
        to_number="+14155550123", agent_name="Sales Follow-up",
    )
    return replace(base, **kw)


def buttons(call: CallRecord) -> dict[str, dict[str, Any]]:
    """Buttons by label, as Slack receives them."""
    rendered = [b.to_dict() for b in card_buttons(call)]
    out = {b["text"]["text"]: b for b in rendered}
    assert len(out) == len(rendered), "two buttons with one label"
    return out


def slack_time(epoch: float) -> str:
    fallback = datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")
    return f"<!date^{int(epoch)}^{{time_secs}}|{fallback}>"


# -- buttons per state -----------------------------------------------------------------------


def test_placing_has_no_buttons() -> None:
    assert card_buttons(record(id=0, call_id=None, status="placing")) == []
    card = call_card(record(id=0, call_id=None, status="placing"))
    assert not any(b["type"] == "actions" for b in card.blocks)


def test_failed_attempt_offers_try_again_by_row_id() -> None:
    found = buttons(record(id=42, call_id=None, status="failed", error="refused"))
    assert list(found) == ["Try again"]
    assert found["Try again"]["action_id"] == ACTION_CALL_AGAIN
    assert found["Try again"]["value"] == "#42"
    assert found["Try again"]["style"] == "primary"
    # Without a stored row there is nothing to try again from.
    assert card_buttons(record(id=0, call_id=None, status="failed")) == []


@pytest.mark.parametrize(("status", "stage"),
                         [("registered", STAGE_PLACED), ("ongoing", STAGE_STARTED)])
def test_live_call_can_be_hung_up_and_refreshed(status: str, stage: int) -> None:
    found = buttons(record(status=status, stage=stage))
    assert list(found) == ["Hang up", "Refresh"]
    hang = found["Hang up"]
    assert hang["action_id"] == ACTION_HANG_UP and hang["value"] == "call_abc"
    assert hang["style"] == "danger"
    confirm = hang["confirm"]
    assert confirm["title"]["text"] == "Hang up?"
    assert confirm["confirm"]["text"] == "Hang up" and confirm["style"] == "danger"
    assert found["Refresh"]["action_id"] == ACTION_REFRESH
    assert found["Refresh"]["value"] == "call_abc"
    assert "Call again" not in found and "Transcript" not in found


def test_live_call_with_a_partial_transcript_still_has_no_call_again() -> None:
    found = buttons(record(status="ongoing", stage=STAGE_STARTED, transcript="Agent: Hi"))
    assert "Hang up" in found and "Call again" not in found


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "ended", "stage": STAGE_ENDED, "disconnection_reason": "user_hangup"},
        {"status": "not_connected", "stage": STAGE_ENDED,
         "disconnection_reason": "dial_no_answer"},
        {"status": "error", "stage": STAGE_ENDED, "disconnection_reason": "error_unknown"},
    ],
)
def test_ended_not_analyzed_can_be_refreshed_and_called_again(fields: dict[str, Any]) -> None:
    found = buttons(record(**fields))
    assert list(found) == ["Refresh", "Call again"]
    assert found["Call again"]["action_id"] == ACTION_CALL_AGAIN
    assert found["Call again"]["value"] == "call_abc"
    assert "Hang up" not in found


def test_a_stale_live_status_past_the_end_stage_cannot_be_hung_up() -> None:
    # A call_ended webhook moved the stage on; the status word alone must not offer Hang up.
    found = buttons(record(status="ongoing", stage=STAGE_ENDED))
    assert "Hang up" not in found and "Call again" in found


def test_analyzed_with_transcript() -> None:
    found = buttons(record(status="ended", stage=STAGE_ANALYZED,
                           transcript="Agent: Hi\nUser: Bye"))
    assert list(found) == ["Transcript", "Call again"]
    assert found["Transcript"]["action_id"] == ACTION_TRANSCRIPT
    assert found["Transcript"]["value"] == "call_abc"
    assert "Hang up" not in found and "Refresh" not in found


def test_analyzed_without_transcript() -> None:
    assert list(buttons(record(status="not_connected", stage=STAGE_ANALYZED))) == ["Call again"]


def test_inbound_call_is_called_back() -> None:
    found = buttons(record(direction="inbound", from_number="+442079460123", user_id=None,
                           status="ended", stage=STAGE_ANALYZED, transcript="User: Hi"))
    assert list(found) == ["Transcript", "Call back"]
    assert found["Call back"]["action_id"] == ACTION_CALL_AGAIN
    assert found["Call back"]["value"] == "call_abc"


def test_card_carries_its_buttons_in_the_actions_block() -> None:
    card = call_card(record(status="ended", stage=STAGE_ENDED))
    [actions] = [b for b in card.blocks if b["type"] == "actions"]
    assert actions["block_id"] == "call_actions"
    assert [e["text"]["text"] for e in actions["elements"]] == ["Refresh", "Call again"]


# -- the timeline ----------------------------------------------------------------------------


def test_no_timeline_before_retell_accepted_the_call() -> None:
    assert timeline_line(record(id=0, call_id=None, status="placing")) is None
    assert timeline_line(record(call_id=None, status="failed")) is None


def test_timeline_grows_stage_by_stage_with_slack_date_tokens() -> None:
    placed = record()
    assert timeline_line(placed) == f"Placed {slack_time(T0)}"
    assert slack_time(T0) == "<!date^1795000000^{time_secs}|11:06:40 UTC>"
    started = replace(placed, status="ongoing", stage=STAGE_STARTED, started_at=T0 + 5)
    assert timeline_line(started) == (
        f"Placed {slack_time(T0)} → In progress {slack_time(T0 + 5)}")
    ended = replace(started, status="ended", stage=STAGE_ENDED, ended_at=T0 + 65)
    analyzed = replace(ended, stage=STAGE_ANALYZED, analyzed_at=T0 + 90)
    assert timeline_line(analyzed) == " → ".join([
        f"Placed {slack_time(T0)}", f"In progress {slack_time(T0 + 5)}",
        f"Ended {slack_time(T0 + 65)}", f"Analyzed {slack_time(T0 + 90)}",
    ])
    assert "Analyzed" not in (timeline_line(ended) or "")


def test_not_connected_was_never_in_progress() -> None:
    call = record(status="not_connected", stage=STAGE_ANALYZED, started_at=T0 + 2,
                  ended_at=T0 + 30, analyzed_at=T0 + 40)
    line = timeline_line(call) or ""
    assert "In progress" not in line
    assert line == (f"Placed {slack_time(T0)} → Ended {slack_time(T0 + 30)}"
                    f" → Analyzed {slack_time(T0 + 40)}")


def test_timeline_is_on_the_card() -> None:
    card = call_card(record(status="ongoing", stage=STAGE_STARTED, started_at=T0 + 5))
    [context] = [b for b in card.blocks if b["type"] == "context"]
    text = context["elements"][0]["text"]
    assert text.startswith(f"Placed {slack_time(T0)} → In progress")
    assert "`call_abc`" in text


# -- the note --------------------------------------------------------------------------------


def test_note_is_shown_escaped_on_the_card() -> None:
    card = call_card(record(note="<!channel> ping <@U999> & <https://evil|click>"))
    head = card.blocks[0]["text"]["text"]
    assert ":memo: &lt;!channel&gt; ping &lt;@U999&gt; &amp; &lt;https://evil|click&gt;" in head
    body = json.dumps(card.blocks)
    assert "<!channel>" not in body and "<@U999>" not in body and "<https://evil" not in body
    assert ":memo:" not in json.dumps(call_card(record()).blocks)


def test_note_on_a_failed_attempt_is_kept() -> None:
    card = call_card(record(id=3, call_id=None, status="failed", error="nope",
                            note="after 5"))
    assert ":memo: after 5" in card.blocks[0]["text"]["text"]


# -- transcripts ---------------------------------------------------------------------------


def analyzed(transcript: str | None) -> CallRecord:
    return record(status="ended", stage=STAGE_ANALYZED, transcript=transcript)


MENTIONS = ("<!channel>", "<!here>", "<!everyone>", "<@U0BOSS>", "<https://evil")


def test_short_transcript_is_a_message_with_speakers() -> None:
    post = transcript_post(analyzed("Agent: Hi Ann, is now good?\nUser: Yes.\nAgent: Great."))
    assert isinstance(post, Message)
    assert post.blocks[0]["type"] == "context"
    assert "Transcript of the call to +1 415 ••• 0123" in post.blocks[0]["elements"][0]["text"]
    sections = [b["text"]["text"] for b in post.blocks if b["type"] == "section"]
    assert sections == ["*Agent:* Hi Ann, is now good?\n*User:* Yes.\n*Agent:* Great."]
    assert "555-0123" not in json.dumps(post.blocks) + post.text
    assert len(post.text) <= 3000


def test_transcript_shows_full_number_only_when_allowed() -> None:
    post = transcript_post(analyzed("Agent: Hi"), show_full_numbers=True)
    assert isinstance(post, Message)
    assert "+1 415-555-0123" in json.dumps(post.blocks)
    inbound = transcript_post(replace(analyzed("User: Hello"), direction="inbound",
                                      from_number="+442079460123"))
    assert isinstance(inbound, Message)
    assert "Transcript of the call from +44 20 ••• 0123" in json.dumps(
        inbound.blocks, ensure_ascii=False)


def test_transcript_blocks_cannot_mention_or_link() -> None:
    said = "Tell <!channel> and <!here> and <!everyone>, ask <@U0BOSS> & see <https://evil|x>"
    post = transcript_post(analyzed(f"Agent: {said}\nUser: ok"))
    assert isinstance(post, Message)
    body = json.dumps(post.blocks)
    for mention in MENTIONS:
        assert mention not in body
    assert "&lt;!channel&gt;" in body and "&lt;!here&gt;" in body and "&amp;" in body


def test_transcript_fallback_text_cannot_mention_either() -> None:
    post = transcript_post(analyzed("User: Hey <!channel>, and <!here>!"))
    assert isinstance(post, Message)
    for mention in MENTIONS[:2]:
        assert mention not in post.text


def test_long_transcript_becomes_a_file_with_every_turn() -> None:
    turns = [f"{'Agent' if i % 2 == 0 else 'User'}: turn {i:03d} " + "blah " * 20
             for i in range(120)]
    transcript = "\n".join(turns)
    assert len(transcript) > TRANSCRIPT_MESSAGE_LIMIT
    post = transcript_post(analyzed(transcript))
    assert isinstance(post, TextFile)
    assert post.filename == "transcript-call_abc.txt"
    assert post.title == "Transcript of the call to +1 415 ••• 0123"
    for i in range(120):
        assert f"turn {i:03d}" in post.content
    assert post.content.startswith(f"{post.title} (call_abc)\n\n")
    assert "Agent: turn 000" in post.content and "User: turn 119" in post.content
    assert "120 turns" in post.comment


def test_a_transcript_just_under_the_limit_is_still_a_message() -> None:
    line = "Agent: " + "word " * 100
    transcript = "\n".join([line.strip()] * (TRANSCRIPT_MESSAGE_LIMIT // (len(line) + 1)))
    assert len(transcript) <= TRANSCRIPT_MESSAGE_LIMIT
    post = transcript_post(analyzed(transcript))
    assert isinstance(post, Message)
    sections = [b for b in post.blocks if b["type"] == "section"]
    assert len(sections) >= 2  # split between turns, each within a section's limit
    assert all(len(s["text"]["text"]) <= SECTION_LIMIT for s in sections)
    assert sum(s["text"]["text"].count("*Agent:*") for s in sections) == transcript.count(
        "Agent:")


def test_one_huge_turn_goes_as_a_file() -> None:
    huge = "User: " + "x" * (SECTION_LIMIT + 10)
    post = transcript_post(analyzed(f"Agent: Hello\n{huge}\nAgent: Bye"))
    assert len(huge) < TRANSCRIPT_MESSAGE_LIMIT  # short overall, but no section can hold it
    assert isinstance(post, TextFile)
    assert "Agent: Hello" in post.content and "Agent: Bye" in post.content
    assert "x" * (SECTION_LIMIT + 10) in post.content


def test_escaping_that_pushes_a_turn_over_a_section_also_makes_a_file() -> None:
    # 2,000 raw characters become 8,000 once escaped: the section limit is on the escaped text.
    post = transcript_post(analyzed("User: " + "<" * 2000))
    assert isinstance(post, TextFile)
    assert "<" * 2000 in post.content  # the file is plain text: kept as said


def test_file_name_for_a_call_without_retell_id() -> None:
    post = transcript_post(replace(analyzed("User: " + "y" * 7000), call_id=None, id=9))
    assert isinstance(post, TextFile) and post.filename == "transcript-9.txt"


# -- speaker_turns -----------------------------------------------------------------------------


def test_speaker_turns_labels_and_continuations() -> None:
    text = ("Agent: Hello there.\n"
            "It's Tuesday.\n"
            "\n"
            "user:Yes?\n"
            "   more from the user   \n"
            "Transfer_target: Hi, this is Bob.\n"
            "transfer target : still Bob\n")
    assert speaker_turns(text) == [
        ("Agent", "Hello there.\nIt's Tuesday."),
        ("User", "Yes?\nmore from the user"),
        ("Transfer target", "Hi, this is Bob."),
        ("Transfer target", "still Bob"),
    ]


def test_speaker_turns_unlabelled_start_and_empty() -> None:
    assert speaker_turns("(call connected)\nstill no label\nAgent: Hi") == [
        ("", "(call connected)\nstill no label"), ("Agent", "Hi")]
    assert speaker_turns("") == [] and speaker_turns("\n \n") == []
    # A colon later in a line is not a speaker label.
    assert speaker_turns("Agent: the time is 10: 30") == [("Agent", "the time is 10: 30")]
    assert speaker_turns("Note: not a speaker") == [("", "Note: not a speaker")]


def test_unlabelled_start_is_kept_in_the_message_without_a_label() -> None:
    post = transcript_post(analyzed("(connected)\nAgent: Hi"))
    assert isinstance(post, Message)
    [section] = [b for b in post.blocks if b["type"] == "section"]
    assert section["text"]["text"] == "(connected)\n*Agent:* Hi"


# -- numbers and hostile ids in transcripts ---------------------------------------------------


def test_numbers_said_in_a_transcript_are_masked_unless_full_numbers_are_shown() -> None:
    said = "User: call me on (415) 555-0199 or +44 20 7946 0000"
    post = transcript_post(analyzed(said))
    assert isinstance(post, Message)
    body = json.dumps(post.blocks, ensure_ascii=False) + post.text
    assert "555-0199" not in body and "7946 0000" not in body
    assert "••• 0199" in body and "+44 20 ••• 0000" in body
    shown = transcript_post(analyzed(said), show_full_numbers=True)
    assert isinstance(shown, Message) and "(415) 555-0199" in json.dumps(shown.blocks)
    long = transcript_post(analyzed((said + "\n") * 300))
    assert isinstance(long, TextFile) and "555-0199" not in long.content


def test_transcript_file_name_is_safe_whatever_the_call_id() -> None:
    post = transcript_post(replace(analyzed("User: " + "y" * 7000),
                                   call_id="../../etc/passwd <!channel>"))
    assert isinstance(post, TextFile)
    assert "/" not in post.filename and "<" not in post.filename and " " not in post.filename


def test_speaker_turns_keep_many_unlabelled_lines_in_one_turn() -> None:
    turns = speaker_turns("Agent: hi\n" + "more\n" * 10_000)
    assert len(turns) == 1 and turns[0][1].count("\n") == 10_000


def test_a_transcript_file_opens_with_the_summary_and_every_extracted_field() -> None:
    turns = "\n".join(f"Agent: turn {i:03d} " + "blah " * 20 for i in range(120))
    fields = {"appointment_confirmed": True, "rating": 4, "callback": "+1 415-555-0199",
              "notes": "x" * 10_000, **{f"q{i}": "yes" for i in range(30)}}
    post = transcript_post(replace(analyzed(turns), summary="Ann confirmed Friday 9:00.",
                                   extracted=fields))
    assert isinstance(post, TextFile)
    head, _, rest = post.content.partition("\nTranscript:\n")
    assert rest.startswith("Agent: turn 000") and "turn 119" in rest
    assert "Call summary:\nAnn confirmed Friday 9:00." in head
    assert "What the agent noted:\n- appointment confirmed: Yes\n- rating: 4\n" in head
    assert "- q29: yes" in head  # past the 25 a message has room for
    assert "555-0199" not in post.content and "+1 415 ••• 0199" in head
    notes = next(line for line in head.splitlines() if line.startswith("- notes: "))
    assert len(notes) < 4100  # a value is cut, even in a file
    shown = transcript_post(replace(analyzed(turns), extracted={"callback": "+14155550199"}),
                            show_full_numbers=True)
    assert isinstance(shown, TextFile) and "+14155550199" in shown.content
