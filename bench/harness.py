"""What every bench scenario uses: sizes, the report, server processes, the stand-ins,
the load generator, meters and the reads that see what the server did."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from bench import loadgen
from bench.loadgen import Job, Result, process_cpu
from bench.seed import conversation
from standins.process import ChildProcess, die_with_parent, free_port
from standins.retell import RetellStandIn
from standins.slack import SlackStandIn, signed_headers

REPO = Path(__file__).resolve().parent.parent


SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"


TEAM, CHANNEL, USER = "T0BENCH", "C0BENCH", "U0BENCH"


CHANNELS = tuple(f"C0BENCH{i:02d}" for i in range(16))  # webhook calls are spread over these


CALL_TEXT = "+1 415 555 0123"


CREATE_DELAY = 0.5  # seconds Retell takes per create-phone-call in the /call burst


WEBHOOK_BYTES = 15_000  # size of a call_ended body


SENDERS = 32  # concurrent webhook senders


BURST = 50  # /call commands sent at once


RSS_SLASH = 100  # /call commands among the calls of the peak-RSS run


RSS_CHUNK = 1_000  # calls per started/ended/analyzed wave in the peak-RSS run


EVENTS = ("call_started", "call_ended", "call_analyzed")


# Goals from the issue.
P99_GOAL_MS = 20.0  # app webhook p99 at 32 senders, at most


ACK_GOAL_MS = 100.0  # /call ack p99 in a burst, at most


RSS_GOAL_MB = 100.0  # peak RSS after 10,000 calls, at most (MB = 10**6 bytes)


START_GOAL_S = 1.0  # exec to a healthy /healthz, at most


CORES = os.cpu_count() or 1


SETTLE_TIMEOUT = 120.0


DRAIN_TIMEOUT = 300.0


HEALTHY_TIMEOUT = 60.0


POLL = 0.05


# Bolt reads SLACK_BOT_TOKEN from the environment although the app hands it a client.
KNOWN_NOISE = "`token` will be unused"


SEED = Path(__file__).resolve().parent / "seed.py"  # run as a script against a tree


CACHE = Path(tempfile.gettempdir()) / "callbot-bench-cache"  # seeded histories, by schema


RECENT = 20_000  # calls within the last two hours, the "before" case


PLACE_GOAL_S = 0.5  # /call to Retell's create-phone-call, p99, at most (at 0 and at 1M)


FIRST_GOAL_S = 5.0  # burst of endings into one channel: first summary lands within


MEDIAN_GOAL_S = 120.0  # ... and the median ("~110 s" in the issue)


FLOOR_GOAL = 0.8  # app webhook throughput / floor throughput, at least


STATS_GOAL_MS = 150.0  # /callstats 30d answered (on the ack), median, at 1M calls, at most


RATIO_GOAL = 2.0  # each /callstats answer / the same aggregate as one raw query, at most


SEARCH_GOAL_MS = 100.0  # /callsearch answered (on the ack), median, at 1M calls, at most


CHART_GOAL_MS = 500.0  # the 30-day chart drawn, warm, median, at most


SCENARIOS = ("startup", "call", "stats", "ingest", "rss", "placement", "outcomes", "campaign",
             "history")


@dataclass(frozen=True)
class Sizes:
    rows: int  # synthetic calls stored before the server starts
    starts: int  # timed starts to a healthy /healthz
    calls: int  # sequential /call commands (reference figure)
    bursts: int  # bursts of BURST /call commands
    webhooks: int  # requests per ingest round (N), each a new call
    rounds: int  # ingest rounds per target, bare and app alternating
    inline_rounds: int  # of those, how many are followed by a pair with the senders inline
    single: int  # requests in the one-sender round per target
    rss_calls: int  # distinct calls driven through a fresh server before reading its peak RSS
    stats_runs: int  # /callstats commands per period (reference figure)
    history: int  # stored calls for the placement figure at scale (cached, see CACHE)
    endings: int  # calls ending at once into one channel (outcomes figure)
    # Ingest calls carry a Slack channel (their cards and summaries then go out at Slack's
    # pace while the rounds run); False: they post nowhere, so only the ingest path counts.
    ingest_channels: bool = True
    campaign_rows: int = 10_000  # rows of the big campaign (its admission and preview)
    history_runs: int = 15  # runs of each /callstats and /callsearch over the mixed history


FULL = Sizes(rows=100_000, starts=5, calls=50, bursts=5, webhooks=5_000, rounds=3,
             inline_rounds=3, single=500, rss_calls=10_000, stats_runs=20,
             history=1_000_000, endings=100)


QUICK = Sizes(rows=10_000, starts=3, calls=20, bursts=3, webhooks=2_000, rounds=3,
              inline_rounds=1, single=200, rss_calls=2_000, stats_runs=5,
              history=100_000, endings=20, campaign_rows=2_000, history_runs=8)


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
class Round:
    """One run of the load generator against the app or the bare yardstick."""

    kind: str  # "own" (process of its own, 32 senders), "inline" (in this process), "single"
    number: int
    target: str  # "bare", "floor" (bench/floor.py) or "app"
    senders: int
    result: Result  # watched: "server" (the target) and "bench" (this process, the stand-ins)

    @property
    def label(self) -> str:
        return {"own": f"{self.number}", "inline": f"inline {self.number}",
                "single": "1 sender"}[self.kind]

    @property
    def rate(self) -> float:
        return self.result.rate

    def p(self, q: float) -> float:
        return percentile(self.result.latencies_ms, q)

    @property
    def others(self) -> float:
        """Cores busy with neither load generator, target nor bench: other work on the box."""
        ours = sum(self.result.share(name) for name in ("loadgen", "server", "bench"))
        return max(0.0, self.result.busy * CORES - ours)


@dataclass
class Goal:
    key: str  # in GOALS
    figure: str
    met: bool | None  # None: measured, but not as the target says (e.g. --quick)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    rounds: list[Round] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(
        self, label: str, samples: list[float], note: str = "", cpu: Usage | None = None
    ) -> None:
        self.rows.append(Row(label, samples, note, cpu))
        say(f"  {label}: {summary(samples)}{'; ' + note if note else ''}")

    def goal(self, key: str, figure: str, met: bool | None) -> None:
        self.goals.append(Goal(key, figure, met))
        what, target = GOALS[key]
        say(f"  {what}: {figure} (target {target}: {verdict(met)})")

    def fact(self, text: str) -> None:
        self.facts.append(text)
        say(f"  {text}")

    def problem(self, text: str) -> None:
        self.problems.append(text)
        say(f"  PROBLEM: {text}")


def say(text: str) -> None:
    print(text, flush=True)


def verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "not judged"}[met]


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


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex}"  # as long as Retell's


async def seed_database(path: Path, tree: Path, *, history: int = 0, recent: int = 0,
                        transcripts: bool = False, mixed: bool = False,
                        cards: Sequence[tuple[str, str, str]] = ()) -> dict[str, Any]:
    """Create `path` with `tree`'s schema and store synthetic calls through its store
    (bench/seed.py, run with `tree` on the path; see there; `mixed`: the realistic mix of
    its --mixed). Returns what seed.py says."""
    argv = [sys.executable, str(SEED), str(path), "--history", str(history),
            "--recent", str(recent)]
    if transcripts:
        argv.append("--transcripts")
    if mixed:
        argv.append("--mixed")
    if cards:
        cards_file = path.with_suffix(".cards.json")
        cards_file.write_text(json.dumps(list(cards)))
        argv += ["--cards", str(cards_file)]
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=path.parent, env=child_env(tree=tree), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=die_with_parent(signal.SIGTERM))
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"seeding {path.name} failed ({proc.returncode}):\n"
                           f"{err.decode(errors='replace')[-3000:]}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def schema_key(tree: Path) -> str:
    """Names the schema a tree creates: a hash of its migrations (the cache key)."""
    text = (tree / "storage" / "migrations.py").read_bytes()
    return hashlib.sha256(text).hexdigest()[:12]


async def cached_history(tree: Path, rows: int, report: Report) -> Path:
    """A database of `rows` ended calls for `tree`'s schema, seeded once and kept under
    CACHE (seeding a million rows takes a minute; the schema hash keys it)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"history-{schema_key(tree)}-{rows}.db"
    if path.exists():
        report.fact(f"history of {rows:,} calls reused from {path}")
        return path
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    say(f"seeding {rows:,} calls into {path} (kept for later runs) ...")
    done = await seed_database(partial, tree, history=rows)
    partial.rename(path)
    report.fact(f"seeded {done['added']:,} calls through the store in {done['seconds']:.1f} s "
                f"(schema v{done['schema']}, import_calls: {done['import_calls']}), "
                f"{path.stat().st_size / 2**20:.0f} MiB, kept as {path}")
    return path


