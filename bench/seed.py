"""Synthetic call history, stored through the store (`SQLiteStore.import_calls`).

    python bench/seed.py DB --history N [--mixed] [--recent M] [--transcripts] [--cards FILE]

Run as a script, with PYTHONPATH naming the tree whose schema the file must get: the bench
seeds databases for the checkout under test and for an older one (an older worktree), so
`storage` must be that tree's. It prints one JSON line: rows added, seconds, schema version.

- `--history N`: N ended calls over the last 60 days, from 200 users.
- `--recent M`: M more ended calls within the last two hours (what an admission that counts
  recent calls would read).
- `--transcripts`: each history call carries a ~2 KB transcript (wide rows, as in real use).
- `--mixed`: the history is a realistic mix over the last HISTORY_DAYS days instead (the
  `/callstats` and `/callsearch` figures, bench/history.py): see `mixed_calls`.
- `--cards FILE`: JSON list of [call_id, channel_id, message_ts]: calls in progress whose
  card was already posted (the outcome burst).

A tree whose store has no `import_calls` (before it existed) is seeded by `_import_copy`, a
copy of that method's logic against the same `calls` columns.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import random
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from storage.migrations import MIGRATIONS
from storage.models import CallRecord
from storage.sqlite import SQLiteStore

TEAM, USER = "T0BENCH", "U0BENCH"
CHANNEL = "C0BENCH"
FROM_NUMBER = "+14155550100"
AGENT_ID, AGENT_NAME = "agent_abc1f3d2e4b5a6c7d8e9f0a1", "Sales Follow-up"
DAY = 86_400.0
REASONS = ("user_hangup", "agent_hangup", "voicemail_reached", "max_duration_reached",
           "inactivity", "dial_no_answer", "dial_busy")
NOT_CONNECTED = frozenset({"dial_no_answer", "dial_busy"})
SENTIMENTS = ("Positive", "Neutral", "Negative", "Unknown", None)
LINES = (
    ("agent", "Hi Dana, this is Sales Follow-up from Acme. Is now a good time to talk?"),
    ("user", "Yes, I have a few minutes. Is this about the renewal we discussed last week?"),
    ("agent", "It is. The new plan keeps your seats and adds the reporting module at no cost."),
    ("user", "That sounds good. Could we move the start date to the first of next month?"),
    ("agent", "Of course. I will note the first of next month and send the paperwork today."),
    ("user", "Perfect, thanks. Please copy my colleague on the email as well."),
)
SUMMARY = "The agent called the user about the renewal; the user agreed to a start date."


def conversation(turns: int) -> tuple[str, list[dict[str, Any]]]:
    """A transcript and Retell-style transcript_object with word timings."""
    lines: list[str] = []
    objects: list[dict[str, Any]] = []
    t = 0.4
    for i in range(turns):
        role, content = LINES[i % len(LINES)]
        words = []
        for word in content.split():
            words.append({"word": word, "start": round(t, 2), "end": round(t + 0.3, 2)})
            t += 0.35
        t += 0.9
        objects.append({"role": role, "content": content, "words": words})
        lines.append(f"{role.capitalize()}: {content}")
    return "\n".join(lines) + "\n", objects


def ended_calls(n: int, seed: int, within: float, transcripts: bool) -> Iterator[CallRecord]:
    """`n` ended (or not connected) calls created over the last `within` seconds."""
    rng = random.Random(seed)
    now = time.time()
    texts = [conversation(24 + v % 4)[0] for v in range(32)] if transcripts else [None]
    for i in range(n):
        created = now - rng.uniform(60, within)
        reason = rng.choice(REASONS)
        connected = reason not in NOT_CONNECTED
        duration = rng.randint(3_000, 900_000) if connected else 0
        started = created + rng.uniform(1, 20)
        ended = min(started + duration / 1000, now - 1)
        yield CallRecord(
            id=0, call_id=f"call_{seed:04x}{i:08x}{rng.getrandbits(80):020x}",
            direction="outbound", status="ended" if connected else "not_connected", stage=3,
            created_at=created, updated_at=ended + 30, analyzed_at=ended + 30,
            team_id=TEAM, channel_id=CHANNEL, user_id=f"U0HIST{rng.randrange(200):03d}",
            from_number=FROM_NUMBER, to_number=f"+1415555{rng.randint(0, 9999):04d}",
            agent_id=AGENT_ID, agent_name=AGENT_NAME, started_at=started, ended_at=ended,
            duration_ms=duration, disconnection_reason=reason,
            sentiment=rng.choice(SENTIMENTS), successful=rng.choice((True, False, None)),
            in_voicemail=reason == "voicemail_reached", cost_cents=round(rng.uniform(0, 150), 4),
            summary=SUMMARY, transcript=rng.choice(texts),
        )


# -- the realistic mix (--mixed): what /callstats and /callsearch read (bench/history.py) ----

HISTORY_DAYS = 120
RARE_WORD, COMMON_WORD, THAI_WORD = "Kowalczyk", "renewal", "ขอบคุณ"
RARE_CALLS = 50  # calls whose transcript holds RARE_WORD, spread evenly over the history
TRANSCRIPT_SHARE = 0.2  # calls that carry a transcript (about 1 to 2 KB)
COMMON_SHARE = 0.85  # of those, holding COMMON_WORD
THAI_SHARE = 0.1  # of those, with a few lines in Thai (THAI_WORD among them)
FIELDS_SHARE = 0.8  # analyzed calls of an agent with extracted fields that carry them
CAMPAIGN_SHARE = 0.3  # calls within a campaign's days that the campaign placed
FAILED_SHARE = 0.005  # attempts Retell refused (no call id)
MIX_USERS = tuple(f"U0HIST{i:02d}" for i in range(20))
MIX_USER_WEIGHTS = tuple(1 / (i + 1) for i in range(len(MIX_USERS)))  # a few people call most
MIX_CHANNELS = tuple(f"C0HIST{i:02d}" for i in range(10))
OUR_NUMBER = "+14155550100"
AREAS = ("212", "312", "415", "646", "713", "305", "206", "617")
EASTERN = -5 * 3600  # business hours are counted in US Eastern (standard) time


@dataclass(frozen=True)
class Agent:
    name: str
    weight: float
    fields: str  # which extracted fields its analysis fills ("" none)

    @property
    def id(self) -> str:
        return "agent_" + format(abs(hash_text(self.name)), "024x")[:24]


def hash_text(text: str) -> int:
    """A hash that stays the same across runs (str's hash does not)."""
    value = 0
    for char in text:
        value = (value * 1_000_003 + ord(char)) % (1 << 96)
    return value


MIX_AGENTS = (
    Agent("Sales Follow-up", 0.35, "sales"),
    Agent("Appointment Reminder", 0.25, "reminder"),
    Agent("Customer Survey", 0.15, "survey"),
    Agent("Collections", 0.15, "collections"),
    Agent("Support Callback", 0.10, ""),
)
# (name, began days ago, ended days ago, agent): each campaign's stretch of the history.
MIX_CAMPAIGNS = (
    ("Spring renewals", 118, 104, 0), ("Q2 survey", 96, 82, 2),
    ("Overdue invoices", 75, 61, 3), ("Webinar follow-up", 54, 40, 0),
    ("Win-back", 33, 19, 0), ("Summer renewals", 14, 0, 1),
)
# (reason, weight); dial_* and error_* never connected.
MIX_REASONS = (
    ("user_hangup", 0.36), ("agent_hangup", 0.27), ("voicemail_reached", 0.11),
    ("dial_no_answer", 0.13), ("dial_busy", 0.04), ("dial_failed", 0.02),
    ("inactivity", 0.04), ("max_duration_reached", 0.01), ("error_llm_websocket_open", 0.02),
)
SUCCESS_RATE = {"user_hangup": 0.4, "agent_hangup": 0.7, "max_duration_reached": 0.5}
FIRST_NAMES = ("Dana", "Alex", "Maria", "James", "Priya", "Tom", "Aisha", "Wei", "Lucas",
               "Sofia", "Kenji", "Emma", "Omar", "Chloe", "Mateo", "Grace", "Ivan", "Nina",
               "Somchai", "Malee", "Arjun", "Hannah", "Diego", "Zoe", "Samuel", "Leah")
LAST_NAMES = ("Smith", "Garcia", "Nguyen", "Johnson", "Patel", "Brown", "Kim", "Lopez",
              "Wilson", "Chen", "Martin", "Okafor", "Silva", "Rossi", "Tanaka", "Novak",
              "Sato", "Jensen", "Haddad", "Moreau", "Srisuk", "Walker", "Reyes", "Fischer")
DAYS_SAID = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "next week",
             "the first of next month", "the fifteenth")
