"""NUL characters, which PostgreSQL's text cannot hold, in what Retell and people send.

Each is dropped on the way in, on both stores alike: a transcript or summary holding one is
stored and posted (on PostgreSQL it used to fail the write, so the call was never updated),
and a Slack text holding one reads as if it were not there.
"""

from __future__ import annotations

import json
import time

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from storage.models import Campaign, CampaignRow, DncEntry
from tests.conftest import USER, MakeServer, Server
from tests.support.db import db_rows as rows
from tests.support.stores import store_for
from tests.support.waiting import eventually
from tests.support.webhooks import placed_call, summaries


async def test_a_webhook_with_nul_characters_is_applied_and_posted(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    call_id = await placed_call(server, slack, retell)
    body = retell.event_body(call_id, "call_analyzed", transcript="Agent: hi\x00\nUser: yo\x00",
                             call_analysis={"call_summary": "Said\x00 yes."})
    assert "\\u0000" in body  # JSON carries it escaped, as Retell would
    status, _ = await retell.send_webhook(server.url + "/retell/webhook", body)
    assert status == 200
    await eventually(lambda: rows(server, "SELECT summary, transcript FROM calls "
                                          "WHERE call_id = ?", call_id)
                     == [("Said yes.", "Agent: hi\nUser: yo")])
    assert rows(server, "SELECT count(*) FROM webhook_inbox") == [(0,)]
    await eventually(lambda: bool(summaries(slack)))
    assert "Said yes." in json.dumps(summaries(slack))


async def test_slack_texts_with_nul_characters_read_as_without(
    make_server: MakeServer, slack: SlackStandIn
) -> None:
    server = await make_server(CALLBOT_ADMINS=USER)
    status, body = await server.slash("/calldnc", "add +1 415 555 01\x0023 asked\x00 twice",
                                      response_url=slack.response_url("dnc"))
    assert status == 200
    assert "is now on the do-not-call list" in json.dumps(body)
    assert rows(server, "SELECT number, reason FROM dnc") == [("+14155550123", "asked twice")]
    for command, text in (("/callsearch", "pri\x00ce"), ("/callstats", "7\x00d")):
        status, body = await server.slash(command, text, response_url=slack.response_url("q"))
        assert status == 200, (command, body)
        assert "\\u0000" not in json.dumps(body)


async def test_postgres_keeps_any_text_the_store_is_given_without_its_nul(pg_url: str) -> None:
    """Whatever reaches the PostgreSQL store with a NUL (a campaign's name, a reason, a list
    of numbers) is written without it instead of failing the write."""
    now = time.time()
    async with store_for(pg_url) as store:
        assert await store.dnc_add(DncEntry("+1415555\x000199", "by\x00 mail", USER, None, now))
        campaign_id = await store.create_campaign(
            Campaign(id=0, name="Spring\x00 renewals", owner=USER, channel_id="C0A1",
                     status="running", concurrency=1, attempts=1, retry_spacing=60.0,
                     created_at=now),
            [CampaignRow(id=0, campaign_id=0, line=2, number="+14155550100", status="waiting",
                         variables={"first\x00name": "Dana\x00"})], now)
        listed = await store.dnc_get("+14155550199")
        assert listed is not None and listed.reason == "by mail"
        campaign = await store.get_campaign(campaign_id)
        assert campaign is not None and campaign.name == "Spring renewals"
        [row] = await store.campaign_rows(campaign_id)
        assert row.variables == {"first\x00name": "Dana\x00"}  # JSON keeps it, escaped

