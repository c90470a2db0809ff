"""Values copied from .env.example and never replaced: `serve` and `check` refuse them.

A server started with `xoxb-your-bot-token` would otherwise look ready and fail on the
first request. Only .env.example's own values and obvious `your-...` forms count, so no real
token or test value is ever taken for one.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from bot.config import Settings

# .env.example's values, by variable (tests/unit/test_setup_placeholders.py reads the file
# and fails when one of its values here is no longer caught).
EXAMPLE_VALUES: dict[str, str] = {
    "SLACK_BOT_TOKEN": "xoxb-your-bot-token",
    "SLACK_SIGNING_SECRET": "your-signing-secret",
    "RETELL_API_KEY": "key_your_retell_key",
}
# `your` as a word of its own inside a value: your-token, xoxb-your-..., key_your_..., <your key>
_YOUR = re.compile(r"(?:^|[-_<\s.])your(?:[-_\s>]|$)", re.IGNORECASE)
# Hosts reserved for examples (RFC 2606): never a real server's address.
_EXAMPLE_HOST = re.compile(r"(?:^|\.)example\.(?:com|net|org)$|\.example$", re.IGNORECASE)


def _is_placeholder(name: str, value: str | None) -> bool:
    if not value:
        return False
    value = value.strip()
    return value == EXAMPLE_VALUES.get(name) or bool(_YOUR.search(value))


def placeholders(settings: Settings) -> list[str]:
    """The variables that still hold an example value, in .env.example's order."""
    values: list[tuple[str, str | None]] = [
        ("SLACK_BOT_TOKEN", settings.slack_bot_token),
        ("SLACK_SIGNING_SECRET", settings.slack_signing_secret),
        ("SLACK_APP_TOKEN", settings.slack_app_token),
    ]
    if not settings.simulated:  # the Retell settings are not used when Retell is simulated
        values += [
            ("RETELL_API_KEY", settings.retell_api_key),
            ("RETELL_WEBHOOK_KEY", settings.retell_webhook_key),
            ("RETELL_AGENT_ID", settings.retell_agent_id),
        ]
    values.append(("CALLBOT_NOTIFY_CHANNEL", settings.notify_channel))
    found = [name for name, value in values if _is_placeholder(name, value)]
    if settings.public_url and _EXAMPLE_HOST.search(urlsplit(settings.public_url).hostname or ""):
        found.append("CALLBOT_PUBLIC_URL")
    return found


def placeholder_problem(settings: Settings) -> str | None:
    """One line naming the placeholders, or None when there are none."""
    found = placeholders(settings)
    if not found:
        return None
    return (f"{', '.join(found)} still {'holds' if len(found) == 1 else 'hold'} the example "
            "value from .env.example: put your own in .env or the environment (README: "
            "\"Check your set-up\")")
