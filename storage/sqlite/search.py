"""Full-text search over calls' summaries and transcripts (SearchStore).

The index is `calls_fts` (migration 9): FTS5 with the trigram tokenizer over `calls`, kept
in step by triggers. Trigram matching is substring matching, so a term is found inside
longer words, and Thai (no spaces between words) works as English does.

Ranking. Best matches come first by bm25 (a summary match weighs twice a transcript one)
among the newest `RANK_WINDOW` matching calls; past those, matches follow newest first.
A rare word has fewer matches than the window, so its order is plain bm25. A common word
would otherwise have every one of its matches scored and sorted for ten results, which is
what makes FTS slow on a large history; walking the index newest first stops early.
"Newest" is the order calls were stored in (their row id), which is the order they were
placed in except for imported history.
"""

from __future__ import annotations

import re
from dataclasses import fields as dc_fields
from typing import Any

from storage.models import CallFilter, CallRecord, SearchHit
from storage.sqlite.connection import _Connection, _HeavyReader
from storage.sqlite.rows import _to_record

MIN_TERM_CHARS = 3  # the trigram tokenizer cannot look up anything shorter
RANK_WINDOW = 500  # the newest matches ranked by bm25; the rest follow, newest first
SNIPPET_CHARS = 200  # visible characters of a snippet, about
MARK_START, MARK_END = "\x02", "\x03"  # around each match in a snippet; never in stored text
OUTCOMES = ("success", "failed", "no-answer")
NO_ANSWER_REASONS = ("dial_no_answer", "dial_busy", "voicemail_reached")
_BM25 = "bm25(calls_fts, 2.0, 1.0)"  # summary, transcript
_MARKS = str.maketrans("", "", MARK_START + MARK_END)
# A hit's call, light: every field but the transcript.
_HIT_COLUMNS = ", ".join(f"c.{f.name}" for f in dc_fields(CallRecord) if f.name != "transcript")


class SearchTooShort(ValueError):
    """No search term has MIN_TERM_CHARS characters: nothing the index can look up."""

    code = "search_too_short"

    def __init__(self) -> None:
        super().__init__(f"{self.code}: a search needs a word of {MIN_TERM_CHARS} "
                         "characters or more")


def filter_sql(flt: CallFilter, alias: str = "c") -> tuple[str, dict[str, Any]]:
    """`flt` as a WHERE condition on `calls` (under `alias`; "" for none) and its named
    parameters (all prefixed `f_`); "1" when it filters nothing.

    - time: `since <= created_at < until`;
    - agent: the agent id, or the agent's name without regard to (ASCII) case;
    - user_id, channel_id, campaign_id, direction: equal;
    - outcome `success`: the analysis called the call successful (successful = 1);
    - outcome `failed`: an attempt Retell refused (call_id IS NULL), a call that ended in
      error (status 'error'), or one the analysis called unsuccessful (successful = 0);
    - outcome `no-answer`: nobody answered (disconnection_reason dial_no_answer,
      dial_busy or voicemail_reached).
    The outcomes can overlap: a voicemail the analysis called unsuccessful is both failed
    and no-answer. An unknown outcome raises ValueError.
    """
    col = f"{alias}." if alias else ""
    parts: list[str] = []
    params: dict[str, Any] = {}
    if flt.since is not None:
        parts.append(f"{col}created_at >= :f_since")
        params["f_since"] = flt.since
    if flt.until is not None:
        parts.append(f"{col}created_at < :f_until")
        params["f_until"] = flt.until
    if flt.agent is not None:
        parts.append(f"({col}agent_id = :f_agent OR lower({col}agent_name) = lower(:f_agent))")
        params["f_agent"] = flt.agent
    for name in ("user_id", "channel_id", "campaign_id", "direction"):
        value = getattr(flt, name)
        if value is not None:
            parts.append(f"{col}{name} = :f_{name}")
            params[f"f_{name}"] = value
    if flt.outcome is not None:
        if flt.outcome == "success":
            parts.append(f"{col}successful = 1")
        elif flt.outcome == "failed":
            parts.append(f"({col}call_id IS NULL OR {col}status = 'error' "
                         f"OR {col}successful = 0)")
        elif flt.outcome == "no-answer":
            reasons = ", ".join(f"'{r}'" for r in NO_ANSWER_REASONS)
            parts.append(f"{col}disconnection_reason IN ({reasons})")
        else:
            raise ValueError(f"unknown outcome {flt.outcome!r}; one of {', '.join(OUTCOMES)}")
    return (" AND ".join(parts) or "1"), params


