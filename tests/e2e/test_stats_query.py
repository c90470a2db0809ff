"""`/callstats` with filters, breakdowns, extracted fields, a chart and exports, through the
real server. The history is seeded through the store (as an import would) on the server's
own file; the person's time zone comes from the Slack stand-in (America/New_York)."""

from __future__ import annotations

import csv
import io
import json
import struct
import time
from typing import Any

import pytest

from standins.slack import SlackStandIn
from storage.models import STAGE_ANALYZED, CallRecord
from tests.conftest import USER, Server, StartServer
from tests.support.stores import store_for
from tests.support.waiting import eventually

# Whole real servers (or databases) per test: the full suite runs them; the fast lane
# (`-m "not slow"`) leaves them out.
pytestmark = pytest.mark.slow


ADMIN = "U0ADMIN"
NOW = time.time()
HOUR = 3600.0


def call(n: int, hours_ago: float, **kw: Any) -> CallRecord:
    at = NOW - hours_ago * HOUR
    base: dict[str, Any] = dict(
        id=0, call_id=f"call_{n:04d}", direction="outbound", status="ended",
        stage=STAGE_ANALYZED, created_at=at, updated_at=at, user_id=USER, channel_id="C1",
        agent_id="agent_a", agent_name="Sales", to_number=f"+1415555{n:04d}",
        duration_ms=90_000, disconnection_reason="user_hangup", sentiment="Positive",
        successful=True, cost_cents=12.0, latency_ms=900.0, summary=f"Summary {n}",
        extracted={"will_attend": n % 2 == 0, "score": n % 5})
    base.update(kw)
    return CallRecord(**base)


HISTORY = [
    *(call(i, 2 + i) for i in range(10)),                           # this week, Sales, mine
    *(call(100 + i, 5 + i, agent_id="agent_b", agent_name="Survey", user_id="U0BOB",
           successful=False) for i in range(4)),                    # this week, Survey, Bob's
    call(200, 30, duration_ms=0, disconnection_reason="dial_no_answer", successful=None,
         sentiment=None, extracted={}),                             # no answer
    *(call(300 + i, 24 * 9 + i) for i in range(6)),                 # the week before
]


async def seeded(start: StartServer, **settings: Any) -> Server:
    server = await start(CALLBOT_ADMINS=ADMIN, **settings)
    async with store_for(server.settings.database_url) as store:
        assert await store.import_calls(HISTORY) == len(HISTORY)
    return server


def dm(user: str) -> str:
    """The DM channel id the Slack stand-in's conversations.open gives for `user`."""
    return "D" + user.lstrip("UW")


def text_of(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False)


async def ask(server: Server, slack: SlackStandIn, text: str, user: str = USER) -> str:
    status, body = await server.slash("/callstats", text, user=user,
                                      response_url=slack.response_url("s"))
    assert status == 200
    return text_of(body)


async def test_filters_narrow_the_figures_and_the_week_before_is_compared(
    start: StartServer, slack: SlackStandIn
) -> None:
    server = await seeded(start)
    week = await ask(server, slack, "7d")
    assert "*Calls*\\n15" in week and "(was 6)" in week  # 15 this week, 6 the week before
    sales = await ask(server, slack, "7d agent:sales")
    assert "*Calls*\\n11" in sales and "agent: sales" in sales
    bob = await ask(server, slack, "outcome:failed user:<@U0BOB|bob> 7d")
    assert "*Calls*\\n4" in bob and "<@U0BOB>" in bob
    none = await ask(server, slack, "7d direction:in")
    assert "No calls in the last 7 days match these filters." in none
    unknown = await ask(server, slack, "campaign:nope")
    assert "nope" in unknown
    bad = await ask(server, slack, "7d 30d")
    assert "Usage: `/callstats" in bad


async def test_a_breakdown_by_agent_and_by_user_and_the_extracted_fields(
    start: StartServer, slack: SlackStandIn
) -> None:
    server = await seeded(start)
    by_agent = await ask(server, slack, "7d by:agent")
    assert "Sales" in by_agent and "Survey" in by_agent
    by_user = await ask(server, slack, "7d by:user")
    assert f"<@{USER}>" in by_user and "<@U0BOB>" in by_user
    fields = await ask(server, slack, "7d fields:will_attend")
    assert "will" in fields and "score" not in fields


@pytest.mark.slow
async def test_the_chart_and_the_exports_arrive_by_direct_message(
    start: StartServer, slack: SlackStandIn
) -> None:
    server = await seeded(start)
    await ask(server, slack, "30d chart")
    await eventually(lambda: any(u["name"] == "callstats.png"
                                 for u in slack.uploaded(dm(USER))), timeout=15)
    [png] = [u["content"] for u in slack.uploaded(dm(USER))
             if u["name"] == "callstats.png"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (800, 360)

    # Not an admin: the export holds only the person's own calls, and says so.
    await ask(server, slack, "30d export")
    await eventually(lambda: any(u["name"].endswith(".csv")
                                 for u in slack.uploaded(dm(USER))), timeout=15)
    [mine] = [u for u in slack.uploaded(dm(USER)) if u["name"].endswith(".csv")]
    rows = list(csv.DictReader(io.StringIO(mine["content"].decode("utf-8"))))
    expected = sorted((c for c in HISTORY
                       if c.user_id == USER and c.created_at >= NOW - 30 * 86400),
                      key=lambda c: c.created_at)
    assert [r["call_id"] for r in sorted(rows, key=lambda r: r["time_utc"])] == \
        [c.call_id for c in expected]
    by_id = {r["call_id"]: r for r in rows}
    for c in expected:
        row = by_id[c.call_id]
        assert row["number"].endswith(c.to_number[-4:]) and "555" not in row["number"]
        assert row["summary"] == c.summary and row["agent"] == c.agent_name
        assert row["field:score"] == ("" if not c.extracted else str(c.extracted["score"]))
    assert "Only your own calls" in (mine["initial_comment"] or "")

    # An admin gets everyone's, as JSON lines.
    await ask(server, slack, "30d export:jsonl", user=ADMIN)
    await eventually(lambda: any(u["name"].endswith(".jsonl")
                                 for u in slack.uploaded(dm(ADMIN))), timeout=15)
    [lines] = [u for u in slack.uploaded(dm(ADMIN)) if u["name"].endswith(".jsonl")]
    records = [json.loads(line) for line in lines["content"].decode().splitlines()]
    assert sorted(r["call_id"] for r in records) == sorted(c.call_id for c in HISTORY)
    assert all(r["number"] and "555" not in r["number"] for r in records)
