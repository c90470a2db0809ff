"""The house's one-way streets (README: "How it is built"), checked on the source: use cases
and rules know no Slack, HTTP server or rendering; only the wiring knows the handlers;
storage knows nothing of the app."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imports(folder: str) -> dict[str, set[str]]:
    """Each module under `folder` -> the modules it imports (anywhere in it)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def offending(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{module} imports {name}" for module, names in imports(folder).items()
            for name in sorted(names)
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize("folder", ["bot/calls", "bot/guard", "bot/input"])
def test_use_cases_and_rules_know_no_slack_http_server_or_rendering(folder: str) -> None:
    assert offending(folder, ("bot.render", "bot.slack", "bot.http", "handlers",
                              "slack_sdk", "slack_bolt", "aiohttp")) == []


def test_only_the_wiring_knows_the_handlers() -> None:
    assert offending("bot", ("handlers",)) == ["bot/app.py imports handlers",
                                               "bot/app.py imports handlers.campaigns",
                                               "bot/app.py imports handlers.scheduling"]


def test_storage_knows_nothing_of_the_app() -> None:
    assert offending("storage", ("bot", "handlers", "standins")) == []
