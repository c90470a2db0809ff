"""`callbot check`'s checks against stand-ins that answer each failure, and the all-good case.

The real checks (bot/setup/check.py) run with the real AsyncWebClient and RetellClient,
pointed at the Slack and Retell stand-ins over loopback HTTP by SLACK_API_URL and
RETELL_BASE_URL, as `callbot check` points them at the live services.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.setup.check import (
    HISTORY_SCOPES,
    NOTIFY_CHANNEL,
    RETELL_AGENT,
    RETELL_FROM_NUMBER,
    RETELL_KEY,
    RETELL_WEBHOOK,
    SLACK_SCOPES,
    SLACK_SIGNING_SECRET,
    SLACK_SOCKET_MODE,
    SLACK_TOKEN,
    CheckResult,
    all_passed,
    format_results,
    redact,
    run_checks,
    secrets_of,
)
from standins.retell import RetellStandIn
from standins.slack import DEFAULT_SCOPES, SlackStandIn
from standins.socket_mode import SocketModeStandIn
from tests.conftest import SIGNING_SECRET, make_settings

ROOT = Path(__file__).resolve().parents[2]

PUBLIC = "https://calls.acme.test"
WEBHOOK = PUBLIC + "/retell/webhook"
SALES = "agent_abc1f3d2e4b5a6c7d8e9f0a1"  # the stand-in's first agent, bound to +14155550100
SUPPORT_LINE = "+14155550199"  # the stand-in's number with no outbound agent


async def check(slack: SlackStandIn, retell: RetellStandIn, db_path: Path,
                **settings: Any) -> dict[str, CheckResult]:
    results = await run_checks(make_settings(slack, retell, db_path, **settings))
    keys = [r.key for r in results]
    assert len(keys) == len(set(keys)), keys
    return {r.key: r for r in results}


def problems(results: dict[str, CheckResult]) -> list[str]:
    return [key for key, r in results.items() if not r.ok]


async def test_all_good_passes_every_check(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    retell.agents[0]["webhook_url"] = WEBHOOK
    results = await check(slack, retell, db_path, CALLBOT_PUBLIC_URL=PUBLIC + "/",
                          RETELL_AGENT_ID=SALES, CALLBOT_NOTIFY_CHANNEL="C0NOTIFY")
    assert problems(results) == []
    assert all_passed(results.values())
    assert list(results) == [SLACK_TOKEN, SLACK_SCOPES, SLACK_SIGNING_SECRET, NOTIFY_CHANNEL,
                             RETELL_KEY, RETELL_FROM_NUMBER, RETELL_AGENT,
                             f"{RETELL_WEBHOOK}:{SALES}"]
    assert results[SLACK_TOKEN].detail == "team Test Team (T0TEST), bot user @callbot (U0BOT)"
    assert results[SLACK_SCOPES].detail == (
        f"all {len(DEFAULT_SCOPES)} that manifest.yml asks for are granted")
    assert results[NOTIFY_CHANNEL].detail == "#channel-c0notify: the bot is a member"
    assert results[RETELL_FROM_NUMBER].detail == (
        f"+1 415 ••• 0100 is in the account; outbound agent Sales Follow-up ({SALES})")
    assert results[f"{RETELL_WEBHOOK}:{SALES}"].detail == f"sends webhooks to {WEBHOOK}"
    assert not any(r.skipped for r in results.values())
    # One auth.test answers both the token and its scopes.
    assert len(slack.calls_to("auth.test")) == 1
    assert [r.path for r in retell.requests] == [
        "/v2/list-agents", "/v2/list-phone-numbers", f"/get-agent/{SALES}"]
    assert format_results(list(results.values()))[-1] == "Everything needed passes."


async def test_what_is_not_set_is_skipped_and_passes(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    results = await check(slack, retell, db_path)
    assert problems(results) == []
    skipped = {k: r.detail for k, r in results.items() if r.skipped}
    assert skipped == {
        NOTIFY_CHANNEL: "CALLBOT_NOTIFY_CHANNEL not set: calls not started from Slack get "
                        "no card",
        RETELL_AGENT: "not set: the agent bound to RETELL_FROM_NUMBER answers",
        RETELL_WEBHOOK: "CALLBOT_PUBLIC_URL not set: the agents' webhook URLs not compared",
    }
    assert "/get-agent/" not in str([r.path for r in retell.requests])


async def test_an_invalid_token_fails_and_what_needs_it_is_not_asked(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    results = await check(slack, retell, db_path, SLACK_BOT_TOKEN="xoxb-revoked",
                          CALLBOT_NOTIFY_CHANNEL="C0NOTIFY")
    assert problems(results) == [SLACK_TOKEN]
    token = results[SLACK_TOKEN]
    assert token.detail == "Slack refused SLACK_BOT_TOKEN (invalid_auth)"
    assert "OAuth & Permissions" in token.fix and not token.transient
    assert results[SLACK_SCOPES].skipped and results[NOTIFY_CHANNEL].skipped
    assert slack.calls_to("conversations.info") == []


async def test_a_revoked_token_says_to_reinstall(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    slack.fail("auth.test", "token_revoked")
    results = await check(slack, retell, db_path)
    assert results[SLACK_TOKEN].detail == "Slack refused SLACK_BOT_TOKEN (token_revoked)"
    assert "reinstall the app" in results[SLACK_TOKEN].fix


async def test_a_missing_scope_is_named(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    slack.scopes = [s for s in DEFAULT_SCOPES if s not in ("files:write", "im:write")]
    slack.scopes.append("users:read.email")  # more than asked for is no problem
    results = await check(slack, retell, db_path)
    assert problems(results) == [SLACK_SCOPES]
    assert results[SLACK_SCOPES].detail == "missing files:write, im:write"
    assert "reinstall the app" in results[SLACK_SCOPES].fix


async def test_the_smaller_manifests_scopes_pass_and_say_what_is_off(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    """An app made from manifest.no-history.yml lacks exactly the history scopes: that is a
    choice, not a problem; one history scope too few on top of another gap still fails."""
    smaller = yaml.safe_load((ROOT / "manifest.no-history.yml").read_text())
    slack.scopes = list(smaller["oauth_config"]["scopes"]["bot"])
    results = await check(slack, retell, db_path)
    assert SLACK_SCOPES not in problems(results)
    assert "message triggers" in results[SLACK_SCOPES].detail
    slack.scopes = [s for s in slack.scopes if s != "files:write"]
    results = await check(slack, retell, db_path)
    assert problems(results) == [SLACK_SCOPES]
    assert "files:write" in results[SLACK_SCOPES].detail


def test_the_history_scopes_are_what_the_smaller_manifest_leaves_out() -> None:
    def scopes(name: str) -> set[str]:
        return set(yaml.safe_load((ROOT / name).read_text())["oauth_config"]["scopes"]["bot"])

    assert scopes("manifest.yml") - scopes("manifest.no-history.yml") == HISTORY_SCOPES


async def test_a_slack_that_lists_no_scopes_is_not_taken_for_a_problem(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    slack.scopes = None
    results = await check(slack, retell, db_path)
    assert results[SLACK_SCOPES].skipped and results[SLACK_SCOPES].ok
    assert results[SLACK_SCOPES].detail == "not checked: Slack did not list the token's scopes"


async def test_an_unreachable_slack_is_a_transient_problem(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    slack.http_error("auth.test", 503)
    results = await check(slack, retell, db_path)
    token = results[SLACK_TOKEN]
    assert (token.ok, token.transient) == (False, True)
    assert token.detail == "Slack did not answer auth.test (http_503)"


async def test_an_unknown_number_fails_and_names_the_accounts_numbers_masked(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    results = await check(slack, retell, db_path, RETELL_FROM_NUMBER="+14155550123")
    assert problems(results) == [RETELL_FROM_NUMBER]
    found = results[RETELL_FROM_NUMBER]
    assert found.detail == "+1 415 ••• 0123 is not one of the account's 2 number(s)"
    assert "(+1 415 ••• 0100, +1 415 ••• 0199)" in found.fix
    assert "4155550" not in found.detail + found.fix


async def test_a_number_without_an_outbound_agent_fails_unless_an_agent_is_set(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    results = await check(slack, retell, db_path, RETELL_FROM_NUMBER=SUPPORT_LINE)
    assert problems(results) == [RETELL_FROM_NUMBER]
    assert results[RETELL_FROM_NUMBER].detail == (
        "+1 415 ••• 0199 has no outbound agent: a /call naming no agent cannot be placed")
    results = await check(slack, retell, db_path, RETELL_FROM_NUMBER=SUPPORT_LINE,
                          RETELL_AGENT_ID=SALES)
    assert problems(results) == []
    assert "calls use RETELL_AGENT_ID" in results[RETELL_FROM_NUMBER].detail


async def test_outbound_agents_are_read_as_retell_lists_them(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    """Retell's numbers carry `outbound_agents` (a weighted list), not `outbound_agent_id`."""
    survey = retell.agents[2]["agent_id"]
    number = retell.phone_numbers[1]
    del number["outbound_agent_id"]
    number["outbound_agents"] = [{"agent_id": survey, "agent_version": 1, "weight": 1}]
    results = await check(slack, retell, db_path, RETELL_FROM_NUMBER=SUPPORT_LINE)
    assert problems(results) == []
    assert results[RETELL_FROM_NUMBER].detail.endswith(f"outbound agent Survey Bot ({survey})")