SUMMARIES = {
    "sales": (
        "The agent followed up with {name} about the {product} plan. {name} asked about "
        "pricing for {seats} seats and agreed to a demo on {day}.",
        "The agent called {name} about the quote sent last week. {name} is comparing "
        "vendors and asked for a call back {day}.",
        "{name} said the team is not interested at the moment; the agent offered to send "
        "a short overview by email.",
    ),
    "reminder": (
        "The agent reminded {name} of the appointment on {day} at {hour}. {name} confirmed "
        "and asked for a text reminder the day before.",
        "{name} asked to move the appointment from {day} to a later date; the agent offered "
        "two slots and {name} took the second.",
    ),
    "survey": (
        "The agent asked {name} about the recent support visit. {name} rated it {score} out "
        "of 5 and mentioned that the technician was on time.",
        "{name} answered the satisfaction survey, rated the service {score} out of 5 and "
        "asked for a callback about billing.",
    ),
    "collections": (
        "The agent reminded {name} of the overdue balance of ${amount}. {name} promised to "
        "pay by {day} and asked for the payment link by email.",
        "{name} disputed the invoice of ${amount}; the agent logged the dispute and said the "
        "billing team would follow up within two days.",
    ),
    "": (
        "{name} called about a login problem with the {product} account; the agent reset "
        "access and confirmed {name} could sign in.",
        "The agent called {name} back about the open ticket; the issue was solved after a "
        "router restart.",
    ),
}
VOICEMAIL_SUMMARY = "The call reached {name}'s voicemail; the agent left a short message " \
                    "asking for a call back."