def read_db(path: Path) -> sqlite3.Connection:
    """The server's database, read-only (WAL lets us read beside the server)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def db_scalar(path: Path, sql: str, params: Sequence[Any] = ()) -> Any:
    with contextlib.closing(read_db(path)) as conn:
        row = conn.execute(sql, params).fetchone()
        return row[0] if row else None


def stored_count(path: Path, call_ids: Sequence[str]) -> int:
    """How many of `call_ids` have a row in `calls`."""
    found = 0
    with contextlib.closing(read_db(path)) as conn:
        for start in range(0, len(call_ids), 500):
            chunk = call_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT count(*) FROM calls WHERE call_id IN ({marks})"
            found += conn.execute(sql, chunk).fetchone()[0]
    return found


def table_exists(path: Path, table: str) -> bool:
    return bool(db_scalar(path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                "AND name = ?", (table,)))


async def ingested(db: Path, call_ids: Sequence[str], within: float = SETTLE_TIMEOUT
                   ) -> float | None:
    """Seconds until every one of `call_ids` has its call row and the webhook inbox (where a
    handler may keep verified bodies for a batched consumer) is empty; None on timeout."""
    inbox = table_exists(db, "webhook_inbox")
    started = time.perf_counter()
    while time.perf_counter() - started < within:
        if not (inbox and db_scalar(db, "SELECT count(*) FROM webhook_inbox")):
            if stored_count(db, call_ids) == len(call_ids):
                return time.perf_counter() - started
        await asyncio.sleep(POLL)
    return None


@dataclass(frozen=True)
class Drain:
    seconds: float | None  # until nothing was pending; None if it never got there
    pending: int
    errors: int  # items carrying a delivery error (given up, or waiting for a retry)


async def drain_outbox(db: Path, within: float = SETTLE_TIMEOUT) -> Drain:
    """Wait (up to `within` seconds) until the outbox table has no undelivered item (and
    the webhook inbox, where there is one, nothing left to apply)."""
    with contextlib.closing(read_db(db)) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}
    if not columns:
        raise RuntimeError("the database has no outbox table: cannot tell when Slack is served")
    # Delivered items keep a done_at; should a rewrite delete them instead, every row counts.
    pending_sql = "SELECT count(*) FROM outbox" + (
        " WHERE done_at IS NULL" if "done_at" in columns else "")
    if table_exists(db, "webhook_inbox"):  # kept webhooks not yet turned into Slack work
        pending_sql = f"SELECT ({pending_sql}) + (SELECT count(*) FROM webhook_inbox)"
    errors_sql = ("SELECT count(*) FROM outbox WHERE last_error IS NOT NULL"
                  if "last_error" in columns else "SELECT 0")
    started = time.perf_counter()
    pending = db_scalar(db, pending_sql)
    for _ in range(int(within / POLL)):
        if not pending:
            break
        await asyncio.sleep(POLL)
        pending = db_scalar(db, pending_sql)
    seconds = None if pending else time.perf_counter() - started
    return Drain(seconds, pending, db_scalar(db, errors_sql))


def child_env(extra: dict[str, str] | None = None, tree: Path = REPO) -> dict[str, str]:
    """This environment minus the app's settings, plus `extra`, with `tree` importable (the
    checkout whose server is measured; the bench's own by default)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "RETELL_", "CALLBOT_"))}
    env.update(extra or {})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def server_process(argv: list[str], env: dict[str, str], workdir: Path, port: int,
                   name: str) -> ChildProcess:
    """An HTTP server of the bench's (the app, or a yardstick) logging to `<name>.log` in
    `workdir`. The kernel SIGTERMs it should the bench die without stopping it: a graceful
    stop, as the bench's own would be."""
    return ChildProcess(argv, env, workdir=workdir, log_path=workdir / f"{name}.log", port=port,
                        deathsig=signal.SIGTERM, start_timeout=HEALTHY_TIMEOUT)


