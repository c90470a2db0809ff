"""Full-text search on a real database (the suite's SQLite file or PostgreSQL schema):
English and Thai, the index in step with every write path (upsert, imports, retention,
deletes, the migration's backfill), filters, summaries only, paging, typed text never read
as query syntax, and the snippet's marks."""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from storage.migrations import MIGRATIONS
from storage.models import (
    STAGE_ANALYZED,
    STAGE_ENDED,
    Attempt,
    CallFields,
    CallFilter,
    CallRecord,
    Route,
)
from storage.postgres import schema as pg_schema
from storage.postgres import search as pg_search
from storage.postgres.connection import _sql
from storage.postgres.filters import filter_sql as pg_filter_sql
from storage.sqlite import search
from storage.sqlite.filters import filter_sql
from storage.sqlite.search import MARK_END, MARK_START, SearchTooShort, make_snippet
from tests.support.db import db_execute, db_rows
from tests.support.stores import database_for, on_postgres, pg_execute, store_for

# Whole real servers (or databases) per test: the full suite runs them; the fast lane
# (`-m "not slow"`) leaves them out.
pytestmark = pytest.mark.slow


T0 = 1_700_000_000.0
THAI = "ลูกค้าต้องการเลื่อนนัดเป็นวันศุกร์"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "calls.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[Any]:
    async with store_for(db) as s:
        yield s


def caps(mp: pytest.MonkeyPatch, *, rank: int | None = None,
         narrow: int | None = None) -> None:
    """Set the thresholds of both stores' searches (PostgreSQL has no FILTER_CAP: its
    planner picks a narrow filter's index from the table's statistics)."""
    if rank is not None:
        mp.setattr(search, "RANK_CAP", rank)
        mp.setattr(pg_search, "RANK_CAP", rank)
    if narrow is not None:
        mp.setattr(search, "FILTER_CAP", narrow)


def call(call_id: str, at: float = T0, **kw: Any) -> CallRecord:
    base = CallRecord(id=0, call_id=call_id, direction="outbound", status="ended",
                      stage=STAGE_ANALYZED, created_at=at, updated_at=at,
                      to_number="+14155550100", from_number="+14155550999")
    return replace(base, **kw)


def fields(call_id: str, **kw: Any) -> CallFields:
    return replace(CallFields(call_id=call_id, status="ended", stage=STAGE_ENDED,
                              to_number="+14155550100"), **kw)


async def ids(store: Any, words: str, flt: CallFilter | None = None,
              **kw: Any) -> list[str | None]:
    hits = await store.search_calls(words, flt or CallFilter(), limit=kw.pop("limit", 50), **kw)
    return [h.call.call_id for h in hits]


async def agrees(store: Any, db: Path, words: list[str]) -> None:
    """A search finds exactly the calls whose text holds each word, summaries only or not
    (ASCII words, so lower() folds as the index does): nothing stale, nothing missing; on
    SQLite, both FTS5 indexes hold exactly those calls too."""
    for word in words:
        pattern = f"%{word.lower()}%"
        truth = {r[0] for r in db_rows(
            db, "SELECT call_id FROM calls WHERE lower(summary) LIKE ? "
            "OR lower(transcript) LIKE ?", pattern, pattern)}
        assert set(await ids(store, word, limit=1000)) == truth, word
        truth = {r[0] for r in db_rows(
            db, "SELECT call_id FROM calls WHERE lower(summary) LIKE ?", pattern)}
        assert set(await ids(store, word, limit=1000, include_transcripts=False)) == truth, word
    if on_postgres():
        return  # its indexes are PostgreSQL's own, in step by construction
    conn = sqlite3.connect(db)
    try:
        for word in words:
            quoted = f'"{word}"'
            found = {r[0] for r in conn.execute(
                "SELECT rowid FROM calls_fts WHERE calls_fts MATCH ?", (quoted,))}
            truth = {r[0] for r in conn.execute(
                "SELECT id FROM calls WHERE instr(lower(summary), lower(?)) > 0 "
                "OR instr(lower(transcript), lower(?)) > 0", (word, word))}
            assert found == truth, word
            found = {r[0] for r in conn.execute(
                "SELECT rowid FROM calls_fts_summary WHERE calls_fts_summary MATCH ?",
                (quoted,))}
            truth = {r[0] for r in conn.execute(
                "SELECT id FROM calls WHERE instr(lower(summary), lower(?)) > 0", (word,))}
            assert found == truth, word
    finally:
        conn.close()


