"""Guardrails end to end: the do-not-call list, the audit log, admin powers, privacy and
retention, through the real server with Slack and Retell replaced by stand-ins.

Why: these are the rules an operator relies on without watching: a number on the list is
never dialled, only admins change the list or read the audit, every decision leaves an
audit row, whole numbers never reach Slack or the logs, and old calls lose their words but
keep their figures. Each test drives the app only from outside (signed slash commands,
buttons and webhooks) and checks the database file and the stand-ins' records.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.render.mistakes import usage
from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import USER, Server, make_settings
from tests.support.buttons import action_ids, press, requests_to
from tests.support.calls import creates
from tests.support.db import db_dicts, db_execute
from tests.support.db import db_rows as rows
from tests.support.waiting import eventually
from tests.support.webhooks import card, placed_call, send, summaries

ADMIN = "U0ADMIN"
BOB = "U0BOB"
NUMBER = "+14155550123"  # the number placed_call() dials
MASKED = "+1 415 ••• 0123"
OTHER = "+14155550188"
OTHER_MASKED = "+1 415 ••• 0188"
# Any of these in Slack traffic or the app's logs means a whole number leaked.
FULL_FORMS = ("4155550123", "+14155550123", "415-555-0123", "555-0123", "555 0123",
              "5550123")
DNC_NOTE_PART = "The callee asked not to be called again"
AUDIT_HEADER = ["time_utc", "user", "channel", "action", "source", "number", "agent",
                "outcome", "reason", "call_id"]


# -- helpers ---------------------------------------------------------------------------------




def count(db_path: Path, sql: str, *args: Any) -> int:
    return int(rows(db_path, sql, *args)[0][0])


def text_of(body: Any) -> str:
    """An ack body as one string: plain text, or the JSON of text and blocks."""
    return body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)


@asynccontextmanager
async def guarded(slack: SlackStandIn, retell: RetellStandIn, db_path: Path,
                  **overrides: Any) -> AsyncIterator[Server]:
    """The server with ADMIN as its only admin (and any other settings given)."""
    srv = Server(make_settings(slack, retell, db_path, CALLBOT_ADMINS=ADMIN, **overrides))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def command(srv: Server, slack: SlackStandIn, name: str, text: str,
                  user: str = USER, key: str = "cmd") -> str:
    """A slash command whose answer is the ack itself; returns the ack's text."""
    status, body = await srv.slash(name, text, user=user, response_url=slack.response_url(key))
    assert status == 200
    return text_of(body)


def audit(db_path: Path) -> list[tuple[Any, ...]]:
    return rows(db_path, "SELECT action, outcome, user_id, number, reason FROM audit "
                         "ORDER BY id")


async def refused_call(srv: Server, slack: SlackStandIn, number: str, key: str) -> str:
    """`/call` to `number`; waits for the ephemeral answer and returns its text."""
    status, _ = await srv.slash("/call", number, response_url=slack.response_url(key))
    assert status == 200
    await slack.wait_for(lambda: bool(slack.responses_for(key)))
    [answer] = slack.responses_for(key)
    assert answer["response_type"] == "ephemeral"
    return str(answer["text"])


# -- 1. the do-not-call commands -------------------------------------------------------------


