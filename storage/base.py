"""The store interfaces, one per concern; SQLite is the embedded implementation.

Each part of the app depends on the narrow interface it uses (the outbox on OutboxStore
and CallStore, the guard on GuardStore, ...); `Store` is all of them, which is what an
implementation provides and what the wiring passes around."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Protocol, Self

from storage.models import (
    Admission,
    Attempt,
    AuditEntry,
    AuditRow,
    CallFields,
    CallFilter,
    CallRecord,
    CallStats,
    Campaign,
    CampaignCounts,
    CampaignRow,
    DncEntry,
    InboxEntry,
    Limits,
    OutboxItem,
    Scheduled,
    SearchHit,
    StatsReport,
)


class CallStore(Protocol):
    """Calls and attempts: what placing, polling and the buttons read and write."""

    async def record_failed_attempt(
        self, attempt: Attempt, error: str, *, error_kind: str | None = None,
        request_key: str | None = None, hold_id: int | None = None,
        audit: AuditEntry | None = None, uncertain: bool = False,
    ) -> int:
        """Keep an attempt Retell did not accept, with the key a retry of it must reuse;
        its hold is released and its audit row written in the same transaction."""

    async def save_placed_call(
        self,
        attempt: Attempt,
        call_id: str,
        status: str,
        raw_payload: str | None,
        poll_at: float | None = None,
        *,
        hold_id: int | None = None,
        audit: AuditEntry | None = None,
        request_key: str | None = None,
    ) -> None:
        """Record a call Retell accepted (and queue a card update), without undoing
        webhooks that raced ahead of Retell's answer; releases its hold and audits it."""

    async def record_events(
        self,
        events: Sequence[tuple[str, Sequence[str]]],
        fields: CallFields,
        *,
        source: str = "webhook",
        poll_at: float | None = None,
        always: Sequence[str] = (),
        dnc: tuple[DncEntry, AuditEntry] | None = None,
    ) -> list[str]:
        """Store events (each with the Slack work it causes) and merge them into the call,
        atomically; returns the events that were new.

        An (call id, event) already recorded changes nothing, except that a webhook for an
        event first seen by polling merges its fuller data. `always` is queued regardless.
        """

    async def get_call(self, call_id: str) -> CallRecord | None: ...

    async def get_call_by_row(self, row_id: int) -> CallRecord | None: ...

    async def recent_calls(self, user_id: str, limit: int) -> list[CallRecord]:
        """The user's latest calls and attempts, without transcripts."""

    async def set_card(self, call_id: str, channel_id: str, message_ts: str) -> None: ...

    async def calls_due_for_poll(self, now: float, limit: int) -> list[CallRecord]: ...

    async def schedule_poll(self, call_id: str, next_poll_at: float | None) -> None: ...

    async def import_calls(self, records: Iterable[CallRecord], batch: int = 20_000) -> int:
        """Bulk-load calls as they stand (history for the bench, imports), in batches."""


class InboxStore(Protocol):
    """The webhook inbox: bodies kept before the 2xx, applied in batches."""

    async def accept_webhook(self, call_id: str, event: str, body: str) -> tuple[str, int | None]:
        """Keep a verified webhook body, deduplicated: (`stored` | `duplicate`, inbox id)."""

    async def inbox_rows(self, limit: int, *, received_before: float | None = None
                         ) -> list[tuple[int, str, bool, str]]: ...

    async def apply_inbox(self, entries: Sequence[InboxEntry], *,
                          default_channel: bool) -> list[InboxEntry]:
        """Turn kept webhooks into calls and Slack work, atomically; returns those applied."""


