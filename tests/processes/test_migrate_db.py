"""`callbot migrate-db`: an SQLite installation copied into PostgreSQL, as an operator runs it.

The source is a real SQLite store with calls, events, a do-not-call entry, audit rows and a
scheduled call; the copy runs as `python -m bot migrate-db` (and, to stop it part-way, in
process); what PostgreSQL then answers is compared with what SQLite answers."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage.copy import copy_sqlite
from storage.models import AuditEntry, CallFields, CallFilter, CallRecord, DncEntry, Scheduled
from storage.postgres import PostgresStore
from storage.sqlite import SQLiteStore
from tests.support.db import db_rows

pytestmark = pytest.mark.slow  # processes

NUMBER = "+14155550123"
CALLS = 1200


def history(count: int, now: float) -> list[CallRecord]:
    rng = random.Random(16)
    out = []
    for i in range(count):
        at = now - rng.uniform(60, 40 * 86400)
        out.append(CallRecord(
            id=0, call_id=f"call_copy_{i:05d}", direction="outbound", status="ended",
            stage=3, created_at=at, updated_at=at, team_id="T0TEST", channel_id="C0COPY",
            user_id=rng.choice(("U0ANN", "U0BOB")), to_number=NUMBER,
            agent_id="agent_a", agent_name="Reminders",
            duration_ms=rng.choice((0, 30_000, 61_000)),
            sentiment=rng.choice(("Positive", "Neutral", "Negative")),
            successful=rng.random() < 0.5, cost_cents=round(rng.uniform(1, 30), 2),
            latency_ms=rng.choice((None, 800.0, 1210.5)),
            disconnection_reason=rng.choice(("user_hangup", "agent_hangup", "dial_no_answer")),
            summary=f"Call {i}: the customer confirmed the appointment", variables={"n": str(i)},
            extracted={"confirmed": i % 3 == 0},
        ))
    return out


async def make_source(path: Path) -> None:
    now = time.time()
    async with SQLiteStore(path) as store:
        assert await store.import_calls(history(CALLS, now), batch=500) == CALLS
        await store.record_events([("call_started", ("card",))],
                                  CallFields(call_id="call_copy_live", status="ongoing",
                                             stage=1, channel_id="C0COPY", user_id="U0ANN"))
        await store.dnc_add(DncEntry(NUMBER, "asked", "U0ANN", None, now),
                            AuditEntry("dnc_add", "done", user_id="U0ANN", number=NUMBER,
                                       number_masked="+1415555****"))
        await store.schedule(Scheduled(
            id=0, team_id="T0TEST", channel_id="C0COPY", user_id="U0ANN", number=NUMBER,
            due_at=now + 3600, request_key="rk-copy", created_at=now), now)


def migrate(tmp_path: Path, source: Path, target: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLBOT_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", "migrate-db", "--from", f"sqlite:///{source}",
         "--to", target], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


async def test_a_copy_answers_as_the_source_did_and_a_second_run_brings_changes(
        tmp_path: Path, pg_url: str) -> None:
    source = tmp_path / "old.db"
    await make_source(source)
    result = migrate(tmp_path, source, pg_url)
    assert result.returncode == 0, result.stderr
    assert "every count matches" in result.stdout
    counted = {line.split()[0]: line for line in result.stdout.splitlines()[:-1]}
    assert set(counted) == {"meta", "calls", "webhook_events", "webhook_inbox", "outbox",
                            "claims", "dnc", "audit", "call_holds", "scheduled_calls",
                            "campaigns", "campaign_rows", "slack_installs"}
    assert all(line.endswith("ok") for line in counted.values()), result.stdout
    assert counted["calls"].split()[1].replace(",", "") == str(CALLS + 1)

    flt = CallFilter(since=time.time() - 30 * 86400)
    async with SQLiteStore(source) as old, PostgresStore(pg_url) as new:
        assert await new.report(flt, by="user") == await old.report(flt, by="user")
        assert await new.get_call("call_copy_00042") == await old.get_call("call_copy_00042")
        assert await new.dnc_get(NUMBER) == await old.dnc_get(NUMBER)
        # The salt came across: the audit log still finds a number's rows.
        assert [r.action for r in await new.audit_rows(10, number=NUMBER)] == ["dnc_add"]
        assert [s.request_key for s in await new.upcoming_schedules(None, 10)] == ["rk-copy"]
        # Ids continue after the copied ones: a new call is not refused as a duplicate.
        await new.record_events([("call_started", ())], CallFields(
            call_id="call_after_copy", status="ongoing", stage=1))
        [(new_id,)] = db_rows(pg_url, "SELECT id FROM calls WHERE call_id = 'call_after_copy'")
        assert new_id > CALLS + 1

    # The old server went on meanwhile: a call ended; a second run brings it across.
    async with SQLiteStore(source) as old:
        await old.record_events([("call_ended", ())], CallFields(
            call_id="call_copy_live", status="ended", stage=2, duration_ms=45_000))
    result = migrate(tmp_path, source, pg_url)
    # One more row on the target (the call made after the copy): the counts say so.
    assert result.returncode == 1
    assert "calls" in result.stderr and "differ" in result.stderr
    [(status, duration)] = db_rows(
        pg_url, "SELECT status, duration_ms FROM calls WHERE call_id = 'call_copy_live'")
    assert (status, duration) == ("ended", 45_000)


async def test_a_copy_stopped_part_way_goes_on_where_it_was(
        tmp_path: Path, pg_url: str) -> None:
    source = tmp_path / "old.db"
    await make_source(source)
    seen: list[tuple[str, int]] = []

    def stop_in_calls(table: str, done: int, total: int) -> None:
        seen.append((table, done))
        if table == "calls" and done >= 400:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await copy_sqlite(source, pg_url, batch=200, progress=stop_in_calls)
    assert db_rows(pg_url, "SELECT count(*) FROM calls") == [(400,)]

    report = await copy_sqlite(source, pg_url, batch=200)
    assert report.copied["calls"] == CALLS + 1 - 400  # resumed after the 400th call
    assert report.mismatched == []
    assert report.target["calls"] == CALLS + 1
    assert db_rows(pg_url, "SELECT count(DISTINCT call_id) FROM calls") == [(CALLS + 1,)]


def test_bad_urls_are_one_line_and_exit_2(tmp_path: Path) -> None:
    source = tmp_path / "none.db"
    for args, words in (
        (("--from", "mysql://x", "--to", "postgresql://h/db"), "--from must look like"),
        (("--from", f"sqlite:///{source}", "--to", "sqlite:///x.db"), "--to must look like"),
        (("--from", f"sqlite:///{source}", "--to", "postgresql://u:secret@h/db"),
         "no database there"),
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBOT_")}
        result = subprocess.run([sys.executable, "-m", "bot", "migrate-db", *args],
                                cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 2, result
        assert words in result.stderr and result.stderr.count("\n") == 1
        assert "secret" not in result.stderr


async def test_an_unreachable_target_is_one_line_without_its_password(tmp_path: Path) -> None:
    source = tmp_path / "old.db"
    async with SQLiteStore(source):
        pass
    result = migrate(tmp_path, source, "postgresql://callbot:s3cret@127.0.0.1:1/callbot")
    assert result.returncode == 1
    assert "migrate-db stopped: postgresql://callbot:***@127.0.0.1:1/callbot" in result.stderr
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr
