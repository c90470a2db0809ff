"""Full-text search over calls' summaries and transcripts (SearchStore).

The index is `calls_fts` (see its migration): FTS5 with the trigram tokenizer over
`calls`, kept in step by triggers. Trigram matching is substring matching, so a term is
found inside longer words, and Thai (no spaces between words) works as English does.

Order. Best matches first, by bm25 (a summary match weighs twice a transcript one),
scored on the terms found in at most RANK_CAP calls. bm25 weighs a term by how many calls
hold it, which FTS5 counts over the whole index on every query: for a term in half the
history that count alone reads every one of its matches, and its weight is next to
nothing anyway. When every term is that common, the calls come newest first instead, read
from the index newest first, so ten results read about ten matches, not all of them.
"Newest" is the order calls were stored in (row id): the order they were placed in,
except for imported history.
"""

from __future__ import annotations

from dataclasses import fields as dc_fields
from typing import Any

from storage.errors import MIN_TERM_CHARS, SearchTooShort
from storage.models import CallFilter, CallRecord, SearchHit
from storage.sqlite.connection import _Connection, _HeavyReader
from storage.sqlite.filters import filter_sql
from storage.sqlite.rows import _to_record

RANK_CAP = 1_000  # a term in more calls than this is too common to rank by
FILTER_CAP = 5_000  # a filter keeping fewer calls than this is read through its index
SNIPPET_CHARS = 200  # visible characters of a snippet, about
MARK_START, MARK_END = "\x02", "\x03"  # around each match in a snippet; never in stored text
_MARKS = str.maketrans("", "", MARK_START + MARK_END)
# Control characters other than white space: never part of a term (FTS5 would read a NUL
# as the end of the query), so they are dropped from what is typed, the marks with them.
_CONTROLS = str.maketrans("", "", "".join(
    chr(c) for c in (*range(32), 127) if not chr(c).isspace()))
# A hit's call, light: every field but the transcript.
_HIT_COLUMNS = ", ".join(f"c.{f.name}" for f in dc_fields(CallRecord) if f.name != "transcript")


def search_terms(words: str) -> tuple[list[str], list[str]]:
    """The words split on white space (control characters and marks dropped, repeats too):
    those the index can look up (MIN_TERM_CHARS or more), and shorter ones, which are
    checked on the rows the others found."""
    long: list[str] = []
    short: list[str] = []
    seen: set[str] = set()
    for word in words.translate(_CONTROLS).split():
        key = word.casefold()
        if key in seen:
            continue
        seen.add(key)
        (long if len(word) >= MIN_TERM_CHARS else short).append(word)
    return long, short