class GuardStore(Protocol):
    """The guardrails' state: holds under the limits, the audit log, do-not-call."""

    async def admit(self, user_id: str | None, limits: Limits, now: float, *,
                    request_key: str | None = None, number: str | None = None) -> Admission:
        """Check the limits (the person's, the number's, the concurrent cap) and take a
        hold under them, atomically."""

    async def release_hold(self, hold_id: int, audit: AuditEntry | None = None) -> None: ...

    async def uncertain_holds(self, created_before: float, limit: int) -> list[tuple[int, str]]:
        ...

    def number_key(self, number: str) -> str: ...

    async def audit(self, entry: AuditEntry) -> None: ...

    async def audit_rows(self, limit: int, *, user_id: str | None = None,
                         number: str | None = None,
                         team_id: str | None = None) -> list[AuditRow]: ...

    async def dnc_add(self, entry: DncEntry, audit: AuditEntry | None = None) -> bool: ...

    # team_id: None, any workspace's entries (one workspace); else that workspace's and
    # those kept before workspaces were told apart.
    async def dnc_remove(self, number: str, audit: AuditEntry | None = None, *,
                         team_id: str | None = None) -> bool: ...

    async def dnc_get(self, number: str, *, team_id: str | None = None) -> DncEntry | None: ...

    async def dnc_list(self, limit: int, *,
                       team_id: str | None = None) -> tuple[list[DncEntry], int]: ...


class OutboxStore(Protocol):
    """Slack work queued with the events that caused it, delivered under leases."""

    async def enqueue_once(self, call_id: str, kind: str) -> bool: ...

    async def outbox_heads(
        self, limit: int, skip: Collection[str] = (), *, owner: str | None = None,
        now: float | None = None, skip_channels: Collection[str] = (),
    ) -> list[OutboxItem]:
        """The oldest pending item of each call not in `skip`, soonest due first (a call
        leased by another owner is due when the lease runs out); none for the channels in
        `skip_channels` ("" stands for calls with no channel of their own)."""

    async def lease_outbox(
        self, call_id: str, owner: str, now: float, until: float
    ) -> list[OutboxItem]:
        """Every pending item of a due call, leased to `owner` until `until`; [] when it is
        not due or another owner holds it."""

    async def renew_outbox_leases(
        self, call_ids: Collection[str], owner: str, until: float
    ) -> set[str]:
        """Extend `owner`'s leases; returns the calls it still holds."""

    async def release_outbox(self, call_id: str, owner: str) -> None: ...

    async def outbox_outcomes(self, call_ids: Collection[str]) -> set[str]:
        """The calls among these with a summary waiting."""

    async def outbox_backlog(self) -> tuple[int, float | None]:
        """(pending items, when the oldest was queued)."""

    async def mark_posting(self, item_id: int, now: float) -> None: ...

    async def complete_outbox(self, item_ids: Sequence[int], now: float) -> None: ...

    async def retry_outbox(
        self, item_id: int, next_attempt_at: float, error: str, *, uncertain: bool = True
    ) -> None: ...

    async def fail_outbox(self, item_id: int, now: float, error: str) -> None: ...


class PaceStore(Protocol):
    """Slack's pace per channel, kept where every instance sees it."""

    async def take_slot(self, channel: str, interval: float, now: float) -> float:
        """The time (unix seconds, >= now) at which this write to `channel` may go; the
        channel's next slot moves `interval` past it, for every instance at once."""

    async def hold_channel(self, channel: str, until: float) -> None:
        """No write to `channel` before `until` (Slack said Retry-After), in any instance."""


class ClaimStore(Protocol):
    """Claims that make a repeat harmless (a Slack retry, a second click)."""

    async def claim(self, key: str, now: float, window: float | None = None) -> bool: ...


class LeaseStore(Protocol):
    """Named leases: work meant for one process runs in one (poller, retention)."""

    async def acquire_lease(self, name: str, owner: str, now: float, until: float, *,
                            reentrant: bool = True) -> bool:
        """Hold a named lease (one process at a time) if free, run out, or ours."""

    async def release_lease(self, name: str, owner: str) -> None: ...