LINES_BY_AGENT = {
    "sales": (
        ("agent", "I am calling about the {product} plan you looked at on our website."),
        ("user", "Right, we are looking at options for about {seats} people on the team."),
        ("agent", "The team plan includes reporting, single sign-on and priority support."),
        ("user", "How does the price compare with what we pay now? Is there a discount?"),
        ("agent", "For {seats} seats there is a volume discount of fifteen percent."),
        ("user", "Could you send me a quote? I need to show it to my manager first."),
        ("agent", "Of course. Would {day} work for a short demo with your manager?"),
    ),
    "reminder": (
        ("agent", "I am calling to remind you of your appointment on {day} at {hour}."),
        ("user", "Oh, thanks for the call. Can you tell me the address again?"),
        ("agent", "It is at our downtown office, on the third floor, next to the pharmacy."),
        ("user", "Is it possible to move it a little later in the afternoon?"),
        ("agent", "Let me check. I have an opening at four thirty on the same day."),
        ("user", "Four thirty works better, please move it."),
    ),
    "survey": (
        ("agent", "We would like to ask three short questions about your recent visit."),
        ("user", "Sure, go ahead, I have a couple of minutes."),
        ("agent", "On a scale of one to five, how satisfied were you with the service?"),
        ("user", "I would say {score}. The technician was friendly and on time."),
        ("agent", "Would you recommend us to a friend or a colleague?"),
        ("user", "Probably yes, although the booking website was a bit confusing."),
    ),
    "collections": (
        ("agent", "I am calling about the balance of {amount} dollars that is past due."),
        ("user", "I thought I paid that already. Which invoice is it?"),
        ("agent", "It is the invoice from last month; the payment did not go through."),
        ("user", "I can pay it by {day}. Can you send me the payment link?"),
        ("agent", "I will email the link right after this call. Thank you for confirming."),
    ),
    "": (
        ("agent", "I am calling back about the ticket you opened this morning."),
        ("user", "Yes, I still cannot sign in to my {product} account."),
        ("agent", "Let us try a password reset. You should get an email in a minute."),
        ("user", "Got it. Okay, that worked, I am in now."),
        ("agent", "Great. Is there anything else I can help you with today?"),
    ),
}
SMALL_TALK = (
    ("user", "Sorry, could you repeat that? The line is a bit noisy."),
    ("agent", "Of course. No problem at all."),
    ("user", "Let me grab a pen, one second."),
    ("agent", "Take your time."),
    ("user", "And what happens if I change my mind later?"),
    ("agent", "You can change it any time from your account page or by calling us."),
    ("user", "Okay, that sounds fair."),
    ("agent", "I have also noted your preferred contact time as the afternoon."),
)
COMMON_LINES = (
    ("agent", "While I have you, your contract renewal is coming up on {day}."),
    ("user", "Does the renewal keep the same price as this year?"),
    ("agent", "The renewal keeps your current price for another twelve months."),
)
THAI_LINES = (
    ("user", "ขอบคุณค่ะ ช่วยพูดช้าลงหน่อยได้ไหมคะ"),
    ("agent", "ได้เลยครับ ขอบคุณที่สละเวลานะครับ"),
    ("user", "สะดวกคุยตอนบ่ายสองโมงค่ะ"),
)
RARE_LINE = ("user", "My name is Anna " + RARE_WORD + ", spelled K O W A L C Z Y K, and my "
             "order number is {seats}.")
