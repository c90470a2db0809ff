"""Campaigns through the real server: `/callcampaign`'s modal with a CSV file fetched from the
Slack stand-in, the preview (invalid, duplicate and do-not-call rows never called), Start,
calls paced under the campaign's concurrency at the Retell stand-in, retries for no answer,
Pause / Resume / Cancel, the results CSV in the card's thread checked row by row, a CSV
shared in a DM, `/callcampaign list|status`."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from bot.input.campaign_form import BLOCK_CAMPAIGN_CONCURRENCY
from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, USER, Server, StartServer, button, view_submission
from tests.support.campaigns import Callees, contacts_csv, modal_values, number
from tests.support.db import db_execute, db_rows
from tests.support.hours import window_around
from tests.support.waiting import eventually

# Whole real servers (or databases) per test: the full suite runs them; the fast lane
# (`-m "not slow"`) leaves them out.
pytestmark = pytest.mark.slow


ADMIN = "U0ADMIN"
BOB = "U0BOB"
FAST = {"CALLBOT_RETELL_CALLS_PER_SECOND": 500, "CALLBOT_CAMPAIGN_CARD_SECONDS": 0.2,
        "CALLBOT_ADMINS": ADMIN}




async def open_campaign_modal(server: Server, slack: SlackStandIn) -> dict[str, Any]:
    before = len(slack.calls_to("views.open"))
    status, body = await server.slash("/callcampaign", "", trigger_id="1.abc",
                                      response_url=slack.response_url("cc"))
    assert (status, body) == (200, None)
    await slack.wait_for(lambda: len(slack.calls_to("views.open")) > before)
    return dict(slack.calls_to("views.open")[-1].args["view"])


async def submit(server: Server, slack: SlackStandIn, content: bytes,
                 **values: Any) -> dict[str, Any]:
    """Upload `content`, submit the modal with it; the preview message posted."""
    view = await open_campaign_modal(server, slack)
    file = slack.add_file("contacts.csv", content, user=USER)
    before = len(slack.messages(CHANNEL))
    status, body = await server.interactive(view_submission(
        view, modal_values(file, **values), metadata=view.get("private_metadata")))
    assert status == 200 and body is None
    await slack.wait_for(lambda: len(slack.messages(CHANNEL)) > before, timeout=10)
    return slack.messages(CHANNEL)[-1]


async def press(server: Server, slack: SlackStandIn, action: str, card: dict[str, Any], *,
                user: str = USER, key: str = "btn") -> None:
    value = next(e["value"] for b in card["blocks"] if b.get("type") == "actions"
                 for e in b["elements"] if e.get("action_id") == action)
    status, body = await server.interactive(button(action, value, user=user,
                                                   message_ts=card["ts"],
                                                   response_url=slack.response_url(key)))
    assert (status, body) == (200, None)


def card_now(slack: SlackStandIn, ts: str) -> str:
    found = slack.message(CHANNEL, ts)
    assert found is not None
    return json.dumps(found, ensure_ascii=False)


def uploaded_results(slack: SlackStandIn) -> list[dict[str, str]]:
    [upload] = [u for u in slack.uploaded(CHANNEL) if u["name"].endswith("-results.csv")]
    text = upload["content"].decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.slow
async def test_a_200_row_campaign_previews_paces_retries_and_reports_row_by_row(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await start(**FAST)
    # One number on the do-not-call list before the file comes.
    status, _ = await server.slash("/calldnc", f"add {number(7)} asked us", user=ADMIN,
                                   response_url=slack.response_url("dnc"))
    assert status == 200
    content, numbers = contacts_csv(194, invalid=3, duplicates=3)
    preview = await submit(server, slack, content, concurrency=4, attempts=2)
    text = card_now(slack, preview["ts"])
    assert "campaign_start" in text and "campaign_cancel" in text
    assert "Not called: 3 invalid, 3 duplicates, 1 refused by policy." in text
    assert "Line 196: " in text and "Line 9: " in text  # broken rows, by their line in the file
    # Rows read 200: 193 to call, 3 invalid, 3 duplicates, 1 on the do-not-call list.
    [(campaign_id, status_now)] = db_rows(server, "SELECT id, status FROM campaigns")
    assert status_now == "draft"
    skipped = dict(db_rows(server, "SELECT outcome, count(*) FROM campaign_rows "
                                   "WHERE status = 'skipped' GROUP BY outcome"))
    assert skipped == {"invalid": 3, "duplicate": 3, "refused": 1}
    assert db_rows(server, "SELECT count(*) FROM campaign_rows WHERE status = 'waiting'") \
        == [(193,)]
    assert retell.created_calls() == []  # nothing is called before Start
    # The modal's shortest spacing is a minute; the stored campaign's is cut to keep the
    # suite quick (the runner reads it from the database at each retry).
    db_execute(server, "UPDATE campaigns SET retry_spacing = 0.3")

    await press(server, slack, "campaign_start", preview)
    # Every number ending in 5 does not answer its first try (the second one answers).
    callees = Callees(server.url, retell,
                      lambda to, attempt: "dial_no_answer" if to.endswith("5") and attempt == 1
                      else None)

    def to_place() -> int:
        return int(db_rows(server, "SELECT count(*) FROM campaign_rows "
                                   "WHERE status IN ('waiting', 'placing')")[0][0])

    def done() -> bool:
        return bool(db_rows(server, "SELECT status FROM campaigns")[0][0] == "done")

    # The callees hang up only once the campaign has all its calls live (or has no more
    # to place): so it must reach its concurrency, and it must never pass it.
    for _ in range(2000):
        await eventually(lambda: retell.live_now >= 4 or done() or (
            to_place() == 0 and retell.live_now > 0), timeout=10)
        assert retell.max_live <= 4, retell.max_live  # the campaign's concurrency
        if done():
            break
        await callees.end_all()
    assert db_rows(server, "SELECT status FROM campaigns")[0][0] == "done"
    assert retell.max_live == 4  # it did use its concurrency
    created = [c["to_number"] for c in retell.created_calls()]
    retried = [n for n in numbers if n.endswith("5") and n != number(7)]
    called = [n for n in numbers if n != number(7)]
    # Every valid row once, the no-answer rows twice; never a skipped row.
    assert sorted(created) == sorted(called + retried)
    assert number(7) not in created

    await slack.wait_for(lambda: any(u["name"].endswith("-results.csv")
                                     for u in slack.uploaded(CHANNEL)), timeout=10)
    results = uploaded_results(slack)
    assert len(results) == 200
    by_line = {int(r["line"]): r for r in results}
    for i, n in enumerate(numbers):
        row = by_line[i + 2]  # the header is line 1
        assert row["customer_name"] == f"Customer {i}"
        assert row["number"] != n and row["number"].endswith(n[-4:])  # masked
        if n == number(7):
            assert row["status"] == "refused"
            continue
        assert row["status"] in ("connected", "success")
        assert row["attempts"] == ("2" if n.endswith("5") else "1")
        assert row["duration_s"] == "42"
        assert row["field:will_attend"] == ("false" if n.endswith("3") else "true")
        assert row["field:rating"] == n[-1]
    assert sorted(r["status"] for r in results if int(r["line"]) > 195) == \
        ["duplicate"] * 3 + ["invalid"] * 3
    # Calls are tagged with their campaign, and post no card of their own.
    assert db_rows(server, "SELECT count(*) FROM calls WHERE campaign_id = ?", campaign_id) \
        == [(len(created),)]
    assert len(slack.messages(CHANNEL)) == 1  # the campaign's card only
    final = card_now(slack, preview["ts"])
    assert "campaign_results" in final and "campaign_pause" not in final


async def test_pause_resume_and_cancel_are_for_the_owner_or_an_admin(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await start(**FAST)
    content, _ = contacts_csv(12)
    preview = await submit(server, slack, content, concurrency=2)
    await press(server, slack, "campaign_start", preview)
    await eventually(lambda: retell.live_now == 2)
    card = slack.message(CHANNEL, preview["ts"])
    assert card is not None
    # Bob is neither the owner nor an admin: nothing changes, he is told whose it is.
    await press(server, slack, "campaign_pause", card, user=BOB, key="bob")
    await eventually(lambda: bool(slack.responses_for("bob")))
    assert f"<@{USER}>" in slack.responses_for("bob")[0]["text"]
    assert db_rows(server, "SELECT status FROM campaigns") == [("running",)]

    await press(server, slack, "campaign_pause", card)
    # The button is acknowledged first and acted on after: wait for the move to land.
    await eventually(lambda: db_rows(server, "SELECT status FROM campaigns") == [("paused",)])
    await eventually(lambda: any(f"paused by <@{USER}>" in m.get("text", "")
                                 for m in slack.thread(CHANNEL, preview["ts"])))
    callees = Callees(server.url, retell, lambda to, attempt: None)
    await callees.end_all()  # the two live calls end; paused, nothing new is placed
    await eventually(lambda: db_rows(
        server, "SELECT count(*) FROM campaign_rows WHERE status = 'done'") == [(2,)])
    assert len(retell.created_calls()) == 2
    await eventually(lambda: "campaign_resume" in card_now(slack, preview["ts"]))

    card = slack.message(CHANNEL, preview["ts"])
    assert card is not None
    await press(server, slack, "campaign_resume", card, user=ADMIN)
    await eventually(lambda: len(retell.created_calls()) == 4)
    card = slack.message(CHANNEL, preview["ts"])
    assert card is not None
    await press(server, slack, "campaign_cancel", card)
    await eventually(lambda: db_rows(server, "SELECT status FROM campaigns")
                     == [("cancelled",)])
    assert db_rows(server, "SELECT count(*) FROM campaign_rows WHERE status = 'cancelled'") \
        == [(8,)]
    await callees.end_all()
    await eventually(lambda: db_rows(
        server, "SELECT count(*) FROM campaign_rows WHERE status = 'done'") == [(4,)])
    assert len(retell.created_calls()) == 4  # nothing after the cancel


async def test_a_file_slack_will_not_hand_over_is_told_and_nothing_is_kept(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await start(**FAST)
    view = await open_campaign_modal(server, slack)
    file = slack.add_file("contacts.csv", b"phone\n+14155550100\n")
    file["id"] = "F0GONE"  # deleted before the app fetched it
    status, body = await server.interactive(view_submission(
        view, modal_values(file), metadata=view.get("private_metadata")))
    assert (status, body) == (200, None)
    await eventually(lambda: bool(slack.messages(USER)))
    assert "file" in slack.messages(USER)[0]["text"].lower()
    assert db_rows(server, "SELECT count(*) FROM campaigns") == [(0,)]


async def test_a_csv_shared_in_a_dm_is_previewed_there(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await start(**FAST)
    file = slack.add_file("survey.csv", b"number,name\n+14155550100,Ann\n+14155550101,Bo\n")
    event = {"type": "message", "subtype": "file_share", "channel": "D0DM", "user": USER,
             "channel_type": "im", "ts": "1700000000.000100", "text": "", "files": [file]}
    status, _ = await server.event(event)
    assert status == 200
    await eventually(lambda: bool(slack.messages("D0DM")))
    [(name, channel, rows)] = db_rows(
        server, "SELECT name, channel_id, (SELECT count(*) FROM campaign_rows) FROM campaigns")
    assert (name, channel, rows) == ("survey", "D0DM", 2)
    assert [d for d in slack.downloads if d[0] == file["id"]] == [(file["id"], True)]


async def test_list_and_status_answer_ephemerally(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await start(**FAST)
    content, _ = contacts_csv(3)
    await submit(server, slack, content, name="Flu shots")
    _, listed = await server.slash("/callcampaign", "list",
                                   response_url=slack.response_url("l"))
    assert "Flu shots" in json.dumps(listed, ensure_ascii=False)
    _, status = await server.slash("/callcampaign", "status flu shots",
                                   response_url=slack.response_url("s"))
    assert "Flu shots" in json.dumps(status, ensure_ascii=False)
    _, missing = await server.slash("/callcampaign", "status nope",
                                    response_url=slack.response_url("m"))
    assert "nope" in json.dumps(missing, ensure_ascii=False)


async def test_rows_outside_their_callees_hours_wait_and_the_card_says_until_when(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    # Los Angeles numbers are outside their hours now; London and Bangkok ones inside.
    server = await start(**FAST, CALLBOT_CALLING_HOURS=window_around(
        "America/Los_Angeles", open_now=False), CALLBOT_CALLING_HOURS_OVERRIDES=(
        f"GB={window_around('Europe/London', open_now=True)},"
        f"TH={window_around('Asia/Bangkok', open_now=True)}"))
    content = (b"number,name\n+14155550100,Ann\n+442079460958,Bea\n+6621234567,Chai\n"
               b"+14155550101,Dan\n")
    preview = await submit(server, slack, content, concurrency=3)
    # The preview says so before anything starts.
    assert "2 wait for calling hours (until <!date^" in card_now(slack, preview["ts"])
    await press(server, slack, "campaign_start", preview)
    await eventually(lambda: len(retell.created_calls()) == 2)
    await eventually(lambda: db_rows(
        server, "SELECT count(*) FROM campaign_rows WHERE detail = 'calling_hours' "
                "AND status = 'waiting'") == [(2,)])
    assert sorted(c["to_number"] for c in retell.created_calls()) == \
        ["+442079460958", "+6621234567"]
    # The LA rows wait for their opening, not counted as a try.
    waits = db_rows(server, "SELECT number, attempts, next_at FROM campaign_rows "
                            "WHERE status = 'waiting' ORDER BY number")
    assert [(n, a) for n, a, _ in waits] == [("+14155550100", 0), ("+14155550101", 0)]
    assert all(next_at > time.time() for _, _, next_at in waits)
    await eventually(lambda: "2 wait for calling hours (until <!date^" in
                     card_now(slack, preview["ts"]), timeout=10)
    # No refusal was audited for a row that only waits.
    assert db_rows(server, "SELECT count(*) FROM audit WHERE outcome = 'refused'") \
        == [(0,)]


async def test_failures_go_in_the_thread_and_a_list_failing_wholesale_does_not_flood_it(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await start(**FAST)
    retell.fail_next("/v2/create-phone-call", 402, "Insufficient credit in account", times=25)
    content, _ = contacts_csv(25)
    preview = await submit(server, slack, content, concurrency=5)
    await press(server, slack, "campaign_start", preview)
    await eventually(lambda: db_rows(server, "SELECT status FROM campaigns") == [("done",)],
                     timeout=15)
    assert dict(db_rows(server, "SELECT outcome, count(*) FROM campaign_rows GROUP BY 1")) \
        == {"failed": 25}
    await slack.wait_for(lambda: any(u["name"].endswith("-results.csv")
                                     for u in slack.uploaded(CHANNEL)), timeout=10)
    notes = [m["text"] for m in slack.thread(CHANNEL, preview["ts"])
             if m.get("text", "").startswith((":warning:", ":information_source:"))]
    assert len(notes) == 21  # twenty rows named, then one pointer to the results
    assert all("Line " in n for n in notes[:20])
    assert "results file" in notes[20]


@pytest.mark.slow
async def test_a_large_file_is_read_to_its_end(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await start(**FAST)
    content, _ = contacts_csv(6000, invalid=1)  # ~250 KB: more than one read's worth
    assert len(content) > 200_000
    await submit(server, slack, content)
    assert db_rows(server, "SELECT status, count(*) FROM campaign_rows GROUP BY 1 "
                           "ORDER BY 1") == [("skipped", 1), ("waiting", 6000)]


async def test_calls_that_stay_on_the_line_fill_the_campaigns_concurrency_exactly(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    """More than the tries the runner keeps in flight at once: the bound is the campaign's
    concurrency (calls live), not the runner's own batch."""
    server = await start(**FAST, CALLBOT_MAX_CONCURRENT_CALLS=1000)
    content, _ = contacts_csv(60)
    preview = await submit(server, slack, content, concurrency=40)
    await press(server, slack, "campaign_start", preview)
    await eventually(lambda: retell.live_now == 40, timeout=15)
    await eventually(lambda: db_rows(
        server, "SELECT status, count(*) FROM campaign_rows GROUP BY 1 ORDER BY 1")
        == [("live", 40), ("waiting", 20)])
    assert retell.max_live == 40 and len(retell.created_calls()) == 40


