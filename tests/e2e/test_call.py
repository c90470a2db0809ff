"""`/call` end to end: signed slash commands through the real server to the stand-ins."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, TEAM, USER, Server, slack_headers
from tests.support.calls import creates
from tests.support.db import db_rows as rows


async def place(server: Server, slack: SlackStandIn, text: str, key: str = "r") -> tuple[int, Any]:
    return await server.slash("/call", text, response_url=slack.response_url(key))


async def test_call_places_the_call_and_posts_a_card(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    text = '(415) 555-0123 customer_name=Ann note="call after 5"'
    status, body = await place(server, slack, text)
    assert status == 200 and body is None  # acked at once, nothing ephemeral to say
    await slack.wait_for(lambda: len(slack.calls_to("chat.update")) >= 1)

    [create] = creates(retell)
    sent = create.json
    assert sent["to_number"] == "+14155550123"
    assert sent["from_number"] == retell.phone_numbers[0]["phone_number"]
    assert sent["retell_llm_dynamic_variables"] == {"customer_name": "Ann", "note": "call after 5"}
    assert "override_agent_id" not in sent  # the number's own agent answers
    card_ts = slack.calls_to("chat.postMessage")[0].args
    meta = sent["metadata"]
    assert meta["slack_team_id"] == TEAM and meta["slack_channel_id"] == CHANNEL
    assert meta["slack_user_id"] == USER
    [card] = slack.messages(CHANNEL)
    assert meta["slack_message_ts"] == card["ts"]
    assert card_ts["channel"] == CHANNEL
    assert len(sent["idempotency_key"]) >= 16

    body_text = str(card["blocks"])
    assert "+1 415 ••• 0123" in body_text and "555-0123" not in body_text
    assert f"<@{USER}>" in body_text and "Dialing" in body_text
    assert retell.agents[0]["agent_name"] in body_text  # the agent Retell reported
    [(call_id, status_, ts)] = rows(server, "SELECT call_id, status, message_ts FROM calls")
    assert call_id in retell.calls and status_ == "registered" and ts == card["ts"]


@pytest.mark.slow
async def test_agent_by_name_case_insensitive_and_by_id(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    second = retell.agents[1]
    await place(server, slack, f"+14155550123 {second['agent_name'].upper()}")
    await place(server, slack, f"+14155550124 {retell.agents[2]['agent_id']}")
    await slack.wait_for(lambda: len(creates(retell)) == 2)
    agents = sorted(r.json["override_agent_id"] for r in creates(retell))
    assert agents == sorted([second["agent_id"], retell.agents[2]["agent_id"]])


async def test_unknown_agent_lists_agents_and_places_nothing(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    await place(server, slack, "+14155550123 Nobody Here", key="unknown")
    await slack.wait_for(lambda: bool(slack.responses_for("unknown")))
    [answer] = slack.responses_for("unknown")
    assert answer["response_type"] == "ephemeral"
    assert "No agent is called `Nobody Here`" in answer["text"]
    for agent in retell.agents:
        assert agent["agent_name"] in answer["text"]
    assert creates(retell) == [] and slack.calls_to("chat.postMessage") == []


async def test_ambiguous_agent_is_refused(
    slack: SlackStandIn, db_path: Any
) -> None:
    agents = [
        {"agent_id": "agent_" + "a" * 24, "agent_name": "Sales East"},
        {"agent_id": "agent_" + "b" * 24, "agent_name": "Sales West"},
    ]
    from tests.conftest import make_settings

    async with RetellStandIn(agents=agents) as retell:
        srv = Server(make_settings(slack, retell, db_path))
        await srv.start()
        try:
            await srv.slash("/call", "+14155550123 sales", response_url=slack.response_url("amb"))
            await slack.wait_for(lambda: bool(slack.responses_for("amb")))
        finally:
            await srv.stop()
        text = slack.responses_for("amb")[0]["text"]
        assert "matches more than one agent" in text and "Sales East" in text
        assert creates(retell) == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("12345", "not a valid phone number"),
        ("+1 415 555", "not a valid phone number"),
        ("call +14155550123", "is not a phone number"),
        ('+14155550123 note="open', "quote is not closed"),
    ],
)
async def test_bad_input_answers_with_usage_and_places_nothing(
    server: Server, slack: SlackStandIn, retell: RetellStandIn, text: str, fragment: str
) -> None:
    status, body = await place(server, slack, text)
    assert status == 200
    # A plain-text ack body is shown only to the person who typed the command.
    assert isinstance(body, str)
    assert fragment in body and "Usage: `/call <number>" in body
    assert creates(retell) == []
    assert slack.calls_to("chat.postMessage") == []
    assert rows(server, "SELECT count(*) FROM calls") == [(0,)]


async def test_bot_not_in_channel_answers_how_to_invite(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    slack.fail("chat.postMessage", "not_in_channel", channel="G0PRIVATE")
    await server.slash("/call", "+14155550123", channel="G0PRIVATE",
                       response_url=slack.response_url("priv"))
    await slack.wait_for(lambda: bool(slack.responses_for("priv")))
    [answer] = slack.responses_for("priv")
    assert "not_in_channel" in answer["text"] and "/invite" in answer["text"]
    assert "no call was placed" in answer["text"]
    assert creates(retell) == []


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (402, "Insufficient credit in account",
         "Retell refused the call: Insufficient credit in account"),
        (422, None, "Retell refused the call: Cannot find requested asset"),
        (429, None, "Retell is rate limiting this account"),
        (500, None, "Retell had a server error (HTTP 500)"),
    ],
)
async def test_retell_errors_reach_the_user_in_plain_words(
    server: Server, slack: SlackStandIn, retell: RetellStandIn, status: int,
    message: str | None, expected: str,
) -> None:
    retell.fail_next("/v2/create-phone-call", status, message)
    await place(server, slack, "+14155550123", key="err")
    await slack.wait_for(lambda: bool(slack.responses_for("err")))
    [answer] = slack.responses_for("err")
    assert expected in answer["text"]
    [card] = slack.messages(CHANNEL)
    updated = slack.message(CHANNEL, card["ts"])
    assert updated is not None and "Not placed" in str(updated["blocks"])
    [(call_id, st, error)] = rows(server, "SELECT call_id, status, error FROM calls")
    assert call_id is None and st == "failed" and expected in error
    assert rows(server, "SELECT count(*) FROM outbox") == [(0,)]


async def test_legacy_error_key_is_read(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    retell.fail_next("/v2/create-phone-call", 400, "to_number is invalid", legacy_error_key=True)
    await place(server, slack, "+14155550123", key="legacy")
    await slack.wait_for(lambda: bool(slack.responses_for("legacy")))
    assert "Retell refused the call: to_number is invalid" in (
        slack.responses_for("legacy")[0]["text"])


@pytest.mark.slow
async def test_retell_timeout_and_connection_errors(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    retell.hang_next("/v2/create-phone-call", 5.0)  # the client gives up after 2 s
    await place(server, slack, "+14155550123", key="slow")
    retell.drop_next("/v2/create-phone-call")
    await place(server, slack, "+14155550124", key="drop")
    await slack.wait_for(
        lambda: bool(slack.responses_for("slow")) and bool(slack.responses_for("drop")),
        timeout=10,
    )
    assert "Retell did not answer in time (no answer within 2 s)" in (
        slack.responses_for("slow")[0]["text"])
    assert "Could not reach Retell" in slack.responses_for("drop")[0]["text"]
    assert rows(server, "SELECT count(*) FROM calls WHERE status = 'failed'") == [(2,)]


async def test_retell_down_entirely(
    slack: SlackStandIn, db_path: Any
) -> None:
    from tests.conftest import make_settings

    async with RetellStandIn() as retell:
        settings = make_settings(slack, retell, db_path)
    srv = Server(settings)  # Retell's port is closed now: connection refused
    await srv.start()
    try:
        await srv.slash("/call", "+14155550123 agent_" + "c" * 24,
                        response_url=slack.response_url("down"))
        await slack.wait_for(lambda: bool(slack.responses_for("down")))
    finally:
        await srv.stop()
    assert "Could not reach Retell (connection refused" in slack.responses_for("down")[0]["text"]


@pytest.mark.slow
async def test_ack_does_not_wait_for_retell(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    retell.create_delay = 1.5
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, _ = await place(server, slack, "+14155550123")
    acked = loop.time() - started
    assert status == 200
    assert acked < 1.5, f"ack took {acked:.2f} s, as long as Retell"
    await slack.wait_for(lambda: len(creates(retell)) == 1, timeout=5)


async def test_unsigned_or_forged_slash_commands_are_refused(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    body = b"command=%2Fcall&text=%2B14155550123&team_id=T0TEST&channel_id=C1&user_id=U1"
    status, _ = await server.post("/slack/events", body,
                                  {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 401
    status, _ = await server.post("/slack/events", body, slack_headers(body, secret="wrong"))
    assert status == 401
    status, _ = await server.post("/slack/events", body,
                                  slack_headers(body, timestamp=1_600_000_000))
    assert status == 401
    assert creates(retell) == [] and slack.calls_to("chat.postMessage") == []