def fts_query(terms: list[str]) -> str:
    """An FTS5 query matching every term as a string, so nothing typed is FTS5 syntax:
    each term is quoted ("..." with quotes inside doubled) and the terms are ANDed."""
    return " AND ".join('"' + t.replace('"', '""') + '"' for t in terms)


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
        note on order), with a snippet around the matches (MARK_START ... MARK_END).

        `include_transcripts=False` searches summaries only and never shows transcript
        text. `number` (E.164): the words were a phone number; its calls are returned
        instead, newest first (rank 0.0, the snippet the start of the summary). Raises
        SearchTooShort when no word has MIN_TERM_CHARS characters."""
        if limit <= 0:
            return []
        offset = max(0, offset)
        where, params = filter_sql(flt)
        params.update(take=limit, skip=offset)
        if number is not None:
            return await self._number_calls(number, where, params)
        long, short = search_terms(words)
        if not long:
            raise SearchTooShort()
        # Summaries only: their own index (a column filter on the shared one would read
        # every transcript match to drop it), and no transcript text in any snippet.
        fts, bm25 = (("calls_fts", "bm25(calls_fts, 2.0, 1.0)") if include_transcripts
                     else ("calls_fts_summary", "bm25(calls_fts_summary)"))
        # How many calls each term is in, counting no further than RANK_CAP.
        probes = {f"t{n}": fts_query([t]) for n, t in enumerate(long)}
        [counts] = await self._search_read(
            "SELECT " + ", ".join(f"(SELECT count(*) FROM (SELECT 1 FROM {fts} WHERE {fts} "
                                  f"MATCH :{key} LIMIT :cap))" for key in probes),
            {**probes, "cap": RANK_CAP + 1})
        if not all(counts):
            return []  # a term found nowhere: nothing has every term
        rare = [t for t, count in zip(long, counts, strict=True) if count <= RANK_CAP]
        params["match"] = fts_query(long)
        texts = ("c.summary", "c.transcript") if include_transcripts else ("c.summary",)

        def holds(terms: list[str], prefix: str) -> str:
            """SQL: every term is in one of the texts (ASCII letters folded)."""
            for n, term in enumerate(terms):
                params[f"{prefix}{n}"] = term.lower()
            return "".join(" AND (" + " OR ".join(
                f"instr(lower({t}), :{prefix}{n}) > 0" for t in texts) + ")"
                for n in range(len(terms)))

        where += holds(short, "s")
        marked = (f"highlight({fts}, 0, char(2), char(3)) AS marked_summary, "
                  + ("highlight(calls_fts, 1, char(2), char(3))" if include_transcripts
                     else "NULL") + " AS marked_transcript")
        if rare:
            sql = self._ranked_sql(fts, bm25, where, marked, every=len(rare) == len(long))
            params["rank_match"] = fts_query(rare)
        elif (narrow := await self._narrow_filter(flt)) is not None:
            # Every term is common and the filter keeps few calls: read those calls through
            # the filter's index and look for the words in their text, rather than walk the
            # words' matches for the few that pass the filter. Checked again by the index
            # when the page's texts are marked, so only real matches are returned.
            sql = f"""WITH page AS MATERIALIZED (
                    SELECT c.id AS id FROM calls c INDEXED BY {narrow}
                    WHERE {where}{holds(long, "l")}
                    ORDER BY c.id DESC LIMIT :take OFFSET :skip)
                SELECT {_HIT_COLUMNS}, 0.0 AS rank, {marked}
                FROM page CROSS JOIN {fts} CROSS JOIN calls c
                WHERE {fts} MATCH :match AND {fts}.rowid = page.id AND c.id = page.id
                ORDER BY page.id DESC"""
        else:
            # Every term is common: newest first, straight from the index (CROSS JOIN keeps
            # it the outer loop; each match's call is looked up by its key for the filter),
            # so the page reads about as many matches as it returns, and the texts are
            # marked only on the rows returned (OFFSET skips rows before they are computed).
            sql = f"""SELECT {_HIT_COLUMNS}, 0.0 AS rank, {marked}
                FROM {fts} CROSS JOIN calls c ON c.id = {fts}.rowid AND {where}
                WHERE {fts} MATCH :match ORDER BY {fts}.rowid DESC LIMIT :take OFFSET :skip"""
        rows = await self._search_read(sql, params)
        return [SearchHit(call=_to_record(r), rank=float(r["rank"]),
                          snippet=_pick_snippet(r["marked_summary"], r["marked_transcript"]))
                for r in rows]

    @staticmethod
    def _ranked_sql(fts: str, bm25: str, where: str, marked: str, *, every: bool) -> str:
        """Some term is rare: every call holding it (RANK_CAP at most) that has the other
        terms and passes the filter, scored by bm25 on the rare terms alone (bm25 counts
        the calls holding each term it scores, over the whole index, and a common term
        weighs next to nothing). The index drives (CROSS JOIN keeps it the outer loop) and
        each match's call is looked up by its key for the filter, so no filter makes it
        read more than the rare term's calls. The page's texts are then marked in one pass
        over the index between the page's lowest and highest row (a probe per row costs
        more, with the index in several segments)."""
        source = (fts if where == "1"
                  else f"{fts} CROSS JOIN calls c ON c.id = {fts}.rowid AND {where}")
        others = ("" if every else
                  f" AND +{fts}.rowid IN (SELECT rowid FROM {fts} WHERE {fts} MATCH :match)")
        return f"""WITH page AS MATERIALIZED (
                SELECT {fts}.rowid AS id, {bm25} AS rank FROM {source}
                WHERE {fts} MATCH :rank_match{others}
                ORDER BY rank, id DESC LIMIT :take OFFSET :skip)
            SELECT {_HIT_COLUMNS}, page.rank AS rank, {marked}
            FROM {fts} CROSS JOIN page ON page.id = {fts}.rowid
                 CROSS JOIN calls c ON c.id = page.id
            WHERE {fts} MATCH :match AND {fts}.rowid >= (SELECT min(id) FROM page)
                  AND {fts}.rowid <= (SELECT max(id) FROM page)
            ORDER BY page.rank, page.id DESC"""

    async def _narrow_filter(self, flt: CallFilter) -> str | None:
        """The index of a filter that keeps at most FILTER_CAP calls (one person's, one
        campaign's), if there is one."""
        for column, index in (("user_id", "calls_user"), ("campaign_id", "calls_campaign")):
            value = getattr(flt, column)
            if value is None:
                continue
            [[count]] = await self._search_read(
                f"SELECT count(*) FROM (SELECT 1 FROM calls INDEXED BY {index} "
                f"WHERE {column} = :value LIMIT :cap)", {"value": value, "cap": FILTER_CAP + 1})
            if count <= FILTER_CAP:
                return index
        return None

    async def _number_calls(self, number: str, where: str,
                            params: dict[str, Any]) -> list[SearchHit]:
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
            {**params, "number": number})
        return [SearchHit(call=_to_record(r), rank=0.0,
                          snippet=make_snippet((r["summary"] or "").translate(_MARKS)))
                for r in rows]