# -- languages -----------------------------------------------------------------------------------


async def test_english_and_thai_text_is_found(store: Any) -> None:
    await store.import_calls([
        call("thai", summary=THAI),
        call("thai_other", summary="ลูกค้าไม่ว่าง ขอให้ติดต่อกลับสัปดาห์หน้า"),
        call("english", summary="Asked about the renewal.",
             transcript="Agent: Hello\nUser: Please send the PAPERWORK today"),
    ])
    assert await ids(store, "เลื่อนนัด") == ["thai"]  # inside a sentence with no spaces
    assert await ids(store, "วันศุกร์") == ["thai"]
    assert await ids(store, "ติดต่อกลับ") == ["thai_other"]
    assert await ids(store, "Paperwork") == ["english"]  # case folded, from the transcript
    assert await ids(store, "RENEWAL") == ["english"]
    assert await ids(store, "renewals") == []
    assert await ids(store, "นัดหมาย") == []


async def test_summary_matches_rank_first_and_rank_is_bm25_order(store: Any) -> None:
    filler = " ".join(["words about nothing in particular"] * 40)
    await store.import_calls([
        call("in_transcript", transcript=f"{filler} zeppelin {filler}"),
        call("in_summary", summary="The zeppelin order is late"),
        call("none", summary="Nothing here"),
    ])
    hits = await store.search_calls("zeppelin", CallFilter(), limit=10)
    assert [h.call.call_id for h in hits] == ["in_summary", "in_transcript"]
    assert hits[0].rank < hits[1].rank < 0  # FTS5's bm25: lower is better
    assert hits[0].call.summary == "The zeppelin order is late"
    assert all(h.call.transcript is None for h in hits)  # light records


# -- the index in step with writes ---------------------------------------------------------------


async def test_upsert_summary_arriving_later_is_found(store: Any, db: Path) -> None:
    await store.record_events([("call_started", ["card"])], fields("c1", stage=1))
    assert await ids(store, "paperwork") == []
    await store.record_events([("call_ended", ["card"])],
                              fields("c1", transcript="User: send the paperwork"))
    assert await ids(store, "paperwork") == ["c1"]
    assert await ids(store, "renewal") == []
    # The analysis webhook brings the summary later; the transcript stays indexed.
    await store.record_events([("call_analyzed", ["summary"])],
                              fields("c1", stage=STAGE_ANALYZED, summary="Renewal agreed"))
    assert await ids(store, "renewal") == ["c1"]
    assert await ids(store, "paperwork") == ["c1"]
    assert await ids(store, "renewal", include_transcripts=False) == ["c1"]
    # A webhook that says nothing new about the texts changes nothing, duplicates nothing.
    await store.record_events([("call_analyzed", [])], fields("c1", stage=STAGE_ANALYZED),
                              always=["card"])
    assert await ids(store, "renewal paperwork") == ["c1"]
    # A newer summary replaces the old one in the index.
    await store.record_events([("call_analyzed_again", [])],
                              fields("c1", stage=STAGE_ANALYZED, summary="Cancelled instead"))
    assert await ids(store, "renewal") == []
    assert await ids(store, "cancelled", include_transcripts=False) == ["c1"]
    await agrees(store, db, ["renewal", "paperwork", "cancelled", "agreed", "user"])


