"""The install paths: the manifest variants, the README's scope table and set-up steps, the
Dockerfile, compose.yaml, .dockerignore, the systemd unit and the licence.

Docker is not run here (no daemon is needed): the Dockerfile and compose.yaml are checked
statically, and their health checks are run against a local HTTP server.
"""

from __future__ import annotations

import configparser
import copy
import fnmatch
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT.parent / "shared" / "slack-manifest.schema.json"
MANIFESTS = ("manifest.yml", "manifest.socket-mode.yml", "manifest.no-history.yml")
BOLT_PATH = "/slack/events"
# What manifest.no-history.yml leaves out on purpose (README: "The smaller manifest").
HISTORY_SCOPES = frozenset({"channels:history", "groups:history", "im:history",
                            "mpim:history"})
ONLY_FOR_HISTORY = frozenset({"channels:join"})  # used only by the history look-up
# Every Slack Web API method the app calls, and the bot scopes it needs (any one of a set
# is enough: conversations.history needs the history scope of the conversation's kind).
METHOD_SCOPES: dict[str, frozenset[str]] = {
    "auth_test": frozenset(),
    # `callbot check`: the app-level token's own scope (connections:write), not the bot's.
    "apps_connections_open": frozenset(),
    "chat_postMessage": frozenset({"chat:write"}),
    "chat_postEphemeral": frozenset({"chat:write"}),
    "chat_update": frozenset({"chat:write"}),
    # /callsearch links each found call to its card; the method needs no scope.
    "chat_getPermalink": frozenset(),
    "conversations_open": frozenset({"im:write"}),
    "conversations_history": HISTORY_SCOPES,
    "conversations_replies": HISTORY_SCOPES,
    "conversations_join": frozenset({"channels:join"}),
    "files_upload_v2": frozenset({"files:write"}),
    # A campaign's CSV: files.info, then the download itself with the bot token.
    "files_info": frozenset({"files:read"}),
    "views_open": frozenset(),
    "views_update": frozenset(),
    "views_publish": frozenset(),
    "users_info": frozenset({"users:read"}),
    # `callbot check` asks about the notify channel and falls back to conversations.history
    # on missing_scope: the manifests do not ask for channels:read / groups:read for it.
    "conversations_info": frozenset(),
}
# Method families of Slack's Web API (`chat_postMessage` is chat.postMessage), to tell its
# methods from the Retell client's (`list_agents`) when both are called on a `client`.
SLACK_FAMILIES = frozenset({
    "admin", "api", "apps", "assistant", "auth", "bookmarks", "bots", "calls", "canvases",
    "chat", "conversations", "dialog", "dnd", "emoji", "files", "functions", "migration",
    "oauth", "openid", "pins", "reactions", "reminders", "rtm", "search", "stars", "team",
    "tooling", "usergroups", "users", "views", "workflows",
})
# Where a history method may be called; README "The smaller manifest" says what each costs.
HISTORY_CALLERS = frozenset({"bot/slack/outbox.py", "bot/setup/check.py"})
HISTORY_METHODS = frozenset({"conversations_history", "conversations_replies",
                             "conversations_join"})
EVENT_SCOPES = {"app_mention": "app_mentions:read", "message.channels": "channels:history",
                "message.groups": "groups:history", "message.im": "im:history",
                "message.mpim": "mpim:history"}
SECRET_SETTINGS = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET",
                   "RETELL_API_KEY", "RETELL_WEBHOOK_KEY")


def load_manifest(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / name).read_text()))


@pytest.fixture(scope="module")
def main() -> dict[str, Any]:
    return load_manifest("manifest.yml")


@pytest.fixture(scope="module")
def socket_mode() -> dict[str, Any]:
    return load_manifest("manifest.socket-mode.yml")


@pytest.fixture(scope="module")
def no_history() -> dict[str, Any]:
    return load_manifest("manifest.no-history.yml")


def scopes(manifest: dict[str, Any]) -> set[str]:
    return set(manifest["oauth_config"]["scopes"]["bot"])


def events(manifest: dict[str, Any]) -> list[str]:
    return list(manifest["settings"]["event_subscriptions"]["bot_events"])


