"""Full-text search over calls' summaries and transcripts (SearchStore), on PostgreSQL.

Substring matching, as SQLite's trigram index gives: pg_trgm's GIN indexes (the SEARCH
migration) find the calls whose summary or transcript holds each term, case folded, so
Thai (no spaces between words) is found as English is. Order: best first, by how often the
terms occur (a summary match weighs twice a transcript one) against the text's length,
over the matches of a query with at most RANK_CAP of them; a query matching more calls is
answered newest first (rank 0.0), reading the newest calls backwards until a page is full,
as the SQLite store does with words too common to rank."""

from __future__ import annotations

import re
from dataclasses import fields as dc_fields
from typing import Any

from storage.errors import SearchTooShort
from storage.models import CallFilter, CallRecord, SearchHit
from storage.postgres.connection import _Connection
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

RANK_CAP = 1_000  # a query matching more calls than this is answered newest first
_HIT_COLUMNS = ", ".join(f"c.{f.name}" for f in dc_fields(CallRecord) if f.name != "transcript")


def _like(term: str) -> str:
    """`term` as an ILIKE pattern matching it anywhere, nothing in it a wildcard."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _occurrences(text: str, n: int) -> str:
    """SQL: how often term :l{n} (lower case) occurs in `text` (lower-cased)."""
    return (f"((length(coalesce({text}, '')) - length(replace(lower(coalesce({text}, '')), "
            f":l{n}, ''))) / greatest(length(:l{n}), 1))")


def mark(text: str | None, terms: list[str]) -> str | None:
    """`text` with every occurrence of the terms (case folded) between the marks; any mark
    already in the stored text dropped first, so none can be forged."""
    if text is None:
        return None
    clean = text.translate(_MARKS)
    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)),
                         re.IGNORECASE)
    return pattern.sub(lambda m: MARK_START + m.group(0) + MARK_END, clean)


class SearchPart(_Connection):
    """Full-text search over calls' summaries and transcripts (SearchStore)."""

    async def search_calls(
        self, words: str, flt: CallFilter, *, limit: int, offset: int = 0,
        include_transcripts: bool = True, number: str | None = None,
    ) -> list[SearchHit]:
        """As SearchStore.search_calls says (see the module's note on order)."""
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
        texts = ("c.summary", "c.transcript") if include_transcripts else ("c.summary",)
        holds: list[str] = []
        for n, term in enumerate([*long, *short]):
            params[f"p{n}"] = _like(term.translate(_MARKS))
            holds.append("(" + " OR ".join(f"{t} ILIKE :p{n}" for t in texts) + ")")
        where = " AND ".join([where, *holds])
        [[count]] = await self._read(
            f"SELECT count(*) FROM (SELECT 1 FROM calls c WHERE {where} LIMIT :cap) m",
            {**params, "cap": RANK_CAP + 1})
        if not count:
            return []
        if count <= RANK_CAP:
            score = []
            for n, term in enumerate(long):
                params[f"l{n}"] = term.lower()
                score.append(f"2 * {_occurrences('c.summary', n)}")
                if include_transcripts:
                    score.append(_occurrences("c.transcript", n))
            length = " + ".join(f"length(coalesce({t}, ''))" for t in texts)
            rank = f"-(({' + '.join(score)})::double precision / ln(10 + {length}))"
        else:
            rank = "0.0::double precision"
        transcript = "c.transcript" if include_transcripts else "NULL::text"
        rows = await self._read(
            f"""SELECT {_HIT_COLUMNS}, {transcript} AS found_transcript, {rank} AS rank
                FROM calls c WHERE {where}
                ORDER BY rank, c.id DESC LIMIT :take OFFSET :skip""", params)
        return [SearchHit(call=_to_record(r), rank=float(r["rank"]),
                          snippet=_pick_snippet(mark(r["summary"], long),
                                                mark(r["found_transcript"], long)))
                for r in rows]

    async def _number_calls(self, number: str, where: str,
                            params: dict[str, Any]) -> list[SearchHit]:
        """The calls of the other party `number`: those placed to it, those it placed
        (inbound), and attempts to it Retell refused."""
        rows = await self._read(
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
