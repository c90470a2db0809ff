"""Helpers first written for tests/e2e/test_guard.py, shared with the other suites."""

from __future__ import annotations

import sqlite3
from typing import Any

from standins.retell import RetellStandIn
from tests.conftest import CHANNEL, USER, Server

MASKED = "+1 415 ••• 0123"


REFUSED = ":no_entry: "


# Any of these in an audit row would be the full number (or enough of it to dial).
FULL_NUMBER_PARTS = ("4155550123", "555-0123", "555 0123", "9005551234", "2079460123")




def creates(retell: RetellStandIn) -> list[dict[str, Any]]:
    return [r.json for r in retell.requests if r.path == "/v2/create-phone-call"]


def audit(srv: Server) -> list[dict[str, Any]]:
    conn = sqlite3.connect(srv.settings.database_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM audit ORDER BY id")]
    finally:
        conn.close()


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
