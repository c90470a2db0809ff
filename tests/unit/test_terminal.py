"""bot/render/terminal.py: Slack messages as the terminal text `callbot demo` prints."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone
from typing import Any

from bot.render.terminal import (
    Style,
    block_lines,
    emoji,
    message_lines,
    mrkdwn,
    wrap,
)

NAMES = Style(users={"U0DANA": "dana"}, channels={"C0CALLS": "calls"})


def test_marks_are_dropped_at_word_edges_only() -> None:
    assert mrkdwn("*Ended* · _late_ · ~old~") == "Ended · late · old"
    assert mrkdwn("*Agent:* Hi") == "Agent: Hi"
    # Not marks: inside words, around spaces, or alone.
    assert mrkdwn("call_abc_def 2*3*4 a * b") == "call_abc_def 2*3*4 a * b"


def test_code_is_shown_as_typed() -> None:
    assert mrkdwn("id `call_*x*_:x:` and ```a <b>\n*c*```") == "id call_*x*_:x: and a <b>\n*c*"


def test_links_show_their_label_and_mentions_their_names() -> None:
    text = "<https://x.example/a?b=1|Recording> <https://y.example> <@U0DANA> <@U0BOB> <#C0CALLS>"
    assert mrkdwn(text, NAMES) == "Recording https://y.example @dana @U0BOB #calls"
    assert mrkdwn("<#C0OTHER|general> <!here> <!subteam^S1|@oncall>") == (
        "#general @here @oncall")


def test_escaped_text_reads_as_typed_and_is_not_a_link() -> None:
    assert mrkdwn("a &lt;@U0DANA&gt; &amp; b", NAMES) == "a <@U0DANA> & b"
    assert mrkdwn("@\u2060channel") == "@channel"  # the word joiner that kept it inert


def test_emoji_become_symbols_or_words() -> None:
    assert mrkdwn(":white_check_mark: Yes :x: No") == "✅ Yes ❌ No"
    plain = Style(symbols=False)
    assert mrkdwn(":white_check_mark: Yes :x: No", plain) == "[yes] Yes [no] No"
    assert emoji("rocket_ship") == "[rocket ship]"
    # Times and labels with colons are not shortcodes.
    assert mrkdwn("at 10:30:45, Agent: hi") == "at 10:30:45, Agent: hi"


def test_date_tokens_show_the_time_in_the_given_zone() -> None:
    token = "<!date^1700000000^{date_num} {time_secs}|fallback>"
    assert mrkdwn(token) == "2023-11-14 22:13:20"
    bangkok = Style(zone=timezone(timedelta(hours=7)))
    assert mrkdwn("<!date^1700000000^{time}|x>", bangkok) == "05:13"
    assert mrkdwn("<!date^soon^{time}|whenever>") == "whenever"


def test_a_card_reads_line_by_line() -> None:
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text":
            ":telephone_receiver: *Call to +1 415 ••• 0125*\nAgent: *Appointment Reminder* · "
            "Requested by <@U0DANA>"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": ":checkered_flag: *Ended* · 9s"}},
        {"type": "context", "elements": [
            {"type": "mrkdwn", "text": "Placed <!date^1700000000^{time_secs}|x> · `call_1`"},
            {"type": "image", "image_url": "https://x.example/i.png", "alt_text": "logo"}]},
        {"type": "actions", "block_id": "call_actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Transcript"},
             "action_id": "call_transcript", "value": "call_1"},
            {"type": "button", "text": {"type": "plain_text", "text": "Call again"},
             "action_id": "call_again", "value": "call_1"}]},
    ]
    assert message_lines({"text": "fallback", "blocks": blocks}, NAMES) == [
        "📞 Call to +1 415 ••• 0125",
        "Agent: Appointment Reminder · Requested by @dana",
        "🏁 Ended · 9s",
        "Placed 22:13:20 · call_1  [image: logo]",
        "[ Transcript ]  [ Call again ]",
    ]


def test_fields_headers_and_dividers() -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Call summary"}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": "*Sentiment*\n:smiley: Positive"},
            {"type": "mrkdwn", "text": "*Duration*\navg 9s\nmedian 8s"},
            {"type": "mrkdwn", "text": "no title"}]},
        {"type": "divider"},
        {"type": "section", "text": {"type": "plain_text", "text": "Agent: :x: *as said*",
                                     "emoji": False}},
        {"type": "video", "title": "not shown in a terminal"},
    ]
    assert [line for b in blocks for line in block_lines(b)] == [
        "── Call summary ──",
        "Sentiment: 😃 Positive",
        "Duration: avg 9s; median 8s",
        "no title",
        "─" * 24,
        "Agent: :x: *as said*",
    ]


def test_text_only_messages_and_files() -> None:
    assert message_lines({"text": ":no_entry: *Refused*: on the list"}) == [
        "⛔ Refused: on the list"]
    assert message_lines({"text": "", "blocks": [], "files": [{"title": "transcript.txt"}]}) == [
        "[file: transcript.txt]"]
    # Blocks win over the fallback text, as in Slack.
    assert message_lines({"text": "fallback", "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": "shown"}}]}) == ["shown"]


def test_rich_text_and_inputs() -> None:
    rich = {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [
        {"type": "text", "text": "see "}, {"type": "link", "url": "https://x.example",
                                           "text": "this"}]}]}
    assert block_lines(rich) == ["see this"]
    field = {"type": "input", "label": {"type": "plain_text", "text": "Number"},
             "element": {"type": "plain_text_input",
                         "placeholder": {"type": "plain_text", "text": "+1 415…"}}}
    assert block_lines(field) == ["Number: [ +1 415… ▾ ]"]


def test_wrapping_keeps_the_indent() -> None:
    assert wrap(["  one two three four"], 10) == ["  one two", "  three", "  four"]
    assert wrap(["", "x"], 10) == ["", "x"]
    assert wrap(["unchanged " * 20], None) == ["unchanged " * 20]
    lines = message_lines({"text": "alpha beta gamma delta"}, Style(width=11))
    assert lines == ["alpha beta", "gamma delta"]


def test_default_style_is_utc_with_symbols() -> None:
    style = Style()
    assert style.zone is UTC and style.symbols and style.width is None
