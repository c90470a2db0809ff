"""Full-text search over calls' summaries and transcripts (SearchStore), on PostgreSQL.

Matching is the SQLite store's (its trigram index): a term is found as a substring of a
text, case folded, in the text with the bytes 0x02 and 0x03 (the snippet's marks) taken
out, so Thai (no spaces between words) is found as English is, and no stored text can
forge a mark. The SEARCH migration indexes each text so stripped (`_SUMMARY`,
`_TRANSCRIPT`: the very expressions written here) with pg_trgm's GIN operator class, which
answers `ILIKE '%term%'` (lower(text) LIKE lower(pattern)). Terms of MIN_TERM_CHARS or more
are looked up; shorter ones are checked on the calls the others found, as on SQLite.

Order, as on SQLite. Each term's calls are counted, no further than RANK_CAP. If some terms
are in at most RANK_CAP calls (rare), the calls holding them are found through the indexes,
the other terms checked on those, and they are ranked by FTS5's bm25 on the rare terms (a
summary match weighs twice a transcript one, k1 = 1.2, b = 0.75), computed here from the
texts of those calls only: a term's calls (n) are counted exactly, the calls with text (N)
up to N_CAP (past that, PostgreSQL's estimate of the table's size), and the mean length
is taken over the calls ranked. When every term is common, the calls come newest first
(rank 0.0): read newest first, or through a narrow filter's own index when the planner
finds it cheaper, with the words checked on each (a condition no index answers, so a word
in half the history is never collected whole), so a page reads about as many calls as it
needs.

Snippets are built in Python for the page's calls only, marking what FTS5's highlight()
marks: every occurrence of every looked-up term, overlapping ones as one run.

Where it differs from SQLite, and why:
- Case is folded by lower() under the database's LC_CTYPE: a UTF-8 locale (C.UTF-8,
  en_US.UTF-8) folds letters beyond ASCII as FTS5 does; plain "C" folds ASCII only, and
  pg_trgm then sees no Thai letter as part of a word, so Thai is still found, but by
  reading every text the index holds.
- bm25's mean length is the ranked calls' (SQLite's is the whole index's: reading every
  text for it would be a scan), N is an estimate past N_CAP, and occurrences are counted
  without overlaps ("ana" is in "banana" once here, twice for FTS5). With every text as
  long as the mean and N under N_CAP, the ranks are FTS5's to the last digits.
- A term pg_trgm takes no trigram from (no letter or digit past its first character:
  "***", "a--") cannot be looked up (pg_trgm keeps letters and digits only; FTS5 indexes
  every character): it is checked on the calls read, as a common term is, so it never
  ranks, and with no other term the calls are read newest first until a page is full.
"""

from __future__ import annotations

import math
import re
from dataclasses import fields as dc_fields
from typing import Any

from storage.errors import SearchTooShort
from storage.models import CallFilter, CallRecord, SearchHit
from storage.postgres.connection import _Connection, _sql
from storage.postgres.filters import filter_sql
from storage.sqlite.rows import _to_record
from storage.sqlite.search import (
    _MARKS,
    MARK_END,
    MARK_START,
    _pick_snippet,
    make_snippet,
    search_terms,
)

RANK_CAP = 1_000  # a term in more calls than this is too common to rank by (as SQLite's)
N_CAP = 10_000  # calls with text counted exactly for bm25's N; past that, an estimate
K1, B = 1.2, 0.75  # FTS5's bm25 parameters
# The texts as indexed (schema.py's SEARCH indexes these expressions, character for
# character): the marks taken out, so none can be forged and a term is found across one.
# replace(), not translate(): translate() rebuilds the text character by character (some
# 20 ns each), replace() finds no mark and hands the text back; a search may strip a
# thousand transcripts.
_SUMMARY = "replace(replace(c.summary, E'\\x02', ''), E'\\x03', '')"
_TRANSCRIPT = "replace(replace(c.transcript, E'\\x02', ''), E'\\x03', '')"
# A hit's call, light: every field but the transcript.
_HIT_COLUMNS = ", ".join(f"c.{f.name}" for f in dc_fields(CallRecord) if f.name != "transcript")


def like_pattern(term: str) -> str:
    """`term` as a LIKE pattern matching it anywhere, nothing in it a wildcard."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def idf(calls: int, holding: int) -> float:
    """FTS5's bm25 weight of a term `holding` of `calls` calls hold (never below 1e-6)."""
    weight = math.log((calls - holding + 0.5) / (holding + 0.5))
    return weight if weight > 0 else 1e-6