class ScheduleStore(Protocol):
    """Calls to place later, each fired once: claimed before it is placed."""

    async def schedule(self, entry: Scheduled, now: float) -> int:
        """Keep a call to place at `entry.due_at`; its id."""

    async def set_schedule_card(self, schedule_id: int, card_ts: str) -> None: ...

    async def get_schedule(self, schedule_id: int) -> Scheduled | None: ...

    async def due_schedules(self, now: float, limit: int) -> list[Scheduled]:
        """Scheduled calls due by `now`, and firings whose claim ran out (a crash)."""

    async def next_due(self) -> float | None:
        """When the next scheduled call is due (None: none is)."""

    async def claim_schedule(self, schedule_id: int, now: float, until: float, *,
                             early: bool = False) -> Scheduled | None:
        """Take the call to fire it (until `until`), if it is due and no one else has it;
        `early`: even before its time (Call now)."""

    async def finish_schedule(self, schedule_id: int, outcome: str, now: float, *,
                              detail: str | None = None, call_id: str | None = None,
                              status: str = "done") -> None: ...

    async def reschedule(self, schedule_id: int, due_at: float, now: float) -> None:
        """Back to waiting, for `due_at` (calling hours not open yet)."""

    async def cancel_schedule(self, schedule_id: int, by: str, now: float) -> Scheduled | None:
        """Cancel a call still waiting; None when it is not (fired, cancelled already)."""

    async def upcoming_schedules(self, user_id: str | None, limit: int) -> list[Scheduled]:
        """Calls still waiting, soonest first: one person's, or everyone's (None)."""


class CampaignStore(Protocol):
    """Campaigns and their rows: each row's try claimed before it is placed."""

    async def create_campaign(self, campaign: Campaign, rows: Sequence[CampaignRow],
                              now: float) -> int:
        """Keep a campaign (a draft, to preview) with all its rows, skipped ones too."""

    async def get_campaign(self, campaign_id: int) -> Campaign | None: ...

    async def find_campaigns(self, *, name: str | None = None, owner: str | None = None,
                             limit: int = 20, team_id: str | None = None) -> list[Campaign]:
        """Newest first; `name` matched without regard to case; `team_id`: only that
        workspace's."""

    async def set_campaign_card(self, campaign_id: int, card_ts: str) -> None: ...

    async def move_campaign(self, campaign_id: int, to: str, *, allowed: Collection[str],
                            now: float) -> Campaign | None:
        """Change the status if it is one of `allowed`; None when it is not."""

    async def finish_campaign(self, campaign_id: int, now: float) -> Campaign | None:
        """Running -> done once no row is left to call; None while some are."""

    async def claim_results(self, campaign_id: int) -> bool:
        """True once per campaign: the right to post its results."""

    async def running_campaigns(self, now: float) -> list[Campaign]:
        """Running campaigns whose start time has come."""

    async def claim_campaign_rows(self, campaign_id: int, concurrency: int, now: float,
                                  until: float, limit: int | None = None) -> list[CampaignRow]:
        """Rows to place now, within the campaign's room under `concurrency`, at most
        `limit`."""

    async def resume_claims(self) -> int:
        """Make every claimed try due at once (the runner that claimed them is gone)."""

    async def row_placed(self, row_id: int, call_id: str) -> None: ...

    async def row_waits(self, row_id: int, next_at: float, detail: str | None, *,
                        undo_attempt: bool) -> None: ...

    async def row_done(self, row_id: int, outcome: str, detail: str | None) -> None: ...

    async def ended_campaign_rows(self, limit: int) -> list[tuple[CampaignRow, CallRecord]]:
        """Rows whose call has ended, to be settled (retried or done)."""

    async def settle_rows(self, settled: Sequence[tuple[int, str, str | None, str | None, float]]
                          ) -> None:
        """(row id, done | waiting, outcome, detail, next_at) for ended rows, at once."""

    async def campaign_rows(self, campaign_id: int, *, statuses: Collection[str] = (),
                            limit: int = 100) -> list[CampaignRow]: ...

    async def campaign_results(self, campaign_id: int
                               ) -> list[tuple[CampaignRow, CallRecord | None]]: ...

    async def campaign_counts(self, campaign_id: int) -> CampaignCounts: ...

    async def listed_numbers(self, numbers: Collection[str], *,
                             team_id: str | None = None) -> set[str]:
        """Which of these are on the do-not-call list (`team_id`: as GuardStore's)."""

    async def calls_to_numbers(self, numbers: Collection[str], since: float) -> dict[str, int]:
        """Calls placed to each of these numbers since `since`."""


