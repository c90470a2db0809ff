"""Placing a call: the one use case behind `/call`, the modal, a message, a mention and the
"Call again" button, with no Slack type in it, so a scheduler or a campaign runner can run
it too.

The order always holds: every rule first, then the card, then Retell. Whatever fails on the
way (Slack, the database, Retell, our own code) the outcome says what, the card (if one was
posted) ends in a final state, and the hold on the limits is settled: nothing is acked and
then forgotten. Where the card goes is the caller's: a `CardSink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol

from bot.calls.service import (
    AgentLookupError,
    CallFailed,
    CallNotRecorded,
    CallService,
    idempotency_key,
)
from bot.calls.words import DEFAULT_LANGUAGE, CardWords
from bot.guard.admission import Guard, Refused, Ticket
from bot.input.parsing import CallCommand
from bot.input.phones import mask_phone
from bot.retell.client import Agent
from storage.errors import store_failure
from storage.models import CallRecord, Route

log = logging.getLogger(__name__)
LOST_CARD_LOOKS = (0.0, 3.0)  # seconds to wait before each look for an unanswered card


class CardNotPosted(Exception):
    """The sink could not post the card: Slack's error code, and its HTTP status (None:
    no answer at all)."""

    def __init__(self, error: str, status: int | None) -> None:
        super().__init__(error)
        self.error = error
        self.status = status

    @property
    def uncertain(self) -> bool:
        """Slack may have posted it all the same (no answer, or a 5xx)."""
        return self.status is None or self.status >= 500


class CardSink(Protocol):
    """Where a call's card lives while it is being placed."""

    async def post(self, call: CallRecord, marker: str) -> str:
        """Post the card (carrying `marker`, to be found again); its ts. Raises
        CardNotPosted."""

    async def update(self, ts: str, call: CallRecord) -> None:
        """Show the call's new state; best effort (the person is told either way)."""

    async def point_to_placed(self, ts: str, call: CallRecord) -> None:
        """Retell answered with a call placed earlier: this card points to that call's."""

    async def find(self, since: float, marker: str) -> str | None:
        """The ts of a card posted with `marker` since `since`, if it is there."""


@dataclass(frozen=True)
class PlaceRequest:
    command: CallCommand
    route: Route
    # Parts of the request that identify it: a retry of it maps to the same call.
    request_parts: tuple[str, ...]
    agent: Agent | None = None  # already chosen (modal, call again); else command.agent
    use_number_agent: bool = False  # chosen: no agent override, the caller ID's own agent
    from_number: str | None = None
    note: str | None = None
    source: str = "command"
    request_key: str | None = None  # reuse this idempotency key (retrying an unknown outcome)
    # The person's own organisation when it is not the app's (Slack Connect): guard.team_may.
    external_team: str | None = None
    lang: str = DEFAULT_LANGUAGE  # the card's language: the channel's
    override_hours: bool = False  # an admin's "call anyway" outside calling hours
    campaign: bool = False  # a campaign's row: no card, the person's limits do not apply


# -- outcomes: what happened, as data; bot/render/answers.py says it -------------------------


@dataclass(frozen=True)
class Placed:
    record: CallRecord


@dataclass(frozen=True)
class AgentUnknown:
    error: AgentLookupError  # which kind of miss, and the agents there are


@dataclass(frozen=True)
class NotAllowed:
    refusal: Refused  # the rule that said no, and its facts


@dataclass(frozen=True)
class CardFailed:
    channel_id: str
    error: str
    status: int | None


@dataclass(frozen=True)
class RetellRefused:
    message: str  # shown on the card too
    kind: str = ""  # the Retell error's kind (RetellError.kind), for a campaign's results


@dataclass(frozen=True)
class PlacedNotRecorded:
    message: str


@dataclass(frozen=True)
class StoreDown:
    cause: str  # before the card: nothing posted or placed


@dataclass(frozen=True)
class Broke:
    name: str  # an unexpected exception's type


Outcome = (Placed | AgentUnknown | NotAllowed | CardFailed | RetellRefused | PlacedNotRecorded
           | StoreDown | Broke)


Answer = Callable[[Outcome], Awaitable[None]]


@dataclass
class _Progress:
    step: str = "agent"
    ticket: Ticket | None = None
    card_ts: str | None = None
    pending: CallRecord | None = None
    lost: tuple[str, float, CallRecord] | None = None  # a card that may be posted after all