async def test_dnc_add_check_list_remove(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    async with guarded(slack, retell, db_path) as srv:
        said = await command(srv, slack, "/calldnc", "add +1 415 555 0123 asked by email",
                             user=ADMIN)
        assert f"{MASKED} is now on the do-not-call list" in said
        assert rows(db_path, "SELECT number, reason, added_by, call_id FROM dnc") == [
            (NUMBER, "asked by email", ADMIN, None)]

        said = await command(srv, slack, "/calldnc", "check (415) 555-0123")  # not an admin
        assert "On the do-not-call list" in said and MASKED in said
        assert "asked by email" in said and f"<@{ADMIN}>" in said

        listed = await command(srv, slack, "/calldnc", "list", user=ADMIN)
        assert "Do-not-call list" in listed and MASKED in listed and "asked by email" in listed
        assert not any(form in listed for form in FULL_FORMS)

        said = await command(srv, slack, "/calldnc", f"remove {NUMBER}", user=ADMIN)
        assert f"{MASKED} is off the do-not-call list" in said
        said = await command(srv, slack, "/calldnc", f"check {NUMBER}")
        assert f"{MASKED} is not on the do-not-call list" in said
        assert rows(db_path, "SELECT count(*) FROM dnc") == [(0,)]
    assert audit(db_path) == [
        ("dnc_add", "done", ADMIN, MASKED, "asked by email"),
        ("dnc_remove", "done", ADMIN, MASKED, None),
    ]


async def test_dnc_changes_by_a_non_admin_are_refused_and_audited(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    async with guarded(slack, retell, db_path) as srv:
        await command(srv, slack, "/calldnc", f"add {NUMBER}", user=ADMIN)
        for text in (f"remove {NUMBER}", f"add {OTHER} spite", "list"):
            said = await command(srv, slack, "/calldnc", text, user=BOB)
            assert ":no_entry: Only admins can do that" in said, text
            assert f"<@{ADMIN}>" in said
        assert rows(db_path, "SELECT number, added_by FROM dnc") == [(NUMBER, ADMIN)]
    assert audit(db_path) == [
        ("dnc_add", "done", ADMIN, MASKED, None),
        ("dnc_remove", "refused", BOB, MASKED, "not_admin"),
        ("dnc_add", "refused", BOB, OTHER_MASKED, "not_admin"),
        ("dnc_list", "refused", BOB, None, "not_admin"),
    ]


@pytest.mark.parametrize("text", ["", "add", "frobnicate +14155550123", "list all",
                                  "remove +14155550123 please", "add 12345", "check"])
async def test_dnc_bad_input_gets_usage_and_changes_nothing(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path, text: str
) -> None:
    async with guarded(slack, retell, db_path) as srv:
        said = await command(srv, slack, "/calldnc", text, user=ADMIN)
        assert said.startswith(":warning:") and usage("dnc") in said
    assert rows(db_path, "SELECT count(*) FROM dnc") == [(0,)]
    assert audit(db_path) == []


# -- 2. the list is enforced -----------------------------------------------------------------


async def test_call_to_a_listed_number_is_refused_before_retell(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    async with guarded(slack, retell, db_path) as srv:
        await command(srv, slack, "/calldnc", f"add {NUMBER} lawyer letter", user=ADMIN)
        said = await refused_call(srv, slack, "+1 415 555 0123", "dnc")
        assert f"{MASKED} is on the do-not-call list (lawyer letter)" in said
        assert creates(retell) == [] and slack.calls_to("chat.postMessage") == []

        # Another number is dialled as usual: the refusal is about this number only.
        await srv.slash("/call", OTHER, response_url=slack.response_url("ok"))
        await eventually(lambda: len(creates(retell)) == 1)
        assert creates(retell)[0].json["to_number"] == OTHER
    assert ("call", "refused", USER, MASKED, "do_not_call") in audit(db_path)
    assert rows(db_path, "SELECT source FROM audit WHERE reason = 'do_not_call'") == [("/call",)]


# -- 3. the callee asks not to be called -----------------------------------------------------


@pytest.mark.slow
async def test_callee_request_adds_the_number_once_and_blocks_the_next_call(
    server: Server, slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    call_id = await placed_call(server, slack, retell)
    status, _ = await send(server, retell, call_id, "call_ended",
                           disconnection_reason="user_requested_dnc")
    assert status == 200
    await slack.wait_for(lambda: DNC_NOTE_PART in str(card(slack)["blocks"]))
    assert rows(db_path, "SELECT number, added_by, call_id FROM dnc") == [
        (NUMBER, None, call_id)]

    # The same webhook again, and the analysis with the same reason: no second entry.
    assert await send(server, retell, call_id, "call_ended") == (200, {"status": "duplicate"})
    status, _ = await send(server, retell, call_id, "call_analyzed")
    assert status == 200
    await eventually(server.outbox_idle)
    assert rows(db_path, "SELECT action, outcome, user_id, number, reason, call_id FROM audit "
                         "WHERE action = 'dnc_auto'") == [
        ("dnc_auto", "done", None, MASKED, "user_requested_dnc", call_id)]
    assert count(db_path, "SELECT count(*) FROM dnc") == 1

    said = await refused_call(server, slack, NUMBER, "again")
    assert "is on the do-not-call list" in said
    assert len(creates(retell)) == 1
    assert count(db_path, "SELECT count(*) FROM audit WHERE reason = 'do_not_call'") == 1


# -- 4. /callaudit ---------------------------------------------------------------------------


@pytest.mark.slow
async def test_callaudit_filters_and_export(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    async with guarded(slack, retell, db_path) as srv:
        await command(srv, slack, "/calldnc", f"add {OTHER}", user=ADMIN)
        await refused_call(srv, slack, OTHER, "refused")
        await srv.slash("/call", NUMBER, response_url=slack.response_url("placed"))
        await eventually(lambda: count(
            db_path, "SELECT count(*) FROM audit WHERE outcome = 'placed'") == 1)

        said = await command(srv, slack, "/callaudit", "", user=BOB)
        assert ":no_entry: Only admins can do that" in said
        assert audit(db_path)[-1] == ("audit_read", "refused", BOB, None, "not_admin")
        total = count(db_path, "SELECT count(*) FROM audit")
        assert total == 4

        everything = await command(srv, slack, "/callaudit", "", user=ADMIN)
        assert f"({total} entries in all" in everything
        for who in (USER, ADMIN, BOB):
            assert f"<@{who}>" in everything

        bobs = await command(srv, slack, "/callaudit", f"<@{BOB}|bob>", user=ADMIN)
        assert f"(1 entries for <@{BOB}>" in bobs and "audit read" in bobs
        assert f"<@{USER}>" not in bobs and f"<@{ADMIN}>" not in bobs
        alices = await command(srv, slack, "/callaudit", USER, user=ADMIN)
        assert f"(2 entries for <@{USER}>" in alices and alices.count("\\n• ") == 2

        by_number = await command(srv, slack, "/callaudit", "(415) 555-0188", user=ADMIN)
        assert f"(2 entries for {OTHER_MASKED}" in by_number
        assert MASKED not in by_number and "placed" not in by_number

        said = await command(srv, slack, "/callaudit", "export", user=ADMIN)
        assert f"Exporting {total} audit entries" in said and "direct message" in said
        await eventually(lambda: any(f["completed"] for f in slack.files.values()))
        [upload] = [f for f in slack.files.values() if f["completed"]]
        assert [c.args.get("users") for c in slack.calls_to("conversations.open")] == [ADMIN]
        assert upload["channel"] == "D0ADMIN"
        content = upload["content"].decode()
        table = list(csv.reader(io.StringIO(content)))
        assert table[0] == AUDIT_HEADER
        assert len(table) - 1 == total
        assert {r[3] for r in table[1:]} == {"dnc_add", "call", "audit_read"}
        assert not any(form in content for form in FULL_FORMS)
        # The export is itself audited, after the rows it exported were read.
        assert audit(db_path)[-1] == ("audit_export", "done", ADMIN, None, f"{total} rows")


@pytest.mark.parametrize("text", ["frobnicate", "0", "101", "+1 415 555"])
async def test_callaudit_bad_input_gets_usage(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path, text: str
) -> None:
    async with guarded(slack, retell, db_path) as srv:
        said = await command(srv, slack, "/callaudit", text, user=ADMIN)
    assert said.startswith(":warning:") and usage("audit") in said
    assert audit(db_path) == []


# -- 5. admins may hang up anyone's call -----------------------------------------------------


@pytest.mark.slow
async def test_admin_hangs_up_another_users_call_and_it_is_audited(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    async with guarded(slack, retell, db_path) as srv:
        call_id = await placed_call(srv, slack, retell)
        await send(srv, retell, call_id, "call_started")
        await slack.wait_for(lambda: "In progress" in str(card(slack)["blocks"]))

        await press(srv, slack, "call_hang_up", call_id, key="bob", user=BOB)
        await eventually(lambda: bool(slack.responses_for("bob")))
        assert f"Only <@{USER}> or an admin can hang up" in slack.responses_for("bob")[0]["text"]
        assert requests_to(retell, "/v2/stop-call/") == []

        await press(srv, slack, "call_hang_up", call_id, key="admin", user=ADMIN)
        await slack.wait_for(lambda: "Hung up from Slack" in str(card(slack)["blocks"]))
        assert len(requests_to(retell, f"/v2/stop-call/{call_id}")) == 1
    assert rows(db_path, "SELECT action, outcome, user_id, number, reason, call_id FROM audit "
                         "WHERE action = 'hang_up'") == [
        ("hang_up", "done", ADMIN, MASKED, f"admin; placed by {USER}", call_id)]


# -- 6. whole numbers stay out of Slack and the logs -----------------------------------------


@pytest.mark.slow
async def test_numbers_never_appear_in_full(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    acks: list[str] = []
    async with guarded(slack, retell, db_path) as srv:
        call_id = await placed_call(srv, slack, retell)
        for event in ("call_started", "call_ended", "call_analyzed"):
            await send(srv, retell, call_id, event)
        await slack.wait_for(lambda: len(summaries(slack)) == 1)
        for name, text in (("/calldnc", f"add {NUMBER} no more"), ("/calldnc", "list"),
                           ("/calldnc", "check 415 555 0123"), ("/callaudit", ""),
                           ("/callaudit", NUMBER), ("/callaudit", "export")):
            acks.append(await command(srv, slack, name, text, user=ADMIN))
        acks.append(await refused_call(srv, slack, NUMBER, "refused"))
        await eventually(lambda: any(f["completed"] for f in slack.files.values()))
        await eventually(srv.outbox_idle)

    assert MASKED in str(card(slack)["blocks"])  # the flow did show the number, masked
    own = [r.getMessage() for r in caplog.records
           if r.name.startswith(("bot", "handlers", "storage"))]
    assert any(MASKED in line for line in own)
    seen = {
        "logs": "\n".join(own),
        "slack calls": json.dumps([c.args for c in slack.calls], ensure_ascii=False,
                                  default=repr),
        "response_url posts": json.dumps(slack.responses, ensure_ascii=False),
        "files": "\n".join(f["content"].decode() for f in slack.files.values()),
        "acks": "\n".join(acks),
    }
    for where, text in seen.items():
        for form in FULL_FORMS:
            assert form not in text, f"{form} in {where}"


async def test_show_full_numbers_puts_the_number_on_the_card(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    async with guarded(slack, retell, db_path, CALLBOT_SHOW_FULL_NUMBERS=True) as srv:
        await placed_call(srv, slack, retell)
    blocks = str(card(slack)["blocks"])
    assert "+1 415-555-0123" in blocks and MASKED not in blocks


# -- 7. what the summary may carry -----------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "transcript", "recording"),
    [
        ({}, True, True),
        ({"CALLBOT_POST_TRANSCRIPTS": False}, False, True),
        ({"CALLBOT_POST_RECORDINGS": False}, True, False),
    ],
    ids=["default", "no-transcripts", "no-recordings"],
)
@pytest.mark.slow
async def test_summary_carries_transcript_and_recording_only_when_allowed(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path,
    overrides: dict[str, Any], transcript: bool, recording: bool,
) -> None:
    async with guarded(slack, retell, db_path, **overrides) as srv:
        call_id = await placed_call(srv, slack, retell)
        for event in ("call_started", "call_ended", "call_analyzed"):
            await send(srv, retell, call_id, event)
        await slack.wait_for(lambda: len(summaries(slack)) == 1)
        if not transcript:  # a Transcript button on a card from before the setting
            await press(srv, slack, "call_transcript", call_id, key="tr")
            await eventually(lambda: bool(slack.responses_for("tr")))
            assert "CALLBOT_POST_TRANSCRIPTS" in slack.responses_for("tr")[0]["text"]
        await eventually(srv.outbox_idle)
    [reply] = summaries(slack)
    posted = json.dumps([reply["text"], reply["blocks"]], ensure_ascii=False)
    assert "The agent called the user" in posted  # the summary itself is always there
    assert ("Main Street" in posted) is transcript
    assert (retell.calls[call_id]["recording_url"] in posted) is recording
    # Retell's call log holds both the words and the audio: shown only when both may be.
    assert (retell.calls[call_id]["public_log_url"] in posted) is (transcript and recording)
    assert ("call_transcript" in action_ids(card(slack))) is transcript


# -- 8. retention ----------------------------------------------------------------------------


PURGED = ("transcript", "raw_payload", "recording_url", "public_log_url")


def calls_by_id(db_path: Path) -> dict[str, dict[str, Any]]:
    return {r["call_id"]: r for r in db_dicts(db_path, "SELECT * FROM calls")}


def age(db_path: Path, call_ids: list[str], days: float) -> None:
    """Move calls back in time, in a thread: a blocking wait for the server's write lock on
    the event loop it shares would stall the writer it waits for."""
    for call_id in call_ids:
        db_execute(db_path, "UPDATE calls SET created_at = ? WHERE call_id = ?",
                   time.time() - days * 86400, call_id)


@pytest.mark.slow
async def test_retention_forgets_old_words_and_keeps_the_figures(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    srv = Server(make_settings(slack, retell, db_path))
    await srv.start()
    try:
        call_ids = [await placed_call(srv, slack, retell)]
        for n in range(3):
            call_ids.append(retell.new_inbound_call(f"+44207946012{n}", "+14155550100"))
        for n, call_id in enumerate(call_ids):
            body = retell.event_body(call_id, "call_analyzed", duration_ms=60_000 + n * 1000,
                                     call_cost={"combined_cost": 10.0 + n})
            assert (await retell.send_webhook(srv.url + "/retell/webhook", body))[0] == 200
        await command(srv, slack, "/calldnc", f"add {OTHER}")  # refused: one more audit row
        await eventually(srv.outbox_idle)
        old, new = call_ids[:2], call_ids[2:]
        await asyncio.to_thread(age, db_path, old, 40)
        before = calls_by_id(db_path)
        audit_before = rows(db_path, "SELECT * FROM audit ORDER BY id")
    finally:
        await srv.stop()
    assert len(audit_before) == 2
    for call_id in call_ids:
        assert all(before[call_id][c] for c in PURGED), call_id
        assert before[call_id]["summary"] and before[call_id]["sentiment"]

    srv = Server(make_settings(slack, retell, db_path, CALLBOT_RETENTION_DAYS=30))
    await srv.start()
    try:
        await eventually(lambda: all(calls_by_id(db_path)[c]["transcript"] is None
                                     for c in old))
        after = calls_by_id(db_path)
        _, stats = await srv.slash("/callstats", "all", response_url=slack.response_url("s"))
    finally:
        await srv.stop()

    for call_id in old:
        assert {c: after[call_id][c] for c in PURGED} == dict.fromkeys(PURGED)
        kept = {k: v for k, v in before[call_id].items() if k not in PURGED}
        assert {k: v for k, v in after[call_id].items() if k not in PURGED} == kept
    for call_id in new:
        assert after[call_id] == before[call_id]
    assert rows(db_path, "SELECT * FROM audit ORDER BY id") == audit_before
    assert "*Calls*\\n4" in text_of(stats["blocks"])
