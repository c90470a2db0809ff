"""Reading what people type after `/call`, `/callstats`, `/calldnc` and `/callaudit`.
Pure functions, no I/O.

Everything here runs on the event loop on text anyone in the workspace can type, so every
step is linear in the text and the text is capped before any of it: each regular expression
has one way to match (no class is repeated next to a class it overlaps), and words are split
by one left-to-right pass rather than `shlex` (which builds each word a character at a time).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from bot.input.mistakes import Mistake, typed
from bot.input.phones import PhoneNumber, PhoneNumberError, parse_phone

MAX_AUDIT_ROWS = 100
MAX_REASON_LENGTH = 300
# Longest text each command reads; past it the answer says so and nothing is parsed.
# `/call` fits 50 variables of a line each; the modal's variables field is multi-line.
MAX_CALL_TEXT = 4000
MAX_DNC_TEXT = 400
MAX_AUDIT_TEXT = 200
MAX_MODAL_NUMBER = 100
MAX_MODAL_VARIABLES = 10_000
MAX_AUDIT_DIGITS = 4  # a count is at most MAX_AUDIT_ROWS; int() refuses 4,300+ digits
_USER_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$|^([UW][A-Z0-9]{2,})$")

# What people type, made plain: smart quotes as plain ones, a no-break space as a space, and
# NUL dropped (it means nothing in a Slack text, and PostgreSQL's text cannot hold it).
PLAIN_TYPING = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "\u00a0": " ",
                              "\x00": None})
# Slack may turn a typed number or address into `<tel:+1415...|+1 415 ...>`; keep the label.
# No `<` inside a link: each try stops at the next `<`, so a text of many `<` is linear.
_SLACK_LINK = re.compile(r"<(?:tel:|mailto:|https?://)?([^|<>]*)(?:\|([^<>]*))?>")
# Number characters with at least one digit and no `+` after the last digit (or a lone
# `+`). Each repetition ends on a digit and its prefix has none, so a long run of digits
# followed by a letter fails in linear time.
_NUMBER_PIECE = re.compile(r"(?:tel:)?(?:[+().\-/]*\d)+[().\-/]*|\+")
# One piece of a shell-like word: what `shlex.split` (POSIX) reads, in one linear pass.
_WORD_PIECE = re.compile(
    r"""(?P<space>[ \t\r\n]+)"""
    r"""|(?P<bare>[^ \t\r\n'"\\]+)"""
    r"""|'(?P<single>[^']*)'"""
    r'|"(?P<double>(?:[^"\\]|\\.)*)"'
    r"""|\\(?P<escaped>.)"""
    r"""|(?P<unclosed>.)""",
    re.DOTALL,
)
_SHELL_SPACE = re.compile(r"[ \t\r\n]+")
_DOUBLE_QUOTED_ESCAPE = re.compile(r'\\(["\\])')
_VARIABLE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]{0,63})=(.*)$", re.DOTALL)
MAX_VARIABLES = 50
MAX_VALUE_LENGTH = 2000


class CommandError(Mistake):
    """A command people can fix; render/mistakes.py tells them how."""


@dataclass(frozen=True)
class CallCommand:
    phone: PhoneNumber
    agent: str | None = None
    variables: dict[str, str] = field(default_factory=dict)


def _normalise(text: str) -> str:
    text = text.translate(PLAIN_TYPING)
    return _SLACK_LINK.sub(lambda m: m.group(2) or m.group(1), text).strip()


def _cap(text: str, limit: int, what: str) -> str:
    """Refuse text past `limit` before reading any of it; `what` names the field."""
    if len(text) > limit:
        raise CommandError("too_long", what=what, length=len(text), limit=limit)
    return text


def split_words(text: str) -> list[str]:
    """Split like `shlex.split` (POSIX: quotes group, a backslash escapes), in linear time.

    Raises ValueError, as shlex does, for a quote that is not closed or a final backslash.
    """
    if not any(c in text for c in "'\"\\"):
        return [word for word in _SHELL_SPACE.split(text) if word]
    words: list[str] = []
    current: list[str] | None = None
    for match in _WORD_PIECE.finditer(text):
        kind = match.lastgroup
        if kind == "space":
            if current is not None:
                words.append("".join(current))
                current = None
            continue
        if kind == "unclosed":
            raise ValueError("No escaped character" if match.group(kind) == "\\"
                             else "No closing quotation")
        piece = match.group(kind or "bare")
        if kind == "double" and "\\" in piece:
            piece = _DOUBLE_QUOTED_ESCAPE.sub(r"\1", piece)
        if current is None:
            current = [piece]
        else:
            current.append(piece)
    if current is not None:
        words.append("".join(current))
    return words


