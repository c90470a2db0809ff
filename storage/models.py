"""Plain records that cross the storage boundary; no SQL and no Slack types here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# How far a call has got. Webhooks can arrive out of order; a record only moves forward.
STAGE_PLACED = 0
STAGE_STARTED = 1
STAGE_ENDED = 2
STAGE_ANALYZED = 3
# The stored reason of a do-not-call entry a callee's request added (shown in each reader's
# words by bot/render).
DNC_CALLEE_ASKED = "asked on a call not to be called again"


@dataclass
class CallRecord:
    id: int
    call_id: str | None
    direction: str
    status: str
    stage: int
    created_at: float
    updated_at: float
    team_id: str | None = None
    channel_id: str | None = None
    user_id: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    duration_ms: int | None = None
    disconnection_reason: str | None = None
    sentiment: str | None = None
    successful: bool | None = None
    in_voicemail: bool | None = None
    cost_cents: float | None = None
    latency_ms: float | None = None  # end to end, Retell's p50 over the call's turns
    summary: str | None = None
    # The agent's own extracted fields (Retell's custom_analysis_data): survey answers, ...
    extracted: dict[str, Any] = field(default_factory=dict)
    transcript: str | None = None
    recording_url: str | None = None
    public_log_url: str | None = None
    note: str | None = None
    analyzed_at: float | None = None
    poll_attempts: int = 0
    error_kind: str | None = None  # why Retell did not place it: timeout, refused, ...
    request_key: str | None = None  # the idempotency key sent with the failed create
    campaign_id: int | None = None  # placed by a campaign: no card of its own

    @property
    def analyzed(self) -> bool:
        return self.stage >= STAGE_ANALYZED

    @property
    def other_number(self) -> str | None:
        """The other party's number: who was called, or who called in."""
        return other_party(self.direction, self.from_number, self.to_number)

    @property
    def our_number(self) -> str | None:
        """Our side's number: the caller ID, or the number that was called."""
        return self.to_number if self.direction == "inbound" else self.from_number

    @property
    def live(self) -> bool:
        """Still on the line (or dialing), so it can be hung up."""
        return (
            self.call_id is not None
            and self.stage < STAGE_ENDED
            and self.status in ("registered", "ongoing")
        )


@dataclass(frozen=True)
class CallFields:
    """What one webhook (or Retell answer) says about a call; None means "not said"."""

    call_id: str
    status: str
    stage: int
    direction: str = "outbound"
    team_id: str | None = None
    channel_id: str | None = None
    user_id: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    variables: dict[str, str] | None = None
    started_at: float | None = None
    ended_at: float | None = None
    duration_ms: int | None = None
    disconnection_reason: str | None = None
    sentiment: str | None = None
    successful: bool | None = None
    in_voicemail: bool | None = None
    cost_cents: float | None = None
    latency_ms: float | None = None
    summary: str | None = None
    extracted: dict[str, Any] | None = None
    transcript: str | None = None
    recording_url: str | None = None
    public_log_url: str | None = None
    note: str | None = None
    raw_payload: str | None = None
    request_key: str | None = None  # the idempotency key the create carried (metadata)
    campaign_id: int | None = None


@dataclass(frozen=True)
class Scheduled:
    """A call to place later, as `/call ... at <when>` asked for it."""

    id: int
    channel_id: str
    user_id: str
    number: str
    due_at: float
    request_key: str
    status: str = "scheduled"  # scheduled | firing | done | cancelled | missed
    team_id: str | None = None
    thread_ts: str | None = None
    card_ts: str | None = None
    agent: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    note: str | None = None
    from_number: str | None = None
    outcome: str | None = None
    detail: str | None = None
    call_id: str | None = None
    created_at: float = 0.0


@dataclass(frozen=True)
class InboxEntry:
    """A verified webhook turned into what the consumer stores: the call's changes, the
    Slack work its event causes, and a do-not-call entry when the callee asked for one."""

    inbox_id: int
    event: str
    merge: bool  # a poll saw this event first: merge the fuller data, queue nothing
    fields: CallFields | None  # None: the stored body no longer validates; drop it
    kinds: tuple[str, ...] = ()
    dnc: tuple[DncEntry, AuditEntry] | None = None
    poll_at: float | None = None  # when to ask Retell if the next webhook does not come


@dataclass(frozen=True)
class OutboxItem:
    id: int
    call_id: str
    kind: str
    attempts: int
    next_attempt_at: float = 0.0
    posting_since: float | None = None  # a post was sent and its answer may have been lost
    channel_id: str | None = None


# Costs are cents with a few decimals; sums are kept to this many.
COST_DIGITS = 6


