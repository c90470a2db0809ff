"""Benchmark the real server in its own process: `/call` acks, webhook answers, `/callstats`.

Run from the repository root::

    /work/venv/bin/python -m bench.bench [--quick]

The server is `python -m bot serve` in a subprocess, configured only through its environment.
The Slack and Retell stand-ins from tests/standins run in this process, on loopback, next to
the load generator. The database is filled with synthetic calls before the server starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

import aiohttp
import httpx
from slack_sdk.signature import SignatureVerifier

from storage.sqlite import SQLiteStore
from tests.standins.retell import RetellStandIn
from tests.standins.slack import SlackStandIn

REPO = Path(__file__).resolve().parent.parent
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"
TEAM, CHANNEL, USER = "T0BENCH", "C0BENCH", "U0BENCH"
CALL_TEXT = "+1 415 555 0123"
CREATE_DELAY = 0.5  # seconds Retell takes per create-phone-call
WEBHOOK_BYTES = 15_000  # target size of a call_ended body
SETTLE_TIMEOUT = 120.0
HEALTHY_TIMEOUT = 60.0
POLL = 0.05
DAY = 86_400.0
REASONS = (
    "user_hangup",
    "agent_hangup",
    "voicemail_reached",
    "max_duration_reached",
    "inactivity",
    "dial_no_answer",
    "dial_busy",
)
# Bolt reads SLACK_BOT_TOKEN from the environment although the app hands it a client.
KNOWN_NOISE = "`token` will be unused"
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

try:  # Linux: have the kernel SIGTERM the server should this process die without cleaning up.
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None


@dataclass(frozen=True)
class Sizes:
    calls: int  # /call commands per run
    burst: int  # concurrent /call commands per wave in the burst run
    webhooks: int  # distinct calls per webhook run
    senders: int  # concurrent webhook senders
    rows: int  # synthetic calls stored before the server starts
    stats_runs: int  # /callstats commands per period


FULL = Sizes(calls=200, burst=50, webhooks=500, senders=32, rows=100_000, stats_runs=20)
QUICK = Sizes(calls=50, burst=25, webhooks=100, senders=32, rows=10_000, stats_runs=5)


@dataclass
class Answer:
    status: int
    ms: float
    body: Any


@dataclass(frozen=True)
class Usage:
    """Wall-clock and CPU seconds of the server and of this process over one scenario."""

    wall: float
    server_cpu: float
    bench_cpu: float


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc/<pid>/stat (0.0 if unreadable)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


class Meter:
    """Started at construction; `read()` gives the usage since then."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.wall = time.perf_counter()
        self.server = process_cpu(server_pid)
        self.bench = time.process_time()

    def read(self) -> Usage:
        return Usage(
            time.perf_counter() - self.wall,
            process_cpu(self.server_pid) - self.server,
            time.process_time() - self.bench,
        )


@dataclass
class Row:
    label: str
    samples: list[float]
    note: str = ""
    cpu: Usage | None = None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(
        self, label: str, samples: list[float], note: str = "", cpu: Usage | None = None
    ) -> None:
        self.rows.append(Row(label, samples, note, cpu))
        say(f"  {label}: {summary(samples)}{'; ' + note if note else ''}")

    def fact(self, text: str) -> None:
        self.facts.append(text)
        say(f"  {text}")

    def problem(self, text: str) -> None:
        self.problems.append(text)
        say(f"  PROBLEM: {text}")


