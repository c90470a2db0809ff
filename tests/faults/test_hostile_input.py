"""Every input is handled in bounded time: what people type, and what Retell sends.

Nothing here times against a clock target. Linearity is shown by a ratio of CPU times on
the same machine in the same run: the work on an input ten times longer must cost at most
`MAX_RATIO` times as much (a linear parser costs ~10x, a quadratic one ~100x). The inputs
are the shapes that made the old code quadratic (a long run of digits followed by a letter,
a text of `<`, many unlabelled transcript lines, ...), so these tests fail on that code.
Each figure is the best of a few runs, so a busy machine makes them slower, not flakier.
"""

from __future__ import annotations

import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from bot.input.mistakes import Mistake
from bot.input.parsing import (
    _NUMBER_PIECE,
    _SLACK_LINK,
    MAX_AUDIT_TEXT,
    MAX_CALL_TEXT,
    CommandError,
    ModalError,
    parse_audit_text,
    parse_call_text,
    parse_dnc_text,
    parse_modal_values,
    split_words,
)
from bot.input.phones import mask_numbers
from bot.input.stats_query import parse_stats_query
from bot.render.blocks import (
    SECTION_LIMIT,
    TRANSCRIPT_FILE_LIMIT,
    Message,
    TextFile,
    analysis_reply,
    chunk_text,
    speaker_turns,
    transcript_blocks,
    transcript_post,
)
from bot.render.mistakes import mistake
from bot.runtime.logs import scrub
from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from storage.models import STAGE_ANALYZED, CallRecord
from tests.conftest import CHANNEL, USER, Server
from tests.support.mistakes import says, words_of

MAX_RATIO = 30
# Below this a measurement is noise; the small run is taken as at least this long.
FLOOR = 3e-4