async def test_an_unknown_agent_id_fails(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    results = await check(slack, retell, db_path, RETELL_AGENT_ID="agent_gone")
    assert problems(results) == [RETELL_AGENT]
    assert results[RETELL_AGENT].detail == "agent_gone is not an agent of this Retell account"


async def test_an_agent_webhook_pointing_elsewhere_fails_with_the_url_to_set(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    retell.agents[0]["webhook_url"] = "https://old-host.acme.test/hooks?token=s3cret"
    support = retell.agents[1]["agent_id"]  # the inbound agent of +14155550100
    retell.phone_numbers[0]["inbound_agents"] = [{"agent_id": support, "weight": 1}]
    retell.agents[1]["webhook_url"] = WEBHOOK + "/"
    results = await check(slack, retell, db_path, CALLBOT_PUBLIC_URL=PUBLIC)
    assert problems(results) == [f"{RETELL_WEBHOOK}:{SALES}"]
    wrong = results[f"{RETELL_WEBHOOK}:{SALES}"]
    assert wrong.name == f"Retell webhook of Sales Follow-up ({SALES})"
    # The query (where a secret may be) is not shown.
    assert wrong.detail == f"sends webhooks to https://old-host.acme.test/hooks, not to {WEBHOOK}"
    assert wrong.fix.startswith(f"set the agent's webhook URL in Retell to {WEBHOOK}")
    assert results[f"{RETELL_WEBHOOK}:{support}"].ok


async def test_an_agent_without_its_own_webhook_url_passes_with_a_note(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    results = await check(slack, retell, db_path, CALLBOT_PUBLIC_URL=PUBLIC)
    found = results[f"{RETELL_WEBHOOK}:{SALES}"]
    assert found.ok and not found.skipped
    assert "the account's applies" in found.detail and WEBHOOK in found.detail


async def test_a_refused_retell_key_fails_and_the_rest_of_retell_is_skipped(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    results = await check(slack, retell, db_path, RETELL_API_KEY="key_revoked",
                          CALLBOT_PUBLIC_URL=PUBLIC)
    assert problems(results) == [RETELL_KEY]
    assert results[RETELL_KEY].detail == (
        "Retell refused RETELL_API_KEY (HTTP 401: Invalid API key)")
    assert all(results[k].skipped for k in (RETELL_FROM_NUMBER, RETELL_AGENT, RETELL_WEBHOOK))
    assert [r.path for r in retell.requests] == ["/v2/list-agents"]


async def test_an_unreachable_retell_is_a_transient_problem(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    retell.fail_next("/v2/list-agents", 503)
    results = await check(slack, retell, db_path)
    key = results[RETELL_KEY]
    assert (key.ok, key.transient) == (False, True)
    assert key.detail == "Retell did not answer list-agents (HTTP 503: Service unavailable)"


async def test_simulated_retell_is_skipped_without_a_request(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    results = await check(slack, retell, db_path, RETELL_MODE="simulate",
                          CALLBOT_PUBLIC_URL=PUBLIC)
    retell_side = [r for r in results.values() if r.key.startswith("retell")]
    assert len(retell_side) == 4
    assert all(r.skipped and r.detail == "simulated: skipped" for r in retell_side)
    assert retell.requests == []


@pytest.mark.parametrize(("channel", "setup", "detail", "fix"), [
    ("G0SECRET", {"is_member": False},
     "#channel-g0secret is private and the bot is not in it", "/invite @callbot in"),
    ("C0ARCHIVE", {"is_archived": True}, "#channel-c0archive is archived", "unarchive it"),
])
async def test_a_notify_channel_the_bot_cannot_post_in_fails(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path,
    channel: str, setup: dict[str, Any], detail: str, fix: str,
) -> None:
    slack.channels[channel] = setup
    results = await check(slack, retell, db_path, CALLBOT_NOTIFY_CHANNEL=channel)
    assert problems(results) == [NOTIFY_CHANNEL]
    assert results[NOTIFY_CHANNEL].detail == detail
    assert results[NOTIFY_CHANNEL].fix.startswith(fix)


async def test_a_public_channel_needs_membership_or_chat_write_public(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    slack.not_member("C0PUBLIC")
    results = await check(slack, retell, db_path, CALLBOT_NOTIFY_CHANNEL="C0PUBLIC")
    assert problems(results) == []
    assert results[NOTIFY_CHANNEL].detail == (
        "#channel-c0public: public; the bot posts without joining (chat:write.public)")
    assert slack.scopes is not None
    slack.scopes.remove("chat:write.public")
    results = await check(slack, retell, db_path, CALLBOT_NOTIFY_CHANNEL="C0PUBLIC")
    assert problems(results) == [SLACK_SCOPES, NOTIFY_CHANNEL]
    assert results[NOTIFY_CHANNEL].detail == (
        "#channel-c0public: the bot is not a member and chat:write.public is not granted")


async def test_an_unknown_notify_channel_fails(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    slack.fail("conversations.info", "channel_not_found")
    results = await check(slack, retell, db_path, CALLBOT_NOTIFY_CHANNEL="C0NOWHERE")
    assert problems(results) == [NOTIFY_CHANNEL]
    assert results[NOTIFY_CHANNEL].detail == (
        "Slack knows no channel C0NOWHERE that the bot can see")


@pytest.mark.parametrize(("member", "private", "ok", "detail"), [
    (True, False, True, "C0FALLBACK: the bot is a member"),
    (False, False, True, "C0FALLBACK: public; the bot posts without joining "
                         "(chat:write.public)"),
    (False, True, False, "Slack knows no channel C0FALLBACK that the bot can see"),
])
async def test_without_channels_read_the_channels_history_tells(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path,
    member: bool, private: bool, ok: bool, detail: str,
) -> None:
    """manifest.yml asks for no channels:read, which conversations.info needs: Slack then
    answers missing_scope, and conversations.history (history scopes) tells instead."""
    slack.fail("conversations.info", "missing_scope")
    slack.channels["C0FALLBACK"] = {"is_member": member, "is_private": private}
    results = await check(slack, retell, db_path, CALLBOT_NOTIFY_CHANNEL="C0FALLBACK")
    assert (results[NOTIFY_CHANNEL].ok, results[NOTIFY_CHANNEL].detail) == (ok, detail)
    assert [c.args.get("limit") for c in slack.calls_to("conversations.history")] == ["1"]


async def test_socket_mode_opens_a_connection_with_the_app_token(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    async with SocketModeStandIn(slack, app_token="xapp-1-A0APP-good") as sm:
        results = await check(slack, retell, db_path, SLACK_APP_TOKEN=sm.app_token,
                              SLACK_SIGNING_SECRET=None)
        assert problems(results) == []
        assert SLACK_SIGNING_SECRET not in results
        assert results[SLACK_SOCKET_MODE].detail == (
            "SLACK_APP_TOKEN opens a Socket Mode connection")
        assert len(sm.tickets) == 1

        results = await check(slack, retell, db_path, SLACK_APP_TOKEN="xapp-1-A0APP-wrong",
                              SLACK_SIGNING_SECRET=None)
        assert problems(results) == [SLACK_SOCKET_MODE]
        assert results[SLACK_SOCKET_MODE].detail == (
            "Slack refused SLACK_APP_TOKEN (invalid_auth)")
        assert "connections:write" in results[SLACK_SOCKET_MODE].fix


async def test_no_secret_is_shown_even_when_a_service_echoes_it(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path
) -> None:
    settings = make_settings(slack, retell, db_path)
    retell.fail_next("/v2/list-agents", 401, f"Invalid API key {retell.api_key}")
    lines = format_results(await run_checks(settings))
    shown = "\n".join(redact(line, secrets_of(settings)) for line in lines)
    assert "Retell refused RETELL_API_KEY (HTTP 401: Invalid API key [redacted])" in shown
    for secret in (slack.token, SIGNING_SECRET, retell.api_key):
        assert secret not in shown