PRODUCTS = ("Starter", "Team", "Business", "Enterprise", "Cloud Backup", "Payroll")
FIELD_VALUES = {
    "next_step": ("send quote", "book demo", "call back", "no action", "talk to manager"),
    "comment": ("Quick and friendly.", "Too many transfers before I reached someone.",
                "The technician was on time and explained everything clearly, thank you so "
                "much for that.", "Website booking was confusing.", "All good."),
}


def _times(n: int, rng: random.Random, now: float, days: int) -> Iterator[float]:
    """`n` creation times over the last `days` days, oldest first: weekdays busier than
    weekends, business hours (US Eastern) than nights, and lately than long ago."""
    weights = []
    for back in range(days, 0, -1):
        weekday = time.gmtime(now - back * DAY + DAY / 2 + EASTERN).tm_wday
        weights.append((0.35 if weekday >= 5 else 1.0) * (0.7 + 0.6 * (days - back) / days))
    total = sum(weights)
    counts = [int(n * w / total) for w in weights]
    for i in range(n - sum(counts)):
        counts[-1 - i % days] += 1
    for back, count in zip(range(days, 0, -1), counts, strict=True):
        start = now - back * DAY
        end = min(start + DAY, now - 60)
        day: list[float] = []
        while len(day) < count:
            t = rng.uniform(start, end)
            if 9 <= ((t + EASTERN) / 3600) % 24 < 19 or rng.random() < 0.15:
                day.append(t)
        day.sort()
        yield from day


def _slots(rng: random.Random) -> dict[str, Any]:
    return {"name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
            "day": rng.choice(DAYS_SAID), "hour": f"{rng.randint(8, 17)}:{rng.choice('03')}0",
            "product": rng.choice(PRODUCTS), "seats": rng.randint(3, 400),
            "score": rng.randint(1, 5), "amount": f"{rng.uniform(20, 2000):.2f}"}


