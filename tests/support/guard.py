"""Helpers first written for tests/e2e/test_guard.py, shared with the other suites."""

from __future__ import annotations

from typing import Any

from standins.retell import RetellStandIn
from tests.conftest import CHANNEL, USER, Server
from tests.support.db import db_rows

AUDIT_COLUMNS = ("id", "at", "user_id", "channel_id", "action", "source", "number",
                 "number_key", "agent", "outcome", "reason", "call_id")

MASKED = "+1 415 ••• 0123"


REFUSED = ":no_entry: "


# Any of these in an audit row would be the full number (or enough of it to dial).
FULL_NUMBER_PARTS = ("4155550123", "555-0123", "555 0123", "9005551234", "2079460123")




def creates(retell: RetellStandIn) -> list[dict[str, Any]]:
    return [r.json for r in retell.requests if r.path == "/v2/create-phone-call"]


def audit(srv: Server) -> list[dict[str, Any]]:
    return [dict(zip(AUDIT_COLUMNS, r, strict=True)) for r in db_rows(
        srv, f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit ORDER BY id")]


def outcomes(srv: Server) -> list[tuple[str, str | None]]:
    return [(r["outcome"], r["reason"]) for r in audit(srv)]


def assert_no_full_number_audited(srv: Server) -> None:
    for row in audit(srv):
        for column, value in row.items():
            for part in FULL_NUMBER_PARTS:
                assert part not in str(value), f"audit.{column} holds a full number: {value!r}"


def assert_refusal_row(row: dict[str, Any], reason: str, *, source: str = "/call",
                       user: str = USER, channel: str = CHANNEL,
                       masked: str = MASKED) -> None:
    assert (row["action"], row["outcome"], row["reason"]) == ("call", "refused", reason)
    assert (row["user_id"], row["channel_id"], row["source"]) == (user, channel, source)
    assert row["number"] == masked and row["call_id"] is None
