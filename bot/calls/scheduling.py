"""Scheduled calls: kept in the database, each fired once at its time, across restarts.

Firing claims the row first (a claim that runs out is a crash, and the call is fired again
with the same idempotency key, so Retell answers with the call it may already have placed:
never twice). At firing time every rule is checked again by the placing use case: a number
put on the do-not-call list since is refused; outside the callee's calling hours the call
waits for the next opening and its card says so. A call whose time passed while the app was
down is placed if it is at most `grace` late, otherwise marked missed and its requester told.

No Slack types here: the card and the requester are reached through `ScheduleSink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from babel.dates import format_datetime

from bot.calls.placing import (
    CardSink,
    NotAllowed,
    Outcome,
    Placed,
    PlaceRequest,
    Placing,
    StoreDown,
)
from bot.guard.admission import Guard
from bot.guard.hours import callee_time
from bot.input.parsing import CallCommand
from bot.input.phones import mask_phone, parse_phone
from bot.runtime.tasks import Worker
from storage.base import ScheduleStore
from storage.models import Route, Scheduled

log = logging.getLogger(__name__)
CLAIM_SECONDS = 120.0  # a firing still in hand after this was cut short (a crash)
BATCH = 20
MAX_REST = 30.0  # the scheduler looks again at least this often
SCHEDULED_FOR = "scheduled_for"  # the dynamic variable a reminder's prompt can use


class ScheduleSink(Protocol):
    """The Slack side of one scheduled call: its card, and its requester."""

    async def post(self, entry: Scheduled) -> str:
        """Post the card that says when; its ts."""

    async def show(self, entry: Scheduled, *, waiting_until: float | None = None) -> None:
        """Show the scheduled call as it stands (cancelled, missed, refused, waiting)."""

    def card(self, entry: Scheduled) -> CardSink:
        """The card the fired call lives on: the scheduled card, updated in place."""

    async def tell(self, entry: Scheduled, outcome: Outcome | None) -> None:
        """Tell the requester what became of it (None: missed)."""


@dataclass(frozen=True)
class ScheduleRequest:
    command: CallCommand
    route: Route
    due_at: float
    note: str | None = None
    from_number: str | None = None
    external_team: str | None = None
    request_parts: tuple[str, ...] = ()  # what identifies the request (a Slack retry)


class NotYours(Exception):
    """Only the requester or an admin may cancel or bring forward a scheduled call;
    `reason`: unknown | not_theirs | not_waiting."""

    def __init__(self, reason: str, owner: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.owner = owner


def schedule_key(parts: tuple[str, ...]) -> str:
    """The idempotency key every firing of one scheduled call sends to Retell."""
    return "sched-" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def scheduled_for(number: str, due_at: float, lang: str = "en") -> str:
    """The time of the call in the callee's own zone, for `{{scheduled_for}}`."""
    return str(format_datetime(callee_time(number, due_at), "EEEE d MMMM y, HH:mm",
                               locale=lang))