@dataclass(frozen=True)
class CallStats:
    calls: int
    failed_attempts: int
    analyzed: int
    successful: int
    sentiments: dict[str, int]
    connected: int
    avg_duration_ms: float | None
    median_duration_ms: float | None
    total_cost_cents: float
    top_reasons: list[tuple[str, int]]

    def __post_init__(self) -> None:
        # A sum of floats depends on the order it was added in, which differs between the
        # databases and between per-day sums and one sum: the same calls give the same cost.
        object.__setattr__(self, "total_cost_cents", round(self.total_cost_cents, COST_DIGITS))

    @property
    def success_rate(self) -> float | None:
        return self.successful / self.analyzed if self.analyzed else None


@dataclass(frozen=True)
class Route:
    """Where a call came from and where its outcome goes (team, channel, person, the card
    and its thread), as opaque strings: the one shape every layer passes around."""

    team_id: str | None
    channel_id: str | None
    user_id: str | None
    message_ts: str | None = None
    thread_ts: str | None = None
    # A campaign's call: its outcome goes to the campaign (its card, its thread, its
    # results), not to a card of its own.
    campaign_id: int | None = None


@dataclass(frozen=True)
class Attempt:
    """A call Slack asked for, recorded before or after Retell answered."""

    route: Route
    from_number: str
    to_number: str
    agent_id: str | None
    agent_name: str | None
    variables: dict[str, str]
    note: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One attempt or admin action. `number` is used only to derive a lookup key and is
    never stored; `number_masked` is what the log keeps and shows."""

    action: str  # call | hang_up | dnc_add | dnc_remove | dnc_auto | audit_export ...
    outcome: str  # placed | failed | refused | done
    user_id: str | None = None
    channel_id: str | None = None
    source: str | None = None
    number: str | None = None
    number_masked: str | None = None
    agent: str | None = None
    reason: str | None = None
    call_id: str | None = None
    team_id: str | None = None  # the workspace it happened in


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: float
    action: str
    outcome: str
    user_id: str | None
    channel_id: str | None
    source: str | None
    number: str | None  # masked
    agent: str | None
    reason: str | None
    call_id: str | None


@dataclass(frozen=True)
class DncEntry:
    number: str  # E.164
    reason: str | None
    added_by: str | None  # None: the callee asked on a call (call_id)
    call_id: str | None
    added_at: float
    # The workspace whose list it is on ("": before workspaces were told apart: every one's).
    team_id: str = ""


@dataclass(frozen=True)
class Limits:
    """0 means no limit. Windows are rolling: the last hour and the last 24 hours."""

    per_hour: int = 0
    per_day: int = 0
    concurrent: int = 0
    per_number_day: int = 0  # calls to one number, by anyone, in the last 24 hours


@dataclass(frozen=True)
class Admission:
    """The store's answer to "may this user place a call now?".

    `hold_id` is set when admitted: a place under the limits until the call is saved or
    failed. Otherwise `limit` names the limit hit and `free_at` when a place frees up
    (None when only a call ending frees one)."""

    hold_id: int | None
    limit: str | None = None  # per_hour | per_day | concurrent | per_number
    count: int = 0
    free_at: float | None = None


def other_party(direction: str | None, from_number: str | None,
                to_number: str | None) -> str | None:
    """Which number is the other party's, for any shape of a call: the one place that
    knows an inbound call's other party is its caller."""
    return from_number if direction == "inbound" else to_number


# -- campaigns: many calls from a list ---------------------------------------------------------

CAMPAIGN_STATES = ("draft", "running", "paused", "cancelled", "done")
# A row: waiting (to be placed, for a retry or for calling hours) -> placing -> live -> done;
# or skipped at the preview (never called), or cancelled with its campaign.
ROW_STATES = ("waiting", "placing", "live", "done", "skipped", "cancelled")


@dataclass(frozen=True)
class Campaign:
    """A list of numbers called by the same agent, paced; its card lives in `channel_id`."""

    id: int
    name: str
    owner: str  # the Slack user who made it
    channel_id: str
    status: str  # draft | running | paused | cancelled | done
    concurrency: int  # calls of this campaign live at once, at most
    attempts: int  # tries per row at most (1: no retry)
    retry_spacing: float  # seconds between tries of a row
    created_at: float
    team_id: str | None = None
    card_ts: str | None = None
    agent: str | None = None  # as asked (name or id); None: the caller ID's own agent
    from_number: str | None = None
    start_at: float | None = None  # not before this (None: as soon as started)
    columns: tuple[str, ...] = ()  # the CSV's variable columns, in the file's order
    file_name: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    results_posted: bool = False

    @property
    def active(self) -> bool:
        return self.status in ("draft", "running", "paused")