class StatsStore(Protocol):
    """Figures over the call history."""

    async def stats(self, since: float | None) -> CallStats: ...

    async def report(self, flt: CallFilter, *, previous: CallFilter | None = None,
                     by: str | None = None, fields: tuple[str, ...] | None = None,
                     with_fields: bool = True, days_in: Callable[[float], str] | None = None,
                     ) -> StatsReport:
        """The figures for the calls `flt` picks (and for `previous`), with a breakdown
        `by` agent | user | campaign | day, the extracted fields, and calls per day."""

    async def export_calls(self, flt: CallFilter, *, after_id: int = 0, limit: int = 1000,
                           transcripts: bool = False) -> list[CallRecord]:
        """A page of the calls `flt` picks, by row id (keyset paging: constant memory)."""

    async def field_names(self, flt: CallFilter, limit: int = 100) -> list[str]:
        """The extracted fields those calls carry."""

    async def refresh_stats(self, now: float, *, days: int = 20) -> int:
        """Sum again up to `days` days whose calls changed and that are over (the sums
        `report` reads); how many were summed."""


class SearchStore(Protocol):
    """Full-text search over calls' summaries and transcripts (English, Thai, ...)."""

    async def search_calls(
        self, words: str, flt: CallFilter, *, limit: int, offset: int = 0,
        include_transcripts: bool = True, number: str | None = None,
    ) -> list[SearchHit]:
        """Calls within `flt` whose summary or transcript holds every word (as typed: no
        query syntax), best first, each with a snippet marking the matches with 0x02 ...
        0x03. `include_transcripts=False`: summaries only. `number` (E.164, when the words
        were a phone number): that number's calls instead, newest first. Raises ValueError
        (storage.errors.SearchTooShort) when no word has 3 characters."""


class InstallStore(Protocol):
    """Slack installations (the OAuth install flow) and the flow's one-time states. The
    installation is slack_sdk's, as JSON: the store keeps it without reading it."""

    async def save_install(self, enterprise_id: str, team_id: str, data: str,
                           now: float) -> None: ...

    async def find_install(self, enterprise_id: str, team_id: str) -> str | None: ...

    async def delete_install(self, enterprise_id: str, team_id: str) -> int: ...

    async def installed_teams(self) -> list[str]: ...

    async def issue_state(self, key: str, expires_at: float, now: float) -> None: ...

    async def consume_state(self, key: str, now: float) -> bool: ...


class Upkeep(Protocol):
    """Opening, closing, health and the jobs that keep the database small."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    @property
    def commits(self) -> tuple[int, int]:
        """(write transactions, writes) since open: how well writes are being batched."""

    async def check_writable(self) -> None:
        """Raise unless a write can commit now (health: locked, disk full, read-only)."""

    async def purge_before(self, cutoff: float, batch: int = 500) -> int:
        """Retention: clear transcripts, payloads and links of calls before `cutoff`."""

    async def prune(self, cutoff: float, batch: int = 500) -> dict[str, int]:
        """Delete claims, webhook events and finished outbox items older than `cutoff`
        that dedupe no longer needs; how many of each."""


class Store(CallStore, InboxStore, GuardStore, OutboxStore, PaceStore, ClaimStore, LeaseStore,
            ScheduleStore, CampaignStore, StatsStore, SearchStore, InstallStore, Upkeep,
            Protocol):
    """Everything a store implementation provides."""


class DeliveryStore(OutboxStore, PaceStore, CallStore, Protocol):
    """What the outbox worker uses: its queue, and the calls it renders."""


class RetentionStore(Upkeep, LeaseStore, Protocol):
    """What retention and housekeeping use: the pruning jobs, under a daily lease."""