class Scheduling:
    def __init__(self, store: ScheduleStore, guard: Guard, placing: Placing, *,
                 grace: float, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.guard = guard
        self.placing = placing
        self.grace = grace
        self._clock = clock
        self._on_scheduled: Callable[[], None] = lambda: None

    def subscribe(self, scheduled: Callable[[], None]) -> None:
        """`scheduled` is told when a call is added (the scheduler looks again)."""
        self._on_scheduled = scheduled

    async def schedule(self, request: ScheduleRequest, sink: ScheduleSink) -> Scheduled:
        """Keep the call and post its card; raises Refused for what will not change by
        then (who, which number, the do-not-call list). Limits and calling hours are
        checked when it fires."""
        route = request.route
        number = request.command.phone.e164
        await self.guard.check(user_id=route.user_id, channel_id=route.channel_id,
                               number=number, external_team=request.external_team,
                               source="schedule", team_id=route.team_id)
        entry = Scheduled(
            id=0, channel_id=route.channel_id or "", user_id=route.user_id or "",
            number=number, due_at=request.due_at,
            request_key=schedule_key(("schedule", route.team_id or "", *request.request_parts)),
            team_id=route.team_id, thread_ts=route.thread_ts, agent=request.command.agent,
            variables=dict(request.command.variables), note=request.note,
            from_number=request.from_number, created_at=self._clock())
        entry = replace(entry, id=await self.store.schedule(entry, self._clock()))
        ts = await sink.post(entry)
        await self.store.set_schedule_card(entry.id, ts)
        log.info("call scheduled id=%d to=%s in %.0f s", entry.id, mask_phone(number),
                 entry.due_at - self._clock())
        self._on_scheduled()
        return replace(entry, card_ts=ts)

    async def cancel(self, schedule_id: int, user_id: str, *, admin: bool,
                     sinks: Callable[[Scheduled], ScheduleSink]) -> Scheduled:
        entry = await self._mine(schedule_id, user_id, admin)
        sink = sinks(entry)
        cancelled = await self.store.cancel_schedule(schedule_id, user_id, self._clock())
        if cancelled is None:
            raise NotYours("not_waiting")
        log.info("scheduled call cancelled id=%d by=%s", schedule_id, user_id)
        await sink.show(replace(cancelled, card_ts=entry.card_ts))
        return cancelled

    async def call_now(self, schedule_id: int, user_id: str, *, admin: bool,
                       sinks: Callable[[Scheduled], ScheduleSink]) -> Outcome | None:
        """Fire it at once (the requester or an admin)."""
        await self._mine(schedule_id, user_id, admin)
        now = self._clock()
        entry = await self.store.claim_schedule(schedule_id, now, now + CLAIM_SECONDS,
                                                early=True)
        if entry is None:
            raise NotYours("not_waiting")
        return await self._fire(entry, sinks(entry), now, late_ok=True)

    async def _mine(self, schedule_id: int, user_id: str, admin: bool) -> Scheduled:
        entry = await self.store.get_schedule(schedule_id)
        if entry is None:
            raise NotYours("unknown")
        if entry.user_id != user_id and not admin:
            raise NotYours("not_theirs", entry.user_id)
        if entry.status != "scheduled":
            raise NotYours("not_waiting")
        return entry

    async def fire_due(self, sinks: Callable[[Scheduled], ScheduleSink]) -> int:
        """Fire what is due now; how many were taken."""
        now = self._clock()
        fired = 0
        for entry in await self.store.due_schedules(now, BATCH):
            claimed = await self.store.claim_schedule(entry.id, now, now + CLAIM_SECONDS)
            if claimed is None:
                continue  # another process has it
            fired += 1
            # A firing cut short (a crash) is fired again however late: it may have been
            # placed, and the same key makes Retell answer with that call.
            await self._fire(claimed, sinks(claimed), now, late_ok=entry.status == "firing")
        return fired

    async def _fire(self, entry: Scheduled, sink: ScheduleSink, now: float, *,
                    late_ok: bool) -> Outcome | None:
        if not late_ok and now - entry.due_at > self.grace:
            await self.store.finish_schedule(entry.id, "missed", now, status="missed")
            log.warning("scheduled call missed id=%d: %.0f s late", entry.id,
                        now - entry.due_at)
            missed = replace(entry, status="missed", outcome="missed")
            await sink.show(missed)
            await sink.tell(missed, None)
            return None
        variables = {SCHEDULED_FOR: scheduled_for(entry.number, entry.due_at),
                     **entry.variables}
        request = PlaceRequest(
            CallCommand(phone=parse_phone(entry.number), agent=entry.agent,
                        variables=variables),
            Route(team_id=entry.team_id, channel_id=entry.channel_id, user_id=entry.user_id,
                  thread_ts=entry.thread_ts),
            ("schedule", str(entry.id)), from_number=entry.from_number, note=entry.note,
            source="schedule", request_key=entry.request_key)
        async def heard(outcome: Outcome) -> None:
            """The outcome is settled below, once placing is done with the card."""

        outcome = await self.placing.place(request, sink.card(entry), heard)
        return await self._settle(entry, sink, outcome)

    async def _settle(self, entry: Scheduled, sink: ScheduleSink,
                      outcome: Outcome) -> Outcome | None:
        now = self._clock()
        if isinstance(outcome, Placed):
            await self.store.finish_schedule(entry.id, "placed", now,
                                             call_id=outcome.record.call_id)
            return outcome
        if isinstance(outcome, StoreDown):
            return outcome  # the claim runs out and it is fired again
        if isinstance(outcome, NotAllowed) and outcome.refusal.reason == "calling_hours":
            opens = outcome.refusal.facts.get("opens_at")
            if isinstance(opens, float):
                await self.store.reschedule(entry.id, opens, now)
                log.info("scheduled call id=%d waits for calling hours", entry.id)
                await sink.show(entry, waiting_until=opens)
                return outcome
        detail = outcome.refusal.reason if isinstance(outcome, NotAllowed) else \
            type(outcome).__name__
        kind = "refused" if isinstance(outcome, NotAllowed) else "failed"
        await self.store.finish_schedule(entry.id, kind, now, detail=detail)
        settled = replace(entry, status="done", outcome=kind, detail=detail)
        if isinstance(outcome, NotAllowed):
            await sink.show(settled)  # refused before any card: the scheduled card says so
        await sink.tell(settled, outcome)
        return outcome


class Scheduler(Worker):
    """Fires scheduled calls at their time: looks when told a call was added, and at the
    next due time (at least every MAX_REST seconds)."""

    name = "scheduler"

    def __init__(self, scheduling: Scheduling, store: ScheduleStore,
                 sinks: Callable[[Scheduled], ScheduleSink],
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.scheduling = scheduling
        self.store = store
        self.sinks = sinks
        self._clock = clock
        self._wake = asyncio.Event()
        scheduling.subscribe(self.wake)

    def wake(self) -> None:
        self._wake.set()

    def _wake_up(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # a call added during the pass wakes the wait below
            fired = 0
            try:
                fired = await self.scheduling.fire_due(self.sinks)
                due = await self.store.next_due()
            except Exception:
                log.exception("scheduler pass failed")
                due = None
            if fired >= BATCH:
                continue
            rest = MAX_REST if due is None else min(MAX_REST, max(0.0, due - self._clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), rest)
