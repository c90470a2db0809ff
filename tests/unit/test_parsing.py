"""Command text: the number, the agent, name=value variables, quotes, periods."""

from __future__ import annotations

import pytest

from bot.input.parsing import CommandError, parse_call_text
from tests.support.mistakes import says


def test_number_only() -> None:
    cmd = parse_call_text("+1 415 555 0123")
    assert cmd.phone.e164 == "+14155550123"
    assert cmd.agent is None
    assert cmd.variables == {}


def test_number_agent_and_variables_with_quotes() -> None:
    cmd = parse_call_text('(415) 555-0123 "Sales Follow-up" customer_name=Ann note="call after 5"')
    assert cmd.phone.e164 == "+14155550123"
    assert cmd.agent == "Sales Follow-up"
    assert cmd.variables == {"customer_name": "Ann", "note": "call after 5"}


def test_unquoted_multi_word_agent_and_agent_id() -> None:
    assert parse_call_text("+44 20 7946 0123 survey bot").agent == "survey bot"
    assert parse_call_text("+14155550123 agent_0123abcd x=1").agent == "agent_0123abcd"


def test_smart_quotes_from_slack_clients_work() -> None:
    cmd = parse_call_text("+14155550123 note=“call after 5” who=‘Ann B’")
    assert cmd.variables == {"note": "call after 5", "who": "Ann B"}


def test_slack_tel_link_is_unwrapped() -> None:
    cmd = parse_call_text("<tel:+14155550123|+1 415 555 0123> customer_name=Ann")
    assert cmd.phone.e164 == "+14155550123"
    assert cmd.variables == {"customer_name": "Ann"}


def test_empty_value_and_equals_inside_value() -> None:
    cmd = parse_call_text("+14155550123 a= b=x=y")
    assert cmd.variables == {"a": "", "b": "x=y"}


def test_default_region_applies_to_national_numbers() -> None:
    assert parse_call_text("020 7946 0123", "GB").phone.e164 == "+442079460123"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "which number"),
        ("   ", "which number"),
        ("Sales +14155550123", "is not a phone number"),
        ("+1 415 555", "not a valid phone number"),
        ('+14155550123 note="unclosed', "quote is not closed"),
        ("+14155550123 2x=1", "not a valid variable name"),
        ("+14155550123 a-b=1", "not a valid variable name"),
        ("+14155550123 a=1 a=2", "given twice"),
    ],
)
def test_bad_text_is_refused_with_a_reason(text: str, fragment: str) -> None:
    with says(kind=CommandError, pattern=fragment):
        parse_call_text(text)


def test_too_many_or_too_long_variables() -> None:
    many = " ".join(f"v{i}=x" for i in range(51))
    with says(kind=CommandError, pattern="At most 50"):
        parse_call_text(f"+14155550123 {many}")
    with says(kind=CommandError, pattern="longer than"):
        parse_call_text(f"+14155550123 v={'x' * 2001}")