def urls(node: object, path: str = "") -> Iterator[tuple[str, str]]:
    """(where, value) of every `url` and `request_url` in a manifest."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("url", "request_url"):
                yield f"{path}.{key}", str(value)
            yield from urls(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from urls(value, f"{path}[{i}]")


def without_urls(node: object) -> object:
    if isinstance(node, dict):
        return {k: without_urls(v) for k, v in node.items()
                if k not in ("url", "request_url", "redirect_urls")}
    if isinstance(node, list):
        return [without_urls(v) for v in node]
    return node


# -- the manifests -----------------------------------------------------------------------


@pytest.mark.parametrize("name", MANIFESTS)
def test_every_manifest_is_valid_per_slacks_schema(name: str) -> None:
    if not SCHEMA.exists():
        pytest.skip("../shared/slack-manifest.schema.json is not beside the checkout")
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(load_manifest(name), json.loads(SCHEMA.read_text()))


def test_socket_mode_manifest_is_manifest_yml_without_urls(
    main: dict[str, Any], socket_mode: dict[str, Any]
) -> None:
    assert socket_mode["settings"]["socket_mode_enabled"] is True
    assert list(urls(socket_mode)) == []
    expected = without_urls(copy.deepcopy(main))
    assert isinstance(expected, dict)
    expected["settings"]["socket_mode_enabled"] = True
    assert socket_mode == expected


def test_no_history_manifest_differs_only_as_intended(
    main: dict[str, Any], no_history: dict[str, Any]
) -> None:
    kept = scopes(no_history)
    assert not {s for s in kept if s.endswith(":history")}
    assert not [e for e in events(no_history) if e.startswith("message.")]
    assert kept == scopes(main) - HISTORY_SCOPES - ONLY_FOR_HISTORY
    assert events(no_history) == [e for e in events(main) if not e.startswith("message.")]
    # Without message.im the app cannot hear DMs: its Messages tab is read-only.
    assert no_history["features"]["app_home"]["messages_tab_read_only_enabled"] is True
    assert "call +1" not in no_history["display_information"]["long_description"]

    expected = copy.deepcopy(main)
    expected["oauth_config"]["scopes"]["bot"] = [
        s for s in main["oauth_config"]["scopes"]["bot"] if s in kept]
    expected["settings"]["event_subscriptions"]["bot_events"] = events(no_history)
    expected["features"]["app_home"]["messages_tab_read_only_enabled"] = True
    expected["display_information"]["long_description"] = (
        no_history["display_information"]["long_description"])
    assert no_history == expected  # same commands, URLs, settings; nothing else drifted


def test_every_url_is_the_bolt_endpoint_on_the_placeholder_host(
    main: dict[str, Any], no_history: dict[str, Any]
) -> None:
    for manifest in (main, no_history):
        found = [value for _, value in urls(manifest)]
        # each command, events, interactivity (README: "nine places")
        assert len(found) == len(manifest["features"]["slash_commands"]) + 2 == 9
        assert set(found) == {f"https://callbot.example.com{BOLT_PATH}"}


def test_every_manifest_grants_what_its_events_need() -> None:
    for name in MANIFESTS:
        manifest = load_manifest(name)
        for event in events(manifest):
            if event in EVENT_SCOPES:
                assert EVENT_SCOPES[event] in scopes(manifest), (name, event)


def slack_methods_called() -> dict[str, set[str]]:
    """Slack Web API methods named in bot/ and handlers/, and the files naming them:
    `client.<method>(`, `_call("<method>"` and `method = "<method>"` (the outbox's look-up
    calls `getattr(client, method)`)."""
    pattern = re.compile(
        r"client\.([a-z]+_[A-Za-z0-9_]+)\(|_call\(\s*\"([a-z]+_[A-Za-z0-9_]+)\""
        r"|\bmethod\s*=\s*\"([a-z]+_[A-Za-z0-9_]+)\""
    )
    found: dict[str, set[str]] = {}
    for folder in ("bot", "handlers"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for match in pattern.finditer(path.read_text()):
                method = next(g for g in match.groups() if g)
                if method.partition("_")[0] not in SLACK_FAMILIES:
                    continue
                found.setdefault(method, set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_scopes_cover_every_slack_method_the_code_calls() -> None:
    called = slack_methods_called()
    assert {"chat_postMessage", "conversations_history"} <= set(called)  # the scan works
    unknown = sorted(set(called) - set(METHOD_SCOPES))
    assert not unknown, f"new Slack methods {unknown}: add their scopes to the manifests, " \
                        "the README's scope table and METHOD_SCOPES"
    for name in MANIFESTS:
        granted = scopes(load_manifest(name))
        for method in called:
            needed = METHOD_SCOPES[method]
            if name == "manifest.no-history.yml" and method in HISTORY_METHODS:
                continue  # the intended loss (README: "The smaller manifest")
            assert not needed or needed & granted, (name, method, sorted(needed))


def test_history_is_needed_only_where_the_readme_says() -> None:
    """README: "The smaller manifest" lists what needs history: the outbox's look-up for a
    lost post (and so a lost card), `callbot check`'s notify-channel fallback and the
    message triggers. A new use must be added there."""
    called = slack_methods_called()
    assert "bot/slack/outbox.py" in called["conversations_replies"]
    for method in HISTORY_METHODS:
        assert called.get(method, set()) <= HISTORY_CALLERS, method
    listeners = {}
    for path in sorted((ROOT / "handlers").rglob("*.py")):
        for event in re.findall(r"app\.event\(\s*\"([a-z_]+)\"", path.read_text()):
            listeners[event] = str(path.relative_to(ROOT))
    assert listeners.get("message") == "handlers/events.py"
    main = load_manifest("manifest.yml")
    assert {e.partition(".")[0] for e in events(main)} == set(listeners)


# -- the README --------------------------------------------------------------------------


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def scope_table() -> dict[str, str]:
    """scope -> 'yes'/'no' (kept in manifest.no-history.yml) from the README's table."""
    section = readme_section("Setting it up")
    table = section[section.index("### Scopes, and why"):]
    table = table[:table.index("\n### ")]
    rows = re.findall(r"^\| `([a-z_.:]+)` \|[^|\n]+\| (yes|no) \|$", table, re.MULTILINE)
    return dict(rows)


