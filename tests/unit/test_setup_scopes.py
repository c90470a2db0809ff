"""The scopes `callbot check` wants: manifest.yml's, and the copies kept in code for an
installed package (bot/setup/scopes.py) and for the Slack stand-in's default grant."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.setup.scopes import MANIFEST, WANTED_SCOPES, manifest_scopes, wanted_scopes
from standins.slack import DEFAULT_SCOPES

ROOT = Path(__file__).resolve().parents[2]


def test_the_copies_in_code_are_the_manifests_scopes() -> None:
    assert MANIFEST == ROOT / "manifest.yml"
    asked = tuple(yaml.safe_load(MANIFEST.read_text())["oauth_config"]["scopes"]["bot"])
    assert WANTED_SCOPES == asked, "change bot/setup/scopes.py with manifest.yml"
    assert DEFAULT_SCOPES == asked, "change standins/slack.py DEFAULT_SCOPES with manifest.yml"


def test_the_manifest_is_read_without_a_yaml_library_as_yaml_reads_it() -> None:
    text = MANIFEST.read_text()
    assert manifest_scopes(text) == tuple(
        yaml.safe_load(text)["oauth_config"]["scopes"]["bot"])
    assert wanted_scopes() == manifest_scopes(text)


def test_other_yaml_spellings_of_the_list_are_read_too() -> None:
    text = """\
display_information:
  name: Callbot  # a comment
  background_color: "#1d3557"
oauth_config:
  redirect_urls:
    - https://example.com/x
  scopes:
    user:
    - search:read
    bot:
    # a comment line
    - 'commands'
    - "chat:write"   # why
    - files:write
settings:
  socket_mode_enabled: true
"""
    assert manifest_scopes(text) == ("commands", "chat:write", "files:write")
    assert yaml.safe_load(text)["oauth_config"]["scopes"]["bot"] == [
        "commands", "chat:write", "files:write"]


def test_without_a_manifest_the_copy_in_code_is_used(tmp_path: Path) -> None:
    assert wanted_scopes(tmp_path / "manifest.yml") == WANTED_SCOPES
    (tmp_path / "manifest.yml").write_text("display_information:\n  name: x\n")
    assert wanted_scopes(tmp_path / "manifest.yml") == WANTED_SCOPES
    assert manifest_scopes("display_information:\n  name: x\n") is None
