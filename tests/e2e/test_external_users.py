"""Slack Connect: people from another organisation in a shared channel place no calls unless
`CALLBOT_ALLOW_EXTERNAL_USERS` is set, on every surface that places calls.

Their requests carry their own team (`team_id` of a slash command, `user.team_id` of a button
or a modal, `user_team` of a message event); the app's own team is what auth.test answered.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import (
    BOT_USER,
    CHANNEL,
    Server,
    StartServer,
    button,
    command_form,
    slack_headers,
)
from tests.support.guard import (
    REFUSED,
    assert_no_full_number_audited,
    assert_refusal_row,
    audit,
    creates,
    outcomes,
)
from tests.support.messages import ephemerals, mention, message
from tests.support.modal import open_modal, state_values, submission
from tests.support.waiting import eventually
from tests.support.webhooks import placed_call, send

NUMBER = "+14155550123"
OTHER_TEAM = "T0PARTNER"
GUEST = "U0GUEST"
SAYS = REFUSED + "People from other organisations can't place calls"


async def slash_from_other_team(srv: Server, slack: SlackStandIn, key: str) -> None:
    form = command_form("/call", NUMBER, user=GUEST, response_url=slack.response_url(key))
    form["team_id"] = OTHER_TEAM
    body = urlencode(form).encode()
    assert await srv.post("/slack/events", body, slack_headers(body)) == (200, None)


def as_guest(payload: dict[str, Any]) -> dict[str, Any]:
    payload["user"] = {**payload["user"], "id": GUEST, "team_id": OTHER_TEAM}
    return payload


def refused_answer(slack: SlackStandIn, key: str) -> str:
    [answer] = slack.responses_for(key)
    return str(answer["text"])


@pytest.mark.slow
async def test_slash_command_from_another_organisation_is_refused_and_audited(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    srv = await start()
    await slash_from_other_team(srv, slack, "guest")
    await eventually(lambda: bool(slack.responses_for("guest")))
    text = refused_answer(slack, "guest")
    assert text.startswith(SAYS) and "CALLBOT_ALLOW_EXTERNAL_USERS" in text
    assert creates(retell) == [] and slack.calls_to("chat.postMessage") == []
    [row] = audit(srv)
    assert_refusal_row(row, "external_user", user=GUEST)
    assert_no_full_number_audited(srv)

    # The app's own people are not affected.
    status, _ = await srv.slash("/call", NUMBER, response_url=slack.response_url("home"))
    assert status == 200
    await eventually(lambda: len(outcomes(srv)) == 2)
    assert outcomes(srv) == [("refused", "external_user"), ("placed", None)]
    assert len(creates(retell)) == 1


async def test_modal_from_another_organisation_is_refused(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    srv = await start()
    _, view = await open_modal(srv, slack)
    values = state_values(view, number="(415) 555-0123")
    payload = as_guest(submission(view, values, slack.response_url("sub")))
    assert await srv.interactive(payload) == (200, None)
    await eventually(lambda: bool(slack.responses_for("sub")))
    assert refused_answer(slack, "sub").startswith(SAYS)
    assert creates(retell) == [] and slack.calls_to("chat.postMessage") == []
    [row] = audit(srv)
    assert_refusal_row(row, "external_user", user=GUEST, source="modal")


async def test_messages_and_mentions_from_another_organisation_are_refused(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    srv = await start()
    extra = {"user_team": OTHER_TEAM, "source_team": OTHER_TEAM}
    status, _ = await srv.event(message(f"call {NUMBER}", "1732401000.000100", user=GUEST,
                                        **extra))
    assert status == 200
    await eventually(lambda: len(ephemerals(slack, CHANNEL)) == 1)
    status, _ = await srv.event(mention(f"<@{BOT_USER}> call {NUMBER}", "1732401001.000100",
                                        user=GUEST, **extra))
    assert status == 200
    await eventually(lambda: len(ephemerals(slack, CHANNEL)) == 2)
    for shown in ephemerals(slack, CHANNEL):
        assert shown["to_user"] == GUEST and shown["text"].startswith(SAYS)
    assert creates(retell) == [] and slack.calls_to("chat.postMessage") == []
    from_message, from_mention = audit(srv)
    assert_refusal_row(from_message, "external_user", user=GUEST, source="message")
    assert_refusal_row(from_mention, "external_user", user=GUEST, source="mention")


@pytest.mark.slow
async def test_call_again_by_someone_from_another_organisation_is_refused(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    srv = await start()
    call_id = await placed_call(srv, slack, retell)
    await send(srv, retell, call_id, "call_ended", disconnection_reason="dial_no_answer")
    await eventually(lambda: "Ended" in str(slack.messages(CHANNEL)[0]["blocks"]))
    await eventually(srv.outbox_idle)
    card_ts = slack.messages(CHANNEL)[0]["ts"]
    payload = as_guest(button("call_again", call_id, message_ts=card_ts,
                              response_url=slack.response_url("again")))
    assert await srv.interactive(payload) == (200, None)
    await eventually(lambda: bool(slack.responses_for("again")))
    assert len(creates(retell)) == 1 and len(slack.messages(CHANNEL)) == 1
    assert outcomes(srv)[-1] == ("refused", "external_user")
    assert_refusal_row(audit(srv)[-1], "external_user", user=GUEST, source="call again")


async def test_external_users_may_call_when_the_operator_allows_it(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    srv = await start(CALLBOT_ALLOW_EXTERNAL_USERS="true")
    await slash_from_other_team(srv, slack, "guest")
    await eventually(lambda: len(outcomes(srv)) == 1)
    [sent] = creates(retell)
    assert sent["metadata"]["slack_user_id"] == GUEST
    assert outcomes(srv) == [("placed", None)]
    assert slack.responses_for("guest") == []
    [row] = audit(srv)
    assert (row["user_id"], row["source"]) == (GUEST, "/call")