async def loadgen_process(job: Job, workdir: Path) -> Result:
    """Run `job` in a fresh `python -m bench.loadgen` process."""
    path = workdir / "loadgen-job.json"
    path.write_text(json.dumps(dataclasses.asdict(job)))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.loadgen", str(path),
        cwd=REPO, env=child_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=die_with_parent(signal.SIGTERM),
    )
    try:
        out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"load generator exited with {proc.returncode}:\n"
                           f"{err.decode(errors='replace')[-3000:]}")
    return Result(**json.loads(out))


class BenchSlack(SlackStandIn):
    """The Slack stand-in, fit for tens of thousands of messages: it counts calls per method,
    and finds a message by (channel, ts) in a dict, where the stand-in scans every message
    on each chat.update (quadratic over a 10,000-call run). It also counts posts by the key
    the outbox marks them with (metadata event_payload.key), to catch a repeated post."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.counts: Counter[str] = Counter()
        self.marked: Counter[str] = Counter()
        self.replied: dict[tuple[str, str], float] = {}  # (channel, thread_ts): first reply
        # Messages carrying a campaign's Start button (its preview), with when they came.
        self.campaign_cards: list[tuple[float, dict[str, Any]]] = []
        self.views_opened: list[dict[str, Any]] = []  # views.open answers' views, in order
        self._by_ts: dict[tuple[str, str], dict[str, Any]] = {}

    async def _handle_api(self, request: web.Request) -> web.Response:
        self.counts[request.match_info["method"]] += 1
        return await super()._handle_api(request)

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        answer = super()._chat_post_message(args)
        if answer.get("ok"):
            message = self._messages[-1]
            self._by_ts[(message["channel"], message["ts"])] = message
            if message.get("thread_ts"):
                self.replied.setdefault((message["channel"], message["thread_ts"]),
                                        time.perf_counter())
            meta = args.get("metadata")
            payload = meta.get("event_payload") if isinstance(meta, dict) else None
            if isinstance(payload, dict) and isinstance(payload.get("key"), str):
                self.marked[payload["key"]] += 1
            if button_value(message, CAMPAIGN_START) is not None:
                self.campaign_cards.append((time.perf_counter(), message))
        return answer

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        answer = super()._views_open(args)
        if answer.get("ok"):
            self.views_opened.append(answer["view"])
        return answer

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        return self._by_ts.get((channel, ts))


class BenchRetell(RetellStandIn):
    """The Retell stand-in, noting when each create-phone-call arrives (before any delay it
    adds), by the `bench` dynamic variable the /call command carried."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrived: dict[str, float] = {}
        # Calls created for a tagged request, in order: (arrival, tag, call_id).
        self.tagged: list[tuple[float, str, str]] = []
        self.call_of: dict[str, str] = {}  # tag: call_id
        self.families: Counter[str] = Counter()  # created calls by tag family ("k" of "k-17")

    async def _create_phone_call(self, request: web.Request) -> web.Response:
        now = time.perf_counter()
        tag: Any = None
        with contextlib.suppress(ValueError, AttributeError):
            tag = ((await request.json()).get("retell_llm_dynamic_variables") or {}).get("bench")
            if isinstance(tag, str):
                self.arrived.setdefault(tag, now)
        answer = await super()._create_phone_call(request)
        if isinstance(tag, str) and answer.status == 201 and tag not in self.call_of:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                call_id = str(json.loads(answer.text or "")["call_id"])
                self.call_of[tag] = call_id
                self.tagged.append((now, tag, call_id))
                if "-" in tag:
                    self.families[tag.split("-", 1)[0]] += 1
        return answer


