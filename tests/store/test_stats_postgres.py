"""PostgreSQL's `/callstats` gives SQLite's answers on the same history: the figures, the
period before, medians, breakdowns, calls per day in several zones, every filter (an
agent's name matched without regard to ASCII case only, as SQLite's lower() does), the
extracted fields (numbers as SQLite's JSON reads them, text that is not JSON skipped as
SQLite skips it), the export's pages and its columns.

Run whenever a PostgreSQL server answers (the `pg_url` fixture: skipped, saying why, when
none does; a failure under CI), whichever database the rest of the suite is on."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.calls.insights import day_in
from storage.base import Store
from storage.models import STAGE_ANALYZED, CallFilter, CallRecord, StatsReport
from storage.sqlite import SQLiteStore
from storage.stores import make_store
from tests.store.test_stats_sums import DAY, NOW, PERIODS, history, summed
from tests.support.db import db_execute, db_rows

pytestmark = pytest.mark.slow  # 3,000 calls stored twice for each test

ZONES = ("UTC", "Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham")
FILTERS: list[dict[str, Any]] = [
    {}, {"agent": "agent_a"}, {"agent": "SURVEY"}, {"agent": "équipe"}, {"agent": "ÉQUIPE"},
    {"user_id": "U2"}, {"channel_id": "C1"}, {"campaign_id": 3}, {"direction": "inbound"},
    {"outcome": "success"}, {"outcome": "failed"}, {"outcome": "no-answer"},
    {"agent": "sales", "outcome": "failed"}, {"user_id": "U1", "direction": "outbound"},
    {"agent": "nobody"},
]
CITIES = ["Bangkok", "Bangkok ", "Chiang Mai", "เชียงใหม่", "Phuket", "x" * 70, ""]


def extracted(rng: random.Random) -> dict[str, Any] | None:
    """Fields of every JSON kind, mixed within a field, with ties among the top values."""
    if rng.random() < 0.3:
        return None
    found: dict[str, Any] = {}
    if rng.random() < 0.8:
        found["will_attend"] = rng.choice([True, False, True, None, "yes"])
    if rng.random() < 0.7:
        found["rating"] = rng.choice([1, 2, 3, 4, 5, 4.5, 2.25, "4", None, -0.0, 10**20])
    if rng.random() < 0.7:
        found["city"] = rng.choice([*CITIES, 7, True, ["Bangkok"], {"name": "Krabi"}])
    if rng.random() < 0.2:
        found["notes"] = rng.choice([{"a": [1, 2.5, "ก"]}, [], "", "seen", 3])
    return found


def calls() -> list[CallRecord]:
    rng = random.Random(11)
    found = [replace(c, extracted=extracted(rng) or {}) for c in history(3000)]
    # An agent whose name differs from another's only in a letter outside ASCII.
    for i in range(40):
        at = NOW - rng.random() * 20 * DAY
        found.append(CallRecord(
            id=0, call_id=f"equipe_{i}", direction="outbound", status="ended", stage=STAGE_ANALYZED,
            created_at=at, updated_at=at, agent_id="agent_e",
            agent_name=rng.choice(["Équipe", "équipe", "EQUIPE"]), duration_ms=1000 * i,
            successful=i % 3 == 0, cost_cents=1.5, latency_ms=float(i)))
    return found


@pytest.fixture
async def stores(tmp_path: Path, pg_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """(SQLite, PostgreSQL), each holding the same calls."""
    async with SQLiteStore(tmp_path / "sqlite.db") as lite, make_store(pg_url) as pg:
        history_calls = calls()
        assert await lite.import_calls(history_calls) == await pg.import_calls(history_calls)
        yield lite, pg


def expected(report: StatsReport) -> StatsReport:
    """SQLite's answer as PostgreSQL must give it: exactly, costs included (sums of floats
    added in another order, equal once kept to `COST_DIGITS`)."""
    return report


async def test_postgres_answers_as_sqlite_does(stores: tuple[Store, Store]) -> None:
    lite, pg = stores
    bys = (None, "agent", "user", "campaign", "day")
    asked = 0
    for p, (since, until) in enumerate(PERIODS):
        for n, piece in enumerate(FILTERS):
            flt = CallFilter(since=since, until=until, **piece)
            previous = None
            if since is not None:
                end = until if until is not None else NOW
                previous = replace(flt, since=since - (end - since), until=since)
            # Each filter with every breakdown and zone over the periods.
            for k, by in enumerate(dict.fromkeys((bys[(n + p) % 5], bys[(n + p + 2) % 5]))):
                days = day_in(ZONES[(n + p + k) % len(ZONES)])
                args: dict[str, Any] = dict(previous=previous, by=by, days_in=days,
                                            with_fields=False)
                answer = await pg.report(flt, **args)
                assert answer == expected(await lite.report(flt, **args, sums=False)), (
                    flt, by)
                asked += 1
    assert asked == len(PERIODS) * len(FILTERS) * 2
    # SQLite's sums give its plain answers (test_stats_sums.py), and so PostgreSQL's.
    assert await summed(lite) >= 35
    assert await summed(pg) == 0  # no sums on PostgreSQL: nothing to refresh
    flt = CallFilter(since=NOW - 30 * DAY)
    args = dict(by="day", days_in=day_in("Asia/Kathmandu"), with_fields=False)
    assert await pg.report(flt, **args) == expected(await lite.report(flt, **args))
    for since in (None, NOW - 7 * DAY, NOW + DAY):
        assert await pg.stats(since) == expected(
            StatsReport(await lite.stats(since))).stats


async def test_agent_names_match_without_regard_to_ascii_case_only(
        stores: tuple[Store, Store]) -> None:
    lite, pg = stores
    for typed in ("équipe", "ÉQUIPE", "Équipe", "equipe", "EQUIPE"):
        flt = CallFilter(agent=typed)
        mine = (await pg.report(flt, with_fields=False)).stats.calls
        assert mine == (await lite.report(flt, with_fields=False)).stats.calls, typed
    # "équipe" is not "Équipe" (É is not ASCII), but "ÉQUIPE" is "Équipe".
    lowered = (await pg.report(CallFilter(agent="équipe"), with_fields=False)).stats.calls
    upper = (await pg.report(CallFilter(agent="ÉQUIPE"), with_fields=False)).stats.calls
    assert 0 < lowered < 40 and 0 < upper < 40


async def test_extracted_fields_and_the_export_as_on_sqlite(
        stores: tuple[Store, Store], tmp_path: Path, pg_url: str) -> None:
    lite, pg = stores
    flts = [CallFilter(), CallFilter(since=NOW - 7 * DAY), CallFilter(agent="survey"),
            CallFilter(outcome="failed"), CallFilter(since=NOW + DAY)]
    for flt in flts:
        for fields in (None, ("rating", "city")):
            mine = await pg.report(flt, fields=fields)
            assert mine.fields == (await lite.report(flt, fields=fields)).fields
        assert await pg.field_names(flt) == await lite.field_names(flt)
        assert await pg.field_names(flt, limit=2) == await lite.field_names(flt, limit=2)
    assert {f.kind for f in (await pg.report(CallFilter())).fields} == \
        {"boolean", "number", "text"}
    # The export's pages: the same calls, page by page.
    flt = CallFilter(since=NOW - 10 * DAY, campaign_id=3)
    after = 0
    while True:
        page = await pg.export_calls(flt, after_id=after, limit=97, transcripts=True)
        assert page == await lite.export_calls(flt, after_id=after, limit=97,
                                               transcripts=True)
        if not page:
            break
        after = page[-1].id
    # JSON as written by hand (SQLite reads 1e3 as a real, 4.50 as 4.5, keeps an object's
    # text without spaces), JSON that is not an object, and text that is not JSON.
    sqlite_db = f"sqlite:///{tmp_path / 'sqlite.db'}"  # this file, on either run
    ids = [r[0] for r in db_rows(sqlite_db, "SELECT call_id FROM calls WHERE call_id IS "
                                 "NOT NULL ORDER BY created_at DESC LIMIT 8")]
    texts = ['{"rating": 4.50, "city": 1e3, "notes": { "a" : [1, 2.50, "\\u0e01"] }}',
             '{"rating": 1E2, "city": "Bangkok", "rating": 12345678901234567890}',
             '{"will_attend": NaN}', "not json", '["a", 2]', '"Bangkok"', "17", "null"]
    for call_id, text in zip(ids, texts, strict=True):
        for where in (sqlite_db, pg_url):
            db_execute(where, "UPDATE calls SET extracted = ? WHERE call_id = ?", text,
                       call_id)
    for flt in flts:
        mine = await pg.report(flt)
        assert mine.fields == (await lite.report(flt)).fields
        assert await pg.field_names(flt) == await lite.field_names(flt)


async def test_a_nul_in_the_fields_skips_that_call_on_postgres(
        stores: tuple[Store, Store], tmp_path: Path, pg_url: str) -> None:
    """PostgreSQL's text cannot hold a NUL: a call whose fields carry one (JSON's \\u0000)
    is left out of the summaries there (SQLite counts it), and nothing else changes."""
    lite, pg = stores
    sqlite_db = f"sqlite:///{tmp_path / 'sqlite.db'}"  # this file, on either run
    [(call_id,)] = db_rows(sqlite_db, "SELECT call_id FROM calls WHERE call_id IS NOT NULL "
                           "ORDER BY created_at DESC LIMIT 1")
    for where in (sqlite_db, pg_url):
        db_execute(where, "UPDATE calls SET extracted = ? WHERE call_id = ?",
                   '{"odd": "a\\u0000b"}', call_id)
    flt = CallFilter(since=NOW - 7 * DAY)
    theirs = {f.name: f for f in (await lite.report(flt)).fields}
    mine = await pg.report(flt)
    assert theirs.pop("odd").count == 1
    assert {f.name: f for f in mine.fields} == theirs
    assert await pg.field_names(flt) == [n for n in await lite.field_names(flt) if n != "odd"]
