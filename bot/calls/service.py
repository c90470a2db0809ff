"""The call service: the rules for placing calls and recording what Retell reports.

Knows nothing of Slack or aiohttp: handlers hand it plain values and show what it returns.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson

from bot.calls.words import DEFAULT_LANGUAGE, CardWords
from bot.guard.admission import Ticket, audit_entry, callee_asked
from bot.input.parsing import CallCommand
from bot.input.phones import mask_phone
from bot.retell.client import (
    DNC_REASON,
    UNCERTAIN_KINDS,
    Agent,
    CallerNumber,
    RetellBadAnswer,
    RetellCall,
    RetellClient,
    RetellError,
)
from storage.base import Store
from storage.errors import store_failure
from storage.models import (
    STAGE_ANALYZED,
    STAGE_ENDED,
    STAGE_PLACED,
    STAGE_STARTED,
    Attempt,
    AuditEntry,
    CallFields,
    CallRecord,
    CallStats,
    DncEntry,
    InboxEntry,
    Route,
    other_party,
)

log = logging.getLogger(__name__)

METADATA_SOURCE = "slack-callbot"
# The metadata key that carries a create's idempotency key, so a call whose create answer
# was lost is recognised when its webhook comes (or found with list-calls).
REQUEST_KEY_FIELD = "callbot_key"
CAMPAIGN_FIELD = "callbot_campaign"  # a campaign's call: the campaign's id
# What metadata may say about where a call belongs; anything else is ignored, not trusted.
_META_SHAPES = {
    "slack_team_id": re.compile(r"[TE][A-Z0-9]{2,20}"),
    "slack_channel_id": re.compile(r"[CGD][A-Z0-9]{2,20}"),
    "slack_user_id": re.compile(r"[UW][A-Z0-9]{2,20}"),
    "slack_message_ts": re.compile(r"[0-9]{1,12}\.[0-9]{1,9}"),
    "slack_thread_ts": re.compile(r"[0-9]{1,12}\.[0-9]{1,9}"),
    CAMPAIGN_FIELD: re.compile(r"[1-9][0-9]{0,11}"),
    REQUEST_KEY_FIELD: re.compile(r"(?:sched-)?[0-9a-f]{40}"),  # see schedule_key
}
# The words of a call, kept in their own column: the stored payload leaves them out.
_TRANSCRIPT_KEYS = frozenset({"transcript", "transcript_object", "transcript_with_tool_calls",
                              "scrubbed_transcript_with_tool_calls"})
# What each event asks Slack to show; the outbox delivers these after the commit.
EVENT_EFFECTS: dict[str, tuple[int, tuple[str, ...]]] = {
    "call_started": (STAGE_STARTED, ("card",)),
    "call_ended": (STAGE_ENDED, ("card",)),
    "call_analyzed": (STAGE_ANALYZED, ("card", "summary")),
}
POLL_BASE_SECONDS = 15.0
MAX_AGENTS_OFFERED = 25  # agents named in an "unknown agent" answer
POLL_MAX_SECONDS = 300.0
POLL_GIVE_UP_SECONDS = 6 * 3600
_DEFAULT_STATUS = {"call_started": "ongoing", "call_ended": "ended", "call_analyzed": "ended"}


class AgentLookupError(Exception):
    """The agent people named is ambiguous (`ambiguous`), unknown (`unknown`, `unknown_id`,
    `none_in_account`), or the list could not be read (`unavailable`, with the Retell error
    as `cause`); `candidates` are the agents' names to offer. render/placing.py says it."""

    def __init__(self, kind: str, wanted: str, candidates: tuple[str, ...] = (),
                 cause: RetellError | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.wanted = wanted
        self.candidates = candidates
        self.cause = cause


class CallFailed(Exception):
    """Retell did not do what was asked (`action`: call | hang_up | read_call), `cause` says
    why; render/answers.py words it. A failed placement also carries the text recorded on
    its card (`recorded`, in the channel's language) and the attempt's row."""

    def __init__(self, cause: RetellError, action: str = "call", row_id: int = 0, *,
                 recorded: str | None = None, unrecorded: bool = False) -> None:
        super().__init__(cause.kind)
        self.cause = cause
        self.action = action
        self.recorded = recorded
        self.row_id = row_id  # the recorded attempt, so "Call again" can retry it
        self.unrecorded = unrecorded  # the database could not keep the attempt either


class CallNotRecorded(Exception):
    """Retell placed the call but the database could not record it (locked, full)."""

    def __init__(self, call_id: str, cause: str | None = None) -> None:
        super().__init__(call_id)
        self.call_id = call_id
        self.cause = cause  # locked | full | unavailable, when the store said


class NotAllowed(Exception):
    """The person may not do this to this call: `reason` is why (unknown_call, not_theirs,
    ended, unknown_to_retell) and `placed_by` whose call it is; render/answers.py says it."""

    def __init__(self, reason: str, placed_by: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.placed_by = placed_by


def implied_events(call: RetellCall) -> list[str]:
    """The webhook events a call object read from Retell stands for (oldest first)."""
    status = call.call_status or ""
    events: list[str] = []
    if status == "ongoing" or (status == "ended" and call.start_timestamp):
        events.append("call_started")
    if status in ("ended", "not_connected", "error"):
        events.append("call_ended")
        analysis = call.call_analysis
        if analysis is not None and (
            analysis.call_summary is not None
            or analysis.user_sentiment is not None
            or analysis.call_successful is not None
        ):
            events.append("call_analyzed")
    return events


def route_metadata(route: Route) -> dict[str, str]:
    """The route as Retell keeps it in the call's metadata: a webhook finds its channel
    from it even when the database lost the call."""
    data = {
        "source": METADATA_SOURCE,
        "slack_team_id": route.team_id,
        "slack_channel_id": route.channel_id,
        "slack_user_id": route.user_id,
        "slack_message_ts": route.message_ts,
        "slack_thread_ts": route.thread_ts,
        CAMPAIGN_FIELD: str(route.campaign_id) if route.campaign_id else None,
    }
    return {k: v for k, v in data.items() if v}


def idempotency_key(*parts: str) -> str:
    """Same Slack request, same key: Retell then never places a second call for it."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def retry_key(attempt: CallRecord) -> str | None:
    """The key a retry of a failed attempt must reuse: when Retell timed out or failed
    mid-way it may have placed the call, and the same key makes it answer with that call."""
    if attempt.call_id is None and attempt.error_kind in UNCERTAIN_KINDS:
        return attempt.request_key
    return None


def match_agent(agents: list[Agent], wanted: str) -> Agent:
    """Case-insensitive name match; a unique partial match is accepted too."""
    needle = wanted.strip().casefold()
    exact = [a for a in agents if (a.agent_name or "").casefold() == needle]
    if len(exact) == 1:
        return exact[0]
    partial = exact or [a for a in agents if needle in (a.agent_name or "").casefold()]
    if len(partial) == 1:
        return partial[0]
    names = tuple(
        a.agent_name or a.agent_id
        for a in sorted(partial or agents, key=lambda a: (a.agent_name or "").casefold())
    )[:MAX_AGENTS_OFFERED]
    if partial:
        raise AgentLookupError("ambiguous", wanted, names)
    raise AgentLookupError("unknown" if agents else "none_in_account", wanted, names)


def fields_from_webhook(event: str, call: RetellCall, raw: str) -> CallFields | None:
    """What one webhook says about its call; None for events this app does not act on."""
    effect = EVENT_EFFECTS.get(event)
    if effect is None:
        return None
    stage, _ = effect
    meta = call.metadata if isinstance(call.metadata, dict) else {}
    analysis = call.call_analysis
    variables = call.retell_llm_dynamic_variables
    return CallFields(
        call_id=call.call_id,
        status=call.call_status or _DEFAULT_STATUS[event],
        stage=stage,
        direction=call.direction or "outbound",
        team_id=_meta(meta, "slack_team_id"),
        channel_id=_meta(meta, "slack_channel_id"),
        user_id=_meta(meta, "slack_user_id"),
        message_ts=_meta(meta, "slack_message_ts"),
        thread_ts=_meta(meta, "slack_thread_ts"),
        request_key=_meta(meta, REQUEST_KEY_FIELD),
        campaign_id=int(campaign) if (campaign := _meta(meta, CAMPAIGN_FIELD)) else None,
        from_number=call.from_number,
        to_number=call.to_number,
        agent_id=call.agent_id,
        agent_name=call.agent_name,
        variables={str(k): str(v) for k, v in variables.items()} if variables else None,
        started_at=call.start_timestamp / 1000 if call.start_timestamp else None,
        ended_at=call.end_timestamp / 1000 if call.end_timestamp else None,
        duration_ms=call.duration_ms,
        disconnection_reason=call.disconnection_reason,
        sentiment=analysis.user_sentiment if analysis else None,
        successful=analysis.call_successful if analysis else None,
        in_voicemail=analysis.in_voicemail if analysis else None,
        cost_cents=call.call_cost.combined_cost if call.call_cost else None,
        latency_ms=call.latency.e2e.p50 if call.latency and call.latency.e2e else None,
        summary=analysis.call_summary if analysis else None,
        extracted=analysis.custom_analysis_data or None if analysis else None,
        transcript=call.transcript,
        recording_url=call.recording_url,
        public_log_url=call.public_log_url,
        raw_payload=raw,
    )


def _callee_dnc(call: RetellCall, now: float) -> tuple[DncEntry, AuditEntry] | None:
    """The callee asked not to be called again: their number goes on the list."""
    if call.disconnection_reason != DNC_REASON:
        return None
    number = other_party(call.direction, call.from_number, call.to_number)
    meta = call.metadata if isinstance(call.metadata, dict) else {}
    team = _meta(meta, "slack_team_id")
    return callee_asked(call.call_id, number, now, team) if number else None


def _meta(meta: dict[str, Any], key: str) -> str | None:
    value = meta.get(key)
    shape = _META_SHAPES[key]
    return value if isinstance(value, str) and shape.fullmatch(value) else None


def compact_payload(call: dict[str, Any]) -> str:
    """The call object as stored: everything but the transcript, which has its own column
    (a transcript with word timings is most of a webhook's bytes)."""
    return orjson.dumps({k: v for k, v in call.items() if k not in _TRANSCRIPT_KEYS}).decode()


class CallService:
    def __init__(
        self,
        store: Store,
        retell: RetellClient,
        *,
        from_number: str,
        default_agent_id: str | None = None,
        agents_ttl: float = 60.0,
        poll_after: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        words: CardWords | None = None,
    ) -> None:
        self.store = store
        self.retell = retell
        # What a failed attempt's card says (bot/render/answers.CardWords, wired in app.py).
        self.words = words
        self.from_number = from_number
        self.default_agent_id = default_agent_id
        self.poll_after = poll_after
        self._agents_ttl = agents_ttl
        self._clock = clock
        self._agents: tuple[float, list[Agent]] | None = None
        self._numbers: tuple[float, list[CallerNumber]] | None = None
        self._on_enqueued: Callable[[], None] = _ignore
        self._on_user_calls: Callable[[str], None] = _ignore_user

    def subscribe(self, *, enqueued: Callable[[], None],
                  user_calls: Callable[[str], None]) -> None:
        """Who hears of what a use case did: Slack work queued (the outbox wakes), and a
        person's calls changed (their Home tab). Callers of the use cases never poke them."""
        self._on_enqueued = enqueued
        self._on_user_calls = user_calls

    # -- what Retell offers ------------------------------------------------------------------

    def cached_choices(self) -> tuple[list[Agent], list[CallerNumber]] | None:
        """Agents and numbers if both are fresh in the cache (so a modal can open at once)."""
        if self._agents is None or self._numbers is None:
            return None
        if not (self._fresh(self._agents) and self._fresh(self._numbers)):
            return None
        return self._agents[1], self._numbers[1]

    def _fresh(self, entry: tuple[float, Any] | None) -> bool:
        return entry is not None and self._clock() - entry[0] <= self._agents_ttl

    async def agents(self) -> list[Agent]:
        """Retell's agents, cached briefly: every `/call` with a name would list them."""
        if self._agents is None or not self._fresh(self._agents):
            self._agents = (self._clock(), await self.retell.list_agents())
        return self._agents[1]

    async def caller_numbers(self) -> list[CallerNumber]:
        if self._numbers is None or not self._fresh(self._numbers):
            self._numbers = (self._clock(), await self.retell.list_phone_numbers())
        return self._numbers[1]

    async def resolve_agent(self, wanted: str | None) -> Agent | None:
        """The agent to use; None means the agent bound to the caller number."""
        wanted = wanted or self.default_agent_id
        if not wanted:
            return None
        try:
            agents = await self.agents()
        except RetellError as exc:
            if wanted.startswith("agent_"):
                return Agent(agent_id=wanted, agent_name=None)  # Retell will judge the id
            raise AgentLookupError("unavailable", wanted, cause=exc) from None
        if wanted.startswith("agent_"):
            known = next((a for a in agents if a.agent_id == wanted), None)
            if known is None and agents:
                raise AgentLookupError("unknown_id", wanted, tuple(
                    a.agent_name or a.agent_id for a in agents[:MAX_AGENTS_OFFERED]))
            return known or Agent(agent_id=wanted, agent_name=None)
        return match_agent(agents, wanted)

    # -- placing and controlling calls -------------------------------------------------------

    async def place_call(
        self,
        command: CallCommand,
        agent: Agent | None,
        route: Route,
        request_key: str,
        *,
        from_number: str | None = None,
        note: str | None = None,
        ticket: Ticket | None = None,
        lang: str = DEFAULT_LANGUAGE,
    ) -> CallRecord:
        """Ask Retell for the call and record it; on failure record why (in `lang`, the
        card's language) and raise CallFailed.

        `ticket` is what the guard admitted: its hold gives way to the call row, and the
        outcome is audited, in the same transaction that records it."""
        try:
            return await self._place_call(command, agent, route, request_key,
                                          from_number=from_number, note=note, ticket=ticket,
                                          lang=lang)
        finally:
            self._on_enqueued()
            if route.user_id:
                self._on_user_calls(route.user_id)

    async def _place_call(
        self,
        command: CallCommand,
        agent: Agent | None,
        route: Route,
        request_key: str,
        *,
        from_number: str | None,
        note: str | None,
        ticket: Ticket | None,
        lang: str,
    ) -> CallRecord:
        attempt = Attempt(
            route=route,
            from_number=from_number or self.from_number,
            to_number=command.phone.e164,
            agent_id=agent.agent_id if agent else None,
            agent_name=agent.agent_name if agent else None,
            variables=command.variables,
            note=note,
        )
        started = time.perf_counter()
        try:
            call = await self.retell.create_phone_call(
                from_number=attempt.from_number,
                to_number=command.phone.e164,
                agent_id=attempt.agent_id,
                variables=command.variables,
                metadata={**route_metadata(route), REQUEST_KEY_FIELD: request_key},
                idempotency_key=request_key,
            )
        except RetellError as exc:
            message = self.words.retell_failed(exc, lang) if self.words else exc.kind
            log.warning("call refused to=%s kind=%s status=%s", mask_phone(command.phone.e164),
                        exc.kind, exc.status)
            try:
                row_id = await self.store.record_failed_attempt(
                    attempt, message, error_kind=exc.kind, request_key=request_key,
                    hold_id=ticket.hold_id if ticket else None,
                    audit=ticket.entry("failed", exc.kind) if ticket else None,
                    uncertain=exc.uncertain,
                )
            except Exception as store_exc:  # the database is down too: say so, lose nothing
                log.error("failed call not recorded to=%s: %s", mask_phone(command.phone.e164),
                          type(store_exc).__name__)
                raise CallFailed(exc, "call", 0, recorded=message, unrecorded=True) from None
            raise CallFailed(exc, "call", row_id, recorded=message) from None
        log.info(
            "call placed call_id=%s to=%s agent=%s in %.0f ms",
            call.call_id, mask_phone(command.phone.e164), call.agent_id,
            (time.perf_counter() - started) * 1000,
        )
        placed = replace(
            attempt,
            agent_id=call.agent_id or attempt.agent_id,
            agent_name=call.agent_name or attempt.agent_name,
        )
        try:
            await self.store.save_placed_call(
                placed, call.call_id, call.call_status or "registered",
                compact_payload(call.model_dump(mode="json")),
                poll_at=time.time() + self.poll_after,
                hold_id=ticket.hold_id if ticket else None,
                audit=ticket.entry("placed", call_id=call.call_id) if ticket else None,
                request_key=request_key,
            )
            record = await self.store.get_call(call.call_id)
        except Exception as exc:
            # Retell placed it: its webhooks carry the route and key, and will record it
            # (and settle its hold) once the database takes writes again.
            log.error("placed call not recorded call_id=%s: %s", call.call_id,
                      type(exc).__name__)
            raise CallNotRecorded(call.call_id, store_failure(exc)) from None
        if record is None:
            raise CallNotRecorded(call.call_id)
        return record

    async def find(self, ref: str) -> CallRecord | None:
        """A call by Retell id, or an attempt Retell refused by `#<row id>` (button values)."""
        if ref.startswith("#") and ref[1:].isdigit():
            return await self.store.get_call_by_row(int(ref[1:]))
        return await self.store.get_call(ref)

    async def hang_up(self, call_id: str, user_id: str, *, admin: bool = False) -> CallRecord:
        """Stop a live call the user placed (an admin: any call); raises NotAllowed or
        CallFailed with the reason. Every hang-up is audited."""
        call = await self.store.get_call(call_id)
        if call is None:
            raise NotAllowed("unknown_call")
        if call.user_id and call.user_id != user_id and not admin:
            raise NotAllowed("not_theirs", placed_by=call.user_id)
        if not call.live:
            raise NotAllowed("ended")
        try:
            await self.retell.stop_call(call_id)
        except RetellError as exc:
            if exc.status == 404:
                raise NotAllowed("unknown_to_retell") from None
            raise CallFailed(exc, "hang_up") from None
        log.info("call hung up call_id=%s by=%s", call_id, user_id)
        number = call.other_number
        await self.store.audit(audit_entry(
            "hang_up", "done", number=number, user_id=user_id, channel_id=call.channel_id,
            reason=None if call.user_id in (None, user_id) else f"admin; placed by {call.user_id}",
            call_id=call_id))
        try:
            return await self.refresh(call_id)
        except CallFailed:  # hung up all the same; the call_ended webhook will show it
            return call

    async def refresh(self, call_id: str) -> CallRecord:
        """Read the call from Retell, store what changed and queue a card update."""
        try:
            found = await self.retell.get_call(call_id)
        except RetellError as exc:
            raise CallFailed(exc, "read_call") from None
        await self._record_call(found, source="poll", always=("card",))
        record = await self.store.get_call(call_id)
        assert record is not None
        return record

    async def request_transcript(self, call_id: str) -> bool:
        """Queue the transcript for the card's thread; False if it was queued before."""
        queued = await self.store.enqueue_once(call_id, "transcript")
        if queued:
            self._on_enqueued()
        return queued

    async def claim(self, key: str, window: float | None = None) -> bool:
        """True the first time `key` is seen (within `window` s): makes repeats harmless."""
        return await self.store.claim(key, time.time(), window)

    # -- what Retell reports -----------------------------------------------------------------

    def webhook_entry(self, inbox_id: int, event: str, merge: bool, parsed: RetellCall,
                      call: dict[str, Any]) -> InboxEntry:
        """What a webhook means for the store: the call's changes, the Slack work its event
        causes, and a do-not-call entry if the callee asked for one."""
        fields = fields_from_webhook(event, parsed, compact_payload(call))
        _, kinds = EVENT_EFFECTS.get(event, (0, ()))
        now = time.time()
        return InboxEntry(inbox_id, event, merge, fields, kinds,
                          _callee_dnc(parsed, now), now + self.poll_after)

    def stored_entry(self, inbox_id: int, event: str, merge: bool, body: str) -> InboxEntry:
        """An entry from a body read back from the store (after a restart or a spill)."""
        try:
            data = orjson.loads(body)
            call = data["call"]
            if not isinstance(call, dict):
                raise TypeError
            parsed = RetellCall.model_validate(call)
        except (ValueError, KeyError, TypeError):  # ValidationError is a ValueError
            return InboxEntry(inbox_id, event, merge, None)
        return self.webhook_entry(inbox_id, event, merge, parsed, call)

    async def _record_call(
        self, call: RetellCall, *, source: str, always: tuple[str, ...] = ()
    ) -> list[str]:
        events = implied_events(call)
        if not events and not always:
            return []
        fields = fields_from_webhook(events[-1] if events else "call_started", call,
                                     call.model_dump_json())
        assert fields is not None
        if not events:  # still dialing: nothing happened, so the stage stays where it was
            fields = replace(fields, stage=STAGE_PLACED, status=call.call_status or fields.status)
        queued = await self.store.record_events(
            [(e, EVENT_EFFECTS[e][1]) for e in events], fields, source=source, always=always,
            dnc=_callee_dnc(call, time.time()),
        )
        if queued:
            self._on_enqueued()
        return queued

    async def poll_due(self, limit: int = 20) -> int:
        """Poll Retell for calls whose webhooks are late; returns how many were polled."""
        now = time.time()
        due = await self.store.calls_due_for_poll(now, limit)
        for call in due:
            assert call.call_id is not None
            next_at: float | None = now + self.poll_delay(call.poll_attempts)
            try:
                found = await self.retell.get_call(call.call_id)
                if found.call_id != call.call_id:
                    raise RetellBadAnswer("get-call answered for another call")
                new = await self._record_call(found, source="poll")
            except RetellError as exc:
                log.warning("poll failed call_id=%s: %s %s", call.call_id, exc.kind,
                            exc.status or "")
            except Exception as exc:  # one bad answer must not stop polling for the rest
                log.error("poll failed call_id=%s: %s", call.call_id, type(exc).__name__)
            else:
                if new:
                    log.info("poll call_id=%s found %s", call.call_id, ",".join(new))
            if now - call.created_at > POLL_GIVE_UP_SECONDS:
                log.warning("poll gave up call_id=%s: no outcome after %d h", call.call_id,
                            POLL_GIVE_UP_SECONDS // 3600)
                next_at = None
            await self.store.schedule_poll(call.call_id, next_at)
        # Creates whose answer was lost: Retell has had as long to show them as a call's
        # webhooks have to come before we poll.
        return len(due) + await self.settle_uncertain(older_than=min(30.0, self.poll_after))

    async def settle_uncertain(self, *, older_than: float = 30.0, limit: int = 20) -> int:
        """Creates whose answer was lost keep a hold on the limits; ask Retell whether each
        was placed (list-calls by the key in its metadata). Placed: record it, which frees
        the hold for the call row. Not placed: release the hold. Returns how many settled."""
        now = time.time()
        settled = 0
        for hold_id, key in await self.store.uncertain_holds(now - older_than, limit):
            try:
                found = await self.retell.find_call(REQUEST_KEY_FIELD, key)
                if found is not None:
                    await self._record_call(found, source="poll", always=("card",))
                else:
                    await self.store.release_hold(hold_id)
            except RetellError as exc:
                log.warning("could not settle an uncertain create: %s %s", exc.kind,
                            exc.status or "")
                continue
            except Exception as exc:
                log.error("could not settle an uncertain create: %s", type(exc).__name__)
                continue
            settled += 1
            log.info("uncertain create settled: %s", "placed" if found else "not placed")
        return settled

    def poll_delay(self, attempts: int) -> float:
        """Backoff between polls of one call: quick at first, then every few minutes."""
        base = min(self.poll_after, POLL_BASE_SECONDS)
        return float(min(POLL_MAX_SECONDS, base * 2 ** min(attempts, 16)))

    # -- history -----------------------------------------------------------------------------

    async def stats_since(self, since: float | None) -> CallStats:
        return await self.store.stats(since)

    async def recent_calls(self, user_id: str, limit: int = 10) -> list[CallRecord]:
        return await self.store.recent_calls(user_id, limit)


def _ignore() -> None:
    """No one listens yet (a service built for a test, or before the wiring subscribes)."""


def _ignore_user(user_id: str) -> None:
    """As _ignore, for a person's calls."""
