"""Synthetic call history, stored through the store (`SQLiteStore.import_calls`).

    python bench/seed.py DB --history N [--recent M] [--transcripts] [--cards FILE]

Run as a script, with PYTHONPATH naming the tree whose schema the file must get: the bench
seeds databases for the checkout under test and for an older one (an older worktree), so
`storage` must be that tree's. It prints one JSON line: rows added, seconds, schema version.

- `--history N`: N ended calls over the last 60 days, from 200 users.
- `--recent M`: M more ended calls within the last two hours (what an admission that counts
  recent calls would read).
- `--transcripts`: each history call carries a ~2 KB transcript (wide rows, as in real use).
- `--cards FILE`: JSON list of [call_id, channel_id, message_ts]: calls in progress whose
  card was already posted (the outcome burst).

A tree whose store has no `import_calls` (before it existed) is seeded by `_import_copy`, a
copy of that method's logic against the same `calls` columns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import fields
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
               cards: list[tuple[str, str, str]]) -> dict[str, Any]:
    started = time.perf_counter()
    store = SQLiteStore(db, synchronous="OFF")  # setup only: the file is thrown away on a crash
    await store.open()
    try:
        load = getattr(store, "import_calls", None)
        parts: list[Iterable[CallRecord]] = [
            ended_calls(history, 1, 60 * DAY, transcripts),
            ended_calls(recent, 2, 7_000.0, False),
            carded_calls(cards),
        ]
        added = 0
        for part in parts:
            added += await (load(part) if load is not None else _import_copy(store, part))
    finally:
        await store.close()
    return {"added": added, "seconds": round(time.perf_counter() - started, 2),
            "schema": len(MIGRATIONS), "import_calls": load is not None}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="seed.py", description=__doc__.split("\n")[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--history", type=int, default=0)
    parser.add_argument("--recent", type=int, default=0)
    parser.add_argument("--transcripts", action="store_true")
    parser.add_argument("--cards", type=Path)
    args = parser.parse_args(argv)
    cards = [tuple(c) for c in json.loads(args.cards.read_text())] if args.cards else []
    result = asyncio.run(seed(args.db, args.history, args.recent, args.transcripts, cards))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
