"""The agent's own extracted fields (Retell's custom_analysis_data) are kept with the call
and shown in its summary: booleans as yes/no, numbers, text cut and masked."""

from __future__ import annotations

import json

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, Server
from tests.support.db import db_rows
from tests.support.webhooks import card, placed_call, send


@pytest.mark.slow
async def test_extracted_fields_are_stored_and_shown_in_the_summary(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    extracted = {"appointment_confirmed": True, "rating": 4.5,
                 "callback_number": "call me on 415 555 0199",
                 "comment": "Loved it <!channel> " + "x" * 1000}
    status, _ = await send(server, retell, call_id, "call_analyzed",
                           call_analysis={"call_summary": "Confirmed.",
                                          "custom_analysis_data": extracted})
    assert status == 200
    await slack.wait_for(lambda: len(slack.thread(CHANNEL, card(slack)["ts"])) >= 1)
    [summary] = slack.thread(CHANNEL, card(slack)["ts"])
    text = json.dumps(summary["blocks"])
    assert "What the agent noted" in text
    assert "appointment confirmed: Yes" in text and "rating: 4.5" in text
    assert "555 0199" not in text and "&lt;!channel&gt;" in text  # masked, inert
    assert "x" * 400 not in text  # long values are cut
    [(stored,)] = db_rows(server, "SELECT extracted FROM calls WHERE call_id = ?", call_id)
    assert json.loads(stored) == extracted  # kept whole: exports and stats read it


@pytest.mark.slow
async def test_a_summary_without_extracted_fields_has_no_such_section(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    await send(server, retell, call_id, "call_analyzed",
               call_analysis={"call_summary": "Nothing noted.", "custom_analysis_data": {}})
    await slack.wait_for(lambda: len(slack.thread(CHANNEL, card(slack)["ts"])) >= 1)
    [summary] = slack.thread(CHANNEL, card(slack)["ts"])
    assert "What the agent noted" not in json.dumps(summary["blocks"])