def search_terms(words: str) -> tuple[list[str], list[str]]:
    """The words split on white space (marks removed, repeats dropped): those the index can
    look up (MIN_TERM_CHARS or more), and shorter ones, which are checked on the rows the
    others found."""
    long: list[str] = []
    short: list[str] = []
    seen: set[str] = set()
    for word in words.translate(_MARKS).split():
        key = word.casefold()
        if key in seen:
            continue
        seen.add(key)
        (long if len(word) >= MIN_TERM_CHARS else short).append(word)
    return long, short


def fts_query(terms: list[str], *, summaries_only: bool = False) -> str:
    """An FTS5 query matching every term as a string, so nothing typed is FTS5 syntax:
    each term is quoted ("..." with quotes inside doubled) and the terms are ANDed."""
    quoted = ['"' + t.replace('"', '""') + '"' for t in terms]
    if summaries_only:
        quoted = [f"summary : {q}" for q in quoted]
    return " AND ".join(quoted)


def make_snippet(text: str, width: int = SNIPPET_CHARS) -> str:
    """About `width` characters of `text` (highlighted with the marks) on one line, from a
    little before the first match, with … where it was cut; every mark opened is closed."""
    text = " ".join(text.split())
    first = text.find(MARK_START)
    start = 0 if first < 0 else max(0, first - width // 4)
    if start:
        space = text.find(" ", start, first)
        start = space + 1 if 0 <= space < start + 20 else start
    end = start + width
    if end < len(text):
        space = text.rfind(" ", end - 20, end)
        end = space if space > max(start, first) else end
    end = min(end, len(text))
    piece = text[start:end]
    if piece.rfind(MARK_START) > piece.rfind(MARK_END):
        piece += MARK_END  # cut inside a match
    return ("…" if start else "") + piece + ("…" if end < len(text) else "")


def _pick_snippet(summary: str | None, transcript: str | None) -> str:
    """The snippet from the text with more matches marked (the summary on a tie)."""
    best = summary or ""
    if transcript and transcript.count(MARK_START) > best.count(MARK_START):
        best = transcript
    return make_snippet(best)


class SearchPart(_Connection):
    """Full-text search over calls' summaries and transcripts (SearchStore)."""

    async def _search_read(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """On the read-only connection for questions about history (shared with stats),
        so the reader that health checks and the outbox use never waits behind a search."""
        if not self._open:
            raise RuntimeError("store is not open")
        if self._heavy is None:
            self._heavy = _HeavyReader(self.path)
        return await self._heavy.read(sql, params)

    async def search_calls(
        self, words: str, flt: CallFilter, *, limit: int, offset: int = 0,
        include_transcripts: bool = True, number: str | None = None,
    ) -> list[SearchHit]:
        """Calls whose summary or transcript holds every word, best first (see the module's
        note on ranking), with a snippet around the matches (MARK_START ... MARK_END).

        `include_transcripts=False` searches summaries only and never shows transcript
        text. `number` (E.164): the words were a phone number; its calls are returned
        instead, newest first (rank 0.0, the snippet the start of the summary). Raises
        SearchTooShort when no word has MIN_TERM_CHARS characters."""
        if limit <= 0:
            return []
        offset = max(0, offset)
        where, params = filter_sql(flt)
        if number is not None:
            return await self._number_calls(number, where, params, limit, offset)
        long, short = search_terms(words)
        if not long:
            raise SearchTooShort()
        params["match"] = fts_query(long, summaries_only=not include_transcripts)
        texts = ("c.summary", "c.transcript") if include_transcripts else ("c.summary",)
        for n, term in enumerate(short):
            params[f"s{n}"] = term.lower()
            where += " AND (" + " OR ".join(
                f"instr(lower({t}), :s{n}) > 0" for t in texts) + ")"
        # The index drives (CROSS JOIN keeps it the outer loop, newest first) and each
        # match's call is looked up by its key to test the filter: a selective word reads
        # only its own calls whatever the filter, and a common one stops at the window.
        source = ("calls_fts" if where == "1"
                  else f"calls_fts CROSS JOIN calls c ON c.id = calls_fts.rowid AND {where}")
        matches = f"SELECT calls_fts.rowid AS id, {_BM25} AS rank FROM {source} " \
                  "WHERE calls_fts MATCH :match ORDER BY calls_fts.rowid DESC"
        hits: list[SearchHit] = []
        if offset < RANK_WINDOW:
            take = min(limit, RANK_WINDOW - offset)
            hits += await self._page(
                f"SELECT id, rank FROM ({matches} LIMIT {RANK_WINDOW}) "
                "ORDER BY rank, id DESC LIMIT :take OFFSET :skip",
                {**params, "take": take, "skip": offset}, include_transcripts)
            if len(hits) < take:
                return hits  # fewer matches than the window: that was all of them
        skip = max(offset, RANK_WINDOW)
        take = offset + limit - skip
        if take > 0:
            hits += await self._page(f"{matches} LIMIT :take OFFSET :skip",
                                     {**params, "take": take, "skip": skip},
                                     include_transcripts)
        return hits

    async def _page(self, page_sql: str, params: dict[str, Any],
                    include_transcripts: bool) -> list[SearchHit]:
        """The calls `page_sql` picks (id, rank), in its order, with their marked texts."""
        marked = "highlight(calls_fts, 1, char(2), char(3))" if include_transcripts else "NULL"
        rows = await self._search_read(
            f"""WITH page AS MATERIALIZED ({page_sql})
                SELECT {_HIT_COLUMNS}, page.rank AS rank,
                       highlight(calls_fts, 0, char(2), char(3)) AS marked_summary,
                       {marked} AS marked_transcript
                FROM page CROSS JOIN calls_fts CROSS JOIN calls c
                WHERE calls_fts MATCH :match AND calls_fts.rowid = page.id AND c.id = page.id
                ORDER BY page.rank, page.id DESC""",
            params)
        return [SearchHit(call=_to_record(r), rank=float(r["rank"]),
                          snippet=_pick_snippet(r["marked_summary"], r["marked_transcript"]))
                for r in rows]

    async def _number_calls(self, number: str, where: str, params: dict[str, Any],
                            limit: int, offset: int) -> list[SearchHit]:
        """The calls of the other party `number`: those placed to it, those it placed
        (inbound), and attempts to it Retell refused; each part read through its index."""
        rows = await self._search_read(
            f"""SELECT {_HIT_COLUMNS} FROM calls c INDEXED BY calls_number
                WHERE c.to_number = :number AND c.call_id IS NOT NULL
                  AND c.direction != 'inbound' AND {where}
                UNION ALL
                SELECT {_HIT_COLUMNS} FROM calls c INDEXED BY calls_inbound_number
                WHERE c.from_number = :number AND c.direction = 'inbound' AND {where}
                UNION ALL
                SELECT {_HIT_COLUMNS} FROM calls c INDEXED BY calls_failed_number
                WHERE c.to_number = :number AND c.call_id IS NULL
                  AND c.direction != 'inbound' AND {where}
                ORDER BY created_at DESC, id DESC LIMIT :take OFFSET :skip""",
            {**params, "number": number, "take": limit, "skip": offset})
        return [SearchHit(call=_to_record(r), rank=0.0,
                          snippet=make_snippet((r["summary"] or "").translate(_MARKS)))
                for r in rows]