@dataclass(frozen=True)
class CampaignRow:
    """One contact of a campaign. `attempts` counts tries begun; the idempotency key of a
    try is made from (campaign, row, attempt), so a try cut short by a crash is resumed with
    the same key and Retell answers with the call it may already have placed."""

    id: int
    campaign_id: int
    line: int  # the line in the uploaded file
    number: str | None  # E.164; None for a row with no usable number
    status: str  # see ROW_STATES
    variables: dict[str, str] = field(default_factory=dict)
    agent: str | None = None  # the row's own agent column, if any
    attempts: int = 0
    next_at: float = 0.0  # waiting: not before this
    call_id: str | None = None  # the latest try's call
    # done: success | connected | no_answer | failed | refused; skipped: invalid | duplicate
    # | refused; cancelled: cancelled
    outcome: str | None = None
    # Why, as a code: invalid_number, do_not_call, dial_no_answer, calling_hours (waiting),
    # a Retell error kind, ...; for an invalid row, a little of what was typed after a colon.
    detail: str | None = None


@dataclass(frozen=True)
class CampaignCounts:
    """Where a campaign stands, row by row (skipped rows are not among `rows`)."""

    rows: int = 0  # rows to call
    skipped: int = 0  # invalid, duplicate or refused at the preview: never called
    # of those, by kind: {"invalid": n, "duplicate": n, "refused": n}
    skipped_by: dict[str, int] = field(default_factory=dict)
    waiting: int = 0  # not placed yet, or waiting for a retry or calling hours
    waiting_hours: int = 0  # of those, waiting for the callee's calling hours
    opens_at: float | None = None  # when the first of those may be called
    live: int = 0  # being placed or on a call now
    placed: int = 0  # calls placed, every try counted
    connected: int = 0  # rows done whose call was answered by a person
    successful: int = 0  # of those, calls the analysis called successful
    no_answer: int = 0  # rows done without an answer after every try
    failed: int = 0  # rows done with a failed call or a Retell refusal
    refused: int = 0  # rows a rule refused when their call was due (do-not-call since, ...)
    cancelled: int = 0
    duration_ms: int = 0  # over the campaign's calls
    cost_cents: float = 0.0

    @property
    def done(self) -> int:
        return self.connected + self.no_answer + self.failed + self.refused

    @property
    def remaining(self) -> int:
        return self.waiting + self.live


# -- questions about history: /callstats, /callsearch, exports ------------------------------------


@dataclass(frozen=True)
class CallFilter:
    """Which calls a question is about: a half-open time range [since, until) in epoch
    seconds (None: unbounded) and filters that all must hold (None: any)."""

    since: float | None = None
    until: float | None = None
    agent: str | None = None  # an agent id, or a name matched without regard to case
    user_id: str | None = None
    channel_id: str | None = None
    campaign_id: int | None = None
    direction: str | None = None  # inbound | outbound
    outcome: str | None = None  # success | failed | no-answer
    # The workspace whose calls these are (several workspaces); None: every call.
    team_id: str | None = None


@dataclass(frozen=True)
class Breakdown:
    """One row of a `/callstats ... by:<key>` table."""

    key: str  # the agent, user, day (YYYY-MM-DD in the reader's zone) or campaign
    calls: int
    connected: int
    analyzed: int
    successful: int
    avg_duration_ms: float | None
    cost_cents: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "cost_cents", round(self.cost_cents, COST_DIGITS))


@dataclass(frozen=True)
class FieldSummary:
    """One `custom_analysis_data` field over the calls asked about, summarised by its type:
    booleans as yes/no counts, numbers as mean/median/min/max, text as the top values."""

    name: str
    kind: str  # boolean | number | text
    count: int  # calls that carry the field
    yes: int = 0
    no: int = 0
    mean: float | None = None
    median: float | None = None
    low: float | None = None
    high: float | None = None
    top: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class DayCounts:
    """Calls of one day in the reader's zone, by outcome (the chart's bars)."""

    day: str  # YYYY-MM-DD
    successful: int = 0
    failed: int = 0
    no_answer: int = 0
    other: int = 0  # connected, not (yet) judged by the analysis

    @property
    def calls(self) -> int:
        return self.successful + self.failed + self.no_answer + self.other


@dataclass(frozen=True)
class StatsReport:
    """What `/callstats` answers: the figures, the same figures for the period before,
    and what was asked on top (a breakdown, the extracted fields, calls per day)."""

    stats: CallStats
    latency_p50_ms: float | None = None
    previous: CallStats | None = None
    breakdown: tuple[Breakdown, ...] = ()
    fields: tuple[FieldSummary, ...] = ()
    days: tuple[DayCounts, ...] = ()


@dataclass(frozen=True)
class SearchHit:
    """One call a search found. `call` is light (no transcript); `snippet` is a line of the
    matching text with each match between the bytes 0x02 and 0x03 (which stored text never
    holds, so only a real match is marked); `rank` is FTS5's bm25, lower is better (0.0
    when the calls come newest first: found by number, or by words too common to rank)."""

    call: CallRecord
    snippet: str
    rank: float
