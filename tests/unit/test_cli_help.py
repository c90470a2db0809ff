"""`callbot --help`, each subcommand's `--help` and `--version` say what they do and read."""

from __future__ import annotations

import importlib.metadata

import pytest

from bot.cli import main


def help_of(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as done:
        main([*args, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_top_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_of(capsys)
    for command in ("serve", "demo", "check", "--version"):
        assert command in text


@pytest.mark.parametrize(("command", "settings"), [
    ("serve", ["SLACK_BOT_TOKEN", "RETELL_API_KEY", "RETELL_MODE", "DATABASE_URL", "PORT"]),
    ("check", ["SLACK_BOT_TOKEN", "RETELL_API_KEY", "CALLBOT_PUBLIC_URL",
               "CALLBOT_NOTIFY_CHANNEL"]),
    ("demo", ["Reads no settings", "--language"]),
])
def test_each_subcommand_says_what_it_reads(capsys: pytest.CaptureFixture[str], command: str,
                                            settings: list[str]) -> None:
    text = help_of(capsys, command)
    for name in settings:
        assert name in text, name


def test_version_is_the_installed_packages(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == \
        f"callbot {importlib.metadata.version('retell-slack-callbot')}"