def parse_call_text(text: str, default_region: str = "US") -> CallCommand:
    """`<number> [agent] [name=value ...]`; the number may span tokens ("+1 415 555 0123")."""
    text = _normalise(_cap(text, MAX_CALL_TEXT, "call"))
    if not text:
        raise CommandError("no_number")
    try:
        tokens = split_words(text)
    except ValueError as exc:
        if "escaped" in str(exc):
            raise CommandError("trailing_backslash") from None
        raise CommandError("unclosed_quote") from None
    if not tokens:
        raise CommandError("no_number")

    number_parts = _take_number(tokens)
    if not number_parts:
        raise CommandError("number_first", typed=typed(tokens[0]))

    agent_parts: list[str] = []
    variables: dict[str, str] = {}
    for token in tokens:
        match = _VARIABLE.match(token)
        if match:
            name, value = match.groups()
            _check_variable(variables, name, value)
            variables[name] = value
        elif "=" in token:
            raise CommandError("variable_name", name=typed(token.split("=", 1)[0]))
        else:
            agent_parts.append(token)
    if len(variables) > MAX_VARIABLES:
        raise CommandError("too_many_variables", limit=MAX_VARIABLES)

    phone = _phone(number_parts, default_region)
    agent = " ".join(agent_parts) or None
    return CallCommand(phone=phone, agent=agent, variables=variables)


def _take_number(tokens: list[str]) -> list[str]:
    """Take the leading tokens that are pieces of one number ("+1", "415", "555-0123") off
    `tokens`, in place."""
    count = 0
    while count < len(tokens) and _NUMBER_PIECE.fullmatch(tokens[count]):
        count += 1
    parts = [token.removeprefix("tel:") for token in tokens[:count]]
    del tokens[:count]
    return parts


def _phone(parts: list[str], default_region: str) -> PhoneNumber:
    try:
        return parse_phone(" ".join(parts), default_region)
    except PhoneNumberError as exc:
        raise CommandError(exc.code, **exc.facts) from None


def _check_variable(variables: dict[str, str], name: str, value: str) -> None:
    if name in variables:
        raise CommandError("variable_twice", name=name)
    if len(value) > MAX_VALUE_LENGTH:
        raise CommandError("variable_too_long", name=name, limit=MAX_VALUE_LENGTH)


@dataclass(frozen=True)
class DncCommand:
    action: str  # add | remove | list | check
    phone: PhoneNumber | None = None
    reason: str | None = None


def parse_dnc_text(text: str, default_region: str = "US") -> DncCommand:
    """`add <number> [reason]`, `remove <number>`, `list`, `check <number>`."""
    words = _normalise(_cap(text, MAX_DNC_TEXT, "dnc")).split()
    action = words[0].lower() if words else ""
    if action not in ("add", "remove", "list", "check"):
        raise CommandError("dnc_action")
    rest = words[1:]
    if action == "list":
        if rest:
            raise CommandError("dnc_list_alone")
        return DncCommand("list")
    parts = _take_number(rest)
    if not parts:
        raise CommandError("dnc_number_missing", action=action)
    phone = _phone(parts, default_region)
    reason = " ".join(rest) or None
    if reason and action != "add":
        raise CommandError("dnc_only_number", action=action)
    if reason and len(reason) > MAX_REASON_LENGTH:
        raise CommandError("dnc_reason_too_long", limit=MAX_REASON_LENGTH)
    return DncCommand(action, phone, reason)


@dataclass(frozen=True)
class AuditQuery:
    limit: int = 20
    user_id: str | None = None
    phone: PhoneNumber | None = None
    export: bool = False