@pytest.mark.sqlite_only("FTS5's docsize table: which rows the trigram index holds")
async def test_placed_and_failed_attempts_without_text_are_not_indexed(
        store: Any, db: Path) -> None:
    attempt = Attempt(route=Route("T1", "C1", "U1"), from_number="+14155550999",
                      to_number="+14155550100", agent_id="a1", agent_name="Sales",
                      variables={})
    await store.record_failed_attempt(attempt, "refused")
    await store.save_placed_call(attempt, "c1", "registered", None)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM calls").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM calls_fts_docsize").fetchone()[0] == 0
    finally:
        conn.close()


async def test_retention_removes_transcript_words_and_keeps_the_summary(
        store: Any, db: Path) -> None:
    await store.record_events([("call_analyzed", [])], fields(
        "old", stage=STAGE_ANALYZED, summary="Renewal agreed",
        transcript="User: my zeppelin arrived broken"))
    assert await ids(store, "zeppelin") == ["old"]
    cleared = await store.purge_before(time.time() + 1)
    assert cleared == 1
    assert await ids(store, "zeppelin") == []  # transcript-only: gone with the transcript
    hits = await store.search_calls("renewal", CallFilter(), limit=10)
    assert [h.call.call_id for h in hits] == ["old"]
    assert "zeppelin" not in hits[0].snippet
    await agrees(store, db, ["zeppelin", "renewal", "broken"])


async def test_imports_are_indexed_once(store: Any, db: Path) -> None:
    records = [call(f"c{i}", summary=f"Order {i} shipped", transcript="User: thanks")
               for i in range(30)]
    assert await store.import_calls(records, batch=7) == 30
    assert await store.import_calls(records[:10]) == 0  # already stored: skipped
    assert len(await ids(store, "shipped")) == 30
    assert await ids(store, "order 17") == ["c17"]  # "17" is short: checked on the text
    await agrees(store, db, ["shipped", "thanks", "order"])


async def test_deleting_a_call_removes_it_from_the_index(store: Any, db: Path) -> None:
    await store.import_calls([call("a", summary="zeppelin one"), call("b", summary="zeppelin")])
    db_execute(db, "DELETE FROM calls WHERE call_id = 'a'")
    assert await ids(store, "zeppelin") == ["b"]
    assert await ids(store, "zeppelin", include_transcripts=False) == ["b"]
    await agrees(store, db, ["zeppelin", "one"])


