"""The inbox applies a batch whole, and an entry the database refuses alone: it is kept with
its error (for an operator to read) while the rest of its batch is applied, on either store.

Retell's bodies are bounded where they are read (tests/e2e/test_webhook.py); these entries
get past that on purpose, as a value no check foresaw would."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from storage.models import STAGE_ENDED, CallFields, CallRecord, InboxEntry
from storage.postgres import PostgresStore
from tests.support.db import db_rows as rows
from tests.support.stores import store_for


def ended(call_id: str, duration_ms: int = 60_000) -> CallFields:
    return CallFields(call_id=call_id, status="ended", stage=STAGE_ENDED,
                      to_number="+14155550123", duration_ms=duration_ms,
                      channel_id="C0A1", raw_payload='{"event":"call_ended"}')


async def test_an_entry_the_database_refuses_is_kept_and_its_batch_applied(db_path: Path
                                                                            ) -> None:
    async with store_for(db_path) as store:
        entries = []
        for n, fields in enumerate([ended("call_1"), ended("call_2", duration_ms=2**70),
                                    ended("call_3")]):
            stored, inbox_id = await store.accept_webhook(fields.call_id, "call_ended", "{}")
            assert stored == "stored" and inbox_id is not None, n
            entries.append(InboxEntry(inbox_id, "call_ended", False, fields,
                                      kinds=("card", "summary")))
        applied = await store.apply_inbox(entries, default_channel=False)
        assert [e.fields.call_id for e in applied if e.fields] == ["call_1", "call_3"]

        again = await store.apply_inbox(entries, default_channel=False)  # as a retry would
        assert again == []  # the applied ones are gone; the refused one fails again
    assert rows(db_path, "SELECT call_id FROM calls ORDER BY call_id") == [("call_1",),
                                                                           ("call_3",)]
    assert rows(db_path, "SELECT call_id, kind FROM outbox ORDER BY id") == [
        ("call_1", "card"), ("call_1", "summary"), ("call_3", "card"), ("call_3", "summary")]
    [(call_id, attempts, error)] = rows(db_path, "SELECT call_id, attempts, last_error "
                                                 "FROM webhook_inbox")
    assert (call_id, attempts) == ("call_2", 2)
    assert error.split(":")[0] in ("OverflowError", "DataError")  # SQLite's, asyncpg's


@pytest.mark.slow  # waits out PostgreSQL's lock timeout (5 s) once
async def test_a_lock_wait_that_times_out_counts_against_no_entry(pg_url: str) -> None:
    """Another instance (or an operator, or a migration) holding a call's row past the lock
    timeout fails the batch for the moment: it is tried again later, and no entry is set
    aside as failing, however long the wait lasts."""
    async with PostgresStore(pg_url) as store, PostgresStore(pg_url) as other:
        entries = []
        for call_id in ("call_1", "call_2"):
            _, inbox_id = await store.accept_webhook(call_id, "call_ended", "{}")
            assert inbox_id is not None
            entries.append(InboxEntry(inbox_id, "call_ended", False, ended(call_id),
                                      kinds=("card",)))
        await store.import_calls([CallRecord(id=0, call_id="call_2", direction="outbound",
                                             status="ongoing", stage=1,
                                             created_at=1.0, updated_at=1.0)])
        async with other._p.acquire() as conn, conn.transaction():  # the pool is the point
            await conn.execute("SELECT 1 FROM calls WHERE call_id = 'call_2' FOR UPDATE")
            with pytest.raises(asyncpg.LockNotAvailableError):
                await store.apply_inbox(entries, default_channel=False)
        assert rows(pg_url, "SELECT call_id, attempts FROM webhook_inbox ORDER BY id") == [
            ("call_1", 0), ("call_2", 0)]
        applied = await store.apply_inbox(entries, default_channel=False)
    assert [e.fields.call_id for e in applied if e.fields] == ["call_1", "call_2"]
    assert rows(pg_url, "SELECT count(*) FROM webhook_inbox") == [(0,)]
