"""Values left from .env.example are refused by name; real and test values never are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.setup.placeholders import EXAMPLE_VALUES, placeholder_problem, placeholders
from tests.conftest import SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[2]
GOOD: dict[str, Any] = {
    "SLACK_BOT_TOKEN": "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx",
    "SLACK_SIGNING_SECRET": "8f742231b10e8888abcd99yyyzzz85a5",
    "RETELL_API_KEY": "key_0123456789abcdef0123456789ab",
    "RETELL_FROM_NUMBER": "+14155550100",
}


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields.values():
        if name.alias:
            monkeypatch.delenv(name.alias, raising=False)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **{**GOOD, **values})


def test_every_example_value_in_env_example_is_caught() -> None:
    example = Settings(_env_file=ROOT / ".env.example")
    found = placeholders(example)
    assert found == ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "RETELL_API_KEY"]
    text = (ROOT / ".env.example").read_text()
    for name, value in EXAMPLE_VALUES.items():
        assert f"\n{name}={value}\n" in text, f"{name}'s example value changed in .env.example"
    problem = placeholder_problem(example)
    assert problem is not None
    assert problem.startswith("SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, RETELL_API_KEY still hold")


@pytest.mark.parametrize(("name", "value"), [
    ("SLACK_BOT_TOKEN", "xoxb-your-token"),
    ("SLACK_SIGNING_SECRET", "YOUR_SIGNING_SECRET"),
    ("SLACK_APP_TOKEN", "xapp-your-app-token"),
    ("RETELL_API_KEY", "<your retell key>"),
    ("RETELL_WEBHOOK_KEY", "your-webhook-key"),
    ("RETELL_AGENT_ID", "agent_your_agent"),
    ("CALLBOT_PUBLIC_URL", "https://callbot.example.com"),
])
def test_obvious_placeholders_are_named(name: str, value: str) -> None:
    found = placeholders(settings(**{name: value}))
    assert found == [name]
    assert placeholder_problem(settings(**{name: value})) == (
        f"{name} still holds the example value from .env.example: put your own in .env or "
        "the environment (README: \"Check your set-up\")")


@pytest.mark.parametrize("values", [
    GOOD,
    # What the test suites start servers with (tests/conftest.py, tests/processes).
    {"SLACK_BOT_TOKEN": "xoxb-test-token", "SLACK_SIGNING_SECRET": SIGNING_SECRET,
     "RETELL_API_KEY": "key_test_retell"},
    {"SLACK_BOT_TOKEN": "xoxb-revoked", "SLACK_SIGNING_SECRET": "s", "RETELL_API_KEY": "k"},
    {"SLACK_BOT_TOKEN": "xoxb-from-file", "RETELL_API_KEY": "key_1",
     "SLACK_APP_TOKEN": "xapp-1-test", "CALLBOT_PUBLIC_URL": "https://calls.acme.test"},
    # "your" inside a word is not a placeholder.
    {"SLACK_SIGNING_SECRET": "yourself-and-flavour-3f1c", "CALLBOT_NOTIFY_CHANNEL": "C0YOURS"},
])
def test_real_and_test_values_are_not_placeholders(values: dict[str, Any]) -> None:
    assert placeholders(settings(**values)) == []
    assert placeholder_problem(settings(**values)) is None


def test_simulated_retell_ignores_the_retell_examples() -> None:
    """RETELL_MODE=simulate uses no Retell setting: .env.example's key may stay."""
    found = placeholders(settings(RETELL_MODE="simulate", RETELL_API_KEY="key_your_retell_key",
                                  SLACK_BOT_TOKEN="xoxb-your-bot-token"))
    assert found == ["SLACK_BOT_TOKEN"]