async def test_the_migration_indexes_calls_stored_before_it(db: Path) -> None:
    if on_postgres():  # the schema as it stood before the SEARCH step
        before = pg_schema.MIGRATIONS.index(pg_schema.SEARCH)
        await pg_execute(database_for(db), "CREATE TABLE schema_version (version integer "
                         "NOT NULL);\n" + "\n".join(pg_schema.MIGRATIONS[:before]) +
                         f"\nINSERT INTO schema_version SELECT generate_series(1, {before});")
    else:  # the migrations before the one that made the FTS5 indexes
        before = next(n for n, script in enumerate(MIGRATIONS) if "calls_fts" in script)
        conn = sqlite3.connect(db, isolation_level=None)
        for number, script in enumerate(MIGRATIONS[:before], start=1):
            conn.executescript(
                f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
        conn.close()
    db_execute(db, "INSERT INTO calls (call_id, status, created_at, updated_at, summary, "
               "transcript) VALUES ('before', 'ended', 1, 1, ?, 'User: zeppelin')", THAI)
    db_execute(db, "INSERT INTO calls (call_id, status, created_at, updated_at) "
               "VALUES ('bare', 'ended', 1, 1)")
    async with store_for(db) as store:
        assert await ids(store, "เลื่อนนัด") == ["before"]
        assert await ids(store, "zeppelin") == ["before"]
        assert await ids(store, "เลื่อนนัด", include_transcripts=False) == ["before"]
        # and kept in step from then on
        await store.import_calls([call("after", summary="zeppelin")])
        assert sorted(await ids(store, "zeppelin")) == ["after", "before"]
        await agrees(store, db, ["zeppelin", "user"])


# -- filters -------------------------------------------------------------------------------------


async def seed_filtered(store: Any) -> None:
    word = "word: zeppelin"
    await store.import_calls([
        call("early", at=T0 - 100, summary=word),
        call("start", at=T0, summary=word, user_id="U1", channel_id="C1"),
        call("agent", at=T0 + 10, summary=word, agent_id="agent_x", agent_name="Sales Team"),
        call("campaign", at=T0 + 20, summary=word, campaign_id=7),
        call("inbound", at=T0 + 30, summary=word, direction="inbound"),
        call("success", at=T0 + 40, summary=word, successful=True),
        call("unsuccessful", at=T0 + 50, summary=word, successful=False,
             disconnection_reason="voicemail_reached"),
        call("errored", at=T0 + 60, summary=word, status="error"),
        call("busy", at=T0 + 70, summary=word, disconnection_reason="dial_busy"),
        call("end", at=T0 + 100, summary=word),
    ])


@pytest.mark.parametrize(("flt", "expected"), [
    (CallFilter(since=T0, until=T0 + 100),
     {"start", "agent", "campaign", "inbound", "success", "unsuccessful", "errored", "busy"}),
    (CallFilter(until=T0), {"early"}),
    (CallFilter(agent="agent_x"), {"agent"}),
    (CallFilter(agent="sales team"), {"agent"}),
    (CallFilter(user_id="U1"), {"start"}),
    (CallFilter(channel_id="C1"), {"start"}),
    (CallFilter(campaign_id=7), {"campaign"}),
    (CallFilter(direction="inbound"), {"inbound"}),
    (CallFilter(outcome="success"), {"success"}),
    # One outcome per call: an unanswered call the analysis called unsuccessful is no-answer.
    (CallFilter(outcome="failed"), {"errored"}),
    (CallFilter(outcome="no-answer"), {"unsuccessful", "busy"}),
    (CallFilter(since=T0, outcome="no-answer", direction="outbound"), {"unsuccessful", "busy"}),
    (CallFilter(user_id="U2"), set()),
])
async def test_filters(store: Any, flt: CallFilter, expected: set[str]) -> None:
    await seed_filtered(store)
    assert set(await ids(store, "zeppelin", flt)) == expected
    # the same with a word too common to rank (newest first, straight from the index)
    # and with a filter narrow enough to be read through its own index
    with pytest.MonkeyPatch.context() as mp:
        caps(mp, rank=2)
        assert set(await ids(store, "zeppelin", flt)) == expected
        caps(mp, narrow=100)
        assert set(await ids(store, "zeppelin", flt)) == expected


def test_filter_sql_refuses_an_unknown_outcome() -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        filter_sql(CallFilter(outcome="maybe"))
    assert filter_sql(CallFilter()) == ("1", {})
    where, params = filter_sql(CallFilter(user_id="U1", since=5.0), alias="")
    assert where == "created_at >= :f_since AND user_id = :f_user_id"
    assert params == {"f_since": 5.0, "f_user_id": "U1"}


async def test_failed_attempts_match_the_failed_outcome(store: Any, db: Path) -> None:
    attempt = Attempt(route=Route("T1", "C1", "U1"), from_number="+14155550999",
                      to_number="+14155550100", agent_id="a1", agent_name="Sales",
                      variables={})
    await store.record_failed_attempt(attempt, "refused")
    await store.save_placed_call(attempt, "placed", "registered", None)
    where, params = (pg_filter_sql if on_postgres() else filter_sql)(
        CallFilter(outcome="failed"))
    rows = db_rows(db, "SELECT call_id, error FROM calls c WHERE "
                   + where.replace(":f_outcome", "?"), params["f_outcome"])
    assert [tuple(r) for r in rows] == [(None, "refused")]


# -- summaries only, paging ------------------------------------------------------------------------


async def test_summaries_only_never_reads_or_shows_transcripts(store: Any) -> None:
    await store.import_calls([
        call("both", summary="Renewal agreed", transcript="User: renewal yes, secret code"),
        call("transcript_only", transcript="User: the renewal, secret code"),
    ])
    assert sorted(await ids(store, "renewal")) == ["both", "transcript_only"]
    hits = await store.search_calls("renewal", CallFilter(), limit=10,
                                    include_transcripts=False)
    assert [h.call.call_id for h in hits] == ["both"]
    assert "secret" not in hits[0].snippet
    assert await ids(store, "secret", include_transcripts=False) == []
    assert await ids(store, "renewal yes", include_transcripts=False) == []  # short: summary
    assert await ids(store, "renewal yes") == ["both"]


@pytest.mark.parametrize("rank_cap", [1_000, 5])  # ranked by bm25; newest first
async def test_paging_covers_every_match_once(store: Any, rank_cap: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    caps(monkeypatch, rank=rank_cap)
    await store.import_calls([call(f"c{i:02d}", summary="zeppelin " + "x " * i)
                              for i in range(25)] + [call("other", summary="nothing")])
    pages = [await store.search_calls("zeppelin", CallFilter(), limit=10, offset=o)
             for o in (0, 10, 20, 30)]
    assert [len(p) for p in pages] == [10, 10, 5, 0]
    found = [h.call.call_id for page in pages for h in page]
    assert sorted(found) == [f"c{i:02d}" for i in range(25)]
    if rank_cap < 25:  # newest first
        assert found == [f"c{i:02d}" for i in reversed(range(25))]
        assert all(h.rank == 0.0 for page in pages for h in page)
    else:  # best first: the shortest summary ranks highest
        ranks = [h.rank for page in pages for h in page]
        assert ranks == sorted(ranks) and ranks[0] < ranks[-1]
        assert found[0] == "c00"
    assert await store.search_calls("zeppelin", CallFilter(), limit=0) == []


# -- what is typed is text -----------------------------------------------------------------------


@pytest.mark.parametrize("words", [
    '"', '""', '"zeppelin', 'zeppelin"', "zeppelin*", "NEAR(zeppelin", "NEAR(zeppelin renewal)",
    "zeppelin OR renewal", "zeppelin NOT renewal", "-zeppelin", "summary:zeppelin",
    "{summary}:zeppelin", "^zeppelin", "(zeppelin", "zeppelin AND", "'zeppelin'",
    "zeppelin + renewal", "*",
])
async def test_query_syntax_in_the_words_is_inert(store: Any, words: str) -> None:
    await store.import_calls([
        call("zeppelin", summary="A zeppelin arrived"),
        call("renewal", summary="A renewal arrived"),
    ])
    try:
        found = await ids(store, words)
    except SearchTooShort:
        assert all(len(w) < 3 for w in words.split())
        return
    # No operator worked: OR, NOT, NEAR, prefixes and column filters would each have found
    # some call; as text, every word must be in the call, and these are in neither.
    assert found == [], words


async def test_quotes_and_stars_are_matched_as_typed(store: Any) -> None:
    await store.import_calls([
        call("quoted", summary='He said "zeppelin" twice'),
        call("plain", summary="He said zeppelin twice"),
        call("star", summary="Plan zeppelin* applies"),
        call("or", summary="zeppelin OR renewal, he asked"),
    ])
    assert await ids(store, '"zeppelin"') == ["quoted"]
    assert await ids(store, "zeppelin*") == ["star"]
    assert await ids(store, "zeppelin OR renewal") == ["or"]
    assert sorted(await ids(store, "twice zep\x00pel\x01in")) == ["plain", "quoted"]
    assert sorted(await ids(store, "zeppelin")) == ["or", "plain", "quoted", "star"]


async def test_short_words(store: Any) -> None:
    await store.import_calls([
        call("ok", summary="Renewal is ok"),
        call("no", summary="Renewal refused"),
        call("thai", summary="ลูกค้าจะไปวันศุกร์"),
    ])
    for words in ("ok", "ok no", "", "   ", "ไป", "a b"):
        with pytest.raises(SearchTooShort) as refused:
            await store.search_calls(words, CallFilter(), limit=10)
        assert refused.value.code == "search_too_short"
        assert isinstance(refused.value, ValueError)
    assert await ids(store, "renewal OK") == ["ok"]  # the short word checked on the text
    assert await ids(store, "renewal is") == ["ok"]
    assert await ids(store, "วันศุกร์ ไป") == ["thai"]
    assert await ids(store, "วันศุกร์ มา") == []


# -- snippets ------------------------------------------------------------------------------------


async def test_snippet_marks_the_matches(store: Any) -> None:
    long_text = ("Agent: hello. " * 30) + "User: move the Renewal to Friday. " + \
        ("Agent: noted. " * 30)
    await store.import_calls([
        call("long", summary="Nothing", transcript=long_text),
        call("thai", summary=THAI),
    ])
    [hit] = await store.search_calls("renewal friday", CallFilter(), limit=10)
    assert f"{MARK_START}Renewal{MARK_END}" in hit.snippet  # the text's own case
    assert f"{MARK_START}Friday{MARK_END}" in hit.snippet
    assert hit.snippet.startswith("…") and hit.snippet.endswith("…")
    assert "\n" not in hit.snippet and len(hit.snippet) < 260
    [hit] = await store.search_calls("เลื่อนนัด", CallFilter(), limit=10)
    assert hit.snippet == f"ลูกค้าต้องการ{MARK_START}เลื่อนนัด{MARK_END}เป็นวันศุกร์"


async def test_stored_text_cannot_forge_a_mark(store: Any, db: Path) -> None:
    forged = f"{MARK_START}URGENT{MARK_END} refund {MARK_START}now"
    await store.import_calls([call("forged", summary=forged, transcript=f"{MARK_END}{forged}")])
    for include in (True, False):
        [hit] = await store.search_calls("refund", CallFilter(), limit=10,
                                         include_transcripts=include)
        assert hit.snippet.count(MARK_START) == hit.snippet.count(MARK_END) == 1
        assert f"{MARK_START}refund{MARK_END}" in hit.snippet
        assert "URGENT" in hit.snippet
    # Typing the marks does not find the marks either.
    assert await ids(store, f"{MARK_START}URGENT") == ["forged"]
    await agrees(store, db, ["refund", "urgent"])


def test_make_snippet_closes_a_mark_it_cuts() -> None:
    text = "x " * 100 + MARK_START + "y" * 300 + MARK_END
    snippet = make_snippet(text, width=120)
    assert snippet.count(MARK_START) == snippet.count(MARK_END) == 1
    assert snippet.startswith("…") and snippet.endswith("…")
    assert make_snippet("short") == "short"


# -- by number -----------------------------------------------------------------------------------


async def test_number_finds_the_other_partys_calls_newest_first(store: Any) -> None:
    them, us = "+14155550100", "+14155550999"
    await store.import_calls([
        call("to_them", at=T0, to_number=them, from_number=us, summary="Placed"),
        call("from_them", at=T0 + 10, direction="inbound", from_number=them, to_number=us),
        call(None, at=T0 + 20, to_number=them, from_number=us, status="failed", stage=0),
        call("to_someone_else", at=T0 + 30, to_number="+14155550101", from_number=us),
        call("inbound_to_us_from_else", at=T0 + 40, direction="inbound",
             from_number="+14155550102", to_number=us),
    ])
    hits = await store.search_calls("(415) 555-0100", CallFilter(), limit=10, number=them)
    assert [h.call.call_id for h in hits] == [None, "from_them", "to_them"]
    assert [h.rank for h in hits] == [0.0, 0.0, 0.0]
    assert hits[2].snippet == "Placed"
    failed = await store.search_calls("", CallFilter(outcome="failed"), limit=10, number=them)
    assert [h.call.call_id for h in failed] == [None]
    paged = await store.search_calls("", CallFilter(), limit=1, offset=1, number=them)
    assert [h.call.call_id for h in paged] == ["from_them"]
    assert await store.search_calls("", CallFilter(), limit=10, number=us) == []


# -- no filter makes a selective word read more than its own calls --------------------------------


def plan(db: Path, sql: str, params: dict[str, Any]) -> str:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    finally:
        conn.close()
    return "\n".join(str(r[-1]) for r in rows)


@pytest.mark.sqlite_only("the plans of SQLite's FTS5 queries (INDEXED BY, CROSS JOIN order)")
@pytest.mark.parametrize(("rank_cap", "filter_cap"), [(1_000, 0), (0, 0), (0, 1_000)])
async def test_search_queries_never_scan_calls(store: Any, db: Path, rank_cap: int,
                                               filter_cap: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranked, newest first, and through the filter's index: each reads `calls` by its
    key or through an index, never by a scan, whatever the filter."""
    monkeypatch.setattr(search, "RANK_CAP", rank_cap)
    monkeypatch.setattr(search, "FILTER_CAP", filter_cap)
    await store.import_calls([call("c1", summary="zeppelin renewal", user_id="U1")])
    seen: list[tuple[str, dict[str, Any]]] = []
    read = store._search_read

    async def spy(sql: str, params: dict[str, Any]) -> list[Any]:
        seen.append((sql, params))
        rows: list[Any] = await read(sql, params)
        return rows

    monkeypatch.setattr(store, "_search_read", spy)
    flt = CallFilter(since=0.0, user_id="U1", agent="x", outcome="failed")
    await store.search_calls("zeppelin renewal ok", flt, limit=10)
    sql, params = seen[-1]
    text = plan(db, sql, params)
    assert "SCAN c\n" not in text + "\n" and "SCAN calls\n" not in text + "\n", text
    assert ("calls_user" in text) == bool(filter_cap), text


async def pg_plan(db: Path, sql: str, params: dict[str, Any]) -> str:
    """PostgreSQL's plan for `sql`, with sequential scans priced out as the store prices
    them out: which indexes the query is answered by."""
    import asyncpg

    text, args = _sql(sql, params)
    conn = await asyncpg.connect(database_for(db),
                                 server_settings={"enable_seqscan": "off", "jit": "off"})
    try:
        return "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + text, *args))
    finally:
        await conn.close()


@pytest.mark.skipif(not on_postgres(), reason="PostgreSQL's plans")
@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("rank_cap", [1_000, 0])
async def test_postgres_search_reads_through_the_trigram_indexes(
        store: Any, db: Path, rank_cap: int, include: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The queries' texts are the indexes' expressions: each term is counted through the
    trigram indexes (the transcripts' only when transcripts are searched), a ranked search
    finds its calls through them, and a search by common words walks the calls newest
    first instead of collecting every call a word is in; none scans `calls`."""
    caps(monkeypatch, rank=rank_cap)
    await store.import_calls([call("c1", summary="zeppelin renewal", user_id="U1")])
    seen: list[tuple[str, dict[str, Any]]] = []
    read = store._search_read

    async def spy(sql: str, params: dict[str, Any]) -> list[Any]:
        seen.append((sql, params))
        rows: list[Any] = await read(sql, params)
        return rows

    monkeypatch.setattr(store, "_search_read", spy)
    for flt in (CallFilter(), CallFilter(since=0.0, user_id="U1", agent="x", outcome="failed")):
        seen.clear()
        await store.search_calls("zeppelin renewal ok", flt, limit=10,
                                 include_transcripts=include)
        _, (counts, counts_params), (page, page_params) = seen
        text = await pg_plan(db, counts, counts_params)
        assert text.count("calls_summary_trgm") == 2, text
        assert text.count("calls_transcript_trgm") == (2 if include else 0), text
        text = await pg_plan(db, page, page_params)
        assert "Seq Scan on calls" not in text, text
        if not rank_cap:  # common words: newest first, or through the filter's index
            assert "trgm" not in text, text
            assert ("calls_user" in text) == (flt != CallFilter()), text
        elif flt == CallFilter():  # the rare words' calls, through their indexes
            assert "calls_summary_trgm" in text, text
            assert ("calls_transcript_trgm" in text) == include, text
    # A word pg_trgm cannot look up is never looked up (that would read the whole index).
    seen.clear()
    await store.search_calls("???", CallFilter(), limit=10, include_transcripts=include)
    _, (page, page_params) = seen
    text = await pg_plan(db, page, page_params)
    assert "Seq Scan on calls" not in text and "trgm" not in text, text


# -- the same order and scores on both stores ----------------------------------------------------


def bm25(idfs: list[float], freqs: list[float]) -> float:
    """FTS5's bm25 of a call as long as the average call (so length drops out)."""
    return -sum(w * f * 2.2 / (f + 1.2) for w, f in zip(idfs, freqs, strict=True))


async def test_rank_is_fts5s_bm25(store: Any) -> None:
    """Every summary the same length, so the average length is the same whatever it is
    taken over: the ranks are FTS5's bm25 to the last digits, on either store."""
    texts = ["alpha alpha bravo", "alpha bravo", *["bravo"] * 4, *["charlie"] * 4]
    await store.import_calls([call(f"c{i}", summary=t.ljust(40, "."))
                              for i, t in enumerate(texts)])
    common = 1e-6  # bravo is in more than half the calls: FTS5's floor
    rare = math.log((10 - 2 + 0.5) / (2 + 0.5))  # alpha: in 2 calls of 10
    for include, weight in ((True, 2), (False, 1)):
        hits = await store.search_calls("alpha bravo", CallFilter(), limit=10,
                                        include_transcripts=include)
        assert [h.call.call_id for h in hits] == ["c0", "c1"]
        assert hits[0].rank == pytest.approx(bm25([rare, common], [2 * weight, weight]),
                                             rel=1e-9)
        assert hits[1].rank == pytest.approx(bm25([rare, common], [weight, weight]), rel=1e-9)


async def test_case_folds_beyond_ascii_and_marks_inside_words_do_not_hide_them(
        store: Any) -> None:
    await store.import_calls([
        call("french", summary="Réunion à l'ÉCOLE demain"),
        call("split", summary=f"Asked for a ref{MARK_START}und{MARK_END} today"),
    ])
    assert await ids(store, "école") == ["french"]
    assert await ids(store, "RÉUNION") == ["french"]
    [hit] = await store.search_calls("refund", CallFilter(), limit=10)
    assert hit.call.call_id == "split"
    assert hit.snippet == f"Asked for a {MARK_START}refund{MARK_END} today"


async def test_overlapping_matches_are_marked_as_one(store: Any) -> None:
    await store.import_calls([call("c1", summary="The renewal is due")])
    [hit] = await store.search_calls("renew newal", CallFilter(), limit=10)
    assert hit.snippet == f"The {MARK_START}renewal{MARK_END} is due"


async def test_words_without_letters_are_found_too(store: Any) -> None:
    """pg_trgm looks up letters and digits only: a word of other characters is checked on
    the calls read instead, with the same hits as SQLite's trigram index gives."""
    await store.import_calls([
        call("puzzled", at=T0, summary="Wait... what??? The zeppelin?"),
        call("calm", at=T0 + 1, summary="The zeppelin arrived. Thanks..."),
        call("dashes", at=T0 + 2, summary="a-- b-- c--"),
    ])
    assert await ids(store, "???") == ["puzzled"]
    # (ranked on SQLite; never ranked on PostgreSQL, which cannot count its calls)
    assert sorted(await ids(store, "...")) == ["calm", "puzzled"]
    assert await ids(store, "zeppelin ???") == ["puzzled"]
    assert await ids(store, "a--") == ["dashes"]
    assert await ids(store, "!!!") == []
    [hit] = await store.search_calls("???", CallFilter(), limit=10)
    assert f"what{MARK_START}???{MARK_END}" in hit.snippet