def test_the_readme_scope_table_matches_the_manifests(
    main: dict[str, Any], socket_mode: dict[str, Any], no_history: dict[str, Any]
) -> None:
    table = scope_table()
    assert set(table) == scopes(main), "README scope table and manifest.yml disagree"
    assert set(table) == scopes(socket_mode)
    assert {s for s, kept in table.items() if kept == "yes"} == scopes(no_history)


def github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_set_up_section_links_to_headings_that_exist() -> None:
    text = (ROOT / "README.md").read_text()
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
    links = re.findall(r"\]\(#([^)]+)\)", readme_section("Setting it up"))
    assert len(links) >= 8
    assert sorted(set(links) - anchors) == []
    files = re.findall(r"\]\(([\w./-]+)\)", readme_section("Setting it up"))
    assert {"manifest.socket-mode.yml", "manifest.no-history.yml", "Dockerfile",
            "compose.yaml", "deploy/callbot.service"} <= set(files)
    assert [f for f in files if not (ROOT / f).exists()] == []


def test_the_set_up_section_names_only_settings_the_code_reads() -> None:
    aliases = {f.alias for f in Settings.model_fields.values() if f.alias}
    named = set(re.findall(r"\b((?:SLACK|RETELL|CALLBOT)_[A-Z_]+|DATABASE_URL|HOST|PORT)\b",
                           readme_section("Setting it up")))
    assert {"SLACK_APP_TOKEN", "RETELL_MODE", "CALLBOT_POLL_AFTER_SECONDS"} <= named
    assert sorted(named - aliases) == []


def test_the_quick_start_is_socket_mode_and_the_http_steps_say_retry() -> None:
    section = readme_section("Setting it up")
    quick = section[section.index("### Quick start"):section.index("### HTTP mode")]
    assert "manifest.socket-mode.yml" in quick and "manifest.yml" not in quick.replace(
        "manifest.socket-mode.yml", "")
    for step in ("*Basic Information*", "*App-Level Tokens*", "*Generate Token and Scopes*",
                 "`connections:write`", "`SLACK_APP_TOKEN`", "RETELL_MODE=simulate"):
        assert step in quick, step
    http = section[section.index("### HTTP mode"):section.index("### Retell's side")]
    assert "*Retry*" in http and "server" in http and "SLACK_SIGNING_SECRET" in http
    retell = section[section.index("### Retell's side"):section.index("### Scopes")]
    assert "polls Retell" in retell and "cannot reach" in retell