def _transcript(rng: random.Random, agent: Agent, slots: dict[str, Any], *, common: bool,
                thai: bool, rare: bool) -> str:
    """An English conversation of about 1 to 2 KB (a few Thai lines in some), in Retell's
    `Agent: ...` / `User: ...` form."""
    first = str(slots["name"]).split()[0]
    lines = [("agent", f"Hi {first}, this is the {agent.name.lower()} line from Acme. "
                       "Is now a good time to talk?"),
             ("user", "Yes, I have a few minutes.")]
    middle = list(LINES_BY_AGENT[agent.fields])
    extra: list[tuple[str, str]] = []
    if common:
        extra.append(rng.choice(COMMON_LINES))
    if thai:
        extra += THAI_LINES[:rng.randint(2, 3)]
    if rare:
        extra.append(RARE_LINE)
    target = rng.randint(1000, 2000)
    body: list[tuple[str, str]] = []
    size = sum(len(t) for _, t in lines)
    while size < target - 150:
        line = middle[len(body) % len(middle)] if len(body) < len(middle) \
            else rng.choice(SMALL_TALK + tuple(middle))
        body.append(line)
        size += len(line[1]) + 8
    for line in extra:
        body.insert(rng.randint(0, len(body)), line)
    lines += body
    lines.append(("agent", "Thank you for your time. Have a great day!"))
    return "".join(f"{role.capitalize()}: {text.format(**slots)}\n" for role, text in lines)


