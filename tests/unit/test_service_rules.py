"""Pure rules of the call service: what a call read from Retell stands for, poll backoff."""

from __future__ import annotations

from typing import Any

import pytest

from bot.calls.service import POLL_MAX_SECONDS, CallService, implied_events
from bot.retell.client import RetellCall
from handlers.events import call_text


def call(**fields: Any) -> RetellCall:
    return RetellCall.model_validate({"call_id": "call_1", **fields})


@pytest.mark.parametrize(
    ("fields", "events"),
    [
        ({"call_status": "registered"}, []),
        ({"call_status": "ongoing", "start_timestamp": 1}, ["call_started"]),
        ({"call_status": "ended", "start_timestamp": 1}, ["call_started", "call_ended"]),
        ({"call_status": "not_connected"}, ["call_ended"]),
        ({"call_status": "error"}, ["call_ended"]),
        ({"call_status": "ended", "start_timestamp": 1, "call_analysis": {}},
         ["call_started", "call_ended"]),  # an empty analysis is not the analysis yet
        ({"call_status": "not_connected", "call_analysis": {"call_successful": False}},
         ["call_ended", "call_analyzed"]),
        ({"call_status": "ended", "call_analysis": {"call_summary": "Booked."}},
         ["call_ended", "call_analyzed"]),
        ({"call_status": "some_new_status"}, []),
    ],
)
def test_implied_events(fields: dict[str, Any], events: list[str]) -> None:
    assert implied_events(call(**fields)) == events


def test_poll_backoff_starts_small_doubles_and_is_capped() -> None:
    service = CallService(store=None, retell=None, from_number="+14155550100",  # type: ignore[arg-type]
                          poll_after=120)
    delays = [service.poll_delay(n) for n in range(8)]
    assert delays[:3] == [15.0, 30.0, 60.0]
    assert delays[-1] == POLL_MAX_SECONDS and delays == sorted(delays)
    quick = CallService(store=None, retell=None, from_number="+14155550100",  # type: ignore[arg-type]
                        poll_after=0.5)
    assert quick.poll_delay(0) == 0.5 and quick.poll_delay(100) == POLL_MAX_SECONDS


@pytest.mark.parametrize(
    ("text", "mentioned", "expected"),
    [
        ("call +1 415 555 0123", False, "+1 415 555 0123"),
        ("CALL (415) 555-0123 Sales", False, "(415) 555-0123 Sales"),
        ("Call <tel:+14155550123|+1 415 555 0123>", False, "<tel:+14155550123|+1 415 555 0123>"),
        ("call me later", False, None),
        ("please call +14155550123", False, None),
        ("<@U0BOT> call +14155550123 x=1", True, "+14155550123 x=1"),
        ("<@U0BOT>: call +14155550123", True, "+14155550123"),
        ("<@U0BOT> hello", True, None),
        ("<@U0BOT> call +14155550123", False, None),  # a plain message must start with call
    ],
)
def test_call_text(text: str, mentioned: bool, expected: str | None) -> None:
    assert call_text(text, mentioned=mentioned) == expected