def test_the_readme_keeps_metrics_private_with_a_proxy_rule() -> None:
    section = readme_section("Setting it up")
    private = section[section.index("### Keep `/metrics` private"):]
    block = re.search(r"location = /metrics \{\s*deny all;", private)
    assert block is not None
    assert "HOST=127.0.0.1" in private and "client_max_body_size" in private


# -- the Dockerfile and compose.yaml -----------------------------------------------------


@dataclass
class Instruction:
    name: str
    args: str


def dockerfile() -> list[Instruction]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, args = line.partition(" ")
            out.append(Instruction(name.upper(), args.strip()))
    return out


def final_stage() -> list[Instruction]:
    steps = dockerfile()
    last_from = max(i for i, s in enumerate(steps) if s.name == "FROM")
    return steps[last_from:]


def env_of(steps: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for step in steps:
        if step.name == "ENV":
            for word in shlex.split(step.args):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def healthcheck_command() -> list[str]:
    [check] = [s for s in final_stage() if s.name == "HEALTHCHECK"]
    command = json.loads(check.args[check.args.index("CMD") + 3:].strip())
    assert isinstance(command, list)
    return [str(c) for c in command]


def test_the_image_is_slim_python_311_and_runs_callbot_serve() -> None:
    stage = final_stage()
    assert stage[0].args.split()[0] == "python:3.11-slim"
    assert all(s.args.split()[0] == "python:3.11-slim" for s in dockerfile()
               if s.name == "FROM")
    [cmd] = [s for s in stage if s.name == "CMD"]
    assert json.loads(cmd.args) == ["callbot", "serve"]
    assert not [s for s in stage if s.name == "ENTRYPOINT"]
    assert [s.args for s in stage if s.name == "EXPOSE"] == ["3000"]
    assert env_of(stage).get("PORT", "3000") == "3000"


def test_the_image_runs_as_a_user_that_is_not_root() -> None:
    stage = final_stage()
    users = [(i, s.args) for i, s in enumerate(stage) if s.name == "USER"]
    assert users, "no USER in the final stage"
    index, user = users[-1]
    assert user.split(":")[0] not in ("root", "0")
    cmd = next(i for i, s in enumerate(stage) if s.name == "CMD")
    assert index < cmd


def test_the_data_lives_on_the_volume() -> None:
    stage = final_stage()
    volumes = [v for s in stage if s.name == "VOLUME"
               for v in (json.loads(s.args) if s.args.startswith("[") else s.args.split())]
    assert volumes == ["/data"]
    assert env_of(stage)["DATABASE_URL"] == "sqlite:////data/callbot.db"
    run = " ".join(s.args for s in stage if s.name == "RUN")
    assert "chown" in run and "/data" in run  # the user may write there


def test_no_secret_is_built_into_the_image() -> None:
    steps = dockerfile()
    text = (ROOT / "Dockerfile").read_text()
    for step in steps:
        if step.name in ("ENV", "ARG"):
            for name in SECRET_SETTINGS:
                assert name not in step.args, step
        if step.name in ("COPY", "ADD"):
            assert ".env" not in step.args.split(), step
    for token in ("xoxb-", "xoxp-", "xapp-", "key_", "index-url", "trusted-host"):
        assert token not in text, token


def copied_sources() -> list[str]:
    sources = []
    for step in dockerfile():
        if step.name == "COPY" and "--from=" not in step.args:
            sources += step.args.split()[:-1]
    return sources


def dockerignored(path: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    assert not [p for p in patterns if p.startswith("!")]  # no exceptions to reason about
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/"))
               for p in patterns)


def test_the_build_copies_every_package_and_nothing_ignored() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]
                ["include"]}
    sources = copied_sources()
    assert packages | {"pyproject.toml", pyproject["project"]["readme"]} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not dockerignored(source), f"{source} is copied but .dockerignore drops it"
    for secret in (".env", ".env.local", "callbot.db", "callbot.db-wal", ".git", "tests"):
        assert dockerignored(secret), secret


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    parsed = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(parsed, dict)
    return parsed