def _extracted(rng: random.Random, kind: str, slots: dict[str, Any],
               successful: bool) -> dict[str, Any]:
    if kind == "sales":
        return {"interested": successful, "budget_usd": rng.randrange(500, 20_000, 100)
                if rng.random() < 0.6 else None, "next_step": rng.choice(FIELD_VALUES["next_step"])}
    if kind == "reminder":
        return {"confirmed": successful, "reschedule_requested": rng.random() < 0.2}
    if kind == "survey":
        return {"satisfaction": slots["score"], "would_recommend": rng.random() < 0.7,
                "comment": rng.choice(FIELD_VALUES["comment"])}
    if kind == "collections":
        return {"promise_to_pay": successful, "amount_usd": float(slots["amount"]),
                "payment_date": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"}
    return {}


def mixed_calls(n: int, seed: int, campaigns: list[int | None],
                now: float | None = None) -> Iterator[CallRecord]:
    """`n` calls over the last HISTORY_DAYS days, oldest first (as they would have been
    stored): MIX_AGENTS, MIX_USERS in MIX_CHANNELS, the campaigns of MIX_CAMPAIGNS (their
    ids in `campaigns`, None where the tree has none) placing CAMPAIGN_SHARE of the calls in
    their days, refused attempts, outcomes, sentiments, durations, costs and latencies;
    extracted fields on most analyzed calls of agents that have some, a summary on every
    analyzed call, a transcript on TRANSCRIPT_SHARE (COMMON_WORD in most of them, Thai in
    some), RARE_WORD in exactly RARE_CALLS of them. Fields the tree's CallRecord lacks are
    left out."""
    rng = random.Random(seed)
    now = time.time() if now is None else now
    known = {f.name for f in fields(CallRecord)}
    reasons = [r for r, _ in MIX_REASONS]
    reason_cum = list(itertools.accumulate(w for _, w in MIX_REASONS))
    agent_cum = list(itertools.accumulate(a.weight for a in MIX_AGENTS))
    user_cum = list(itertools.accumulate(MIX_USER_WEIGHTS))
    windows = [(now - began * DAY, now - ended * DAY, campaign_id, MIX_AGENTS[agent],
                MIX_USERS[i % 5], MIX_CHANNELS[i % len(MIX_CHANNELS)])
               for i, ((_, began, ended, agent), campaign_id)
               in enumerate(zip(MIX_CAMPAIGNS, campaigns, strict=True))]
    step = max(1, n // RARE_CALLS)
    planted = 0
    for i, created in enumerate(_times(n, rng, now, HISTORY_DAYS)):
        agent = MIX_AGENTS[bisect.bisect(agent_cum, rng.random() * agent_cum[-1])]
        user = MIX_USERS[bisect.bisect(user_cum, rng.random() * user_cum[-1])]
        channel = MIX_CHANNELS[MIX_USERS.index(user) % len(MIX_CHANNELS)] \
            if rng.random() < 0.8 else rng.choice(MIX_CHANNELS)
        campaign_id = None
        for began, ended, cid, c_agent, owner, c_channel in windows:
            if began <= created < ended and rng.random() < CAMPAIGN_SHARE:
                campaign_id, agent, user, channel = cid, c_agent, owner, c_channel
                break
        callee = rng.randrange(150_000)
        other = f"+1{AREAS[callee % len(AREAS)]}{2_000_000 + callee * 53 % 7_999_999:07d}"
        inbound = agent.fields == "" and campaign_id is None and rng.random() < 0.6
        common = dict(
            id=0, direction="inbound" if inbound else "outbound", created_at=created,
            team_id=TEAM, channel_id=channel, user_id=user,
            from_number=other if inbound else OUR_NUMBER,
            to_number=OUR_NUMBER if inbound else other,
            agent_id=agent.id, agent_name=agent.name, campaign_id=campaign_id)
        rare = planted < RARE_CALLS and i % step == step // 2
        if rng.random() < FAILED_SHARE and not rare:
            record: dict[str, Any] = dict(
                common, call_id=None, status="failed", stage=0, updated_at=created,
                error="Retell refused the call", direction="outbound", from_number=OUR_NUMBER,
                to_number=other, error_kind=rng.choice(("refused", "timeout", "rate_limited")))
            yield CallRecord(**{k: v for k, v in record.items() if k in known})
            continue
        reason = reasons[bisect.bisect(reason_cum, rng.random() * reason_cum[-1])]
        if rare:
            reason = "user_hangup"  # a conversation, with a transcript
        connected = not reason.startswith(("dial_", "error_"))
        if reason == "voicemail_reached":
            duration = rng.randint(15_000, 45_000)
        elif reason == "inactivity":
            duration = rng.randint(20_000, 60_000)
        elif reason == "max_duration_reached":
            duration = 900_000
        elif connected:
            duration = int(min(900_000, max(5_000, rng.lognormvariate(11.5, 0.8))))
        else:
            duration = 0
        started = created + rng.uniform(1, 12)
        ended = min(started + duration / 1000, now - 1)
        slots = _slots(rng)
        record = dict(
            common, call_id=f"call_{rng.getrandbits(128):032x}",
            status="ended" if connected else (
                "error" if reason.startswith("error_") else "not_connected"),
            stage=3 if connected else 2, updated_at=ended + 25,
            started_at=started if connected else None, ended_at=ended,
            duration_ms=duration, disconnection_reason=reason,
            in_voicemail=reason == "voicemail_reached",
            cost_cents=round(duration / 60_000 * 7 + (1.5 if connected else 0.0), 4),
        )
        if connected:
            successful = rng.random() < SUCCESS_RATE.get(reason, 0.0)
            record.update(
                analyzed_at=ended + 25, successful=successful,
                sentiment=rng.choices(("Positive", "Neutral", "Negative", "Unknown"),
                                      (0.35, 0.4, 0.15, 0.1))[0],
                latency_ms=round(min(3000.0, max(450.0, rng.gauss(950, 220))), 1),
                summary=(VOICEMAIL_SUMMARY if reason == "voicemail_reached"
                         else rng.choice(SUMMARIES[agent.fields])).format(**slots))
            if agent.fields and reason != "voicemail_reached" and rng.random() < FIELDS_SHARE:
                record["extracted"] = _extracted(rng, agent.fields, slots, successful)
            # About 0.68 of the calls connect and talk (not voicemail): TRANSCRIPT_SHARE of
            # all calls carry a transcript.
            if rare or (reason != "voicemail_reached"
                        and rng.random() < TRANSCRIPT_SHARE / 0.68):
                record["transcript"] = _transcript(
                    rng, agent, slots, common=rng.random() < COMMON_SHARE,
                    thai=rng.random() < THAI_SHARE, rare=rare)
                planted += rare
        yield CallRecord(**{k: v for k, v in record.items() if k in known})


async def mixed_campaigns(store: SQLiteStore, now: float) -> list[int | None]:
    """MIX_CAMPAIGNS, done, with no rows (their calls are in the history), through the
    store; None each for a tree without campaigns."""
    create = getattr(store, "create_campaign", None)
    if create is None:
        return [None] * len(MIX_CAMPAIGNS)
    from storage.models import Campaign  # not in trees from before campaigns

    ids: list[int | None] = []
    for i, (name, began, _, agent) in enumerate(MIX_CAMPAIGNS):
        at = now - began * DAY
        campaign = Campaign(id=0, name=name, owner=MIX_USERS[i % 5],
                            channel_id=MIX_CHANNELS[i % len(MIX_CHANNELS)], status="done",
                            concurrency=20, attempts=2, retry_spacing=3600.0, created_at=at,
                            team_id=TEAM, agent=MIX_AGENTS[agent].name)
        ids.append(int(await create(campaign, [], at)))
    return ids


def carded_calls(cards: list[tuple[str, str, str]]) -> Iterator[CallRecord]:
    """Calls on the line whose card is posted: what a burst of endings finds."""
    now = time.time()
    for i, (call_id, channel, ts) in enumerate(cards):
        yield CallRecord(
            id=0, call_id=call_id, direction="outbound", status="ongoing", stage=1,
            created_at=now - 120 + i * 0.01, updated_at=now - 100, started_at=now - 100,
            team_id=TEAM, channel_id=channel, user_id=USER, message_ts=ts,
            from_number=FROM_NUMBER, to_number=f"+1415555{i % 10_000:04d}",
            agent_id=AGENT_ID, agent_name=AGENT_NAME,
        )


async def _import_copy(store: SQLiteStore, records: Iterable[CallRecord],
                       batch: int = 20_000) -> int:
    """A copy of `SQLiteStore.import_calls`, for trees from before it (the same columns)."""
    columns = [f.name for f in fields(CallRecord) if f.name != "id"]
    sql = (f"INSERT OR IGNORE INTO calls ({', '.join(columns)}) "
           f"VALUES ({', '.join('?' * len(columns))})")

    def values(record: CallRecord) -> tuple[Any, ...]:
        out = [getattr(record, c) for c in columns]
        out[columns.index("variables")] = json.dumps(record.variables) if record.variables \
            else None
        return tuple(int(v) if isinstance(v, bool) else v for v in out)

    added = 0
    chunk: list[CallRecord] = []

    async def insert(rows: list[CallRecord]) -> int:
        return int(await store._writer.write(
            lambda conn: conn.executemany(sql, map(values, rows)).rowcount))

    for record in records:
        chunk.append(record)
        if len(chunk) >= batch:
            added += await insert(chunk)
            chunk = []
    return added + (await insert(chunk) if chunk else 0)


async def seed(db: Path, history: int, recent: int, transcripts: bool,
               cards: list[tuple[str, str, str]], mixed: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    store = SQLiteStore(db, synchronous="OFF")  # setup only: the file is thrown away on a crash
    await store.open()
    try:
        load = getattr(store, "import_calls", None)
        now = time.time()
        parts: list[Iterable[CallRecord]] = [
            mixed_calls(history, 3, await mixed_campaigns(store, now), now) if mixed
            else ended_calls(history, 1, 60 * DAY, transcripts),
            ended_calls(recent, 2, 7_000.0, False),
            carded_calls(cards),
        ]
        added = 0
        for part in parts:
            added += await (load(part) if load is not None else _import_copy(store, part))
        # The per-day sums /callstats reads, as the app's background worker would have
        # made them by the time anyone asks (trees from before them have none).
        refresh = getattr(store, "refresh_stats", None)
        summed_at = time.perf_counter()
        while refresh is not None and await refresh(time.time(), days=50):
            pass
        summing = round(time.perf_counter() - summed_at, 2)
    finally:
        await store.close()
    return {"added": added, "seconds": round(time.perf_counter() - started, 2),
            "summing_seconds": summing,
            "schema": len(MIGRATIONS), "import_calls": load is not None}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="seed.py", description=__doc__.split("\n")[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--history", type=int, default=0)
    parser.add_argument("--recent", type=int, default=0)
    parser.add_argument("--transcripts", action="store_true")
    parser.add_argument("--mixed", action="store_true")
    parser.add_argument("--cards", type=Path)
    args = parser.parse_args(argv)
    cards = [tuple(c) for c in json.loads(args.cards.read_text())] if args.cards else []
    result = asyncio.run(seed(args.db, args.history, args.recent, args.transcripts, cards,
                              args.mixed))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
