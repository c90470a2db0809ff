"""Campaigns: many calls from a list, placed by the same use case as `/call`, paced.

A campaign is kept as a draft with every row of its file (rows that will never be called
are kept as skipped, with why) so its preview, its card and its results all read the same
rows. Once started, the runner takes rows in order under three bounds: the campaign's own
concurrency (rows being placed or on a call count), Retell's rate (calls per second, over
all campaigns) and the global cap (the guard's concurrent limit). Each row is claimed before
its try is placed, and every try carries an idempotency key made from (campaign, row, try):
a try cut short by a crash is placed again with the same key after its claim runs out, and
Retell answers with the call it may already have placed, so no row is called twice for one
try and none is skipped. A row whose callee is outside calling hours waits for the opening.

No Slack types here: the card, its thread and the results go through `CampaignSink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from bot.calls.placing import (
    AgentUnknown,
    NotAllowed,
    Outcome,
    Placed,
    PlacedNotRecorded,
    PlaceRequest,
    Placing,
    RetellRefused,
    StoreDown,
)
from bot.calls.service import idempotency_key
from bot.config import Settings
from bot.guard.admission import Guard, Refused, hours_may, number_may
from bot.guard.hours import verdict
from bot.input.contacts import ContactList
from bot.input.parsing import CallCommand
from bot.input.phones import mask_phone, parse_phone
from bot.runtime.tasks import LEASE_SECONDS, Worker, finish_or_cancel, process_owner
from storage.base import CampaignStore, LeaseStore
from storage.models import CallRecord, Campaign, CampaignCounts, CampaignRow, Route

log = logging.getLogger(__name__)

CLAIM_SECONDS = 120.0  # a try still claimed after this was cut short (a crash)
CAP_WAIT = 5.0  # seconds a row waits when the global cap is full
SETTLE_BATCH = 200
PREVIEW_BAD_ROWS = 10  # skipped rows shown on the preview (all of them are in the results)
FAILURE_NOTES = 20  # failure notes per campaign in its thread; then one "see the results"
# Tries in flight at once over all campaigns (waiting for their slot or for Retell): enough
# to keep Retell's rate busy, few enough that `/call` never queues behind a campaign for
# a connection to Retell or for the event loop.
MAX_TRIES_IN_FLIGHT = 16
DEFAULT_CALL_SECONDS = 120.0  # for the estimate, when there is no history yet
LEASE = "campaigns"
# Disconnection reasons that mean nobody answered: the row is tried again per the policy.
NO_ANSWER = frozenset({"dial_no_answer", "dial_busy", "voicemail_reached", "ivr_reached",
                       "user_declined"})
# Retell had no room for the call: tried again per the policy, and never "no answer".
NO_ROOM = frozenset({"concurrency_limit_reached", "no_concurrency_fallback"})
# Reasons a call failed to connect at all (a look is worth it: the thread says why).
FAILED = frozenset({"dial_failed", "invalid_destination", "telephony_provider_permission_denied",
                    "telephony_provider_unavailable", "sip_routing_error", "no_valid_payment",
                    "scam_detected", "marked_as_spam"})


class CampaignSink(Protocol):
    """The Slack side of one campaign: its card, the card's thread, its results."""

    async def post(self, preview: Preview) -> str:
        """Post the preview (it becomes the card); its ts."""

    async def show(self, campaign: Campaign, counts: CampaignCounts, *,
                   eta_s: float | None) -> None:
        """Show the campaign as it stands, on its card; best effort."""

    async def failure(self, campaign: Campaign, row: CampaignRow,
                      call: CallRecord | None, *, more: bool = False) -> None:
        """A row that failed for a reason worth a look, in the card's thread; `more`: the
        thread has had its share, say once that the rest are in the results."""

    async def results(self, campaign: Campaign, counts: CampaignCounts,
                      rows: Sequence[tuple[CampaignRow, CallRecord | None]]) -> None:
        """The results file and the summary, in the card's thread."""


@dataclass(frozen=True)
class CampaignDraft:
    """A campaign as the modal (or a CSV shared in a DM) asks for it."""

    name: str
    route: Route  # the person, the channel (and team) its card goes to
    contacts: ContactList
    concurrency: int
    attempts: int = 1
    retry_spacing: float = 3600.0
    agent: str | None = None
    from_number: str | None = None
    start_at: float | None = None
    file_name: str | None = None
    external_team: str | None = None