def slack_headers(body: bytes, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """Signed exactly as Slack signs requests (standins.slack.signed_headers)."""
    return signed_headers(body, secret)


async def webhook_templates(retell: RetellStandIn, session: aiohttp.ClientSession
                            ) -> dict[str, str]:
    """Bodies of one call's three events as Retell sends them, with the call id and channel
    left as the load generator's placeholders; call_ended grown to about WEBHOOK_BYTES."""
    metadata = {"source": "slack-callbot", "slack_team_id": TEAM,
                "slack_channel_id": loadgen.CHANNEL, "slack_user_id": USER}
    async with session.post(
        retell.url + "/v2/create-phone-call",
        json={"from_number": retell.phone_numbers[0]["phone_number"],
              "to_number": "+14155550123", "metadata": metadata},
        headers={"Authorization": f"Bearer {retell.api_key}"},
    ) as resp:
        resp.raise_for_status()
        call_id = (await resp.json())["call_id"]
    bodies = {"call_started": retell.event_body(call_id, "call_started")}
    for turns in range(4, 1000):
        transcript, objects = conversation(turns)
        bodies["call_ended"] = retell.event_body(call_id, "call_ended", transcript=transcript,
                                                 transcript_object=objects)
        if len(bodies["call_ended"].encode()) >= WEBHOOK_BYTES:
            break
    bodies["call_analyzed"] = retell.event_body(call_id, "call_analyzed")
    return {event: body.replace(call_id, loadgen.CALL_ID) for event, body in bodies.items()}


class Client:
    """Slash commands to the app, signed and timed, from this process."""

    def __init__(self, url: str, session: aiohttp.ClientSession, slack: BenchSlack) -> None:
        self.url = url
        self.session = session
        self.slack = slack

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

    async def slash(self, command: str, text: str, key: str, user: str = USER) -> Answer:
        """A slash command, form-encoded and signed as Slack sends it (like conftest's),
        from `user` (USER unless said)."""
        form = {
            "token": "legacy-verification-token",
            "team_id": TEAM,
            "team_domain": "acme",
            "channel_id": CHANNEL,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0CALLBOT",
            "is_enterprise_install": "false",
            "response_url": self.slack.response_url(key),
            "trigger_id": f"{key}.{uuid.uuid4().hex}",
        }
        body = urlencode(form).encode()
        return await self.post("/slack/events", body, slack_headers(body))

    async def interactive(self, payload: dict[str, Any]) -> Answer:
        """A block action or view submission: form field `payload` holding JSON, signed."""
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.post("/slack/events", body, slack_headers(body))


CAMPAIGN_START = "campaign_start"  # the action id of a campaign card's Start button


def button_value(message: dict[str, Any], action_id: str) -> str | None:
    """The value of the button `action_id` on a message's actions blocks, None if none."""
    for block in message.get("blocks") or ():
        if isinstance(block, dict) and block.get("type") == "actions":
            for element in block.get("elements") or ():
                if isinstance(element, dict) and element.get("action_id") == action_id:
                    value = element.get("value")
                    return value if isinstance(value, str) else None
    return None


def block_action(action_id: str, value: str, *, message_ts: str, response_url: str,
                 channel: str = CHANNEL, user: str = USER) -> dict[str, Any]:
    """A block_actions payload for a button on a message in a channel, shaped like Slack's
    (as tests/conftest.py builds it)."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": "A0CALLBOT",
        "token": "legacy-verification-token",
        "team": {"id": TEAM, "domain": "acme"},
        "trigger_id": f"{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}",
        "actions": [{"type": "button", "action_id": action_id, "block_id": "call_actions",
                     "value": value, "action_ts": f"{time.time():.6f}"}],
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                      "is_ephemeral": False},
        "channel": {"id": channel, "name": "general"},
        "message": {"ts": message_ts, "type": "message"},
        "response_url": response_url,
    }


def view_submission(view: dict[str, Any], values: dict[str, Any],
                    user: str = USER) -> dict[str, Any]:
    """A view_submission payload for the modal `view` (as views.open stored it) with the
    fields' `values` (view.state.values), shaped like Slack's."""
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "acme"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": "A0CALLBOT",
        "token": "legacy-verification-token",
        "trigger_id": f"{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}",
        "view": {**view, "state": {"values": values}},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


async def settle(slack: SlackStandIn, predicate: Callable[[], bool]) -> float | None:
    """Seconds until `predicate` holds (re-checked on every Slack request), None on timeout."""
    started = time.perf_counter()
    try:
        await slack.wait_for(predicate, timeout=SETTLE_TIMEOUT)
    except AssertionError:
        return None
    return time.perf_counter() - started


def placed_after(slack: BenchSlack, n: int) -> Callable[[], bool]:
    """True once `n` more /call commands are done from now: the card of a placed call is
    updated once the call is saved; a failed one is answered through response_url."""
    updates, responses = slack.counts["chat.update"], len(slack.responses)
    return lambda: (slack.counts["chat.update"] - updates
                    + len(slack.responses) - responses) >= n


def bad_acks(answers: list[Answer], report: Report, label: str) -> int:
    bad = [a for a in answers if a.status != 200 or a.body]
    for a in bad[:3]:
        report.problem(f"{label}: HTTP {a.status} {str(a.body)[:160]}")
    return len(bad)


@dataclass
class Bench:
    """What every scenario needs: the stand-ins, a client session, the files, the report."""

    workdir: Path
    db: Path
    slack: BenchSlack
    retell: BenchRetell
    session: aiohttp.ClientSession
    templates: dict[str, str]  # webhook bodies by event, see webhook_templates()
    report: Report
    tree: Path = REPO  # the checkout whose server is measured

    def server(self, name: str, *, channel_rate: str | None = "1000",
               db: Path | None = None, env: dict[str, str] | None = None) -> ChildProcess:
        """`python -m bot serve` on a free port, against the stand-ins and the database.

        `channel_rate` None keeps Slack's real pace (one message a second per channel);
        `env` adds settings (or replaces the ones set here)."""
        port, extra = free_port(), env
        env = child_env({
            "SLACK_BOT_TOKEN": self.slack.token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "RETELL_API_KEY": self.retell.api_key,
            "RETELL_FROM_NUMBER": self.retell.phone_numbers[0]["phone_number"],
            "RETELL_BASE_URL": self.retell.url,
            "DATABASE_URL": f"sqlite:///{db or self.db}",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
            # The calls the webhooks tell of are unknown to the Retell stand-in: no polling.
            "CALLBOT_POLL_AFTER_SECONDS": "86400",
            # Counted on every /call (the figure is about that count), never reached.
            "CALLBOT_MAX_CONCURRENT_CALLS": "100000",
            "CALLBOT_CALLING_HOURS": "any",  # runs at any hour
        }, tree=self.tree)
        if channel_rate is not None:  # Slack's pace would stretch runs that wait for Slack
            env["CALLBOT_SLACK_CHANNEL_RATE"] = channel_rate
        env.update(extra or {})
        return server_process([sys.executable, "-m", "bot", "serve"], env, self.workdir, port,
                              name)

    def webhooks(self, server: ChildProcess, senders: int,
                 requests: list[tuple[str, str, str]], batch: int = 0) -> Job:
        """A load generator job against `server` that also measures its CPU and ours."""
        return Job(url=server.url + "/retell/webhook", health_url=server.url + "/healthz",
                   key=self.retell.api_key, senders=senders, templates=self.templates,
                   requests=requests, batch=batch,
                   watch={"server": server.pid, "bench": os.getpid()})


GOALS = {  # key: (what, target)
    "ratio": (f"webhook ingest throughput, {SENDERS} senders", f"app >= {FLOOR_GOAL:g} x floor"),
    "p99": (f"webhook ingest p99, {SENDERS} senders", f"<= {P99_GOAL_MS:g} ms"),
    "ack": (f"/call ack p99, burst of {BURST}", f"<= {ACK_GOAL_MS:g} ms"),
    "rss": ("peak RSS after 10,000 calls", f"<= {RSS_GOAL_MB:g} MB"),
    "start": ("start-up to healthy /healthz", f"<= {START_GOAL_S:g} s"),
    "place0": (f"/call to Retell create p99, {BURST}-burst, 0 calls", f"<= {PLACE_GOAL_S:g} s"),
    "ack0": (f"/call ack p99, {BURST}-burst, 0 calls", f"<= {ACK_GOAL_MS:g} ms"),
    "placeN": (f"/call to Retell create p99, {BURST}-burst, 1M calls",
               f"<= {PLACE_GOAL_S:g} s"),
    "ackN": (f"/call ack p99, {BURST}-burst, 1M calls", f"<= {ACK_GOAL_MS:g} ms"),
    "first": ("endings burst: first summary lands", f"<= {FIRST_GOAL_S:g} s"),
    "median": ("endings burst: median summary lands", f"<= {MEDIAN_GOAL_S:g} s"),
    "ackA": (f"/call ack p99, {BURST}-burst, 10,000-row campaign admitted",
             f"<= {ACK_GOAL_MS:g} ms"),
    "ackS": (f"/call ack p99, {BURST}-burst, campaign running (churn)", f"<= {ACK_GOAL_MS:g} ms"),
    "hist30": ("/callstats 30d answer, median, 1M calls", f"<= {STATS_GOAL_MS:g} ms"),
    "histRatio": ("/callstats answer / same aggregate in raw SQL", f"<= {RATIO_GOAL:g} x each"),
    "searchRare": ("/callsearch a rare word, median, 1M calls", f"<= {SEARCH_GOAL_MS:g} ms"),
    "searchCommon": ("/callsearch a common word, median, 1M calls",
                     f"<= {SEARCH_GOAL_MS:g} ms"),
    "chart": ("calls chart of 30 days, warm median", f"<= {CHART_GOAL_MS:g} ms"),
    "ackH": (f"/call ack p99 (pooled), {BURST}-bursts, heavy /callstats running",
             f"<= {ACK_GOAL_MS:g} ms"),
}


def wrong_answers(result: Result, target: str) -> dict[str, int]:
    """Answers other than a 200/202 that took the body (the bare app's 204), with counts."""
    def right(answer: str) -> bool:
        return answer == "204 " if target == "bare" else (
            answer.startswith(("200 ", "202 ")) and "ignored" not in answer
            and "error" not in answer)
    return {answer: count for answer, count in result.answers.items() if not right(answer)}


def review_log(server: ChildProcess, code: int | None, report: Report,
               quiet: bool = False) -> None:
    """Count a server's warnings and errors; show the first few and the first traceback."""
    name = server.name
    lines = server.log_text(since=server.run_offset).splitlines()  # this run's output only
    noisy = [line for line in lines if " WARNING " in line or " ERROR " in line]
    unknown = [line for line in noisy if KNOWN_NOISE not in line]
    if not quiet or unknown or code not in (0, None):
        report.fact(f"{name}: exit code {code}; {len(noisy)} warning/error log lines "
                    f"({len(noisy) - len(unknown)} of them Bolt's harmless `token will be "
                    "unused`)")
    if code not in (0, None):
        report.problem(f"{name}: exit code {code}; last log lines:\n      "
                       + "\n      ".join(lines[-30:]))
    for line in unknown[:5]:
        report.problem(f"{name} log: {line[:240]}")
    if "Traceback (most recent call last):" in lines:
        start = lines.index("Traceback (most recent call last):")
        end = start + 1
        while end < len(lines) and lines[end].startswith(" "):
            end += 1  # frames are indented; the exception line is not
        block = lines[start:end + 1]
        report.problem(f"first {name} traceback:\n      " + "\n      ".join(block[:60]))


def print_table(report: Report, sizes: Sizes, mode: str) -> None:
    w = max([28, *(len(row.label) for row in report.rows)])
    say("")
    say(f"== results ({mode}) ==")
    say(f"{'latency':<{w}} {'n':>5} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}  notes (ms)")
    for row in report.rows:
        s = row.samples
        say(f"{row.label:<{w}} {len(s):>5} {percentile(s, 50):>8.1f} {percentile(s, 90):>8.1f} "
            f"{percentile(s, 99):>8.1f} {max(s, default=float('nan')):>8.1f}  {row.note}")
    say("")
    say(f"{'CPU use':<{w}} {'wall s':>8} {'server s':>9} {'bench s':>8}  server CPU / wall")
    for row in report.rows:
        if row.cpu is not None:
            say(f"{row.label:<{w}} {row.cpu.wall:>8.2f} {row.cpu.server_cpu:>9.2f} "
                f"{row.cpu.bench_cpu:>8.2f}  {row.cpu.server_cpu / row.cpu.wall:.0%}")
    if report.rounds:
        say("")
        say("webhook ingest rounds (load generator in its own process, except 'inline'; CPU "
            f"in % of a core; machine: busy share of all {CORES} cores; others: cores busy with "
            "anything else)")
        say(f"{'round':<9} {'target':<6} {'senders':>7} {'n':>5} {'req/s':>7} {'p50':>7} "
            f"{'p99':>7} {'max':>7}  {'loadgen':>7} {'server':>6} {'bench':>5} {'machine':>7} "
            f"{'others':>6}")
        for r in report.rounds:
            res = r.result
            say(f"{r.label:<9} {r.target:<6} {r.senders:>7} {len(res.latencies_ms):>5} "
                f"{r.rate:>7.0f} {r.p(50):>7.1f} {r.p(99):>7.1f} "
                f"{max(res.latencies_ms, default=float('nan')):>7.1f}  "
                f"{res.share('loadgen'):>7.0%} {res.share('server'):>6.0%} "
                f"{res.share('bench'):>5.0%} {res.busy:>7.0%} {r.others:>6.2f}")
    say("")
    for fact in report.facts:
        say(f"- {fact}")
    say("")
    w = max(len(what) for what, _ in GOALS.values())
    say(f"{'target':<{w}} {'goal':<20} {'':<12} figure")
    goals = {g.key: g for g in report.goals}
    for key, (what, goal) in GOALS.items():
        found = goals.get(key)
        judged = verdict(found.met) if found else "not measured"
        say(f"{what:<{w}} {goal:<20} {judged:<12} {found.figure if found else ''}")
    say(f"problems: {len(report.problems)}")
    for problem in report.problems:
        say(f"  ! {problem}")


async def attempt(report: Report, name: str, work: Awaitable[Any]) -> Any:
    """Await `work`; should it fail, report that and carry on with the next scenario."""
    try:
        return await work
    except Exception as exc:  # the server may be mid-change: report, do not crash the bench
        report.problem(f"{name} failed: {type(exc).__name__}: {exc}")
        return None