class Placing:
    def __init__(self, calls: CallService, guard: Guard, words: CardWords) -> None:
        self.calls = calls
        self.guard = guard
        self.words = words

    async def place(self, request: PlaceRequest, sink: CardSink, answer: Answer) -> Outcome:
        """Place the call; `answer` hears the outcome as soon as it is known (the person
        is told before any clean-up that follows, such as closing a card Slack lost)."""
        state = _Progress()
        outcome = await self._attempt(request, sink, state)
        await answer(outcome)
        if state.lost is not None:
            await self._close_lost_card(sink, *state.lost, request.lang)
        return outcome

    async def _attempt(self, request: PlaceRequest, sink: CardSink,
                       state: _Progress) -> Outcome:
        try:
            return await self._place(request, sink, state)
        except Exception as exc:
            cause = store_failure(exc)
            log.error("%s failed at %s: %s", request.source, state.step, type(exc).__name__)
            if state.ticket is not None and state.step != "recorded":
                with contextlib.suppress(Exception):  # the database may be the cause
                    await self.guard.abandon(state.ticket,
                                             f"{state.step}: {type(exc).__name__}")
            if state.card_ts is not None and state.pending is not None:
                failed = replace(state.pending, status="failed",
                                 error=self.words.unexpected(type(exc).__name__, request.lang))
                await sink.update(state.card_ts, failed)
            if cause is not None and state.card_ts is None:
                return StoreDown(cause)
            return Broke(type(exc).__name__)

    async def _place(self, request: PlaceRequest, sink: CardSink,
                     state: _Progress) -> Outcome:
        route = request.route
        log.info("%s user=%s channel=%s to=%s", request.source, route.user_id,
                 route.channel_id, mask_phone(request.command.phone.e164))
        agent = request.agent
        if agent is None and not request.use_number_agent:
            try:
                agent = await self.calls.resolve_agent(request.command.agent)
            except AgentLookupError as exc:
                return AgentUnknown(exc)
        # Known before the card: the hold carries it, so the call settles the hold however
        # it is recorded.
        key = request.request_key or idempotency_key(route.team_id or "",
                                                     *request.request_parts)
        state.step = "admission"
        try:  # every rule, before the card and before Retell
            ticket = await self.guard.admit(
                user_id=route.user_id, channel_id=route.channel_id,
                number=request.command.phone.e164,
                agent=(agent.agent_name or agent.agent_id) if agent else None,
                source=request.source, external_team=request.external_team,
                request_key=key, override_hours=request.override_hours,
                campaign=request.campaign, team_id=route.team_id,
            )
        except Refused as exc:
            return NotAllowed(exc)
        state.ticket = ticket
        now = time.time()
        pending = CallRecord(
            id=0, call_id=None, direction="outbound", status="placing", stage=0,
            created_at=now, updated_at=now, user_id=route.user_id,
            to_number=request.command.phone.e164,
            agent_id=agent.agent_id if agent else None,
            agent_name=agent.agent_name if agent else None,
            note=request.note,
        )
        state.step = "card"
        marker = f"card:{key}"
        try:
            card_ts = await sink.post(pending, marker)
        except CardNotPosted as exc:
            log.warning("%s card not posted channel=%s error=%s status=%s", request.source,
                        route.channel_id, exc.error, exc.status)
            state.ticket = None
            await self.guard.abandon(ticket, f"card not posted: {exc.error}")
            if exc.uncertain:
                state.lost = (marker, now, pending)
            return CardFailed(route.channel_id or "", exc.error, exc.status)
        route = replace(route, message_ts=card_ts or None)  # "": no card (a campaign's)
        state.card_ts, state.pending = card_ts, pending
        state.step = "retell"
        try:
            record = await self.calls.place_call(
                request.command, agent, route, key,
                from_number=request.from_number, note=request.note, ticket=ticket,
                lang=request.lang,
            )
        except CallFailed as exc:
            state.step = "recorded"  # the store settled the hold (or it expires)
            message = exc.recorded or self.words.retell_failed(exc.cause, request.lang)
            if exc.unrecorded:
                message = self.words.failed_unrecorded(message, request.lang)
            await sink.update(card_ts, replace(pending, id=exc.row_id, status="failed",
                                               error=message))
            return RetellRefused(message, exc.cause.kind)
        except CallNotRecorded as exc:
            state.step = "recorded"  # its webhooks will record it and settle the hold
            message = self.words.placed_not_recorded(exc.call_id, exc.cause, request.lang)
            await sink.update(card_ts, replace(pending, call_id=exc.call_id,
                                               status="registered", error=message))
            return PlacedNotRecorded(message)
        state.step = "recorded"
        if record.message_ts and record.message_ts != card_ts:
            await sink.point_to_placed(card_ts, record)
        return Placed(record)

    async def _close_lost_card(self, sink: CardSink, marker: str, since: float,
                               pending: CallRecord, lang: str) -> None:
        """A card whose post went unanswered may be in the channel, saying "placing…"
        forever: find it by its marker and show that nothing was placed. Slack may store
        it a moment after the connection broke, so look twice."""
        for wait in LOST_CARD_LOOKS:
            await asyncio.sleep(wait)
            try:
                ts = await sink.find(since, marker)
            except Exception as exc:  # best effort: the person has their answer already
                log.warning("could not look for a lost card: %s", type(exc).__name__)
                return
            if ts is not None:
                log.info("found a card whose post went unanswered ts=%s", ts)
                await sink.update(ts, replace(pending, status="failed",
                                              error=self.words.card_lost(lang)))
                return
