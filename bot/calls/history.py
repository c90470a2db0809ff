"""Past calls in and out: `callbot import` (Retell's history into the store) and
`callbot export` (the store's calls, page by page, for a knowledge base or a warehouse).

No terminal here and no argparse: progress goes to a callback, results come back as data,
and bot/cli.py shows them.

An import stores each call as its webhooks would have left it (the same mapping,
`fields_from_webhook`), but through `import_calls`: plain inserts that skip a call id
already stored, with no outbox work. So an imported call shows in `/callstats` and
`/callsearch` and posts nothing to Slack, a call the webhooks already stored stays as they
left it, and a second run adds nothing.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from dataclasses import fields as dc_fields
from datetime import UTC, date, datetime
from typing import Protocol

from bot.calls.service import fields_from_webhook, implied_events
from bot.guard.admission import callee_asked
from bot.retell.client import (
    DNC_REASON,
    RetellBadAnswer,
    RetellCall,
    RetellClient,
    RetellError,
    RetellRefused,
)
from storage.base import CallStore, GuardStore, StatsStore
from storage.models import STAGE_ANALYZED, CallFilter, CallRecord

PAGE_SIZE = 1000  # list-calls' largest page (retell-api.md)
EXPORT_PAGE = 1000  # rows read from the store at a time: memory stays flat however many
# get-calls in flight at once for transcripts: a handful, so a big import stays well inside
# Retell's rate limit (a 429 is waited out by the client, honouring Retry-After).
TRANSCRIPT_CONCURRENCY = 4
TRANSCRIPT_TICK = 25  # progress is told after every this many get-calls within a page
# Calls still on the line: their webhooks (or the poller) will record them as they end.
LIVE_STATUSES = frozenset({"registered", "ongoing"})
_DAYS = re.compile(r"([1-9][0-9]{0,4})d")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# CallFields' names that CallRecord carries too (all but raw_payload).
_SHARED = tuple(f.name for f in dc_fields(CallRecord) if f.name not in ("id", "created_at",
                                                                         "updated_at"))


def parse_since(text: str, now: float) -> float:
    """`30d` (that many days back from now) or `2026-11-01` (that day's start, UTC) as
    epoch seconds; ValueError with the words to show when it is neither."""
    text = text.strip().lower()
    if days := _DAYS.fullmatch(text):
        return now - int(days.group(1)) * 86400
    if _DATE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text} is not a date") from None
        start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        if start > now:
            raise ValueError(f"{text} is in the future")
        return start
    raise ValueError(f"{text!r} is neither a number of days such as 30d nor a date such as "
                     "2026-11-01")


@dataclass(frozen=True)
class ImportProgress:
    """Where an import stands, after each page (and each batch of transcripts)."""

    pages: int
    fetched: int  # calls list-calls has returned so far
    total: int | None  # how many Retell says match, when it said
    added: int
    transcripts: int = 0  # get-calls done
    page_done: bool = True  # False: a step within a page (transcripts still coming)


@dataclass(frozen=True)
class ImportResult:
    fetched: int
    added: int
    already: int  # stored before (by webhooks or an earlier import): left as they were
    pages: int
    live: int = 0  # still on the line: not imported, their webhooks will record them
    skipped: int = 0  # not phone calls, or items that could not be read
    transcripts: int = 0


def call_record(call: RetellCall, now: float) -> CallRecord | None:
    """A call read from Retell as the row its webhooks would have left, or None for a call
    still live (or not yet placed): its own webhooks will record it."""
    if (call.call_status or "") in LIVE_STATUSES:
        return None
    events = implied_events(call)
    if not events:
        return None
    fields = fields_from_webhook(events[-1], call, "")
    if fields is None:
        return None
    values = {name: getattr(fields, name) for name in _SHARED if hasattr(fields, name)}
    values["variables"] = fields.variables or {}
    values["extracted"] = fields.extracted or {}
    # When the call happened, not when it was imported: `/callstats last 7 days` and
    # `callbot export --since` read created_at.
    created = fields.started_at or fields.ended_at or now
    analyzed_at = (fields.ended_at or created) if fields.stage >= STAGE_ANALYZED else None
    return CallRecord(id=0, created_at=created, updated_at=now,
                      **{**values, "analyzed_at": analyzed_at})


def _phone_call(call: RetellCall) -> bool:
    kind = (call.model_extra or {}).get("call_type")
    return kind is None or kind == "phone_call"


class ImportStore(CallStore, GuardStore, Protocol):
    """What an import writes: the calls, and the numbers their callees asked to drop."""


async def import_history(
    retell: RetellClient,
    store: ImportStore,
    *,
    since: float,
    transcripts: bool = False,
    progress: Callable[[ImportProgress], None] | None = None,
    page_size: int = PAGE_SIZE,
    clock: Callable[[], float] = time.time,
) -> ImportResult:
    """Retell's calls that started at `since` or later into the store, a page at a time
    (so memory stays flat over any history). With `transcripts`, each new call that
    connected is read again with get-call, since list-calls leaves the words out; calls
    already stored are not asked for. A RetellError stops the import; pages stored before it
    stay (a new run picks up where it left, adding only what is missing)."""
    fetched = added = pages = live = skipped = words = 0
    total: int | None = None
    key: str | None = None
    since_ms = int(since * 1000)
    while True:
        page = await retell.list_calls(since_ms=since_ms, limit=page_size, pagination_key=key,
                                       include_total=pages == 0)
        pages += 1
        total = page.total if pages == 1 else total
        fetched += len(page.calls) + page.unreadable
        skipped += page.unreadable
        now = clock()
        records: list[CallRecord] = []
        for call in page.calls:
            if not _phone_call(call):
                skipped += 1
                continue
            record = call_record(call, now)
            if record is None:
                live += 1
                continue
            records.append(record)
        if transcripts:
            at = ImportProgress(pages, fetched, total, added, words, page_done=False)
            records, done = await _with_transcripts(retell, store, records, now,
                                                    _ticker(progress, at))
            words += done
        added += await store.import_calls(records)
        await _callees_asked(store, records, now)
        if progress is not None:
            progress(ImportProgress(pages, fetched, total, added, words))
        if page.pagination_key is None:
            break
        if page.pagination_key == key:  # a Retell that hands out the same page forever
            raise RetellBadAnswer("list-calls: the next page's key is the one just used", 200)
        key = page.pagination_key
    stored = fetched - live - skipped
    return ImportResult(fetched=fetched, added=added, already=stored - added, pages=pages,
                        live=live, skipped=skipped, transcripts=words)


def _ticker(progress: Callable[[ImportProgress], None] | None, at: ImportProgress,
            ) -> Callable[[int], None]:
    """Told each get-call of a page: progress hears of every TRANSCRIPT_TICK-th, so a page
    of 1000 slow transcripts does not look stuck."""
    def tick(done: int) -> None:
        if progress is not None and done % TRANSCRIPT_TICK == 0:
            progress(replace(at, transcripts=at.transcripts + done))

    return tick


async def _callees_asked(store: GuardStore, records: Sequence[CallRecord], now: float) -> None:
    """A callee who asked on a call not to be called again goes on the do-not-call list,
    as the webhook path does (once: adding a listed number changes nothing)."""
    for record in records:
        number = record.other_number
        if (record.disconnection_reason == DNC_REASON and record.call_id and number
                and await store.dnc_get(number) is None):
            entry, audit = callee_asked(record.call_id, number, now)
            await store.dnc_add(entry, audit)


async def _with_transcripts(retell: RetellClient, store: CallStore,
                            records: Sequence[CallRecord], now: float,
                            tick: Callable[[int], None]) -> tuple[list[CallRecord], int]:
    """The records, those not stored yet that connected carrying their transcript from
    get-call; and how many get-calls were made. A call Retell no longer has (deleted since
    the list) keeps what the list said."""
    limit = asyncio.Semaphore(TRANSCRIPT_CONCURRENCY)
    asked = 0

    async def fill(record: CallRecord) -> CallRecord:
        nonlocal asked
        if record.call_id is None or not record.duration_ms or record.transcript:
            return record
        if await store.get_call(record.call_id) is not None:
            return record  # import_calls will skip it anyway: no need to ask Retell
        async with limit:
            try:
                full = await retell.get_call(record.call_id)
            except RetellRefused as exc:
                if exc.status in (404, 422):
                    return record
                raise
            asked += 1
            tick(asked)
        fresh = call_record(full, now)
        return replace(record, transcript=fresh.transcript if fresh else full.transcript)

    tasks = [asyncio.ensure_future(fill(r)) for r in records]
    try:
        filled = await asyncio.gather(*tasks)
    except RetellError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return list(filled), asked


async def export_pages(store: StatsStore, flt: CallFilter, *, transcripts: bool = True,
                       page_size: int = EXPORT_PAGE) -> AsyncIterator[list[CallRecord]]:
    """The calls `flt` picks, oldest first, one page at a time (keyset paging on the row
    id): the caller writes each page before the next is read, so a million calls export in
    the memory of one page."""
    after = 0
    while True:
        page = await store.export_calls(flt, after_id=after, limit=page_size,
                                        transcripts=transcripts)
        if not page:
            return
        yield page
        if len(page) < page_size:
            return
        after = page[-1].id
