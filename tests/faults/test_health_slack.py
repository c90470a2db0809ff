"""The Slack token is checked once at start-up, in the background, and shown in `/healthz`.

Its answer warms Bolt's authorization cache, so a burst of commands does not each ask Slack's
`auth.test`. A bad token is shown (`slack: invalid_auth`) but keeps health at 200: taking the
instance out of a load balancer would not fix the token, and would stop Retell's webhooks
from being recorded. Slack being unreachable never holds up health or the webhook.
"""

from __future__ import annotations

import asyncio

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import HEALTHY_IDLE, MakeServer, Server
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow  # processes, faults with waits, or many examples

NUMBER = "+14155550123"


async def test_a_burst_of_commands_shares_one_auth_test(
    server: Server, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    assert await server.get("/healthz") == HEALTHY_IDLE  # the check has answered: ok
    answers = await asyncio.gather(*(
        server.slash("/call", NUMBER, user=f"U0B{i:02d}", response_url=slack.response_url(f"k{i}"))
        for i in range(20)))
    assert all(a == (200, None) for a in answers), answers
    await eventually(lambda: len([r for r in retell.requests
                                  if r.path == "/v2/create-phone-call"]) == 20, timeout=20)
    assert len(slack.calls_to("auth.test")) == 1


async def test_a_bad_token_is_reported_but_health_stays_up(
    make_server: MakeServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    srv = await make_server(SLACK_BOT_TOKEN="xoxb-revoked")
    status, body = await srv.get("/healthz")
    assert status == 200 and body["status"] == "ok"
    assert body["slack"] == "invalid_auth"
    # The database part still tells the truth on its own.
    assert body["outbox"] == {"backlog": 0, "oldest_age_seconds": 0.0}
    # Webhooks are still taken.
    call_id = retell.new_inbound_call("+442079460123", "+14155550100")
    got, _ = await retell.send_webhook(srv.url + "/retell/webhook",
                                       retell.event_body(call_id, "call_started"))
    assert got == 200
    assert len(slack.calls_to("auth.test")) == 1  # not asked again: a restart fixes it


async def test_a_slack_outage_is_reported_and_asked_again_until_it_passes(
    make_server: MakeServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    slack.http_error("auth.test", 503)  # the first answer only
    srv = await make_server()
    status, body = await srv.get("/healthz")
    assert status == 200 and body["status"] == "ok"
    assert body["slack"] in ("http_503", "ok"), body  # "ok" only if already asked again
    await slack.wait_for(lambda: len(slack.calls_to("auth.test")) == 2, timeout=10)
    assert await srv.get("/healthz") == HEALTHY_IDLE
    assert len(slack.calls_to("auth.test")) == 2


async def test_a_slack_that_never_answers_does_not_hold_up_health_or_webhooks(
    make_server: MakeServer, slack: SlackStandIn, retell: RetellStandIn
) -> None:
    slack.delay(30.0, methods=["auth.test"])
    srv = await make_server()
    status, body = await srv.get("/healthz")  # waits at most SLACK_FIRST_WAIT for it
    assert (status, body["status"], body["slack"]) == (200, "ok", "checking")
    call_id = retell.new_inbound_call("+442079460123", "+14155550100")
    got, _ = await retell.send_webhook(srv.url + "/retell/webhook",
                                       retell.event_body(call_id, "call_started"))
    assert got == 200
