"""`serve` checks its own set-up: the checks of `callbot check` run in the background after
start-up, each problem is one WARNING line (once, not per health check), and /healthz shows
them; a Slack request signed with another secret says so in one rate-limited WARNING."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from bot.app import SETUP_CHECKS
from bot.http import edge
from standins.retell import RetellStandIn
from standins.slack import DEFAULT_SCOPES, SlackStandIn
from standins.socket_mode import SocketModeStandIn
from tests.conftest import HEALTHY_IDLE, Server, StartServer, command_form, slack_headers
from tests.support.waiting import eventually

SETUP_LOGGER = "bot.setup"


def warnings(caplog: pytest.LogCaptureFixture, logger: str = SETUP_LOGGER) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == logger and r.levelno == logging.WARNING]


async def test_problems_are_logged_once_each_and_shown_in_healthz(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slack.scopes = [s for s in DEFAULT_SCOPES if s != "files:write"]
    slack.channels["G0SECRET"] = {"is_member": False}
    with caplog.at_level(logging.INFO):
        server = await start(CALLBOT_NOTIFY_CHANNEL="G0SECRET",
                             RETELL_FROM_NUMBER="+14155550199")
        status, body = await server.get("/healthz")
        # Set-up problems are shown, but the instance stays in service (webhooks go on).
        assert (status, body["status"], body["slack"]) == (200, "ok", "ok")
        assert body["checks"] == {"state": "problems", "problems": {
            "slack_scopes": "missing files:write",
            "notify_channel": "#channel-g0secret is private and the bot is not in it",
            "retell_from_number": "+1 415 ••• 0199 has no outbound agent: a /call naming no "
                                  "agent cannot be placed",
        }}
        assert (await server.get("/healthz"))[1]["checks"] == body["checks"]
    logged = warnings(caplog)
    assert sorted(logged) == sorted([
        "set-up problem: Slack scopes: missing files:write; fix: add them under OAuth & "
        "Permissions > Bot Token Scopes (or paste manifest.yml into the app's manifest), "
        "reinstall the app, and put the new token in SLACK_BOT_TOKEN if it changed",
        "set-up problem: Notify channel: #channel-g0secret is private and the bot is not in "
        "it; fix: /invite @callbot in #channel-g0secret",
        "set-up problem: RETELL_FROM_NUMBER: +1 415 ••• 0199 has no outbound agent: a /call "
        "naming no agent cannot be placed; fix: pick its outbound call agent under Phone "
        "Numbers in Retell, or set RETELL_AGENT_ID",
    ])
    # The token check is the start-up auth.test, not a second one.
    assert len(slack.calls_to("auth.test")) == 1


async def test_a_good_set_up_logs_no_warning(
    server: Server, slack: SlackStandIn, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        assert await server.get("/healthz") == HEALTHY_IDLE
    assert warnings(caplog) == []
    results = server.runner.app[SETUP_CHECKS].results if server.runner else []
    assert [r.key for r in results] == ["slack_token", "slack_scopes", "slack_signing_secret",
                                        "notify_channel", "retell_key", "retell_from_number",
                                        "retell_agent", "retell_webhook"]


async def test_a_refused_token_is_a_problem_in_healthz(
    start: StartServer, slack: SlackStandIn,
) -> None:
    server = await start(SLACK_BOT_TOKEN="xoxb-revoked")
    status, body = await server.get("/healthz")
    assert (status, body["slack"]) == (200, "invalid_auth")
    assert body["checks"] == {"state": "problems", "problems": {
        "slack_token": "Slack refused SLACK_BOT_TOKEN (invalid_auth)"}}


@pytest.mark.slow
async def test_a_retell_outage_at_start_up_is_asked_again_until_it_passes(
    start: StartServer, retell: RetellStandIn, caplog: pytest.LogCaptureFixture,
) -> None:
    retell.fail_next("/v2/list-agents", 503)
    with caplog.at_level(logging.INFO):
        server = await start()
        _, body = await server.get("/healthz")
        assert body["checks"] == {"state": "problems", "problems": {
            "retell_key": "Retell did not answer list-agents (HTTP 503: Service unavailable)"}}
        ctx_checks = server.runner.app[SETUP_CHECKS] if server.runner else None
        assert ctx_checks is not None
        await eventually(lambda: ctx_checks.report()["state"] == "ok", timeout=10)
    assert (await server.get("/healthz")) == HEALTHY_IDLE
    assert len(warnings(caplog)) == 1
    assert any(r.getMessage().startswith("set-up: Retell API key passes now: accepted")
               for r in caplog.records)
    assert [r.path for r in retell.requests].count("/v2/list-agents") == 2


async def test_socket_mode_is_checked_by_the_servers_own_connection(
    start: StartServer, slack: SlackStandIn,
) -> None:
    async with SocketModeStandIn(slack, app_token="xapp-1-A0APP-serve") as sm:
        server = await start(SLACK_APP_TOKEN=sm.app_token, SLACK_SIGNING_SECRET=None)
        await sm.connected()
        checks = server.runner.app[SETUP_CHECKS] if server.runner else None
        assert checks is not None
        await eventually(lambda: checks.report()["state"] == "ok")
        assert {r.key: r.detail for r in checks.results}["slack_socket_mode"] == (
            "SLACK_APP_TOKEN opens a Socket Mode connection")
        # No second apps.connections.open: the server's connection was the check.
        assert len(slack.calls_to("apps.connections.open")) == 1
        await server.stop()


# -- a Slack request signed with another secret -----------------------------------------------


@pytest.fixture
def mismatch_clock() -> Iterator[list[float]]:
    """The mismatch line's window on a clock the test moves (the limiter is module-wide)."""
    now = [1000.0]
    limiter = edge.SECRET_MISMATCH
    limiter.reset()
    before = limiter.clock
    limiter.clock = lambda: now[0]
    yield now
    limiter.reset()
    limiter.clock = before


async def test_a_wrong_signing_secret_logs_one_warning_a_minute_with_a_count(
    server: Server, slack: SlackStandIn, caplog: pytest.LogCaptureFixture,
    mismatch_clock: list[float],
) -> None:
    body = urlencode(command_form("/call", "+14155550123",
                                  response_url=slack.response_url("k"))).encode()
    with caplog.at_level(logging.INFO):
        for _ in range(30):
            status, _ = await server.post("/slack/events", body,
                                          slack_headers(body, secret="not-the-secret"))
            assert status == 401
        edge_lines = warnings(caplog, "bot.http.edge")
        assert edge_lines == [edge.SECRET_MISMATCH_LINE]
        assert "does not match SLACK_SIGNING_SECRET" in edge_lines[0]
        # A request refused for another reason still gets its own line.
        stale = slack_headers(body, timestamp=1_600_000_000)
        assert (await server.post("/slack/events", body, stale))[0] == 401
        assert warnings(caplog, "bot.http.edge")[1:] == [
            "refused POST /slack/events from 127.0.0.1: 401 invalid signature: stale timestamp"]
        # A minute later: the count of the ones not logged, then the line again.
        mismatch_clock[0] += 61.0
        assert (await server.post("/slack/events", body,
                                  slack_headers(body, secret="not-the-secret")))[0] == 401
    assert warnings(caplog, "bot.http.edge")[2:] == [
        "29 more 'slack signing secret' line(s) in the last 60 s, not logged",
        edge.SECRET_MISMATCH_LINE,
    ]
    assert slack.calls_to("chat.postMessage") == []