@dataclass(frozen=True)
class Preview:
    campaign: Campaign
    counts: CampaignCounts
    bad: list[CampaignRow]  # the first skipped rows, with why
    estimate_s: float  # how long calling every valid row should take
    outside_hours: int  # valid rows whose callee is outside calling hours right now


@dataclass(frozen=True)
class _Judged:
    rows: list[CampaignRow]  # every row of the file, by line
    outside: int  # rows to call that are outside calling hours at the start
    first: float | None  # when the first of those opens
    numbers: list[str]  # the numbers to call, by line


class NotYours(Exception):
    """Only the campaign's owner or an admin may start, pause, resume or cancel it;
    `reason`: unknown | not_theirs | not_now (not in a state that allows it)."""

    def __init__(self, reason: str, owner: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.owner = owner


def row_key(campaign_id: int, row_id: int, attempt: int) -> str:
    """The idempotency key of one try of one row: the same after a crash."""
    return idempotency_key("campaign", str(campaign_id), str(row_id), str(attempt))


def outcome_of(call: CallRecord) -> str:
    """What an ended call means for its row: connected | no_answer | no_room | failed."""
    reason = call.disconnection_reason or ""
    if reason in NO_ROOM:
        return "no_room"
    if reason in NO_ANSWER or call.in_voicemail:
        return "no_answer"
    if reason in FAILED or reason.startswith("error") or call.status == "error":
        return "failed"
    if call.status == "not_connected" or (call.duration_ms == 0 and not reason):
        return "no_answer"
    return "connected"


def estimate(numbers: Sequence[str], *, start: float, concurrency: int, rate: float,
             call_seconds: float,
             opening: Callable[[str, float], float | None] | None = None) -> float:
    """Seconds from `start` until every number has been called once, as the runner would:
    at most `concurrency` calls at once, `rate` calls per second, and each number only
    inside its callee's calling hours (`opening(number, t)`: the first instant at or after
    `t` it may be called, None when never; such numbers are left out). A list that runs
    past the window's close waits for the next day's opening, as the runner does."""
    if not numbers:
        return 0.0
    gap = 1.0 / rate if rate > 0 else 0.0
    slots = [start] * max(1, min(concurrency, len(numbers)))  # when each line is free
    ready: list[tuple[float, int]] = []
    for index, number in enumerate(numbers):
        at = opening(number, start) if opening else start
        if at is not None:
            ready.append((at, index))
    heapq.heapify(ready)
    go, end = start, start
    while ready:
        at, index = heapq.heappop(ready)
        when = max(at, slots[0], go)
        if when > at and opening is not None:  # held up: is its window still open then?
            again = opening(numbers[index], when)
            if again is None:
                continue
            if again > when:
                heapq.heappush(ready, (again, index))
                continue
        heapq.heapreplace(slots, when + call_seconds)
        go = when + gap
        end = max(end, when + call_seconds)
    return end - start


class Pace:
    """Calls per second over every campaign: each take waits for its slot."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.gap = 1.0 / per_second
        self._clock = clock
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            now = self._clock()
            wait = self._next - now
            self._next = max(now, self._next) + self.gap
        if wait > 0:
            await asyncio.sleep(wait)


class CampaignStores(CampaignStore, LeaseStore, Protocol):
    """What campaigns use of the store."""


class Campaigns:
    def __init__(self, settings: Settings, store: CampaignStores, guard: Guard,
                 placing: Placing, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.guard = guard
        self.placing = placing
        self.pace = Pace(settings.retell_calls_per_second)
        self._clock = clock
        self._shown: dict[int, tuple[float, CampaignCounts, str]] = {}
        self.running = 0  # campaigns running at the last pass
        self._inflight: set[asyncio.Task[None]] = set()
        self._noted: dict[int, int] = {}  # failure notes posted per campaign (this process)
        self._on_started: Callable[[], None] = lambda: None

    def subscribe(self, started: Callable[[], None]) -> None:
        """`started` is told when a campaign starts or resumes (the runner looks again)."""
        self._on_started = started

    # -- making one ------------------------------------------------------------------------

    async def prepare(self, draft: CampaignDraft, sink: CampaignSink, *,
                      call_seconds: float | None = None) -> Preview:
        """Keep the campaign as a draft and post its preview. Raises Refused when the person
        may not place calls at all (who, where from): nothing is kept then."""
        route = draft.route
        await self.guard.check_caller(user_id=route.user_id, channel_id=route.channel_id,
                                      external_team=draft.external_team, source="campaign",
                                      team_id=route.team_id)
        now = self._clock()
        contacts = draft.contacts.contacts
        listed = await self.store.listed_numbers({c.number for c in contacts},
                                                 team_id=self.guard.scope(route.team_id))
        capped: dict[str, int] = {}
        if self.settings.number_calls_per_day:
            capped = await self.store.calls_to_numbers({c.number for c in contacts},
                                                       now - 86400.0)
        # Thousands of rows' rules and time zones: off the event loop that acks Slack.
        begin = max(now, draft.start_at or now)
        judged = await asyncio.to_thread(self._judge, draft, listed, capped, begin)
        rows = judged.rows
        campaign = Campaign(
            id=0, name=draft.name, owner=route.user_id or "", channel_id=route.channel_id or "",
            status="draft", concurrency=draft.concurrency, attempts=draft.attempts,
            retry_spacing=draft.retry_spacing, created_at=now, team_id=route.team_id,
            agent=draft.agent, from_number=draft.from_number, start_at=draft.start_at,
            columns=draft.contacts.columns, file_name=draft.file_name)
        campaign = replace(campaign, id=await self.store.create_campaign(campaign, rows, now))
        counts = replace(await self.store.campaign_counts(campaign.id),
                         waiting_hours=judged.outside, opens_at=judged.first)
        valid = counts.rows
        took = await asyncio.to_thread(
            estimate, judged.numbers, start=begin, concurrency=draft.concurrency,
            rate=self.settings.retell_calls_per_second,
            call_seconds=call_seconds or DEFAULT_CALL_SECONDS,
            opening=self._opening if self.guard.hours.window else None)
        preview = Preview(
            campaign, counts, [r for r in rows if r.status == "skipped"][:PREVIEW_BAD_ROWS],
            took, judged.outside)
        ts = await sink.post(preview)
        await self.store.set_campaign_card(campaign.id, ts)
        log.info("campaign drafted id=%d rows=%d valid=%d skipped=%d", campaign.id,
                 counts.rows + counts.skipped, valid, counts.skipped)
        return replace(preview, campaign=replace(campaign, card_ts=ts))

    def _judge(self, draft: CampaignDraft, listed: set[str], capped: dict[str, int],
               begin: float) -> _Judged:
        """Every row of the file: skipped (and why) or to call; of those, how many are
        outside calling hours at `begin` and when the first of them opens."""
        rows: list[CampaignRow] = []
        for bad in draft.contacts.bad:
            detail = f"{bad.reason}:{bad.typed}" if bad.typed else bad.reason
            rows.append(CampaignRow(0, 0, bad.line, None, "skipped",
                                    outcome="duplicate" if bad.reason == "duplicate"
                                    else "invalid", detail=detail))
        outside, first = 0, None  # rows outside calling hours at the start; first opening
        numbers: list[str] = []
        for contact in draft.contacts.contacts:
            reason = None
            try:
                number_may(self.settings, contact.number)
            except Refused as exc:
                reason = exc.reason
            if reason is None and contact.number in listed:
                reason = "do_not_call"
            if reason is None and capped.get(contact.number, 0) >= \
                    self.settings.number_calls_per_day > 0:
                reason = "limit_per_number"
            if reason is not None:
                rows.append(CampaignRow(0, 0, contact.line, contact.number, "skipped",
                                        contact.variables, contact.agent, outcome="refused",
                                        detail=reason))
                continue
            opens = self._opening(contact.number, begin)
            if opens is None:  # no known time zone: never inside calling hours
                rows.append(CampaignRow(0, 0, contact.line, contact.number, "skipped",
                                        contact.variables, contact.agent, outcome="refused",
                                        detail="calling_hours"))
                continue
            if opens > begin:
                outside += 1
                first = opens if first is None else min(first, opens)
            numbers.append(contact.number)
            rows.append(CampaignRow(0, 0, contact.line, contact.number, "waiting",
                                    contact.variables, contact.agent))
        rows.sort(key=lambda r: r.line)
        return _Judged(rows, outside, first, numbers)

    def _opening(self, number: str, at: float) -> float | None:
        """The first instant at or after `at` that `number` may be called (None: never)."""
        if self.guard.hours.window is None:
            return at
        found = verdict(self.guard.hours, number, datetime.fromtimestamp(at, UTC))
        if found.open:
            return at
        return found.opens_at.timestamp() if found.opens_at else None

    # -- the owner's buttons ---------------------------------------------------------------

    async def start(self, campaign_id: int, user_id: str, *, admin: bool) -> Campaign:
        return await self._move(campaign_id, user_id, admin, "running", ("draft",))

    async def pause(self, campaign_id: int, user_id: str, *, admin: bool) -> Campaign:
        return await self._move(campaign_id, user_id, admin, "paused", ("running",))

    async def resume(self, campaign_id: int, user_id: str, *, admin: bool) -> Campaign:
        return await self._move(campaign_id, user_id, admin, "running", ("paused",))

    async def cancel(self, campaign_id: int, user_id: str, *, admin: bool) -> Campaign:
        """Rows not yet placed are cancelled; calls on the line end as they will."""
        return await self._move(campaign_id, user_id, admin, "cancelled",
                                ("draft", "running", "paused"))

    async def _move(self, campaign_id: int, user_id: str, admin: bool, to: str,
                    allowed: tuple[str, ...]) -> Campaign:
        campaign = await self.store.get_campaign(campaign_id)
        if campaign is None:
            raise NotYours("unknown")
        if campaign.owner != user_id and not admin:
            raise NotYours("not_theirs", campaign.owner)
        moved = await self.store.move_campaign(campaign_id, to, allowed=allowed,
                                               now=self._clock())
        if moved is None:
            raise NotYours("not_now", campaign.owner)
        log.info("campaign %s id=%d by=%s", to, campaign_id, user_id)
        self._shown.pop(campaign_id, None)
        if to == "running":
            self._on_started()
        return moved

    async def counts(self, campaign_id: int) -> CampaignCounts:
        return await self.store.campaign_counts(campaign_id)

    def eta(self, campaign: Campaign, counts: CampaignCounts) -> float | None:
        """Seconds left at the pace so far (None before anything is done)."""
        if campaign.status != "running" or not campaign.started_at or not counts.done:
            return None
        spent = max(1.0, self._clock() - campaign.started_at)
        return counts.remaining * spent / counts.done

    async def results(self, campaign: Campaign, sink: CampaignSink) -> None:
        """Post the results file and summary (the Results button, or the end)."""
        counts = await self.store.campaign_counts(campaign.id)
        rows = await self.store.campaign_results(campaign.id)
        await sink.results(campaign, counts, rows)

    # -- running ---------------------------------------------------------------------------

    async def run_pass(self, sinks: Callable[[Campaign], CampaignSink]) -> int:
        """Settle ended calls, place what is due, refresh cards, finish what is done;
        how many tries were begun."""
        await self._settle(sinks)
        begun = 0
        now = self._clock()
        running = await self.store.running_campaigns(now)
        self.running = len(running)
        for campaign in running:
            sink = sinks(campaign)
            begun += await self._place_due(campaign, sink)
            finished = await self.store.finish_campaign(campaign.id, self._clock())
            if finished is not None:
                log.info("campaign done id=%d", campaign.id)
                await self.show(finished, sink, force=True)
                if await self.store.claim_results(campaign.id):
                    await self._post_results(finished, sink)
            else:
                await self.show(campaign, sink)
        return begun

    async def _post_results(self, campaign: Campaign, sink: CampaignSink) -> None:
        """The end's results, once; a failure is logged and leaves them to the card's
        Results button (the campaign is done either way)."""
        try:
            await self.results(campaign, sink)
        except Exception as exc:
            log.warning("campaign results not posted id=%d: %s (the Results button posts "
                        "them)", campaign.id, type(exc).__name__)

    async def show(self, campaign: Campaign, sink: CampaignSink, *, force: bool = False) -> None:
        """Update the card, at most every `campaign_card_seconds` unless something changed
        its state (a button, the end)."""
        counts = await self.store.campaign_counts(campaign.id)
        now = self._clock()
        last = self._shown.get(campaign.id)
        if not force and last is not None and (
                last[1:] == (counts, campaign.status)
                or now - last[0] < self.settings.campaign_card_seconds):
            return
        self._shown[campaign.id] = (now, counts, campaign.status)
        await sink.show(campaign, counts, eta_s=self.eta(campaign, counts))

    async def _settle(self, sinks: Callable[[Campaign], CampaignSink]) -> None:
        """Rows whose call ended: done, or waiting for their next try; a batch at a time,
        each batch in one transaction, until none is left."""
        campaigns: dict[int, Campaign | None] = {}
        while True:
            ended = await self.store.ended_campaign_rows(SETTLE_BATCH)
            settled: list[tuple[int, str, str | None, str | None, float]] = []
            failures: list[tuple[Campaign, CampaignRow, CallRecord]] = []
            for row, call in ended:
                if row.campaign_id not in campaigns:
                    campaigns[row.campaign_id] = await self.store.get_campaign(row.campaign_id)
                campaign = campaigns[row.campaign_id]
                if campaign is None:
                    continue
                result = outcome_of(call)
                reason = call.disconnection_reason
                if result in ("no_answer", "no_room") and row.attempts < campaign.attempts \
                        and campaign.status != "cancelled":
                    settled.append((row.id, "waiting", None, reason,
                                    self._clock() + campaign.retry_spacing))
                    continue
                final = "failed" if result == "no_room" else result
                settled.append((row.id, "done", final, reason, 0.0))
                if final == "failed":
                    failures.append((campaign, replace(row, outcome=final, detail=reason),
                                     call))
            if settled:
                await self.store.settle_rows(settled)
            for campaign, row, call in failures:
                await self._tell_failure(sinks(campaign), campaign, row, call)
            if len(ended) < SETTLE_BATCH:
                return

    async def _place_due(self, campaign: Campaign, sink: CampaignSink) -> int:
        """Claim the rows there is room for and place each in a task of its own: a slow
        Retell answer holds up its own row only, never the runner or other campaigns."""
        # A pass claims no more than the pace lets through in a couple of seconds, so a
        # claim never runs out while its row waits for its slot.
        room = min(max(1, math.ceil(2 * self.settings.retell_calls_per_second)),
                   MAX_TRIES_IN_FLIGHT - len(self._inflight))
        if room <= 0:
            return 0
        now = self._clock()
        rows = await self.store.claim_campaign_rows(campaign.id, campaign.concurrency, now,
                                                    now + CLAIM_SECONDS, limit=room)
        cap = asyncio.Event()  # the global cap is full: the rest of this pass waits
        for row in rows:
            task = asyncio.create_task(self._try(campaign, row, sink, cap),
                                       name=f"campaign-{campaign.id}-row-{row.id}")
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(rows)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("campaign try failed: %s", type(task.exception()).__name__)
        self._on_started()  # its row's place is free again: the runner looks

    async def drain(self, grace: float) -> None:
        """Let tries in flight finish (a stop); those still running after `grace` are
        cancelled, and go again with the same keys after their claims run out."""
        if self._inflight:
            await finish_or_cancel(list(self._inflight), grace)

    async def _try(self, campaign: Campaign, row: CampaignRow, sink: CampaignSink,
                   cap: asyncio.Event) -> None:
        assert row.number is not None
        now = self._clock()
        try:
            hours_may(self.guard.hours, row.number, now)
        except Refused as exc:  # not a try: it waits, unaudited, for the window to open
            opens = exc.facts.get("opens_at")
            await self.store.row_waits(row.id, opens if isinstance(opens, float)
                                       else now + 3600.0, "calling_hours", undo_attempt=True)
            return
        if cap.is_set():
            await self.store.row_waits(row.id, now + CAP_WAIT, None, undo_attempt=True)
            return
        await self.pace.take()
        request = PlaceRequest(
            CallCommand(phone=parse_phone(row.number), agent=row.agent or campaign.agent,
                        variables=dict(row.variables)),
            Route(team_id=campaign.team_id, channel_id=campaign.channel_id,
                  user_id=campaign.owner, campaign_id=campaign.id),
            (), from_number=campaign.from_number, source=f"campaign:{campaign.id}",
            request_key=row_key(campaign.id, row.id, row.attempts), campaign=True)

        async def heard(outcome: Outcome) -> None:
            """Settled below."""

        outcome = await self.placing.place(request, _NO_CARD, heard)
        await self._after(campaign, row, outcome, sink, cap)

    async def _after(self, campaign: Campaign, row: CampaignRow, outcome: Outcome,
                     sink: CampaignSink, cap: asyncio.Event) -> None:
        now = self._clock()
        if isinstance(outcome, Placed):
            if outcome.record.call_id:
                await self.store.row_placed(row.id, outcome.record.call_id)
            return
        if isinstance(outcome, (StoreDown, PlacedNotRecorded)):
            # Left claimed: the claim runs out and the same try (same key) goes again,
            # and Retell answers with the call it placed, if it did.
            log.warning("campaign id=%d row=%d left for a retry: %s", campaign.id, row.id,
                        type(outcome).__name__)
            return
        if isinstance(outcome, NotAllowed):
            reason = outcome.refusal.reason
            if reason == "limit_concurrent":
                cap.set()
                await self.store.row_waits(row.id, now + CAP_WAIT, None, undo_attempt=True)
                return
            if reason == "calling_hours":
                opens = outcome.refusal.facts.get("opens_at")
                await self.store.row_waits(
                    row.id, opens if isinstance(opens, float) else now + 3600.0,
                    "calling_hours", undo_attempt=True)
                return
            await self.store.row_done(row.id, "refused", reason)
            await self._tell_failure(sink, campaign,
                                     replace(row, outcome="refused", detail=reason), None)
            return
        detail = (outcome.kind or "retell_refused") if isinstance(outcome, RetellRefused) \
            else "agent_unknown" if isinstance(outcome, AgentUnknown) \
            else type(outcome).__name__
        if row.attempts < campaign.attempts and isinstance(outcome, RetellRefused):
            await self.store.row_waits(row.id, now + campaign.retry_spacing, detail,
                                       undo_attempt=False)
            return
        await self.store.row_done(row.id, "failed", detail)
        await self._tell_failure(sink, campaign, replace(row, outcome="failed", detail=detail),
                                 None)

    async def _tell_failure(self, sink: CampaignSink, campaign: Campaign, row: CampaignRow,
                            call: CallRecord | None) -> None:
        log.info("campaign id=%d row line=%d to=%s %s: %s", campaign.id, row.line,
                 mask_phone(row.number), row.outcome, row.detail)
        noted = self._noted.get(campaign.id, 0)
        if noted > FAILURE_NOTES:
            return
        self._noted[campaign.id] = noted + 1
        try:
            if noted == FAILURE_NOTES:
                await sink.failure(campaign, row, None, more=True)
                return
            await sink.failure(campaign, row, call)
        except Exception as exc:  # the thread note is a courtesy; the results have it all
            log.warning("campaign failure note not posted id=%d: %s", campaign.id,
                        type(exc).__name__)


class _NoCard:
    """A campaign's call has no card of its own: the campaign's card tells its story."""

    async def post(self, call: CallRecord, marker: str) -> str:
        return ""

    async def update(self, ts: str, call: CallRecord) -> None:
        return None

    async def point_to_placed(self, ts: str, call: CallRecord) -> None:
        return None

    async def find(self, since: float, marker: str) -> str | None:
        return None


_NO_CARD = _NoCard()


class CampaignRunner(Worker):
    """Runs the campaigns: one process at a time (a lease), a pass every `interval`
    seconds or at once when a campaign starts."""

    name = "campaign-runner"

    def __init__(self, campaigns: Campaigns, store: LeaseStore,
                 sinks: Callable[[Campaign], CampaignSink], *, interval: float = 1.0,
                 owner: str | None = None) -> None:
        super().__init__()
        self.campaigns = campaigns
        self.store = store
        self.sinks = sinks
        self.interval = interval
        self.owner = owner or process_owner()
        self.lease_seconds = max(LEASE_SECONDS, 3 * interval)  # renewed every pass
        self.holding = False
        self.busy = False  # the last pass had a campaign running
        self.grace = 5.0  # for tries in flight at a stop (set by stop())
        self._renewed = 0.0
        self._wake = asyncio.Event()
        campaigns.subscribe(self.wake)

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace: float = 5.0) -> None:
        self.grace = grace
        await super().stop(grace)

    def nudge(self) -> None:
        """Something that may free a row's place happened (a call ended): look again now
        if a campaign is running; otherwise the next pass is soon enough."""
        if self.busy:
            self._wake.set()

    def _wake_up(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    if await self._hold():
                        await self.campaigns.run_pass(self.sinks)
                        self.busy = self.campaigns.running > 0
                except Exception:
                    log.exception("campaign pass failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
        finally:
            await self.campaigns.drain(self.grace)
            if self.holding:
                with contextlib.suppress(Exception):
                    await self.store.release_lease(LEASE, self.owner)

    async def _hold(self) -> bool:
        now = time.time()
        if self.holding and now - self._renewed < self.lease_seconds / 3:
            return True  # renewed moments ago: woken passes cost no write
        held = await self.store.acquire_lease(LEASE, self.owner, now, now + self.lease_seconds)
        self._renewed = now
        if held != self.holding:
            log.info("campaign runner %s", "active in this process" if held else
                     "left to another process")
            if held:  # tries the last holder left claimed (it died) go again, same keys
                resumed = await self.campaigns.store.resume_claims()
                if resumed:
                    log.info("campaign tries resumed after a stop: %d", resumed)
        self.holding = held
        return held
