"""Reading what people type after `/call` and `/callstats`. Pure functions, no I/O."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.phones import PhoneNumber, PhoneNumberError, parse_phone

CALL_USAGE = (
    "Usage: `/call <number> [agent] [name=value ...]`\n"
    'Example: `/call +1 415 555 0123 "Sales Follow-up" customer_name=Ann note="call after 5"`'
)
STATS_USAGE = "Usage: `/callstats [today|7d|30d|all]` (default `7d`)"

_SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "\u00a0": " "})
# Slack may turn a typed number or address into `<tel:+1415...|+1 415 ...>`; keep the label.
_SLACK_LINK = re.compile(r"<(?:tel:|mailto:|https?://)?([^|>]*)(?:\|([^>]*))?>")
_NUMBER_PIECE = re.compile(r"^(?:tel:)?[+\d().\-/]*\d[\d().\-/]*$|^\+$")
_VARIABLE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]{0,63})=(.*)$", re.DOTALL)
MAX_VARIABLES = 50
MAX_VALUE_LENGTH = 2000


class CommandError(ValueError):
    """Input people can fix; the message tells them how."""


@dataclass(frozen=True)
class CallCommand:
    phone: PhoneNumber
    agent: str | None = None
    variables: dict[str, str] = field(default_factory=dict)


def _normalise(text: str) -> str:
    text = text.translate(_SMART_QUOTES)
    return _SLACK_LINK.sub(lambda m: m.group(2) or m.group(1), text).strip()


def parse_call_text(text: str, default_region: str = "US") -> CallCommand:
    """`<number> [agent] [name=value ...]`; the number may span tokens ("+1 415 555 0123")."""
    text = _normalise(text)
    if not text:
        raise CommandError("Tell me which number to call.")
    try:
        tokens = shlex.split(text)
    except ValueError:
        raise CommandError("A quote is not closed; check the `\"` around values.") from None

    number_parts: list[str] = []
    while tokens and _NUMBER_PIECE.match(tokens[0]):
        number_parts.append(tokens.pop(0).removeprefix("tel:"))
    if not number_parts:
        raise CommandError(f"`{tokens[0]}` is not a phone number; the number comes first.")

    agent_parts: list[str] = []
    variables: dict[str, str] = {}
    for token in tokens:
        match = _VARIABLE.match(token)
        if match:
            name, value = match.groups()
            if name in variables:
                raise CommandError(f"`{name}` is given twice.")
            if len(value) > MAX_VALUE_LENGTH:
                raise CommandError(f"`{name}` is longer than {MAX_VALUE_LENGTH} characters.")
            variables[name] = value
        elif "=" in token:
            name = token.split("=", 1)[0]
            raise CommandError(
                f"`{name}` is not a valid variable name: use letters, digits and `_`, "
                "starting with a letter or `_`."
            )
        else:
            agent_parts.append(token)
    if len(variables) > MAX_VARIABLES:
        raise CommandError(f"At most {MAX_VARIABLES} variables per call.")

    try:
        phone = parse_phone(" ".join(number_parts), default_region)
    except PhoneNumberError as exc:
        raise CommandError(str(exc).capitalize() + ".") from None
    agent = " ".join(agent_parts) or None
    return CallCommand(phone=phone, agent=agent, variables=variables)


@dataclass(frozen=True)
class StatsPeriod:
    key: str
    label: str
    since: datetime | None


def parse_stats_period(text: str, now: datetime | None = None) -> StatsPeriod:
    """`today` starts at 00:00 UTC; `7d`/`30d` are rolling windows; `all` has no start."""
    now = now or datetime.now(UTC)
    key = _normalise(text).lower() or "7d"
    if key == "today":
        start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return StatsPeriod("today", "today (UTC)", start)
    if key in {"7d", "30d"}:
        days = int(key[:-1])
        return StatsPeriod(key, f"the last {days} days", now - timedelta(days=days))
    if key == "all":
        return StatsPeriod("all", "all time", None)
    raise CommandError(f"`{text.strip()}` is not a period I know.")
