"""What campaign tests share: contact lists, the modal's values, and callees who end the
calls a campaign places as Retell would report them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.input.campaign_form import (
    BLOCK_CAMPAIGN_ATTEMPTS,
    BLOCK_CAMPAIGN_CONCURRENCY,
    BLOCK_CAMPAIGN_FILE,
    BLOCK_CAMPAIGN_NAME,
    BLOCK_CAMPAIGN_SPACING,
    BLOCK_CAMPAIGN_START,
)
from standins.retell import RetellStandIn


def number(i: int) -> str:
    return f"+1415555{i:04d}"


def contacts_csv(valid: int, *, invalid: int = 0, duplicates: int = 0,
                 extra: list[str] | None = None) -> tuple[bytes, list[str]]:
    """A contact list: `valid` distinct numbers, then broken and repeated rows."""
    lines = ["phone,customer_name,appointment_time"]
    numbers = [number(i) for i in range(valid)]
    lines += [f"{n},Customer {i},Friday {9 + i % 8}:00" for i, n in enumerate(numbers)]
    lines += [f"not-a-number-{i},Broken {i},x" for i in range(invalid)]
    lines += [f"{numbers[i]},Again {i},y" for i in range(duplicates)]
    lines += extra or []
    return ("\n".join(lines) + "\n").encode(), numbers


def modal_values(file: dict[str, Any], *, name: str = "Spring reminders",
                 concurrency: int = 5, attempts: int = 1,
                 spacing: int = 1, start_at: int | None = None) -> dict[str, Any]:
    """What Slack sends for the modal; `start_at`: the picked start (epoch seconds)."""
    values = {
        BLOCK_CAMPAIGN_NAME: {"value": {"type": "plain_text_input", "value": name}},
        BLOCK_CAMPAIGN_FILE: {"value": {"type": "file_input", "files": [file]}},
        BLOCK_CAMPAIGN_CONCURRENCY: {"value": {"type": "number_input",
                                               "value": str(concurrency)}},
        BLOCK_CAMPAIGN_ATTEMPTS: {"value": {"type": "number_input", "value": str(attempts)}},
        BLOCK_CAMPAIGN_SPACING: {"value": {"type": "number_input", "value": str(spacing)}},
    }
    if start_at is not None:
        values[BLOCK_CAMPAIGN_START] = {"value": {"type": "datetimepicker",
                                                  "selected_date_time": start_at}}
    return values


class Callees:
    """Ends the calls the campaign places, as Retell would report them; `answer(number,
    attempt)` says how each try ends: None is answered, else a disconnection reason. A
    webhook that does not get through (the server is down) is sent again next time."""

    def __init__(self, url: str, retell: RetellStandIn,
                 answer: Callable[[str, int], str | None]) -> None:
        self.url = url
        self.retell = retell
        self.answer = answer
        self.ended: set[str] = set()
        self.tries: dict[str, int] = {}
        self.unsent: list[str] = []  # webhook bodies, in order

    async def end_all(self) -> int:
        ended = 0
        for call_id, call in list(self.retell.calls.items()):
            if call_id in self.ended:
                continue
            self.ended.add(call_id)
            to = call["to_number"]
            self.tries[to] = self.tries.get(to, 0) + 1
            reason = self.answer(to, self.tries[to])
            events: list[tuple[str, dict[str, Any]]]
            if reason is None:
                events = [("call_ended", {"disconnection_reason": "user_hangup",
                                          "duration_ms": 42_000}),
                          ("call_analyzed", {"call_analysis": {
                              "custom_analysis_data": {"will_attend": to[-1] != "3",
                                                       "rating": int(to[-1])}}})]
            else:
                events = [("call_ended", {"disconnection_reason": reason,
                                          "call_status": "not_connected",
                                          "duration_ms": 0})]
            self.unsent += [self.retell.event_body(call_id, event, **overrides)
                            for event, overrides in events]
            ended += 1
        while self.unsent:
            status, _ = await self.retell.send_webhook(self.url + "/retell/webhook",
                                                       self.unsent[0])
            assert status in (200, 204)
            self.unsent.pop(0)
        return ended