def cpu(fn: Callable[[Any], Any], arg: Any, repeat: int) -> float:
    """Best CPU time of `repeat` runs (exceptions are part of the work)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        try:
            fn(arg)
        except (CommandError, ModalError, ValueError):
            pass
        best = min(best, time.process_time() - started)
    return best


def assert_linear(fn: Callable[[Any], Any], make: Callable[[int], Any], n: int) -> None:
    """Ten times the input costs at most MAX_RATIO times as much: one run of the large input
    within that bound is enough (noise only ever slows a run down)."""
    small = cpu(fn, make(n), 5)
    bound = MAX_RATIO * max(small, FLOOR)
    large_input = make(10 * n)
    runs: list[float] = []
    while len(runs) < 3 and (not runs or min(runs) > bound):
        runs.append(cpu(fn, large_input, 1))
    assert min(runs) <= bound, (
        f"{getattr(fn, '__name__', fn)}: {min(runs) * 1000:.2f} ms at 10x the input vs "
        f"{small * 1000:.2f} ms: {min(runs) / max(small, 1e-9):.0f}x for 10x (linear is ~10x)")


# -- the regular expressions and splitters, past any cap ----------------------------------


@pytest.mark.parametrize("make", [
    pytest.param(lambda n: "1" * n + "x", id="digits-then-letter"),
    pytest.param(lambda n: "+" + "1" * n + "+", id="digits-then-plus"),
    pytest.param(lambda n: "(" * n + "x", id="brackets"),
    pytest.param(lambda n: "tel:" + "1-" * n + "x", id="dashed"),
])
def test_number_piece_is_linear(make: Callable[[int], str]) -> None:
    assert_linear(_NUMBER_PIECE.fullmatch, make, 1000)


@pytest.mark.parametrize("make", [
    pytest.param(lambda n: "<" * n, id="open-brackets"),
    pytest.param(lambda n: "<a|" * n, id="open-links"),
    pytest.param(lambda n: "<tel:" * n, id="open-tel"),
])
def test_slack_link_unwrapping_is_linear(make: Callable[[int], str]) -> None:
    assert_linear(lambda text: _SLACK_LINK.sub("", text), make, 500)


@pytest.mark.parametrize("make", [
    pytest.param(lambda n: "a" * n, id="one-long-word"),
    pytest.param(lambda n: '"a" ' * (n // 4), id="many-quoted"),
    pytest.param(lambda n: '"' + "a" * n, id="unclosed"),
    pytest.param(lambda n: '"' + "\\a" * n, id="unclosed-escapes"),
    pytest.param(lambda n: "a'b'" * (n // 4), id="glued-quotes"),
])
def test_word_splitting_is_linear(make: Callable[[int], str]) -> None:
    assert_linear(split_words, make, 4000)


@pytest.mark.parametrize("text", [
    "", "a", "a b", "'a b' c", '"a \\" b"', "a\\ b", "'", '"', "\\", 'a"b c"d', "''", '""',
    "a\tb\nc\rd", "x='1 2'", '"\\a"', "\\\\", "“a”",
])
def test_word_splitting_reads_like_shlex(text: str) -> None:
    try:
        expected: list[str] | type[ValueError] = shlex.split(text)
    except ValueError:
        expected = ValueError
    try:
        got: list[str] | type[ValueError] = split_words(text)
    except ValueError:
        got = ValueError
    assert got == expected


@pytest.mark.parametrize("make", [
    pytest.param(lambda n: "1" * n, id="digits"),
    pytest.param(lambda n: "1 " * (n // 2), id="spaced-digits"),
    pytest.param(lambda n: "a1" * (n // 2), id="ids"),
    pytest.param(lambda n: "+1 415 555 0123 " * (n // 16), id="numbers"),
    pytest.param(lambda n: "2024-01-15 " * (n // 11), id="dates"),
    pytest.param(lambda n: "(" * n, id="brackets"),
])
def test_number_masking_is_linear(make: Callable[[int], str]) -> None:
    assert_linear(mask_numbers, make, 5000)


def test_log_scrubbing_is_linear() -> None:
    assert_linear(scrub, lambda n: "\r\n\x1b[31m+14155550123 xoxb-1-" * (n // 40), 4000)


def test_speaker_turns_are_linear() -> None:
    # Unlabelled lines continue a turn: they were re-joined once per line (quadratic).
    assert_linear(speaker_turns, lambda n: "Agent: hi\n" + "and more words\n" * (n // 15),
                  20_000)


# -- the commands: whole parsers, inside their caps ------------------------------------------


CALL_SHAPES = [
    pytest.param(lambda n: "1" * (n - 1) + "x", id="digits-then-letter"),
    pytest.param(lambda n: "+1 " * (n // 3), id="plus-ones"),
    pytest.param(lambda n: '"a" ' * (n // 4), id="quoted-words"),
    pytest.param(lambda n: "<" * n, id="open-brackets"),
    pytest.param(lambda n: "+14155550123 " + "a=b " * (n // 4 - 4), id="variables"),
    pytest.param(lambda n: "+14155550123 " + "x" * (n - 13), id="long-agent"),
    pytest.param(lambda n: "+14155550123 " + '"' * (n - 14), id="quotes"),
    pytest.param(lambda n: "٣" * n, id="arabic-indic-digits"),
]


@pytest.mark.parametrize("make", CALL_SHAPES)
def test_call_text_is_linear_up_to_its_cap(make: Callable[[int], str]) -> None:
    assert_linear(parse_call_text, make, MAX_CALL_TEXT // 10)


@pytest.mark.parametrize("make", [
    pytest.param(lambda n: "1" * (n - 1) + "x", id="digits-then-letter"),
    pytest.param(lambda n: "1 " * (n // 2) + "x", id="pieces-then-letter"),
    pytest.param(lambda n: "<@U" + "A" * n, id="open-mention"),
])
def test_audit_text_is_linear_up_to_its_cap(make: Callable[[int], str]) -> None:
    assert_linear(parse_audit_text, make, MAX_AUDIT_TEXT // 10)


@pytest.mark.parametrize(("parse", "limit"), [
    (parse_call_text, "4,000"), (parse_dnc_text, "400"), (parse_audit_text, "200"),
    (lambda text: parse_stats_query(text, zone="UTC", now=0.0), "500"),
])
def test_text_over_a_cap_is_refused_before_it_is_read(
    parse: Callable[[str], Any], limit: str
) -> None:
    huge = "1" * 2_000_000 + "x"
    with says(kind=Mistake, pattern=f"at most {limit} are read"):
        parse(huge)
    # Refusing it costs about as much as refusing a short one: nothing of it was parsed.
    assert cpu(parse, huge, 3) <= MAX_RATIO * max(cpu(parse, "1" * 5000 + "x", 5), FLOOR)


@pytest.mark.parametrize("text", ["²", "①", "¹²³", "٣٠", "۳", "߃", "𝟙𝟚", "9" * 150])
def test_audit_counts_are_ascii_digits_and_others_are_a_clear_answer(text: str) -> None:
    with pytest.raises(CommandError) as refused:
        parse_audit_text(text)
    message = mistake(refused.value)
    assert "not a count" in message or "Ask for 1 to 100" in message or "valid phone" in message


def test_audit_count_still_reads_a_plain_number() -> None:
    assert parse_audit_text("42").limit == 42
    assert parse_audit_text(" 7 ").limit == 7


def test_echoed_input_is_short_masked_and_cannot_mention() -> None:
    with pytest.raises(CommandError) as refused:
        parse_call_text("<!channel>" + "x" * 100)
    message = mistake(refused.value)
    assert "<!channel>" not in message and len(message) < 200
    with pytest.raises(CommandError) as refused:
        parse_call_text("+1 415 555 0123 9")
    assert "555 0123" not in mistake(refused.value)


def _text_state(value: str) -> dict[str, Any]:
    return {"value": {"type": "plain_text_input", "value": value}}


def test_modal_fields_over_their_caps_are_field_errors() -> None:
    values = {
        "number": _text_state("1" * 50_000 + "x"),
        "variables": _text_state("a=b\n" * 5000),
        "channel": {"value": {"type": "conversations_select",
                              "selected_conversation": CHANNEL}},
    }
    with pytest.raises(ModalError) as refused:
        parse_modal_values(values)
    told = words_of(refused.value.errors)
    assert "over 100 characters" in told["number"]
    assert "at most 10,000" in told["variables"]


# -- rendering what Retell sent, however large ------------------------------------------------


def analyzed(**kw: Any) -> CallRecord:
    base = CallRecord(
        id=7, call_id="call_big", direction="outbound", status="ended", stage=STAGE_ANALYZED,
        created_at=1_795_000_000.0, updated_at=1_795_000_000.0, user_id=USER,
        to_number="+14155550123", agent_name="Sales",
    )
    return replace(base, **kw)


@pytest.mark.slow
def test_transcript_rendering_reads_a_bounded_part() -> None:
    line = "User: and then I said the number 415 555 0199 again\n"
    # Ten times more transcript costs about the same: past the cap nothing is read.
    assert_linear(lambda t: transcript_post(analyzed(transcript=t)),
                  lambda n: line * (n // len(line)), 2 * TRANSCRIPT_FILE_LIMIT)
    post = transcript_post(analyzed(transcript=line * 200_000))
    assert isinstance(post, TextFile)
    assert len(post.content) < TRANSCRIPT_FILE_LIMIT + 1000
    assert "more characters of the transcript are in Retell" in post.content
    assert "555 0199" not in post.content and "••• 0199" in post.content


def test_summary_and_transcript_blocks_read_a_bounded_part() -> None:
    said = "The callee asked for a callback. " * 20
    assert_linear(lambda s: analysis_reply(analyzed(summary=s, transcript=s)),
                  lambda n: said * (n // len(said)), 200_000)
    assert_linear(lambda t: transcript_blocks(t), lambda n: said * (n // len(said)), 200_000)
    reply = analysis_reply(analyzed(summary=said * 100_000))
    assert isinstance(reply, Message) and len(reply.text) <= 3000
    assert all(len(b.get("text", {}).get("text", "")) <= SECTION_LIMIT for b in reply.blocks)


def test_chunk_text_costs_one_pass() -> None:
    assert_linear(lambda t: chunk_text(t, SECTION_LIMIT, 49), lambda n: "word " * (n // 5),
                  2_000_000)
    chunks, left = chunk_text("a " * 100_000, 100, 3)
    assert len(chunks) == 3 and all(len(c) <= 100 for c in chunks)
    assert left == len(("a " * 100_000).strip()) - sum(len(c) + 1 for c in chunks)


# -- through the real server ------------------------------------------------------------------


def _ack_text(body: Any) -> str:
    return str(body.get("text") if isinstance(body, dict) else body)


@pytest.mark.slow
async def test_hostile_slash_texts_get_a_clear_answer_and_place_nothing(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    cases = [
        ("/call", "1" * (MAX_CALL_TEXT - 1) + "x", "is not a phone number"),
        ("/call", "+1 " * 1300, "not a valid phone number"),
        ("/call", "9" * 50_000, "at most 4,000 are read"),
        ("/callaudit", "²", "not a count"),
        ("/callaudit", "①", "not a count"),
        ("/callaudit", "1" * 199 + "x", "not a count"),
        ("/callaudit", "9" * 5000, "at most 200 are read"),
        ("/calldnc", "check " + "1" * 390 + "x", "Give the number"),
        ("/callstats", "7" * 10_000 + "d", "at most 500 are read"),
        ("/callsearch", "price " * 2000, "at most 500 are read"),
        ("/callsearch", "\"unclosed price", "quote"),
    ]
    for command, text, answer in cases:
        status, body = await server.slash(command, text, response_url=slack.response_url("h"))
        assert status == 200, (command, status, body)
        assert answer in _ack_text(body), (command, text[:20], body)
        if len(text) > 60:
            assert text[:60] not in _ack_text(body)  # never echoed whole
    assert [r for r in retell.requests if r.path == "/v2/create-phone-call"] == []


async def test_hostile_call_message_gets_a_clear_answer_in_its_thread(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    ts = f"{int(time.time())}.{uuid.uuid4().int % 10**6:06d}"
    status, _ = await server.event({"type": "message", "channel": CHANNEL, "user": USER,
                                    "channel_type": "channel", "ts": ts,
                                    "text": "call " + "1" * 3990 + "x"})
    assert status == 200
    await slack.wait_for(lambda: bool(slack.calls_to("chat.postEphemeral")))
    [answer] = slack.calls_to("chat.postEphemeral")
    assert "is not a phone number" in answer.args["text"]
    assert answer.args["thread_ts"] == ts
    assert [r for r in retell.requests if r.path == "/v2/create-phone-call"] == []