def say(text: str) -> None:
    print(text, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(samples: Sequence[float]) -> str:
    return (
        f"n={len(samples)} p50={percentile(samples, 50):.1f} p90={percentile(samples, 90):.1f} "
        f"p99={percentile(samples, 99):.1f} max={max(samples, default=float('nan')):.1f} ms"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- synthetic history -----------------------------------------------------------------------


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


def _synthetic_rows(rows: int, seed: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    now = time.time()
    transcripts = []
    payloads = []
    for variant in range(32):
        transcript, objects = conversation(24 + variant % 4)  # ~2 KB of text
        transcripts.append(transcript)
        call = {"call_id": f"call_template{variant}", "transcript": transcript,
                "transcript_object": objects[:4]}
        payloads.append(json.dumps({"event": "call_analyzed", "call": call}))  # ~5 KB
    for i in range(rows):
        created = now - rng.uniform(0, 60 * DAY)
        reason = rng.choice(REASONS)
        connected = reason not in NOT_CONNECTED
        duration = rng.randint(3_000, 900_000) if connected else 0
        started = created + rng.uniform(1, 20)
        successful = rng.choice((0, 1, None))
        yield (
            f"call_{i:08x}{rng.getrandbits(96):024x}",
            "ended" if connected else "not_connected",
            TEAM, CHANNEL, USER,
            "+14155550100", f"+1415555{rng.randint(0, 9999):04d}",
            "agent_abc1f3d2e4b5a6c7d8e9f0a1", "Sales Follow-up",
            created, started + duration / 1000 + 30, started, started + duration / 1000,
            duration, reason, rng.choice(SENTIMENTS), successful,
            int(reason == "voicemail_reached"), round(rng.uniform(0, 150), 4),
            "The agent called the user about the renewal; the user agreed to a start date.",
            rng.choice(transcripts), rng.choice(payloads),
        )


def _insert_rows(path: Path, rows: int, seed: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            """INSERT INTO calls (call_id, status, stage, team_id, channel_id, user_id,
                   from_number, to_number, agent_id, agent_name, created_at, updated_at,
                   started_at, ended_at, duration_ms, disconnection_reason, sentiment,
                   successful, in_voicemail, cost_cents, summary, transcript, raw_payload)
               VALUES (?, ?, 3, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            _synthetic_rows(rows, seed),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


async def prepare_database(path: Path, rows: int, seed: int = 20240601) -> None:
    """Create the schema the app's way, then bulk-insert `rows` ended calls (setup only)."""
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    await asyncio.to_thread(_insert_rows, path, rows, seed)


def db_scalar(path: Path, sql: str, params: Sequence[Any] = ()) -> Any:
    """One value from the server's database, read-only (WAL lets us read beside it)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute(sql, params).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


# -- the server process ----------------------------------------------------------------------


def _die_with_parent() -> None:
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ServerProcess:
    """`python -m bot serve` in a subprocess, logging to a file in the temp dir."""

    def __init__(self, env: dict[str, str], workdir: Path, url: str) -> None:
        self.env = env
        self.workdir = workdir
        self.url = url
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"],
            cwd=self.workdir,  # no stray .env is picked up
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C or group signal reaches only this process, which then
            # sends the server exactly one SIGTERM (a second one mid-shutdown hangs it).
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    async def wait_healthy(self, session: aiohttp.ClientSession) -> None:
        """Poll GET /healthz every 10 ms until it answers 200."""
        assert self.proc is not None
        try:
            async with asyncio.timeout(HEALTHY_TIMEOUT):
                while self.proc.poll() is None:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.get(self.url + "/healthz") as resp:
                            if resp.status == 200:
                                return
                    await asyncio.sleep(0.01)
        except TimeoutError:
            raise RuntimeError(
                f"server not healthy after {HEALTHY_TIMEOUT:.0f} s:\n{self.log()}"
            ) from None
        raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")

    def status_kib(self, key: str) -> int | None:
        """A `kB` figure from /proc/<pid>/status, e.g. VmHWM (peak RSS)."""
        if self.proc is None:
            return None
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return None

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    async def stop(self) -> int | None:
        """SIGTERM (aiohttp shuts down gracefully), SIGKILL after 15 s; returns the exit code."""
        proc, self.proc = self.proc, None
        try:
            if proc is None:
                return None
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(proc.wait, 15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    await asyncio.to_thread(proc.wait)
            return proc.returncode
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None


# -- talking to the server -------------------------------------------------------------------


def slack_headers(body: bytes, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """Signed exactly as Slack signs requests (tests/conftest.py does the same)."""
    ts = str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body.decode())
    assert signature is not None
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }


class Client:
    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        slack: SlackStandIn,
        retell: RetellStandIn,
        server_pid: int,
    ) -> None:
        self.url = url
        self.server_pid = server_pid
        self.session = session
        self.slack = slack
        self.retell = retell

    async def post(self, path: str, data: bytes, headers: dict[str, str]) -> Answer:
        started = time.perf_counter()
        async with self.session.post(self.url + path, data=data, headers=headers) as resp:
            text = await resp.text()
            status = resp.status
        ms = (time.perf_counter() - started) * 1000
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = text
        return Answer(status, ms, body)

    async def slash(self, command: str, text: str, key: str) -> Answer:
        """A slash command, form-encoded and signed as Slack sends it (like conftest's)."""
        form = {
            "token": "legacy-verification-token",
            "team_id": TEAM,
            "team_domain": "acme",
            "channel_id": CHANNEL,
            "channel_name": "general",
            "user_id": USER,
            "user_name": USER.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0CALLBOT",
            "is_enterprise_install": "false",
            "response_url": self.slack.response_url(key),
            "trigger_id": f"{key}.{uuid.uuid4().hex}",
        }
        body = urlencode(form).encode()
        return await self.post("/slack/events", body, slack_headers(body))

    async def webhook(self, body: str) -> Answer:
        return await self.post(
            "/retell/webhook", body.encode("utf-8"), self.retell.webhook_headers(body)
        )


async def settle(slack: SlackStandIn, predicate: Callable[[], bool]) -> float | None:
    """Seconds until `predicate` holds (re-checked on every Slack request), None on timeout."""
    started = time.perf_counter()
    try:
        await slack.wait_for(predicate, timeout=SETTLE_TIMEOUT)
    except AssertionError:
        return None
    return time.perf_counter() - started


async def run_senders(
    items: Iterable[str], senders: int, send: Callable[[str], Awaitable[Answer]]
) -> tuple[list[Answer], float]:
    """`senders` workers share one iterator of items; returns answers and wall seconds."""
    queue = iter(items)
    answers: list[Answer] = []

    async def worker() -> None:
        for item in queue:
            answers.append(await send(item))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(senders)))
    return answers, time.perf_counter() - started


# -- the three benchmarks --------------------------------------------------------------------


def _call_note(answers: list[Answer], report: Report, label: str, settled: float | None) -> str:
    bad = [a for a in answers if a.status != 200 or a.body]
    for a in bad[:3]:
        report.problem(f"{label}: HTTP {a.status} {str(a.body)[:160]}")
    after = f"all placed {settled:.2f} s after last ack" if settled is not None else "NOT settled"
    return f"{len(bad)} bad acks; {after}"


async def bench_call(client: Client, sizes: Sizes, report: Report) -> None:
    say(f"/call ack latency: {sizes.calls} commands per run, Retell create takes "
        f"{CREATE_DELAY * 1000:.0f} ms")
    slack, retell = client.slack, client.retell
    retell.create_delay = CREATE_DELAY
    responses_before = len(slack.responses)

    def placed(n: int) -> Callable[[], bool]:
        # The outbox updates each card once the call is saved: the end of a /call's work.
        return lambda: len(slack.calls_to("chat.update")) + len(slack.responses) - (
            responses_before) >= n

    meter = Meter(client.server_pid)
    sequential = [await client.slash("/call", CALL_TEXT, f"call-seq-{i}")
                  for i in range(sizes.calls)]
    settled = await settle(slack, placed(sizes.calls))
    report.add("/call ack, sequential", [a.ms for a in sequential],
               _call_note(sequential, report, "/call sequential", settled), meter.read())

    meter = Meter(client.server_pid)
    burst: list[Answer] = []
    waits: list[float | None] = []
    for start in range(0, sizes.calls, sizes.burst):
        wave = range(start, min(start + sizes.burst, sizes.calls))
        burst += await asyncio.gather(
            *(client.slash("/call", CALL_TEXT, f"call-burst-{i}") for i in wave)
        )
        waits.append(await settle(slack, placed(sizes.calls + wave.stop)))
    worst = None if None in waits else max(w for w in waits if w is not None)
    report.add(f"/call ack, bursts of {sizes.burst}", [a.ms for a in burst],
               _call_note(burst, report, "/call burst", worst).replace("all placed", "worst wave"),
               meter.read())

    created = len(retell.created_calls())
    if created != 2 * sizes.calls:
        report.problem(f"Retell saw {created} creates for {2 * sizes.calls} /call commands")
    responded = len(slack.responses) - responses_before
    if responded:
        sample = slack.responses[-1][1].get("text", "")
        report.problem(f"{responded} /call commands answered via response_url, e.g. {sample!r}")
    retell.create_delay = 0.0


async def create_calls(retell: RetellStandIn, count: int) -> list[str]:
    """Calls as the bot would have placed them (metadata routes them to CHANNEL)."""
    metadata = {"source": "slack-callbot", "slack_team_id": TEAM,
                "slack_channel_id": CHANNEL, "slack_user_id": USER}
    ids: list[str] = []
    async with httpx.AsyncClient(
        base_url=retell.url, headers={"Authorization": f"Bearer {retell.api_key}"}
    ) as http:
        for i in range(count):
            resp = await http.post("/v2/create-phone-call", json={
                "from_number": retell.phone_numbers[0]["phone_number"],
                "to_number": f"+1415555{i % 10_000:04d}",
                "metadata": metadata,
            })
            resp.raise_for_status()
            ids.append(resp.json()["call_id"])
    return ids


def ended_bodies(retell: RetellStandIn, call_ids: list[str]) -> list[str]:
    """`call_ended` bodies grown to about WEBHOOK_BYTES with a longer conversation."""
    turns = 4
    while True:
        transcript, objects = conversation(turns)
        first = retell.event_body(call_ids[0], "call_ended", transcript=transcript,
                                  transcript_object=objects)
        if len(first.encode()) >= WEBHOOK_BYTES:
            break
        turns += 1
    return [first] + [
        retell.event_body(cid, "call_ended", transcript=transcript, transcript_object=objects)
        for cid in call_ids[1:]
    ]


def _webhook_note(answers: list[Answer], report: Report, label: str) -> str:
    failed = [a for a in answers if a.status != 200]
    not_stored = [a for a in answers if a.status == 200
                  and not (isinstance(a.body, dict) and a.body.get("status") == "stored")]
    for a in (failed + not_stored)[:3]:
        report.problem(f"{label}: HTTP {a.status} {str(a.body)[:160]}")
    return f"{len(failed)} non-200, {len(not_stored)} not stored"


async def bench_webhooks(client: Client, sizes: Sizes, db: Path, report: Report) -> None:
    say(f"webhook answers: {sizes.webhooks} distinct calls per run")
    ids = await create_calls(client.retell, 2 * sizes.webhooks)
    sequential_bodies = ended_bodies(client.retell, ids[: sizes.webhooks])
    concurrent_bodies = ended_bodies(client.retell, ids[sizes.webhooks :])
    size = sum(len(b.encode()) for b in sequential_bodies) / len(sequential_bodies)
    report.fact(f"call_ended bodies: {size / 1024:.1f} KiB on average")

    meter = Meter(client.server_pid)
    sequential = [await client.webhook(b) for b in sequential_bodies]
    usage = meter.read()
    report.add("webhook, sequential", [a.ms for a in sequential],
               f"{len(sequential) / usage.wall:.0f} req/s; "
               + _webhook_note(sequential, report, "webhook sequential"), usage)

    meter = Meter(client.server_pid)
    answers, wall = await run_senders(concurrent_bodies, sizes.senders, client.webhook)
    note = _webhook_note(answers, report, "webhook concurrent")
    report.add(f"webhook, {sizes.senders} senders", [a.ms for a in answers],
               f"{len(answers) / wall:.0f} req/s; {note}", meter.read())

    started = time.perf_counter()
    pending_sql = "SELECT count(*) FROM outbox WHERE done_at IS NULL"
    for _ in range(int(SETTLE_TIMEOUT / POLL)):
        pending = db_scalar(db, pending_sql)
        if not pending:
            break
        await asyncio.sleep(POLL)
    gave_up = db_scalar(db, "SELECT count(*) FROM outbox WHERE last_error IS NOT NULL")
    report.fact(f"outbox drained {time.perf_counter() - started:.2f} s after the last webhook "
                f"({pending} pending, {gave_up} with errors)")
    if pending or gave_up:
        report.problem(f"outbox: {pending} items pending, {gave_up} with errors")


def reported_calls(body: Any) -> int | None:
    """The call count from the stats text: '12345 calls in the last 7 days, ...'."""
    text = body.get("text", "") if isinstance(body, dict) else ""
    head = text.split(" ", 1)[0]
    return int(head) if head.isdigit() else None


async def bench_stats(client: Client, sizes: Sizes, db: Path, report: Report) -> None:
    total = db_scalar(db, "SELECT count(*) FROM calls WHERE call_id IS NOT NULL")
    say(f"/callstats: {sizes.stats_runs} runs per period over {total:,} stored calls")
    for period in ("7d", "30d", "all"):
        meter = Meter(client.server_pid)
        answers = [await client.slash("/callstats", period, f"stats-{period}-{i}")
                   for i in range(sizes.stats_runs)]
        usage = meter.read()
        bad = [a for a in answers if a.status != 200 or not isinstance(a.body, dict)
               or not a.body.get("blocks")]
        for a in bad[:3]:
            report.problem(f"/callstats {period}: HTTP {a.status} {str(a.body)[:160]}")
        counted = reported_calls(answers[-1].body)
        note = f"{len(bad)} without blocks; reports {counted:,} calls" if counted is not None \
            else f"{len(bad)} without blocks"
        if period == "all" and counted != total:
            report.problem(f"/callstats all reports {counted} calls, the database holds {total}")
        report.add(f"/callstats {period}", [a.ms for a in answers], note, usage)


# -- orchestration ---------------------------------------------------------------------------


def server_env(slack: SlackStandIn, retell: RetellStandIn, db: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "RETELL_", "CALLBOT_"))}
    env.update(
        SLACK_BOT_TOKEN=slack.token,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        RETELL_API_KEY=retell.api_key,
        RETELL_FROM_NUMBER=retell.phone_numbers[0]["phone_number"],
        RETELL_BASE_URL=retell.url,
        DATABASE_URL=f"sqlite:///{db}",
        HOST="127.0.0.1",
        PORT=str(port),
        LOG_LEVEL="WARNING",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    return env


def review_log(text: str, code: int | None, report: Report) -> None:
    """Count the server's warnings and errors; show the first few and the first traceback."""
    lines = text.splitlines()
    noisy = [line for line in lines if " WARNING " in line or " ERROR " in line]
    known = [line for line in noisy if KNOWN_NOISE in line]
    report.fact(f"server exit code {code}; {len(noisy)} warning/error log lines "
                f"({len(known)} of them Bolt's harmless `token will be unused`)")
    if code not in (0, None):
        report.problem(f"server exit code {code}; last log lines:\n      "
                       + "\n      ".join(lines[-30:]))
    for line in [line for line in noisy if KNOWN_NOISE not in line][:5]:
        report.problem(f"server log: {line[:240]}")
    if "Traceback (most recent call last):" in lines:
        start = lines.index("Traceback (most recent call last):")
        end = start + 1
        while end < len(lines) and lines[end].startswith(" "):
            end += 1  # frames are indented; the exception line is not
        block = lines[start:end + 1]
        report.problem("first server traceback:\n      " + "\n      ".join(block[:60]))


def print_table(report: Report, sizes: Sizes, mode: str) -> None:
    say("")
    say(f"== results ({mode}: {sizes.calls} /call per run, {sizes.webhooks} webhooks per run, "
        f"{sizes.rows:,} synthetic calls) ==")
    say(f"{'scenario':<26} {'n':>4} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}  notes (ms)")
    for row in report.rows:
        s = row.samples
        say(f"{row.label:<26} {len(s):>4} {percentile(s, 50):>8.1f} {percentile(s, 90):>8.1f} "
            f"{percentile(s, 99):>8.1f} {max(s, default=float('nan')):>8.1f}  {row.note}")
    say("")
    say(f"{'CPU use per scenario':<26} {'wall s':>8} {'server s':>9} {'bench s':>8}  "
        "server CPU / wall")
    for row in report.rows:
        if row.cpu is not None:
            say(f"{row.label:<26} {row.cpu.wall:>8.2f} {row.cpu.server_cpu:>9.2f} "
                f"{row.cpu.bench_cpu:>8.2f}  {row.cpu.server_cpu / row.cpu.wall:.0%}")
    say("")
    for fact in report.facts:
        say(f"- {fact}")
    say(f"problems: {len(report.problems)}")
    for problem in report.problems:
        say(f"  ! {problem}")


async def run(sizes: Sizes, mode: str) -> int:
    report = Report()
    with tempfile.TemporaryDirectory(prefix="callbot-bench-") as tmp:
        workdir = Path(tmp)
        db = workdir / "bench.db"
        say(f"filling {db} with {sizes.rows:,} calls ...")
        started = time.perf_counter()
        await prepare_database(db, sizes.rows)
        report.fact(f"setup: {sizes.rows:,} rows inserted in {time.perf_counter() - started:.1f} s"
                    f", database {db.stat().st_size / 2**20:.0f} MiB")

        server: ServerProcess | None = None
        async with contextlib.AsyncExitStack() as stack:
            slack = await stack.enter_async_context(SlackStandIn(team_id=TEAM))
            retell = await stack.enter_async_context(RetellStandIn())
            session = await stack.enter_async_context(
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
            )
            port = free_port()
            server = ServerProcess(server_env(slack, retell, db, port), workdir,
                                   f"http://127.0.0.1:{port}")
            try:
                started = time.perf_counter()
                server.start()
                await server.wait_healthy(session)
                report.fact(f"server start to healthy: {time.perf_counter() - started:.2f} s")
                assert server.proc is not None
                client = Client(server.url, session, slack, retell, server.proc.pid)
                await bench_call(client, sizes, report)
                await bench_webhooks(client, sizes, db, report)
                await bench_stats(client, sizes, db, report)
                hwm, rss = server.status_kib("VmHWM"), server.status_kib("VmRSS")
                if hwm is not None and rss is not None:
                    report.fact(f"server peak RSS (VmHWM) {hwm / 1024:.1f} MiB, "
                                f"now {rss / 1024:.1f} MiB")
            finally:
                code = await server.stop()
                review_log(server.log(), code, report)
    print_table(report, sizes, mode)
    return 1 if report.problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"smaller run: {QUICK.calls} /call, {QUICK.webhooks} webhooks, "
                             f"{QUICK.rows:,} rows")
    args = parser.parse_args(argv)
    sizes, mode = (QUICK, "quick") if args.quick else (FULL, "full")

    async def guarded() -> int:
        # SIGTERM cancels the run so the finally blocks stop the server and remove the files.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run(sizes, mode)

    try:
        return asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted; server stopped and temporary files removed")
        return 130


if __name__ == "__main__":
    sys.exit(main())
