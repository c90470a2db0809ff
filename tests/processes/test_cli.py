"""Settings and the command line, run as operators run them: `python -m bot serve`."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.config import SettingsError, load_settings
from standins.retell import RetellStandIn
from standins.slack import SlackStandIn

pytestmark = pytest.mark.slow  # processes, faults with waits, or many examples

REQUIRED = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "RETELL_API_KEY", "RETELL_FROM_NUMBER")


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "RETELL_",
                                                                    "CALLBOT_", "DATABASE_"))}
    env.update(values)
    return env


def run_cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=30)


def test_missing_settings_exit_2_with_one_line_naming_all(tmp_path: Path) -> None:
    result = run_cli(tmp_path, clean_env(tmp_path), "serve")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in REQUIRED:
        assert name in lines[0]


def test_malformed_setting_is_named(tmp_path: Path) -> None:
    env = clean_env(tmp_path, SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s",
                    RETELL_API_KEY="k", RETELL_FROM_NUMBER="415-555", PORT="http",
                    DATABASE_URL="mysql://x/callbot")
    result = run_cli(tmp_path, env, "serve")
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line
    for name in ("RETELL_FROM_NUMBER", "PORT", "DATABASE_URL"):
        assert name in line
    assert "xoxb-1" not in line


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*REQUIRED, "RETELL_WEBHOOK_KEY", "CALLBOT_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text(
        "SLACK_BOT_TOKEN=xoxb-from-file\nSLACK_SIGNING_SECRET=s\nRETELL_API_KEY=key_1\n"
        "RETELL_FROM_NUMBER=+14155550100\nCALLBOT_DEFAULT_REGION=gb\nRETELL_WEBHOOK_KEY=\n"
    )
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.slack_bot_token == "xoxb-from-file"
    assert settings.default_region == "GB"
    assert settings.webhook_key == "key_1"  # empty webhook key falls back to the API key
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.database_path == Path("./callbot.db")


def test_load_settings_reports_bad_region() -> None:
    with pytest.raises(SettingsError, match="CALLBOT_DEFAULT_REGION"):
        load_settings(_env_file=None, SLACK_BOT_TOKEN="x", SLACK_SIGNING_SECRET="s",
                      RETELL_API_KEY="k", RETELL_FROM_NUMBER="+14155550100",
                      CALLBOT_DEFAULT_REGION="XX")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_answers_healthz_and_stops_on_sigterm(tmp_path: Path) -> None:
    async with SlackStandIn() as slack, RetellStandIn() as retell:
        port = free_port()
        env = clean_env(
            tmp_path, SLACK_BOT_TOKEN=slack.token, SLACK_SIGNING_SECRET="s",
            SLACK_API_URL=slack.api_url, RETELL_API_KEY=retell.api_key,
            RETELL_FROM_NUMBER="+14155550100", RETELL_BASE_URL=retell.url,
            DATABASE_URL=f"sqlite:///{tmp_path}/data/c.db", HOST="127.0.0.1", PORT=str(port),
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "serve", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            async with httpx.AsyncClient() as http:
                while True:
                    try:
                        resp = await http.get(f"http://127.0.0.1:{port}/healthz")
                        break
                    except httpx.TransportError:
                        assert time.monotonic() < deadline, "server never answered"
                        assert proc.returncode is None, "server exited"
                        await asyncio.sleep(0.05)
            assert resp.status_code == 200 and resp.json()["status"] == "ok"
            assert (tmp_path / "data" / "c.db").exists()
        finally:
            proc.terminate()
            out, _ = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0
        log = out.decode()
        assert "GET /healthz 200" in log
        assert retell.api_key not in log and slack.token not in log
