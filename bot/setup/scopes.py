"""The Slack scopes the app asks for: `manifest.yml`'s `oauth_config.scopes.bot`.

Read from manifest.yml at the repository root when it is there (a checkout), else the copy
below (an installed package has no manifest). tests/unit/test_setup_scopes.py fails when the
two disagree, so the copy is changed with the manifest.

The manifest is read without a YAML library (PyYAML is only a development dependency): the
few lines of one block list, by indentation, which is all the check needs.
"""

from __future__ import annotations

import re
from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"

# manifest.yml's oauth_config.scopes.bot, in its order.
WANTED_SCOPES: tuple[str, ...] = (
    "commands",
    "chat:write",
    "chat:write.public",
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "channels:join",
    "files:write",
    "files:read",
    "im:write",
    "users:read",
)

_KEY = re.compile(r"^(\s*)([A-Za-z_][\w.-]*)\s*:\s*(.*)$")
_ITEM = re.compile(r"^(\s*)-\s+(.*)$")
_COMMENT = re.compile(r"(^|\s)#.*$")
_PATH = ("oauth_config", "scopes", "bot")


def manifest_scopes(text: str) -> tuple[str, ...] | None:
    """The items of `oauth_config.scopes.bot` in a manifest's YAML text, None when absent."""
    stack: list[tuple[int, str]] = []  # (indent, key) of the keys enclosing the line
    found: list[str] | None = None
    for raw in text.splitlines():
        line = _COMMENT.sub("", raw).rstrip()
        if not line.strip():
            continue
        item = _ITEM.match(line)
        if item is not None:
            indent = len(item.group(1))
            while stack and stack[-1][0] > indent:
                stack.pop()
            if tuple(key for _, key in stack) == _PATH:
                found = found if found is not None else []
                found.append(item.group(2).strip().strip("'\""))
            continue
        key = _KEY.match(line)
        if key is None:
            continue
        indent = len(key.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key.group(2)))
        if tuple(k for _, k in stack) == _PATH and found is None:
            found = []
    return tuple(found) if found is not None else None


def wanted_scopes(manifest: Path = MANIFEST) -> tuple[str, ...]:
    """What manifest.yml asks for when it is there and readable, else the copy above."""
    try:
        text = manifest.read_text(encoding="utf-8")
    except OSError:
        return WANTED_SCOPES
    return manifest_scopes(text) or WANTED_SCOPES