def test_compose_names_the_images_port_volume_and_database(compose: dict[str, Any]) -> None:
    [service] = compose["services"].values()
    stage = final_stage()
    env_file = service["env_file"]
    assert (env_file if isinstance(env_file, list) else [env_file]) == [".env"]
    # environment: wins over env_file, so a DATABASE_URL copied from .env.example cannot
    # put the database outside the volume.
    assert service["environment"]["DATABASE_URL"] == env_of(stage)["DATABASE_URL"]
    assert str(service["environment"]["PORT"]) == "3000"
    [volume] = service["volumes"]
    name, target = volume.split(":")
    assert target == "/data" and name in compose["volumes"]
    [port] = service["ports"]
    host, _published, container = port.split(":")
    assert (host, container) == ("127.0.0.1", "3000")  # /metrics is on it: loopback only
    assert service["restart"] == "unless-stopped"
    assert int(service["stop_grace_period"].removesuffix("s")) > 10  # the shutdown timeout
    assert "/healthz" in " ".join(service["healthcheck"]["test"])
    assert service["build"] == "."


class Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_check(command: list[str], port: int) -> int:
    assert command[0] in ("python", "CMD")
    command = command[1:] if command[0] == "CMD" else command
    assert command[0] == "python" and "curl" not in command and "wget" not in command
    argv = [sys.executable, *command[1:]]
    argv = [a.replace("127.0.0.1:3000", f"127.0.0.1:{port}") for a in argv]
    env = {**os.environ, "PORT": str(port)}
    return subprocess.run(argv, env=env, capture_output=True, timeout=20).returncode


@pytest.mark.parametrize("where", ["Dockerfile", "compose.yaml"])
def test_the_health_checks_pass_on_200_and_fail_on_503(
    where: str, health_server: http.server.HTTPServer, compose: dict[str, Any]
) -> None:
    if where == "Dockerfile":
        command = healthcheck_command()
    else:
        [service] = compose["services"].values()
        command = [str(c) for c in service["healthcheck"]["test"]]
    assert any("/healthz" in c and "urllib" in c for c in command)
    port = health_server.server_address[1]
    assert isinstance(port, int)
    Health.status = 200
    assert run_check(command, port) == 0
    Health.status = 503
    assert run_check(command, port) != 0
    Health.status = 200


# -- systemd and the licence -------------------------------------------------------------


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(ROOT / "deploy" / "callbot.service")
    return parser


def test_the_systemd_unit_runs_callbot_confined_to_its_data_dir() -> None:
    service = unit()["Service"]
    assert service["User"] not in ("root", "0") and service["Group"] == service["User"]
    program, *args = service["ExecStart"].split()
    assert Path(program).is_absolute() and Path(program).name == "callbot" and args == ["serve"]
    assert service["EnvironmentFile"].startswith("/etc/")
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"  # a bad setting: restarting won't fix it
    assert service["NoNewPrivileges"] == "true"
    assert service["ProtectSystem"] == "strict"
    writable = service["ReadWritePaths"].split()
    assert service["WorkingDirectory"] in writable
    database = service["Environment"].removeprefix("DATABASE_URL=sqlite:///")
    assert str(Path(database).parent) in writable
    assert int(service["TimeoutStopSec"]) > 10  # longer than CALLBOT_SHUTDOWN_TIMEOUT
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = (ROOT / "deploy" / "callbot.service").read_text()
    # ExecStart must exist for `verify`: /bin/true stands in for the venv's callbot.
    text = re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", text, flags=re.MULTILINE)
    copy_path = tmp_path / "callbot.service"
    copy_path.write_text(text)
    result = subprocess.run([analyze, "verify", str(copy_path)], capture_output=True,
                            text=True, timeout=60)
    ours = [line for line in result.stderr.splitlines() if "callbot.service" in line]
    assert result.returncode == 0 and ours == [], result.stderr


def test_the_licence_is_the_mit_licence_pyproject_declares() -> None:
    text = (ROOT / "LICENSE").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "MIT"  # an SPDX expression
    assert pyproject["project"]["license-files"] == ["LICENSE"]
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 The retell-slack-callbot authors" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text