async def test_the_global_cap_bounds_a_campaign_too(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await start(**FAST, CALLBOT_MAX_CONCURRENT_CALLS=7)
    content, _ = contacts_csv(20)
    preview = await submit(server, slack, content, concurrency=15)
    await press(server, slack, "campaign_start", preview)
    await eventually(lambda: retell.live_now == 7, timeout=15)
    # The rows turned away by the cap wait for a place; they are not failed or counted.
    await eventually(lambda: db_rows(server, "SELECT count(*) FROM campaign_rows "
                                             "WHERE status = 'waiting' AND attempts = 0")
                     == [(13,)])
    assert retell.max_live == 7
    assert db_rows(server, "SELECT count(*) FROM campaign_rows WHERE status = 'done'") == [(0,)]


async def test_results_slack_would_not_take_are_posted_by_the_results_button(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await start(**FAST)
    content, _ = contacts_csv(3)
    preview = await submit(server, slack, content)
    slack.fail("files.getUploadURLExternal", "internal_error", times=1)
    await press(server, slack, "campaign_start", preview)
    callees = Callees(server.url, retell, lambda to, attempt: None)
    await eventually(lambda: len(retell.created_calls()) == 3)
    await callees.end_all()
    await eventually(lambda: db_rows(server, "SELECT status FROM campaigns") == [("done",)])
    await eventually(lambda: bool(slack.calls_to("files.getUploadURLExternal")))
    assert slack.uploaded(CHANNEL) == []
    # Said in one line; the runner goes on (no failed pass).
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    assert any("campaign results not posted" in r.getMessage() for r in caplog.records)
    card = slack.message(CHANNEL, preview["ts"])
    assert card is not None
    await press(server, slack, "campaign_results", card)
    await slack.wait_for(lambda: len(slack.uploaded(CHANNEL)) == 1, timeout=10)
    assert len(uploaded_results(slack)) == 3


async def test_the_modal_offers_retells_free_concurrency_up_to_five(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await start(**FAST)

    async def offered() -> str:
        view = await open_campaign_modal(server, slack)
        [block] = [b for b in view["blocks"] if b.get("block_id") == BLOCK_CAMPAIGN_CONCURRENCY]
        return str(block["element"]["initial_value"])

    retell.concurrency_limit = 20
    assert await offered() == "5"  # 20 free: five at most
    retell.concurrency_overrides = {"current_concurrency": 18}
    assert await offered() == "2"  # what Retell has free now
    retell.concurrency_overrides = {"current_concurrency": 25}
    assert await offered() == "1"  # over its limit: one, never none
    retell.concurrency_overrides = {"current_concurrency": 18}
    retell.fail_next("/get-concurrency", 500, times=10)
    assert await offered() == "5"  # Retell does not say (2 are free): five
    retell.clear_rules()
    # What the modal offered is what the campaign keeps when it is left as it is.
    retell.concurrency_overrides = {"current_concurrency": 17}
    kept = int(await offered())
    content, _ = contacts_csv(3)
    await submit(server, slack, content, concurrency=kept)
    assert db_rows(server, "SELECT concurrency FROM campaigns") == [(3,)]


async def test_nothing_is_placed_before_the_start_time(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await start(**FAST)
    later, _ = contacts_csv(3)
    begins = int(time.time()) + 3600
    first = await submit(server, slack, later, name="Later", start_at=begins)
    assert f"Calls begin <!date^{begins}^" in card_now(slack, first["ts"])
    await press(server, slack, "campaign_start", first)
    # A second campaign, with no start time, started after it: once its calls are placed,
    # the runner has been over both.
    second = await submit(server, slack, b"phone\n+14155559001\n+14155559002\n", name="Now")
    await press(server, slack, "campaign_start", second)
    await eventually(lambda: len(retell.created_calls()) == 2)
    assert sorted(c["to_number"] for c in retell.created_calls()) == \
        ["+14155559001", "+14155559002"]
    assert db_rows(server, "SELECT c.status, r.status, count(*), sum(r.attempts) "
                           "FROM campaigns c JOIN campaign_rows r ON r.campaign_id = c.id "
                           "WHERE c.name = 'Later' GROUP BY 1, 2") == [("running", "waiting", 3, 0)]
    assert f"Calls begin <!date^{begins}^" in card_now(slack, first["ts"])
    # Its time comes (moved in the database, so the suite need not wait an hour).
    db_execute(server, "UPDATE campaigns SET start_at = ? WHERE name = 'Later'", time.time())
    await eventually(lambda: len(retell.created_calls()) == 5, timeout=10)


async def test_the_card_moves_at_most_every_few_seconds_and_at_once_on_a_button(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    server = await start(**{**FAST, "CALLBOT_CAMPAIGN_CARD_SECONDS": 600})
    content, _ = contacts_csv(4)
    preview = await submit(server, slack, content, name="Slow card", concurrency=1)
    await press(server, slack, "campaign_start", preview)
    callees = Callees(server.url, retell, lambda to, attempt: None)

    def placed(count: int) -> Callable[[], bool]:
        return lambda: len(retell.created_calls()) == count

    for count in range(1, 4):  # one at a time: each call that ends lets the next go
        await eventually(placed(count))
        await callees.end_all()
    await eventually(placed(4))
    assert db_rows(server, "SELECT count(*) FROM campaign_rows WHERE status = 'done'") \
        == [(3,)]
    # Three rows through, but the card was last drawn when the campaign began.
    card = slack.message(CHANNEL, preview["ts"])
    assert card is not None
    assert card["text"] == "Campaign Slow card: running, 0 of 4 rows through"
    # A button is a change of state: the card is drawn again at once.
    await press(server, slack, "campaign_pause", card)
    await eventually(lambda: (slack.message(CHANNEL, preview["ts"]) or {}).get("text")
                     == "Campaign Slow card: paused, 3 of 4 rows through")