def parse_audit_text(text: str, default_region: str = "US") -> AuditQuery:
    """Nothing (the last 20), a count, a user (a mention or an id), a number, or `export`."""
    text = _normalise_mentions(_cap(text, MAX_AUDIT_TEXT, "audit"))
    if not text:
        return AuditQuery()
    if text.lower() == "export":
        return AuditQuery(export=True)
    # ASCII digits only: `²` or `①` pass str.isdigit() but not int().
    if text.isascii() and text.isdigit():
        count = int(text) if len(text) <= MAX_AUDIT_DIGITS else MAX_AUDIT_ROWS + 1
        if not 1 <= count <= MAX_AUDIT_ROWS:
            raise CommandError("audit_count", limit=MAX_AUDIT_ROWS)
        return AuditQuery(limit=count)
    user = _USER_MENTION.match(text)
    if user:
        return AuditQuery(user_id=user.group(1) or user.group(2))
    parts = _take_number(text.split())
    if not parts or len(parts) != len(text.split()):
        raise CommandError("audit_unknown", typed=typed(text))
    return AuditQuery(phone=_phone(parts, default_region))


def _normalise_mentions(text: str) -> str:
    """Like _normalise, but keeps `<@U…>` user mentions (they are not links)."""
    text = text.translate(PLAIN_TYPING).strip()
    if text.startswith("<@"):
        return text
    return _normalise(text)


# -- the modal ----------------------------------------------------------------------------


class ModalError(ValueError):
    """Inline errors for a submitted modal, by block id (Slack shows each under its field)."""

    def __init__(self, errors: dict[str, Mistake]) -> None:
        super().__init__("; ".join(f"{k}: {v.code}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class ModalRequest:
    command: CallCommand
    agent_id: str | None
    from_number: str | None
    note: str | None
    channel_id: str | None
    due_at: float | None = None  # the *When* field: None places the call now


def parse_variable_lines(text: str) -> dict[str, str]:
    """`name=value` per line; blank lines are skipped and values keep their spaces."""
    variables: dict[str, str] = {}
    for line in _normalise_lines(text):
        if "=" not in line:
            raise CommandError("not_a_pair", line=typed(line))
        raw_name, _, raw_value = line.partition("=")
        name, value = raw_name.strip(), _unquote(raw_value.strip())
        if not _VARIABLE.match(f"{name}="):
            raise CommandError("variable_name", name=typed(name))
        _check_variable(variables, name, value)
        variables[name] = value
    if len(variables) > MAX_VARIABLES:
        raise CommandError("too_many_variables", limit=MAX_VARIABLES)
    return variables


def _unquote(value: str) -> str:
    """`note="call after 5"` means what it does in `/call`: the quotes are not the value."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _normalise_lines(text: str) -> list[str]:
    lines = (line.strip() for line in text.translate(PLAIN_TYPING).splitlines())
    return [line for line in lines if line]


def parse_modal_values(
    values: dict[str, dict[str, dict[str, object]]],
    default_region: str = "US",
    *,
    no_agent: str = "-",
    now: float | None = None,
    max_days: int = 90,
) -> ModalRequest:
    """Read a submitted call modal's `view.state.values`; all field errors at once.
    *When* (Slack's datetimepicker: a Unix time) must be ahead of `now` and at most
    `max_days` away."""

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

    errors: dict[str, Mistake] = {}
    phone: PhoneNumber | None = None
    raw_number = text("number")
    number = _normalise(raw_number) if len(raw_number) <= MAX_MODAL_NUMBER else ""
    if not number:
        errors["number"] = (Mistake("modal_no_number") if not raw_number else
                            Mistake("modal_number_too_long", limit=MAX_MODAL_NUMBER))
    else:
        try:
            phone = parse_phone(number, default_region)
        except PhoneNumberError as exc:
            errors["number"] = exc
    variables: dict[str, str] = {}
    try:
        variables = parse_variable_lines(_cap(text("variables"), MAX_MODAL_VARIABLES,
                                              "variables"))
    except CommandError as exc:
        errors["variables"] = exc
    due_at: float | None = None
    picked = field("when").get("selected_date_time")
    if isinstance(picked, int | float) and not isinstance(picked, bool):
        current = time.time() if now is None else now
        if picked <= current:
            errors["when"] = Mistake("modal_when_past")
        elif picked - current > max_days * 86400:
            errors["when"] = Mistake("when_too_far", limit=max_days)
        else:
            due_at = float(picked)
    channel = field("channel").get("selected_conversation")
    if not isinstance(channel, str) or not channel:
        errors["channel"] = Mistake("modal_no_channel")
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
        due_at=due_at,
    )
