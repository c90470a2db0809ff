"""Guardrails: who may place a call, to which numbers, how many, and the audit of it all.

Every surface that places a call goes through `handlers/placing.py`, which asks `Guard.admit`
before anything else: a refusal is audited and explained, and Retell is never asked. The
limits are checked and a place under them is held in one database transaction, so two
requests can never both take the last place. No Slack or HTTP types here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberType

from bot.config import Settings
from bot.guard.hours import CallingHours, verdict
from bot.input.phones import mask_phone
from bot.retell.client import DNC_REASON
from storage.base import GuardStore
from storage.models import DNC_CALLEE_ASKED, AuditEntry, AuditRow, DncEntry, Limits

log = logging.getLogger(__name__)

# Numbers a person answers. Everything else (premium rate, shared cost, toll free, UAN,
# pagers, voicemail access, unknown) costs money or reaches no one in particular.
PERSONAL_TYPES = frozenset({
    PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.PERSONAL_NUMBER, PhoneNumberType.VOIP,
})
NON_GEOGRAPHIC_REGION = "001"  # what phonenumbers gives as the region of such numbers


class Refused(Exception):
    """A rule said no, as data: `reason` is the code (the audit log's too) and `facts`
    what the words need; bot/render/refusals.py says it to the person."""

    def __init__(self, reason: str, **facts: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.facts = facts


@dataclass(frozen=True)
class Ticket:
    """An admitted attempt: the place it holds under the limits, and how to audit it."""

    hold_id: int | None
    user_id: str | None
    channel_id: str | None
    source: str
    number: str
    agent: str | None
    overrode: str | None = None  # a rule an admin overrode for this call, kept in its audit
    team_id: str | None = None  # the workspace the call is placed from

    def entry(self, outcome: str, reason: str | None = None,
              call_id: str | None = None) -> AuditEntry:
        if self.overrode and reason is None:
            reason = f"{self.overrode}_override"
        return audit_entry("call", outcome, number=self.number, user_id=self.user_id,
                           channel_id=self.channel_id, source=self.source, agent=self.agent,
                           reason=reason, call_id=call_id, team_id=self.team_id)


class Guard:
    def __init__(self, settings: Settings, store: GuardStore,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.limits = Limits(per_hour=settings.user_calls_per_hour,
                             per_day=settings.user_calls_per_day,
                             concurrent=settings.max_concurrent_calls,
                             per_number_day=settings.number_calls_per_day)
        self.hours = settings.hours
        self._clock = clock

    def is_admin(self, user_id: str | None) -> bool:
        return bool(user_id) and user_id in self.settings.admins

    def scope(self, team_id: str | None) -> str | None:
        """Whose do-not-call list and audit log a workspace's request reads: its own with
        several workspaces; with one, all of it (entries carry their team either way)."""
        return (team_id or "") if self.settings.oauth else None

    # -- placing calls ---------------------------------------------------------------------

    async def admit(self, *, user_id: str | None, channel_id: str | None, number: str,
                    agent: str | None, source: str,
                    external_team: str | None = None,
                    request_key: str | None = None,
                    override_hours: bool = False,
                    campaign: bool = False, team_id: str | None = None) -> Ticket:
        """Every rule, cheapest first; raises Refused (already audited) or holds a place.

        `external_team`: the person's own organisation when it is not the app's (Slack
        Connect); see `foreign_team`. `override_hours`: an admin's explicit "call anyway"
        outside the callee's calling hours (refused for anyone else; audited). `campaign`:
        a campaign's call, paced by its own concurrency and Retell's rate, so the person's
        hourly and daily limits (meant for calls placed by hand) do not apply; the global
        cap and the per-number cap do."""
        overrode = "calling_hours" if override_hours else None
        ticket = Ticket(None, user_id, channel_id, source, number, agent, overrode, team_id)
        try:
            lasting_rules(self.settings, user_id, channel_id, number, external_team)
            now = self._clock()
            if override_hours and not self.is_admin(user_id):
                raise Refused("not_admin", admins=sorted(self.settings.admins))
            if not override_hours:
                hours_may(self.hours, number, now)
            await self._not_listed(number, team_id)
            limits = replace(self.limits, per_hour=0, per_day=0) if campaign else self.limits
            admission = await self.store.admit(user_id, limits, now,
                                               request_key=request_key, number=number)
            if admission.hold_id is None:
                raise Refused(f"limit_{admission.limit}", limit=admission.limit or "",
                              limits=self.limits, free_at=admission.free_at, number=number)
        except Refused as exc:
            await self._refused(ticket, exc, external_team)
            raise
        return replace(ticket, hold_id=admission.hold_id)

    async def check(self, *, user_id: str | None, channel_id: str | None, number: str,
                    source: str, external_team: str | None = None,
                    team_id: str | None = None) -> None:
        """The rules that will not change by a later time (who, where, which number, the
        do-not-call list): a call scheduled for later is refused now if one says no.
        Raises Refused, audited; the rest (limits, calling hours) is checked on firing."""
        ticket = Ticket(None, user_id, channel_id, source, number, None, team_id=team_id)
        try:
            lasting_rules(self.settings, user_id, channel_id, number, external_team)
            await self._not_listed(number, team_id)
        except Refused as exc:
            await self._refused(ticket, exc, external_team)
            raise

    async def check_caller(self, *, user_id: str | None, channel_id: str | None,
                           source: str, external_team: str | None = None,
                           team_id: str | None = None) -> None:
        """Whether the person may place calls from here at all (a campaign, before its
        rows are read): raises Refused, audited."""
        ticket = Ticket(None, user_id, channel_id, source, "", None, team_id=team_id)
        try:
            team_may(self.settings, external_team)
            caller_may(self.settings, user_id, channel_id)
        except Refused as exc:
            await self._refused(ticket, exc, external_team)
            raise

    async def _not_listed(self, number: str, team_id: str | None) -> None:
        listed = await self.store.dnc_get(number, team_id=self.scope(team_id))
        if listed is not None:
            raise Refused("do_not_call", entry=listed)

    async def _refused(self, ticket: Ticket, exc: Refused, external_team: str | None) -> None:
        """A refusal is audited and logged, once, whichever way it came."""
        await self.store.audit(ticket.entry("refused", exc.reason))
        log.info("call refused user=%s channel=%s to=%s source=%s reason=%s%s",
                 ticket.user_id, ticket.channel_id, mask_phone(ticket.number), ticket.source,
                 exc.reason, f" team={external_team}" if external_team else "")

    async def abandon(self, ticket: Ticket, reason: str) -> None:
        """Admitted, but Retell was never asked (the card could not be posted)."""
        entry = ticket.entry("failed", reason)
        if ticket.hold_id is not None:
            await self.store.release_hold(ticket.hold_id, entry)
        else:
            await self.store.audit(entry)

    # -- the do-not-call list --------------------------------------------------------------

    async def dnc_add(self, number: str, reason: str | None, user_id: str,
                      team_id: str | None = None) -> bool:
        await self._admin_only(user_id, "dnc_add", number, team_id)
        audit = self._admin_entry("dnc_add", user_id, number, "done", reason, team_id)
        if await self.store.dnc_get(number, team_id=self.scope(team_id)) is not None:
            await self.store.audit(audit)  # listed already (perhaps before workspaces)
            added = False
        else:
            added = await self.store.dnc_add(
                DncEntry(number, reason, user_id, None, self._clock(), team_id or ""), audit)
        log.info("dnc add to=%s by=%s new=%s", mask_phone(number), user_id, added)
        return added

    async def dnc_remove(self, number: str, user_id: str, team_id: str | None = None) -> bool:
        await self._admin_only(user_id, "dnc_remove", number, team_id)
        removed = await self.store.dnc_remove(number, self._admin_entry(
            "dnc_remove", user_id, number, "done", None, team_id),
            team_id=self.scope(team_id))
        log.info("dnc remove to=%s by=%s found=%s", mask_phone(number), user_id, removed)
        return removed

    async def dnc_list(self, user_id: str, limit: int = 50,
                       team_id: str | None = None) -> tuple[list[DncEntry], int]:
        await self._admin_only(user_id, "dnc_list", None, team_id)
        return await self.store.dnc_list(limit, team_id=self.scope(team_id))

    async def dnc_check(self, number: str, team_id: str | None = None) -> DncEntry | None:
        return await self.store.dnc_get(number, team_id=self.scope(team_id))

    # -- audit -----------------------------------------------------------------------------

    async def audit_rows(self, user_id: str, *, limit: int = 20, of_user: str | None = None,
                         number: str | None = None,
                         team_id: str | None = None) -> list[AuditRow]:
        await self._admin_only(user_id, "audit_read", number, team_id)
        return await self.store.audit_rows(limit, user_id=of_user, number=number,
                                           team_id=self.scope(team_id))

    async def audit_export(self, user_id: str, team_id: str | None = None) -> list[AuditRow]:
        """The whole audit log (numbers masked), for an admin's export."""
        await self._admin_only(user_id, "audit_export", None, team_id)
        rows = await self.store.audit_rows(0, team_id=self.scope(team_id))
        await self.store.audit(self._admin_entry("audit_export", user_id, None, "done",
                                                 f"{len(rows)} rows", team_id))
        return rows

    async def _admin_only(self, user_id: str, action: str, number: str | None,
                          team_id: str | None) -> None:
        """Refuse (and audit the attempt) unless `user_id` is an admin."""
        if not self.is_admin(user_id):
            await self.store.audit(self._admin_entry(action, user_id, number, "refused",
                                                     "not_admin", team_id))
            raise Refused("not_admin", admins=sorted(self.settings.admins))

    def _admin_entry(self, action: str, user_id: str, number: str | None, outcome: str,
                     reason: str | None, team_id: str | None) -> AuditEntry:
        return audit_entry(action, outcome, number=number, user_id=user_id, reason=reason,
                           team_id=team_id)


# -- heavy reads ------------------------------------------------------------------------------


class Busy(Exception):
    """Heavy work turned away for now: the person's last request is still running
    (`yours_running`) or the gate is full (`full`, with how many are `in_hand`);
    `retry_after` says when to ask again, in seconds."""

    def __init__(self, reason: str, retry_after: int, in_hand: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.in_hand = in_hand


class HeavyGate:
    """Bounds heavy read-only requests (`/callstats` over all history): one per person at a
    time and at most `capacity` in hand at once; the rest are told at once when to come
    back, so a burst never builds a queue (and the store runs the queries one at a time on
    a connection of their own, so acks, webhooks and health checks never wait behind)."""

    def __init__(self, capacity: int = 4, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self._clock = clock
        self._users: set[str] = set()
        self._seconds = 1.0  # a running estimate of one request's time

    @contextlib.contextmanager
    def enter(self, user_id: str | None) -> Iterator[None]:
        """Hold a place for the request's duration, or raise Busy."""
        user = user_id or ""
        if user in self._users:
            wait = self._retry_after(1)
            raise Busy("yours_running", wait)
        if len(self._users) >= self.capacity:
            wait = self._retry_after(len(self._users))
            raise Busy("full", wait, len(self._users))
        self._users.add(user)
        started = self._clock()
        try:
            yield
        finally:
            self._users.discard(user)
            took = max(0.0, self._clock() - started)
            self._seconds = 0.7 * self._seconds + 0.3 * took

    @property
    def in_hand(self) -> int:
        return len(self._users)

    def _retry_after(self, ahead: int) -> int:
        return max(1, math.ceil(self._seconds * ahead))


# -- the rules, as pure functions -------------------------------------------------------------


def foreign_team(user_team: str | None, home_team: str | None) -> str | None:
    """The person's team when it is known and is not the app's own (a Slack Connect user
    from another organisation), else None. Without the app's team (no auth.test answer
    yet) nobody can be told apart, and Bolt has then refused the request anyway."""
    if user_team and home_team and user_team != home_team:
        return user_team
    return None


def team_may(settings: Settings, external_team: str | None) -> None:
    """People from other organisations (Slack Connect) place calls only when allowed."""
    if external_team and not settings.allow_external_users:
        raise Refused("external_user")


def caller_may(settings: Settings, user_id: str | None, channel_id: str | None) -> None:
    """Admins may always place calls; the channel rule holds for everyone."""
    allowed = settings.allowed_users
    if allowed and user_id not in allowed and user_id not in settings.admins:
        raise Refused("user_not_allowed", admins=sorted(settings.admins))
    channels = settings.allowed_channels
    if channels and channel_id not in channels:
        raise Refused("channel_not_allowed", channels=sorted(channels))


def number_may(settings: Settings, e164: str) -> None:
    number = phonenumbers.parse(e164, None)
    region = phonenumbers.region_code_for_number(number)
    if non_geographic(number) and not settings.allow_special_numbers:
        raise Refused("special_number", number=e164, country_code=number.country_code or 0)
    countries = settings.allowed_countries
    if countries and region not in countries:
        raise Refused("country_not_allowed", region=region, allowed=sorted(countries))
    kind = phonenumbers.number_type(number)
    if kind not in PERSONAL_TYPES and not settings.allow_special_numbers:
        raise Refused("special_number", number=e164, kind=kind)


def non_geographic(number: phonenumbers.PhoneNumber) -> bool:
    """A country code of no country: satellite phones, international freephone, ..."""
    return (number.country_code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS
            or phonenumbers.region_code_for_number(number) == NON_GEOGRAPHIC_REGION)


def callee_asked(call_id: str, number: str, now: float,
                 team_id: str | None = None) -> tuple[DncEntry, AuditEntry]:
    """What to add, in the webhook's own transaction, when a callee asks not to be called:
    on the list of the workspace the call was placed from."""
    entry = DncEntry(number, DNC_CALLEE_ASKED, None, call_id, now, team_id or "")
    return entry, audit_entry("dnc_auto", "done", number=number, reason=DNC_REASON,
                              call_id=call_id, team_id=team_id)


def lasting_rules(settings: Settings, user_id: str | None, channel_id: str | None,
                  number: str, external_team: str | None) -> None:
    """The rules that hold whenever the call goes: whose organisation, who, where from,
    and which kind of number. Raises Refused."""
    team_may(settings, external_team)
    caller_may(settings, user_id, channel_id)
    number_may(settings, number)


def hours_may(hours: CallingHours, number: str, now: float) -> None:
    """Refuse a call outside the callee's calling hours, saying their local time and when
    the window opens (`opens_at`, None when it does not within a week)."""
    at = datetime.fromtimestamp(now, UTC)
    found = verdict(hours, number, at)
    if found.open:
        return
    raise Refused("calling_hours", number=number, zones=found.local_times(at),
                  window=str(found.window) if found.window else "",
                  opens_at=found.opens_at.timestamp() if found.opens_at else None)


def audit_entry(action: str, outcome: str, *, number: str | None = None,
                user_id: str | None = None, channel_id: str | None = None,
                source: str | None = None, agent: str | None = None,
                reason: str | None = None, call_id: str | None = None,
                team_id: str | None = None) -> AuditEntry:
    """The one way an audit entry is made, so its number is always masked the same way."""
    return AuditEntry(action=action, outcome=outcome, user_id=user_id, channel_id=channel_id,
                      source=source, number=number,
                      number_masked=mask_phone(number) if number else None, agent=agent,
                      reason=reason, call_id=call_id, team_id=team_id)
