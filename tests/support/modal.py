"""Helpers first written for tests/e2e/test_modal.py, shared with the other suites."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, Server, view_submission


def modal_views(slack: SlackStandIn) -> list[dict[str, Any]]:
    return [v for v in slack.views.values() if v.get("callback_id") == "call_modal"]


async def open_modal(
    server: Server, slack: SlackStandIn, *, channel: str = CHANNEL
) -> tuple[str, dict[str, Any]]:
    """`/call` with no text; returns the trigger id sent and the view Slack now shows."""
    trigger = f"{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"
    before = len(slack.calls_to("views.open"))
    status, body = await server.slash("/call", "", channel=channel, trigger_id=trigger,
                                      response_url=slack.response_url("cmd"))
    assert status == 200 and body is None  # an empty ack: the modal is the answer
    await slack.wait_for(lambda: len(slack.calls_to("views.open")) > before)
    [view] = modal_views(slack)[-1:]
    return trigger, copy.deepcopy(view)


def state_values(
    view: dict[str, Any],
    *,
    number: str | None,
    agent_label: str | None = None,
    caller: str | None = None,
    variables: str | None = None,
    note: str | None = None,
    channel: str | None = None,
    when: int | None = None,
) -> dict[str, Any]:
    """`view.state.values` as Slack sends it, for the inputs this view really has.

    Selects keep their initial option unless another is chosen, the way a person who leaves
    them alone submits them; empty text inputs arrive as `"value": null`.
    """
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        if block.get("type") != "input":
            continue
        element = block["element"]
        kind = element["type"]
        if kind == "plain_text_input":
            typed = {"number": number, "variables": variables, "note": note}.get(
                block["block_id"])
            state: dict[str, Any] = {"type": kind, "value": typed}
        elif kind == "static_select":
            wanted = {"agent": agent_label, "caller": caller}.get(block["block_id"])
            chosen = element.get("initial_option")
            if wanted is not None:
                chosen = next(o for o in element["options"]
                              if o["text"]["text"] == wanted or o["value"] == wanted)
            state = {"type": kind, "selected_option": chosen}
        elif kind == "datetimepicker":  # left empty: Slack sends null
            state = {"type": kind, "selected_date_time": when}
        elif kind == "conversations_select":
            state = {"type": kind,
                     "selected_conversation": channel or element.get("initial_conversation")}
        else:  # pragma: no cover - a new input type needs a line here
            raise AssertionError(f"unexpected input {kind}")
        values[block["block_id"]] = {element["action_id"]: state}
    return values


def submission(
    view: dict[str, Any], values: dict[str, Any], response_url: str | None = None
) -> dict[str, Any]:
    channel = values["channel"]["value"]["selected_conversation"]
    return view_submission(view, values, response_url=response_url, channel=channel)