def mark(text: str | None, terms: list[str]) -> str | None:
    """`text` with every occurrence of the terms (case folded) between the marks, runs
    that overlap marked as one, as FTS5's highlight() does; marks already in the stored
    text are taken out first, so none can be forged."""
    if text is None:
        return None
    text = text.translate(_MARKS)
    spans = sorted((m.start(1), m.end(1)) for term in terms
                   for m in re.finditer(f"(?=({re.escape(term)}))", text, re.IGNORECASE))
    runs: list[list[int]] = []
    for start, end in spans:
        if runs and start < runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([start, end])
    out: list[str] = []
    done = 0
    for start, end in runs:
        out += [text[done:start], MARK_START, text[start:end], MARK_END]
        done = end
    return "".join(out) + text[done:]


class SearchPart(_Connection):
    """Full-text search over calls' summaries and transcripts (SearchStore)."""

    async def _search_read(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """Run one of a search's statements (tests read their plans here), with sequential
        scans of `calls` priced out: the planner costs ILIKE's check of a call as that of
        any operator, while it folds the case of the whole text, so it would read calls in
        table order, a common word's few thousand or a supposedly common word's every one,
        where the trigram indexes give it the calls that hold the word (and a page is read
        newest first, or through a filter's index, either way)."""
        text, args = _sql(sql, params)
        async with self._p.acquire() as conn, conn.transaction(readonly=True):
            # (the price that prices scans out would make every plan look worth JIT)
            await conn.execute("SET LOCAL enable_seqscan = off; SET LOCAL jit = off")
            return list(await conn.fetch(text, *args))

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
        texts = (_SUMMARY, _TRANSCRIPT) if include_transcripts else (_SUMMARY,)
        for n, term in enumerate(long):
            params[f"p{n}"] = like_pattern(term)
            params[f"l{n}"] = term

        def found(n: int) -> str:
            """SQL: term n is in one of the texts, through their trigram indexes."""
            return "(" + " OR ".join(f"{t} ILIKE :p{n}" for t in texts) + ")"

        def holds(n: int) -> str:
            """SQL: term n is in one of the texts, checked on the row (no index answers
            strpos, so the planner never collects a common word's every call)."""
            return "(" + " OR ".join(f"strpos(lower({t}), lower(:l{n}::text)) > 0"
                                     for t in texts) + ")"

        looked = await self._indexable(long)
        found_in, calls = await self._counts(
            [found(n) for n in looked], {f"p{n}": params[f"p{n}"] for n in looked},
            include_transcripts)
        counts = dict(zip(looked, found_in, strict=True))
        if not all(found_in):
            return []  # a term found nowhere: nothing has every term
        rare = [n for n in looked if counts[n] <= RANK_CAP]
        raw = ("c.summary", "c.transcript") if include_transcripts else ("c.summary",)
        for n, term in enumerate(short):  # as SQLite checks them: ASCII folded, raw text
            params[f"s{n}"] = term.lower()
            where += " AND (" + " OR ".join(
                f'strpos(lower({t} COLLATE "C"), :s{n}::text) > 0' for t in raw) + ")"
        transcript = "c.transcript" if include_transcripts else "NULL::text"
        if rare:
            where += "".join(f" AND {found(n)}" for n in rare)
            common = [n for n in range(len(long)) if n not in rare]
            page = self._ranked_sql(where, rare, common, include_transcripts)
            for n in rare:
                params[f"idf{n}"] = idf(max(calls, counts[n]), counts[n])
        else:
            where += "".join(f" AND {holds(n)}" for n in range(len(long)))
            page = f"""SELECT c.id, 0.0::double precision AS rank FROM calls c
                WHERE {where} ORDER BY c.id DESC LIMIT :take OFFSET :skip"""
        rows = await self._search_read(
            f"""WITH page AS MATERIALIZED ({page})
                SELECT {_HIT_COLUMNS}, {transcript} AS found_transcript, page.rank AS rank
                FROM page JOIN calls c ON c.id = page.id
                ORDER BY page.rank, page.id DESC""", params)
        return [SearchHit(call=_to_record(r), rank=float(r["rank"]),
                          snippet=_pick_snippet(mark(r["summary"], long),
                                                mark(r["found_transcript"], long)))
                for r in rows]

    async def _indexable(self, terms: list[str]) -> list[int]:
        """Which terms (their positions) pg_trgm can look up: those it takes a trigram
        from as a pattern `%term%`. It keeps only letters and digits (by the database's
        locale) and pads a word with blanks where something else bounds it, so a term has
        a trigram unless, past its first character, it has no letter or digit ("***",
        "a--"). Any other term is checked on the calls read, as a common term is: a
        lookup without a trigram would read the whole index and every text in it."""
        [row] = await self._search_read(
            "SELECT " + ", ".join(f"cardinality(show_trgm(substr(:t{n}::text, 2))) > 0"
                                  for n in range(len(terms))),
            {f"t{n}": term for n, term in enumerate(terms)})
        return [n for n in range(len(terms)) if row[n]]

    async def _counts(self, found: list[str], patterns: dict[str, str],
                      include_transcripts: bool) -> tuple[list[int], int]:
        """How many calls hold each term (`found`: its condition, which the trigram indexes
        answer), counting no further than RANK_CAP + 1; and bm25's N, the calls with text
        to search: counted, up to N_CAP, unless PostgreSQL's estimate of the table's rows
        is past N_CAP already (then the estimate). One round trip."""
        if not found:
            return [], 0
        has_text = ("(c.summary IS NOT NULL OR c.transcript IS NOT NULL)"
                    if include_transcripts else "c.summary IS NOT NULL")
        probes = ", ".join(
            f"(SELECT count(*) FROM (SELECT 1 FROM calls c WHERE {term} LIMIT :cap) m)"
            for term in found)
        params: dict[str, Any] = {**patterns, "cap": RANK_CAP + 1, "ncap": N_CAP}
        [row] = await self._search_read(
            f"""SELECT {probes}, (
                SELECT CASE WHEN e.reltuples >= :ncap::bigint THEN e.reltuples::bigint
                    ELSE (SELECT count(*) FROM (SELECT 1 FROM calls c WHERE {has_text}
                                                LIMIT :ncap::bigint) t) END
                FROM pg_class e WHERE e.oid = 'calls'::regclass)""", params)
        return [int(v) for v in list(row)[:len(found)]], int(row[len(found)])

    @staticmethod
    def _ranked_sql(where: str, rare: list[int], common: list[int],
                    include_transcripts: bool) -> str:
        """SQL: the page of the calls `where` picks (those holding the rare terms, found
        through the indexes, so at most RANK_CAP) that hold the `common` terms too, by
        bm25 on the rare terms (FTS5's formula; see the module's note), then newest first.
        Each text is lowered once per call, and the common terms looked for and the
        counts made in that (OFFSET 0 keeps each subquery from being merged into the one
        above it, which would repeat its expressions): folding case is most of the cost."""
        def occurrences(text: str, n: int) -> str:
            return (f"coalesce((length({text}) - length(replace({text}, lower(:l{n}::text), "
                    f"''))) / length(lower(:l{n}::text)), 0)")

        if include_transcripts:
            tokens = ("coalesce(greatest(length(s) - 2, 0), 0)"
                      " + coalesce(greatest(length(t) - 2, 0), 0)")
            freqs = [f"2 * {occurrences('s', n)} + {occurrences('t', n)}" for n in rare]
            lowered = f"lower({_SUMMARY}) AS s, lower({_TRANSCRIPT}) AS t"
            texts: tuple[str, ...] = ("s", "t")
        else:
            tokens = "coalesce(greatest(length(s) - 2, 0), 0)"
            freqs = [occurrences("s", n) for n in rare]
            lowered = f"lower({_SUMMARY}) AS s"
            texts = ("s",)
        holding = " AND ".join(
            "(" + " OR ".join(f"strpos({t}, lower(:l{n}::text)) > 0" for t in texts) + ")"
            for n in common) or "TRUE"
        score = " + ".join(
            f":idf{n}::double precision * f{n} * {K1 + 1} / "
            f"(f{n} + {K1} * ({1 - B} + {B} * dl / avg(dl) OVER ()))" for n in rare)
        return f"""SELECT id, -({score}) AS rank FROM (
                SELECT id, ({tokens})::double precision AS dl,
                       {", ".join(f"({f})::double precision AS f{n}"
                                  for n, f in zip(rare, freqs, strict=True))}
                FROM (SELECT c.id, {lowered} FROM calls c WHERE {where} OFFSET 0) found
                WHERE {holding} OFFSET 0) scored
            ORDER BY rank, id DESC LIMIT :take OFFSET :skip"""

    async def _number_calls(self, number: str, where: str,
                            params: dict[str, Any]) -> list[SearchHit]:
        """The calls of the other party `number`: those placed to it, those it placed
        (inbound), and attempts to it Retell refused; each part read through its index."""
        rows = await self._search_read(
            f"""SELECT {_HIT_COLUMNS} FROM calls c
                WHERE c.to_number = :number AND c.call_id IS NOT NULL
                  AND c.direction != 'inbound' AND {where}
                UNION ALL
                SELECT {_HIT_COLUMNS} FROM calls c
                WHERE c.from_number = :number AND c.direction = 'inbound' AND {where}
                UNION ALL
                SELECT {_HIT_COLUMNS} FROM calls c
                WHERE c.to_number = :number AND c.call_id IS NULL
                  AND c.direction != 'inbound' AND {where}
                ORDER BY created_at DESC, id DESC LIMIT :take OFFSET :skip""",
            {**params, "number": number})
        return [SearchHit(call=_to_record(r), rank=0.0,
                          snippet=make_snippet((r["summary"] or "").translate(_MARKS)))
                for r in rows]
