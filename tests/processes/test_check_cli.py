"""`python -m bot check` as operators run it, against stand-ins started here: its exit codes
(0 all good, 1 a problem, 2 settings not usable) and an output with no secret in it; and
`serve` refusing .env.example's placeholder values."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from standins.retell import RetellStandIn
from standins.slack import DEFAULT_SCOPES, SlackStandIn
from tests.conftest import SIGNING_SECRET

pytestmark = pytest.mark.slow  # processes

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDERS = "SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, RETELL_API_KEY still hold the example value"


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "RETELL_", "CALLBOT_", "DATABASE_"))}
    env.update(PYTHONIOENCODING="utf-8", PYTHONPATH=str(ROOT))
    env.update(values)
    return env


def standin_env(slack: SlackStandIn, retell: RetellStandIn, **values: str) -> dict[str, str]:
    return clean_env(**{"SLACK_BOT_TOKEN": slack.token, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                        "SLACK_API_URL": slack.api_url, "RETELL_API_KEY": retell.api_key,
                        "RETELL_BASE_URL": retell.url, "RETELL_FROM_NUMBER": "+14155550100",
                        **values})


async def run(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """The command in its own process, without blocking the stand-ins in this loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
    assert "4155550100" not in text and "4155550123" not in text  # numbers are masked


async def test_all_good_exits_0_one_line_each(tmp_path: Path) -> None:
    async with SlackStandIn() as slack, RetellStandIn() as retell:
        retell.agents[0]["webhook_url"] = "https://calls.acme.test/retell/webhook"
        code, out, err = await run(tmp_path, standin_env(
            slack, retell, CALLBOT_PUBLIC_URL="https://calls.acme.test",
            CALLBOT_NOTIFY_CHANNEL="C0NOTIFY"), "check")
    assert (code, err) == (0, ""), out + err
    lines = out.splitlines()
    assert lines == [
        "✓ Slack token: team Test Team (T0TEST), bot user @callbot (U0BOT)",
        f"✓ Slack scopes: all {len(DEFAULT_SCOPES)} that manifest.yml asks for are granted",
        "✓ Slack signing secret: set; a Slack request it does not verify is logged as a "
        "WARNING",
        "✓ Notify channel: #channel-c0notify: the bot is a member",
        "✓ Retell API key: accepted; the account has 3 agent(s)",
        "✓ RETELL_FROM_NUMBER: +1 415 ••• 0100 is in the account; outbound agent Sales "
        "Follow-up (agent_abc1f3d2e4b5a6c7d8e9f0a1)",
        "– RETELL_AGENT_ID: not set: the agent bound to RETELL_FROM_NUMBER answers",
        "✓ Retell webhook of Sales Follow-up (agent_abc1f3d2e4b5a6c7d8e9f0a1): sends webhooks "
        "to https://calls.acme.test/retell/webhook",
        "Everything needed passes.",
    ]
    assert_no_secret(out, slack.token, SIGNING_SECRET, retell.api_key)


async def test_problems_exit_1_with_the_fix_and_no_secret(tmp_path: Path) -> None:
    async with SlackStandIn() as slack, RetellStandIn() as retell:
        slack.scopes = [s for s in DEFAULT_SCOPES if s != "files:write"]
        # A Retell that echoes the key it refused: the output still does not show it.
        retell.fail_next("/v2/list-agents", 401, f"Invalid API key {retell.api_key}")
        env = standin_env(slack, retell, RETELL_FROM_NUMBER="+14155550123",
                          SLACK_APP_TOKEN="xapp-1-A0APP-unknown")
        code, out, err = await run(tmp_path, env, "check")
    assert (code, err) == (1, ""), out + err
    lines = out.splitlines()
    assert [line[0] for line in lines[:-1]] == ["✓", "✗", "✓", "✗", "–", "✗", "–", "–", "–"]
    assert "✗ Slack scopes: missing files:write; fix: add them under OAuth" in out
    assert "✗ Slack Socket Mode: Slack refused SLACK_APP_TOKEN (invalid_auth); fix:" in out
    assert ("✗ Retell API key: Retell refused RETELL_API_KEY (HTTP 401: Invalid API key "
            "[redacted]); fix: copy an API key") in out
    assert lines[-1] == "3 problem(s) to fix."
    assert_no_secret(out, slack.token, SIGNING_SECRET, retell.api_key, "xapp-1-A0APP-unknown")


async def test_a_terminal_without_unicode_gets_plain_marks(tmp_path: Path) -> None:
    async with SlackStandIn() as slack, RetellStandIn() as retell:
        env = standin_env(slack, retell, SLACK_BOT_TOKEN="xoxb-revoked",
                          PYTHONIOENCODING="ascii:backslashreplace")
        code, out, _ = await run(tmp_path, env, "check")
    assert code == 1
    assert out.splitlines()[0] == (
        "XX Slack token: Slack refused SLACK_BOT_TOKEN (invalid_auth); fix: copy the Bot User "
        "OAuth Token (xoxb-...) from the app's OAuth & Permissions page into SLACK_BOT_TOKEN")
    assert out.splitlines()[1].startswith("-- Slack scopes: not checked")


@pytest.mark.parametrize("command", ["serve", "check"])
async def test_env_example_placeholders_exit_2_naming_them(tmp_path: Path, command: str) -> None:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    code, out, err = await run(tmp_path, clean_env(), command)
    assert code == 2
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(f"callbot: {PLACEHOLDERS}"), line
    assert "ready" not in err
    assert not (tmp_path / "callbot.db").exists()  # nothing was started
