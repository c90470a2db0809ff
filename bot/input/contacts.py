"""A campaign's contact list: a CSV people upload. Pure functions, no I/O.

The number column is `number`, `phone` or `to_number` (any case, first found); every other
column becomes the row's dynamic variables, except an optional `agent` column that picks
the row's agent. Bad rows are reported with their line number and why, and never called;
a number met again is a duplicate (first row kept). The text is capped before it is read,
and at most MAX_ROWS rows are taken.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from bot.input.mistakes import Mistake, typed
from bot.input.phones import PhoneNumberError, parse_phone

MAX_ROWS = 10_000
MAX_BYTES = 5 * 1024 * 1024  # 10,000 rows of a few hundred bytes, with room
MAX_VALUE = 2000  # as a /call variable
NUMBER_COLUMNS = ("number", "phone", "to_number")
AGENT_COLUMN = "agent"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class ContactsError(Mistake):
    """The file as a whole cannot be used: too large, not CSV, no number column, no rows."""


@dataclass(frozen=True)
class Contact:
    line: int  # the line in the file, for people to find it
    number: str  # E.164
    variables: dict[str, str] = field(default_factory=dict)
    agent: str | None = None


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str  # no_number | invalid_number | value_too_long | duplicate | too_many_rows
    typed: str = ""  # a little of what was there, for the answer (render escapes it)


@dataclass(frozen=True)
class ContactList:
    contacts: list[Contact]
    bad: list[BadRow]
    columns: tuple[str, ...]  # the variables' names, in the file's order

    @property
    def rows(self) -> int:
        return len(self.contacts) + len(self.bad)


def read_contacts(data: bytes, default_region: str = "US") -> ContactList:
    """Read an uploaded CSV (UTF-8, with or without a BOM; comma, semicolon or tab)."""
    if len(data) > MAX_BYTES:
        raise ContactsError("contacts_too_large", limit=MAX_BYTES // (1024 * 1024))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ContactsError("contacts_not_utf8") from None
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096],
                                                                       delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ContactsError("contacts_empty") from None
    except csv.Error:
        raise ContactsError("contacts_not_csv") from None
    lowered = [h.lower() for h in header]
    number_at = next((lowered.index(c) for c in NUMBER_COLUMNS if c in lowered), None)
    if number_at is None:
        raise ContactsError("contacts_no_number_column", columns=", ".join(header[:10]))
    agent_at = lowered.index(AGENT_COLUMN) if AGENT_COLUMN in lowered else None
    variables_at = [(i, h) for i, h in enumerate(header)
                    if i not in (number_at, agent_at) and _NAME.match(h)]
    contacts: list[Contact] = []
    bad: list[BadRow] = []
    seen: set[str] = set()
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank lines are not rows
            if len(contacts) + len(bad) >= MAX_ROWS:
                bad.append(BadRow(line, "too_many_rows"))
                break
            raw = row[number_at].strip() if number_at < len(row) else ""
            if not raw:
                bad.append(BadRow(line, "no_number"))
                continue
            try:
                number = parse_phone(raw, default_region).e164
            except PhoneNumberError:
                bad.append(BadRow(line, "invalid_number", typed(raw, 40)))
                continue
            if number in seen:
                bad.append(BadRow(line, "duplicate", typed(raw, 40)))
                continue
            values = {name: row[i].strip() for i, name in variables_at if i < len(row)}
            if any(len(v) > MAX_VALUE for v in values.values()):
                bad.append(BadRow(line, "value_too_long"))
                continue
            seen.add(number)
            agent = row[agent_at].strip() if agent_at is not None and agent_at < len(row) else ""
            contacts.append(Contact(line, number, {k: v for k, v in values.items() if v},
                                    agent or None))
    except csv.Error:
        raise ContactsError("contacts_not_csv") from None
    if not contacts and not bad:
        raise ContactsError("contacts_empty")
    return ContactList(contacts, bad, tuple(name for _, name in variables_at))
