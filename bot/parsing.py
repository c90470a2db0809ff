"""Reading what people type after `/call`, `/callstats`, `/calldnc` and `/callaudit`.
Pure functions, no I/O."""

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
DNC_USAGE = ("Usage: `/calldnc check <number>`; admins also `/calldnc add <number> [reason]`, "
             "`/calldnc remove <number>`, `/calldnc list`")
AUDIT_USAGE = "Usage: `/callaudit [n | @user | <number> | export]` (admins; default the last 20)"
MAX_AUDIT_ROWS = 100
MAX_REASON_LENGTH = 300
_USER_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$|^([UW][A-Z0-9]{2,})$")

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

    number_parts = _take_number(tokens)
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

    phone = _phone(number_parts, default_region)
    agent = " ".join(agent_parts) or None
    return CallCommand(phone=phone, agent=agent, variables=variables)


def _take_number(tokens: list[str]) -> list[str]:
    """Pop the leading tokens that are pieces of one number ("+1", "415", "555-0123")."""
    parts: list[str] = []
    while tokens and _NUMBER_PIECE.match(tokens[0]):
        parts.append(tokens.pop(0).removeprefix("tel:"))
    return parts


def _phone(parts: list[str], default_region: str) -> PhoneNumber:
    try:
        return parse_phone(" ".join(parts), default_region)
    except PhoneNumberError as exc:
        raise CommandError(str(exc).capitalize() + ".") from None


@dataclass(frozen=True)
class DncCommand:
    action: str  # add | remove | list | check
    phone: PhoneNumber | None = None
    reason: str | None = None


def parse_dnc_text(text: str, default_region: str = "US") -> DncCommand:
    """`add <number> [reason]`, `remove <number>`, `list`, `check <number>`."""
    words = _normalise(text).split()
    action = words[0].lower() if words else ""
    if action not in ("add", "remove", "list", "check"):
        raise CommandError("Say what to do: `add`, `remove`, `list` or `check`.")
    rest = words[1:]
    if action == "list":
        if rest:
            raise CommandError("`list` takes nothing after it.")
        return DncCommand("list")
    parts = _take_number(rest)
    if not parts:
        raise CommandError(f"Give the number to {action}.")
    phone = _phone(parts, default_region)
    reason = " ".join(rest) or None
    if reason and action != "add":
        raise CommandError(f"`{action}` takes only a number.")
    if reason and len(reason) > MAX_REASON_LENGTH:
        raise CommandError(f"The reason is longer than {MAX_REASON_LENGTH} characters.")
    return DncCommand(action, phone, reason)


@dataclass(frozen=True)
class AuditQuery:
    limit: int = 20
    user_id: str | None = None
    phone: PhoneNumber | None = None
    export: bool = False


def parse_audit_text(text: str, default_region: str = "US") -> AuditQuery:
    """Nothing (the last 20), a count, a user (a mention or an id), a number, or `export`."""
    text = _normalise_mentions(text)
    if not text:
        return AuditQuery()
    if text.lower() == "export":
        return AuditQuery(export=True)
    if text.isdigit():
        count = int(text)
        if not 1 <= count <= MAX_AUDIT_ROWS:
            raise CommandError(f"Ask for 1 to {MAX_AUDIT_ROWS} entries, or `export` for all.")
        return AuditQuery(limit=count)
    user = _USER_MENTION.match(text)
    if user:
        return AuditQuery(user_id=user.group(1) or user.group(2))
    parts = _take_number(text.split())
    if not parts or len(parts) != len(text.split()):
        raise CommandError(f"`{text[:40]}` is not a count, a user or a phone number.")
    return AuditQuery(phone=_phone(parts, default_region))


def _normalise_mentions(text: str) -> str:
    """Like _normalise, but keeps `<@U…>` user mentions (they are not links)."""
    text = text.translate(_SMART_QUOTES).strip()
    if text.startswith("<@"):
        return text
    return _normalise(text)


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


# -- the modal ----------------------------------------------------------------------------


class ModalError(ValueError):
    """Inline errors for a submitted modal, by block id (Slack shows each under its field)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class ModalRequest:
    command: CallCommand
    agent_id: str | None
    from_number: str | None
    note: str | None
    channel_id: str | None


def parse_variable_lines(text: str) -> dict[str, str]:
    """`name=value` per line; blank lines are skipped and values keep their spaces."""
    variables: dict[str, str] = {}
    for line in _normalise_lines(text):
        if "=" not in line:
            raise CommandError(f"`{line[:40]}` is not `name=value`.")
        raw_name, _, raw_value = line.partition("=")
        name, value = raw_name.strip(), _unquote(raw_value.strip())
        if not _VARIABLE.match(f"{name}="):
            raise CommandError(
                f"`{name[:40]}` is not a valid variable name: use letters, digits and `_`."
            )
        if name in variables:
            raise CommandError(f"`{name}` is given twice.")
        if len(value) > MAX_VALUE_LENGTH:
            raise CommandError(f"`{name}` is longer than {MAX_VALUE_LENGTH} characters.")
        variables[name] = value
    if len(variables) > MAX_VARIABLES:
        raise CommandError(f"At most {MAX_VARIABLES} variables per call.")
    return variables


def _unquote(value: str) -> str:
    """`note="call after 5"` means what it does in `/call`: the quotes are not the value."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _normalise_lines(text: str) -> list[str]:
    lines = (line.strip() for line in text.translate(_SMART_QUOTES).splitlines())
    return [line for line in lines if line]


def parse_modal_values(
    values: dict[str, dict[str, dict[str, object]]],
    default_region: str = "US",
    *,
    no_agent: str = "-",
) -> ModalRequest:
    """Read a submitted call modal's `view.state.values`; all field errors at once."""

    def field(block: str) -> dict[str, object]:
        inner = values.get(block) if isinstance(values, dict) else None
        first = next(iter(inner.values()), None) if isinstance(inner, dict) else None
        return first if isinstance(first, dict) else {}

    def text(block: str) -> str:
        value = field(block).get("value")
        return value.strip() if isinstance(value, str) else ""

    def selected(block: str) -> str | None:
        option = field(block).get("selected_option")
        value = option.get("value") if isinstance(option, dict) else None
        return value if isinstance(value, str) and value else None

    errors: dict[str, str] = {}
    phone: PhoneNumber | None = None
    number = _normalise(text("number"))
    if not number:
        errors["number"] = "Enter the number to call."
    else:
        try:
            phone = parse_phone(number, default_region)
        except PhoneNumberError as exc:
            errors["number"] = str(exc).capitalize() + "."
    variables: dict[str, str] = {}
    try:
        variables = parse_variable_lines(text("variables"))
    except CommandError as exc:
        errors["variables"] = str(exc)
    channel = field("channel").get("selected_conversation")
    if not isinstance(channel, str) or not channel:
        errors["channel"] = "Choose where the call card goes."
        channel = None
    if errors or phone is None:
        raise ModalError(errors)
    agent = selected("agent")
    return ModalRequest(
        command=CallCommand(phone=phone, agent=None, variables=variables),
        agent_id=None if agent in (None, no_agent) else agent,
        from_number=selected("caller"),
        note=text("note")[:200] or None,
        channel_id=channel,
    )
