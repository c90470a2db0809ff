"""Store failures are named by what they mean to a person, from SQLite's real errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.render import answers
from storage.errors import store_failure


def real_error(db: Path, setup: str, statement: str) -> sqlite3.Error:
    conn = sqlite3.connect(db, isolation_level=None, timeout=0)
    try:
        conn.executescript(setup)
        with pytest.raises(sqlite3.Error) as caught:
            conn.execute(statement)
        return caught.value
    finally:
        conn.close()


@pytest.mark.sqlite_only("makes SQLite's own errors on its files (a page limit standing for a "
                         "full disk, a side connection's write lock)")
def test_a_full_disk_and_a_lock_are_told_apart(tmp_path: Path) -> None:
    db = tmp_path / "full.db"
    full = real_error(db, "PRAGMA max_page_count = 2; CREATE TABLE t (x TEXT);",
                      "INSERT INTO t VALUES (hex(randomblob(100000)))")
    assert store_failure(full) == "full"

    other = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    other.execute("CREATE TABLE t (x)")
    other.execute("BEGIN IMMEDIATE")
    try:
        locked = real_error(tmp_path / "locked.db", "", "INSERT INTO t VALUES (1)")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store_failure(locked) == "locked"
    assert store_failure(ValueError("database is locked")) is None  # not a store error
    assert "disk is full" in answers.store_down_before("full")
    assert "locked by another process" in answers.store_down_before("locked")
