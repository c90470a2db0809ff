"""The history scenario: `/callstats` and `/callsearch` answered from the database at scale,
the chart, and what a heavy `/callstats` does to `/call`'s ack (run by bench/bench.py).

A history of `sizes.history` calls (1,000,000; 100,000 with --quick) over the last
HISTORY_DAYS days, a realistic mix (bench/seed.py --mixed: five agents, twenty people in ten
channels, six campaigns, refused attempts, outcomes, sentiments, durations, costs,
latencies, extracted fields on about half, a summary on every analyzed call, a 1 to 2 KB
transcript on about a fifth, a common word in most transcripts, a few Thai lines in some,
a rare word in exactly fifty), is stored through the store once and cached by schema and
seed (CACHE). The server (`python -m bot serve`, LOG_LEVEL=INFO, its default, so its
`... in N ms` lines are there) runs on a copy.

1. `/callstats` cases, one at a time, each `sizes.history_runs` times after a warm-up run,
   interleaved with the same aggregate as one raw SQL query on the same file from this
   process (Python's sqlite3, one read-only connection kept, on a thread of its own, as the
   server's heavy reader is): the answer rides on the ack, so the ack's latency is the
   answer's; the server's own figure is read from its log. The raw query is the closest
   single query, never the whole answer (which also has the period before, refused
   attempts, medians of duration and latency, top reasons and the extracted fields): each
   case says what its query covers.
2. `/callsearch` for a rare word, a common one, both with filters, and a Thai word; beside
   each, a bare FTS5 query on the same index for reference.
3. The chart: `calls_chart` on 30 days of the history's DayCounts in this process (warm
   median; the first, with matplotlib's import, as a fact), the first through `Drawing`
   (the worker's start included), and `/callstats 30d chart` through the server (the PNG in
   the direct message at the Slack stand-in).
4. The ack path: bursts of BURST tagged `/call` (Retell instant) alternate between nothing
   else running and LOAD_USERS each running `/callstats HEAVY` back to back.
5. (This checkout only, with the server stopped.) Where the time goes: each case's
   `Insights.report` in this process with every statement timed, and the query plan of the
   slowest statement of the cases over target.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import re
import shutil
import sqlite3
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.campaign import Arm
from bench.harness import (
    ACK_GOAL_MS,
    BURST,
    CACHE,
    CHART_GOAL_MS,
    RATIO_GOAL,
    REPO,
    SEARCH_GOAL_MS,
    SEED,
    STATS_GOAL_MS,
    USER,
    Answer,
    Bench,
    Client,
    Meter,
    Report,
    Sizes,
    bad_acks,
    percentile,
    review_log,
    say,
    schema_key,
    seed_database,
)
from bench.scenarios import reported_calls, tagged_call
from bench.seed import COMMON_WORD, RARE_CALLS, RARE_WORD, THAI_WORD
from standins.process import ChildProcess

DAY = 86_400.0
FULL_CALLS = 1_000_000  # the scale: figures under it are shown, not judged over
ZONE_USER = "America/New_York"  # the Slack stand-in's users' zone (users.info)
DM = "D" + USER.lstrip("UW")  # the stand-in's direct message with USER
CASE_BUDGET_S = 90.0  # a case's runs stop early past this (a slow case must not eat the run)
ACK_BUDGET_MS = 2000.0  # the app acks "counting calls" after this and answers by response_url
ANSWER_TIMEOUT = 300.0  # s: an answer by response_url must come within this
CHART_RUNS = 10
WORKER_RUNS = 5
HEAVY = "90d by:day fields"  # the load the ack path is measured beside
LOAD_USERS = ("U0LOAD01", "U0LOAD02")  # one /callstats at a time per person: two people
LOAD_LEAD = 0.2  # seconds the load runs before the first loaded burst
IDLE_BURSTS = 2  # bursts with nothing else running per round
LOADED_GAP = 1.0  # s between the bursts beside the load (it may last long at 1M calls)
BURST_GAP = 0.3
PLACE_TIMEOUT = 30.0
PNG_TIMEOUT = 60.0
DIAGNOSED = 2  # in-process repetitions per case for the statement timings (after a warm one)
PLANNED = 2  # query plans shown per case over target: of its slowest statements
STATS_LOG = re.compile(r"/callstats period=\S+ calls=(\d+) by=\S+ in (\d+) ms")
SEARCH_LOG = re.compile(r"/callsearch user=\S+ hits=(\d+) offset=\d+ in (\d+) ms")
SEARCH_TITLE = re.compile(r"(\d+) calls? for ")

# One raw query per case: the closest single query to the answer's aggregate.
HEADLINE = """SELECT count(*) AS calls, count(successful), coalesce(sum(successful = 1), 0),
       coalesce(sum(sentiment = 'Positive'), 0), coalesce(sum(sentiment = 'Neutral'), 0),
       coalesce(sum(sentiment = 'Negative'), 0), count(CASE WHEN duration_ms > 0 THEN 1 END),
       avg(CASE WHEN duration_ms > 0 THEN duration_ms END), coalesce(sum(cost_cents), 0)
FROM calls WHERE {where}"""
BY_AGENT = """SELECT coalesce(agent_name, agent_id, '') AS k, count(*) AS calls,
       count(CASE WHEN duration_ms > 0 THEN 1 END), count(successful),
       coalesce(sum(successful = 1), 0), avg(CASE WHEN duration_ms > 0 THEN duration_ms END),
       coalesce(sum(cost_cents), 0)
FROM calls WHERE {where} GROUP BY k ORDER BY calls DESC, k LIMIT 25"""
BY_DAY = """SELECT CAST(created_at / 86400 AS INTEGER) AS d, count(*),
       count(CASE WHEN duration_ms > 0 THEN 1 END), count(successful),
       coalesce(sum(successful = 1), 0),
       coalesce(sum(CASE WHEN duration_ms > 0 THEN duration_ms END), 0),
       coalesce(sum(cost_cents), 0)
FROM calls WHERE {where} GROUP BY d"""
OUTCOME = """CASE WHEN successful = 1 THEN 's'
     WHEN disconnection_reason IN ('dial_no_answer', 'dial_busy', 'voicemail_reached') THEN 'n'
     WHEN successful = 0 OR status IN ('error', 'not_connected') THEN 'f' ELSE 'o' END"""
CHART_DAYS = f"""SELECT CAST(created_at / 86400 AS INTEGER) AS d,
       coalesce(sum(({OUTCOME}) = 's'), 0), coalesce(sum(({OUTCOME}) = 'f'), 0),
       coalesce(sum(({OUTCOME}) = 'n'), 0), coalesce(sum(({OUTCOME}) = 'o'), 0)
FROM calls WHERE {{where}} GROUP BY d ORDER BY d"""
FIELDS = """SELECT j.key, count(*), sum(j.type = 'true'), sum(j.type = 'false'),
       avg(CASE WHEN j.type IN ('integer', 'real') THEN j.value END),
       min(CASE WHEN j.type IN ('integer', 'real') THEN j.value END),
       max(CASE WHEN j.type IN ('integer', 'real') THEN j.value END),
       count(DISTINCT CASE WHEN j.type = 'text' THEN j.value END)
FROM (SELECT extracted FROM calls WHERE {where} AND extracted IS NOT NULL
      ORDER BY created_at DESC LIMIT 200000) AS c, json_each(c.extracted) AS j
GROUP BY j.key"""
FIGURES = ("count, analyzed, successful, sentiments, connected, mean duration, cost")


def window(days: int | None, extra: str = "") -> str:
    return "call_id IS NOT NULL" + (" AND created_at >= :since" if days else "") + extra


@dataclass(frozen=True)
class StatsCase:
    text: str  # what follows /callstats
    days: int | None  # its period (None: all time)
    raw: str  # the raw query, {where} filled
    covers: str  # what the raw query computes of the answer
    params: dict[str, Any] = field(default_factory=dict)
    counted: bool = False  # the raw query's first column is the count the answer says
    chart: bool = False  # the answer is followed by a PNG in the direct message


AGENT, PERSON, CAMPAIGN = "Appointment Reminder", "U0HIST03", "Summer renewals"
HEADLINE_COVERS = (f"the headline figures ({FIGURES}) only; not the period before, refused "
                   "attempts, medians, reasons or fields")
CASES = (
    StatsCase("30d", 30, HEADLINE.format(where=window(30)), HEADLINE_COVERS, counted=True),
    StatsCase(f'30d agent:"{AGENT}"', 30, HEADLINE.format(where=window(
        30, " AND (agent_id = :agent OR lower(agent_name) = lower(:agent))")),
        HEADLINE_COVERS, {"agent": AGENT}, counted=True),
    StatsCase(f"30d user:{PERSON}", 30, HEADLINE.format(where=window(
        30, " AND user_id = :user")), HEADLINE_COVERS, {"user": PERSON}, counted=True),
    StatsCase(f'30d campaign:"{CAMPAIGN}"', 30, HEADLINE.format(where=window(
        30, " AND campaign_id = (SELECT id FROM campaigns WHERE name = :campaign)")),
        HEADLINE_COVERS, {"campaign": CAMPAIGN}, counted=True),
    StatsCase("30d by:agent", 30, BY_AGENT.format(where=window(30)),
              "the breakdown by agent only"),
    StatsCase("30d by:day", 30, BY_DAY.format(where=window(30)),
              "the breakdown by (UTC) day only"),
    StatsCase("30d fields", 30, FIELDS.format(where=window(30)),
              "per-field counts, yes/no, mean/min/max and distinct texts over the newest "
              "200,000 calls with fields (not medians or top values)"),
    StatsCase("7d", 7, HEADLINE.format(where=window(7)), HEADLINE_COVERS, counted=True),
    StatsCase("90d", 90, HEADLINE.format(where=window(90)), HEADLINE_COVERS, counted=True),
    StatsCase("all", None, HEADLINE.format(where=window(None)), HEADLINE_COVERS,
              counted=True),
    StatsCase("30d chart", 30, CHART_DAYS.format(where=window(30)),
              "calls per (UTC) day by outcome only (the chart's bars)", chart=True),
)
# (label, what follows /callsearch, the bare FTS5 query beside it, judged as)
SEARCHES = (
    ("rare", RARE_WORD, "SELECT rowid, bm25(calls_fts, 2.0, 1.0) AS r FROM calls_fts "
                        "WHERE calls_fts MATCH :q ORDER BY r LIMIT 11", "searchRare"),
    ("common", COMMON_WORD, "SELECT rowid FROM calls_fts WHERE calls_fts MATCH :q "
                            "ORDER BY rowid DESC LIMIT 11", "searchCommon"),
    ("rare, 30d", f"{RARE_WORD} 30d", None, None),
    ("common, one person", f"{COMMON_WORD} user:{PERSON}", None, None),
    ("common, 30d + agent", f'{COMMON_WORD} 30d agent:"{AGENT}"', None, None),
    ("Thai", THAI_WORD, "SELECT rowid FROM calls_fts WHERE calls_fts MATCH :q "
                        "ORDER BY rowid DESC LIMIT 11", None),
)


def seed_key() -> str:
    """Names the generator (bench/seed.py): a changed mix is seeded anew."""
    return hashlib.sha256(SEED.read_bytes()).hexdigest()[:8]


async def mixed_history(tree: Path, rows: int, report: Report) -> Path:
    """The mixed history of `rows` calls for `tree`'s schema, seeded once and kept under
    CACHE (keyed by schema, generator and size)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"mixed-{schema_key(tree)}-{seed_key()}-{rows}.db"
    if path.exists():
        age = (time.time() - path.stat().st_mtime) / 3600
        report.fact(f"mixed history of {rows:,} calls reused from {path} (seeded {age:.1f} h "
                    "ago; its days are counted back from then)")
        return path
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    say(f"seeding a mixed history of {rows:,} calls into {path} (kept for later runs) ...")
    done = await seed_database(partial, tree, history=rows, mixed=True)
    partial.rename(path)
    report.fact(f"seeded a mixed history of {done['added']:,} calls through the store in "
                f"{done['seconds']:.1f} s (schema v{done['schema']}), "
                f"{path.stat().st_size / 2**20:.0f} MiB, kept as {path}")
    return path


class RawReader:
    """One read-only connection on a thread of its own, kept across runs (as the server's
    heavy reader): the raw side of each comparison."""

    def __init__(self, path: Path) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="bench-raw")
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                     check_same_thread=False)

    def _timed(self, sql: str, params: dict[str, Any]) -> tuple[float, list[Any]]:
        started = time.perf_counter()
        rows = self._conn.execute(sql, params).fetchall()
        return (time.perf_counter() - started) * 1000, rows

    async def run(self, sql: str, params: dict[str, Any]) -> tuple[float, list[Any]]:
        """(ms, rows), timed in the thread (no hop)."""
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._timed, sql, params)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._conn.close()


def medians(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def judged(ok: bool, full: bool) -> bool | None:
    """Met or not at the issue's scale; under it a miss still counts, a pass is not judged."""
    return ok if full or not ok else None


@dataclass(frozen=True)
class Asked:
    """A slash command and its answer: on the ack, or (past the ack budget, the ack saying
    it is counting) posted to its response_url."""

    ack: Answer
    ms: float  # from the command to the answer (nan: none came)
    body: Any  # the answer's JSON
    late: bool  # answered through response_url


@dataclass
class CaseResult:
    case: StatsCase
    answers: list[float] = field(default_factory=list)  # ms to the answer
    acks: list[float] = field(default_factory=list)
    late: int = 0  # answers that came by response_url
    served: list[float] = field(default_factory=list)  # the server's own `in N ms`
    raws: list[float] = field(default_factory=list)
    pngs: list[float] = field(default_factory=list)  # command to PNG at the stand-in, s
    first_ms: float = float("nan")  # the warm-up run's answer
    counts: str = ""

    @property
    def ratio(self) -> float:
        return medians(self.answers) / medians(self.raws)


class HistoryRun:
    def __init__(self, bench: Bench, server: ChildProcess, db: Path, sizes: Sizes) -> None:
        self.bench = bench
        self.server = server
        self.db = db
        self.sizes = sizes
        self.report = bench.report
        self.client = Client(server.url, bench.session, bench.slack)
        self.raw = RawReader(db)
        self.log_at = server.log_size()
        self.n = 0
        self.first_png = float("nan")  # the server's first chart: its worker started for it

    def logged(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        """The last line matching `pattern` the server logged since the last look."""
        text = self.server.log_text(since=self.log_at)
        self.log_at += len(text.encode())
        found = list(pattern.finditer(text))
        return found[-1] if found else None

    async def slash(self, command: str, text: str, user: str = USER) -> Asked:
        """`command` and its answer, on the ack or (an ack without blocks at the ack budget)
        by response_url."""
        self.n += 1
        key, slack = f"h{self.n}", self.bench.slack
        started = time.perf_counter()
        try:
            ack = await self.client.slash(command, text, key, user=user)
        except (TimeoutError, aiohttp.ClientError) as exc:  # the server is stuck or gone
            ack = Answer(0, (time.perf_counter() - started) * 1000, type(exc).__name__)
        # Bolt answers an ack of text alone as text/plain: the body is then a str.
        words_only = isinstance(ack.body, str) or (
            isinstance(ack.body, dict) and not ack.body.get("blocks"))
        if ack.status != 200 or not words_only or ack.ms < ACK_BUDGET_MS * 0.95:
            return Asked(ack, ack.ms, ack.body, False)
        try:
            await slack.wait_for(lambda: bool(slack.responses_for(key)), timeout=ANSWER_TIMEOUT)
        except AssertionError:
            return Asked(ack, float("nan"), ack.body, True)
        return Asked(ack, (time.perf_counter() - started) * 1000, slack.responses_for(key)[0],
                     True)

    # -- /callstats ------------------------------------------------------------------------

    async def app_stats(self, case: StatsCase, result: CaseResult | None) -> Asked:
        slack = self.bench.slack
        pngs = len(slack.uploaded(DM))
        sent = time.perf_counter()
        asked = await self.slash("/callstats", case.text)
        served = self.logged(STATS_LOG)
        if case.chart:
            with contextlib.suppress(AssertionError):
                await slack.wait_for(lambda: len(slack.uploaded(DM)) > pngs,
                                     timeout=PNG_TIMEOUT)
            if len(slack.uploaded(DM)) > pngs:
                took = time.perf_counter() - sent
                if result is None:
                    self.first_png = took
                else:
                    result.pngs.append(took)
        if result is not None:
            result.answers.append(asked.ms)
            result.acks.append(asked.ack.ms)
            result.late += asked.late
            if served is not None:
                result.served.append(float(served.group(2)))
        return asked

    async def raw_stats(self, case: StatsCase) -> tuple[float, list[Any]]:
        params = dict(case.params)
        if case.days:
            params["since"] = time.time() - case.days * DAY
        return await self.raw.run(case.raw, params)

    def check(self, case: StatsCase, asked: Asked, rows: list[Any]) -> str:
        """A problem with the answer (none: ""): none, no blocks, another count than the
        raw query's."""
        body = asked.body
        if asked.ack.status != 200 or not isinstance(body, dict) or not body.get("blocks"):
            late = " (none by response_url)" if asked.late else ""
            return f"HTTP {asked.ack.status}{late} {str(body)[:200]}"
        if not case.counted:
            return ""
        said, raw = reported_calls(body), int(rows[0][0]) if rows else -1
        if said is None or abs(said - raw) > max(2, raw // 10_000):
            return f"the answer counts {said} calls, the raw query {raw}: {body.get('text')!r}"
        return ""

    async def stats_case(self, case: StatsCase) -> CaseResult:
        result = CaseResult(case)
        first = await self.app_stats(case, None)  # opens the heavy reader, warms its cache
        result.first_ms = first.ms
        await self.raw_stats(case)
        problems: list[str] = []
        started = time.perf_counter()
        for i in range(self.sizes.history_runs):
            if i % 2:  # either side first in turn
                raw_ms, rows = await self.raw_stats(case)
                answer = await self.app_stats(case, result)
            else:
                answer = await self.app_stats(case, result)
                raw_ms, rows = await self.raw_stats(case)
            result.raws.append(raw_ms)
            if problem := self.check(case, answer, rows):
                problems.append(problem)
            if case.counted and rows:
                result.counts = f"{int(rows[0][0]):,} calls"
            if time.perf_counter() - started > CASE_BUDGET_S:
                self.report.fact(f"/callstats {case.text}: stopped after {i + 1} runs "
                                 f"({CASE_BUDGET_S:.0f} s)")
                break
        for problem in problems[:2]:
            self.report.problem(f"/callstats {case.text}: {problem}")
        served = (f"server p50 {medians(result.served):.0f} ms" if result.served
                  else "no server log line")
        png = (f"; PNG in the DM p50 {medians(result.pngs):.2f} s, max "
               f"{max(result.pngs):.2f} s, first {self.first_png:.2f} s" if result.pngs else "")
        late = (f"; {result.late} of {len(result.answers)} by response_url after an ack of p50 "
                f"{medians(result.acks):.0f} ms" if result.late else "")
        self.report.add(f"/callstats {case.text}", result.answers,
                        f"{served}; raw p50 {medians(result.raws):.1f} ms; "
                        f"{result.ratio:.2f} x raw; first {result.first_ms:.0f} ms"
                        + (f"; {result.counts}" if result.counts else "") + late + png)
        self.report.add(f"  raw SQL, {case.text}", result.raws, case.covers)
        if case.chart and len(result.pngs) < len(result.answers):
            self.report.problem(f"/callstats {case.text}: "
                                f"{len(result.answers) - len(result.pngs)} of "
                                f"{len(result.answers)} charts never reached the DM")
        return result

    # -- /callsearch -----------------------------------------------------------------------

    async def search(self, label: str, text: str, bare: str | None) -> list[float]:
        acks: list[float] = []
        served: list[float] = []
        raws: list[float] = []
        hits: set[int] = set()
        bad: list[str] = []
        first = await self.slash("/callsearch", text)
        self.logged(SEARCH_LOG)
        word = text.split()[0]
        fts = '"' + word + '"'
        for i in range(self.sizes.history_runs):
            if bare is not None and i % 2:
                raws.append((await self.raw.run(bare, {"q": fts}))[0])
            asked = await self.slash("/callsearch", text)
            if bare is not None and not i % 2:
                raws.append((await self.raw.run(bare, {"q": fts}))[0])
            acks.append(asked.ms)
            if (line := self.logged(SEARCH_LOG)) is not None:
                served.append(float(line.group(2)))
            body = asked.body
            if asked.ack.status != 200 or not isinstance(body, dict) or not body.get("blocks"):
                bad.append(f"HTTP {asked.ack.status} {str(body)[:200]}")
                continue
            title = SEARCH_TITLE.match(str(body.get("text") or ""))
            hits.add(int(title.group(1)) if title else 0)
        for problem in bad[:2]:
            self.report.problem(f"/callsearch {text}: {problem}")
        if hits == {0}:
            self.report.problem(f"/callsearch {text}: no call found")
        note = (f"server p50 {medians(served):.0f} ms; " if served else "") + (
            f"bare FTS5 query p50 {medians(raws):.1f} ms; " if raws else "") + (
            f"hits on the page {sorted(hits)}; first {first.ms:.0f} ms")
        self.report.add(f"/callsearch {label}", acks, note)
        return acks

    # -- the chart -------------------------------------------------------------------------

    async def thirty_days(self) -> list[Any]:
        """The last 30 (UTC) days of the history as the chart's DayCounts."""
        from storage.models import DayCounts

        _, rows = await self.raw.run(CHART_DAYS.format(where=window(30)),
                                     {"since": time.time() - 30 * DAY})
        return [DayCounts(time.strftime("%Y-%m-%d", time.gmtime(int(d) * DAY)), int(s),
                          int(f), int(n), int(o)) for d, s, f, n, o in rows][-30:]

    async def chart(self) -> None:
        from bot.render.chart import calls_chart
        from bot.runtime.drawing import Drawing

        report = self.report
        days = await self.thirty_days()

        def draw() -> tuple[float, int]:
            started = time.perf_counter()
            png = calls_chart(days, title="Calls, last 30 days", lang="en")
            return (time.perf_counter() - started) * 1000, len(png)

        first, size = await asyncio.to_thread(draw)
        warm = [(await asyncio.to_thread(draw))[0] for _ in range(CHART_RUNS)]
        report.add("calls chart, 30 days, in-process", warm,
                   f"{len(days)} days; first (matplotlib imported) {first:.0f} ms; "
                   f"PNG {size / 1024:.0f} KiB")
        median = medians(warm)
        report.goal("chart", f"{median:.0f} ms (median of {len(warm)} warm draws, in this "
                    f"process; the first, matplotlib's import included, {first:.0f} ms)",
                    median <= CHART_GOAL_MS)
        drawing = Drawing()
        try:
            started = time.perf_counter()
            await drawing.chart(days, title="Calls, last 30 days", lang="en")
            cold = (time.perf_counter() - started) * 1000
            worker: list[float] = []
            for _ in range(WORKER_RUNS):
                started = time.perf_counter()
                await drawing.chart(days, title="Calls, last 30 days", lang="en")
                worker.append((time.perf_counter() - started) * 1000)
        finally:
            drawing.close()
        report.fact(f"chart through Drawing in this process (a spawned worker, as the server "
                    f"draws it; the worker imports the bench's main module too): first "
                    f"{cold:.0f} ms with the worker's start and matplotlib's import, then p50 "
                    f"{medians(worker):.0f} ms over {len(worker)}; in the server the first "
                    f"/callstats 30d chart had its PNG in the DM {self.first_png:.2f} s after "
                    "the command")

    # -- the ack path ----------------------------------------------------------------------

    async def burst(self, arm: Arm, kind: str) -> None:
        """BURST tagged /call at once; waits until every create reached Retell."""
        retell = self.bench.retell
        self.n += 1
        tags = [f"h{kind}{self.n}x{i}" for i in range(BURST)]
        sent: dict[str, float] = {}
        answers = await asyncio.gather(*(tagged_call(self.client, t, sent) for t in tags))
        deadline = time.perf_counter() + PLACE_TIMEOUT
        while time.perf_counter() < deadline:
            if all(t in retell.arrived for t in tags):
                break
            await asyncio.sleep(0.02)
        missing = sum(t not in retell.arrived for t in tags)
        arm.add(list(answers), missing, [retell.arrived[t] - sent[t] for t in tags
                                         if t in retell.arrived])

    async def ack_path(self) -> tuple[Arm, Arm, list[float]]:
        """Rounds of IDLE_BURSTS bursts with nothing else running, then, while each of
        LOAD_USERS asks HEAVY once (both at once), bursts one after another until both are
        answered (by response_url when late): so the bursts meet every phase of the heavy
        answer, its queries on the heavy reader's thread and its Python on the event loop.
        The next round starts once the answers are in, so its idle bursts are idle."""
        rounds = self.sizes.bursts
        say(f"  ack path: {rounds} rounds of {IDLE_BURSTS} {BURST}-bursts of /call with nothing "
            f"else, then bursts until {len(LOAD_USERS)} /callstats {HEAVY} are answered")
        idle, loaded = Arm("idle"), Arm("heavy /callstats running")
        heavy: list[float] = []
        acks: list[float] = []
        self.bench.retell.create_delay = 0.0
        meter = Meter(self.server.pid)
        for _ in range(rounds):
            for _ in range(IDLE_BURSTS):
                await self.burst(idle, "i")
                await asyncio.sleep(BURST_GAP)
            loads = [asyncio.create_task(self.slash("/callstats", HEAVY, user=user))
                     for user in LOAD_USERS]
            try:
                await asyncio.sleep(LOAD_LEAD)
                while True:
                    await self.burst(loaded, "l")
                    if all(task.done() for task in loads):
                        break
                    await asyncio.sleep(LOADED_GAP)
            finally:
                for asked in await asyncio.gather(*loads):
                    heavy.append(asked.ms)
                    acks.append(asked.ack.ms)
            await asyncio.sleep(BURST_GAP)
        usage = meter.read()
        idle.add_rows(self.report, "nothing else running")
        loaded.add_rows(self.report, f"/callstats {HEAVY} x{len(LOAD_USERS)} running", usage)
        self.report.add(f"/callstats {HEAVY}, as load", heavy,
                        f"{len(LOAD_USERS)} at once, {rounds} times; ack p50 "
                        f"{medians(acks):.0f} ms")
        return idle, loaded, heavy

    def close(self) -> None:
        self.raw.close()


# -- where the time goes (in this process, this checkout's store) -----------------------------

def statement(sql: str, params: dict[str, Any]) -> str:
    """A short name for one of the store's statements."""
    text = " ".join(sql.split())
    before = "before: " if "f_until" in params else ""  # the period before (rolling periods)
    for needle, name in (("json_each", "fields"), ("AS q,", "per quarter hour"),
                         ("ORDER BY duration_ms", "median duration"),
                         ("ORDER BY latency_ms", "median latency"),
                         ("count(latency_ms)", "latency count"),
                         ("AS reason", "top reasons"), ("call_id IS NULL", "refused attempts"),
                         ("GROUP BY k", "breakdown"), ("AS calls", "figures")):
        if needle in text:
            return before + name
    return before + text[:40]


async def diagnose(db: Path, results: list[CaseResult], report: Report) -> None:
    """Each case's `Insights.report` here, every statement timed (median of DIAGNOSED runs),
    and the plan of the slowest statement of each case over target."""
    from bot.calls.insights import Insights
    from bot.input.stats_query import parse_stats_query
    from storage.sqlite import SQLiteStore
    from storage.sqlite.connection import _HeavyReader

    class Timed(_HeavyReader):
        def __init__(self, path: Path) -> None:
            super().__init__(path)
            self.seen: list[tuple[str, dict[str, Any], float]] = []

        def _run(self, sql: str, params: dict[str, Any]) -> list[sqlite3.Row]:
            started = time.perf_counter()
            rows = super()._run(sql, params)
            self.seen.append((sql, params, (time.perf_counter() - started) * 1000))
            return rows

    store = SQLiteStore(db)
    await store.open()
    planned: set[tuple[str, str]] = set()
    # The stand-ins hold every message of the run: no collection may walk them mid-report.
    gc.freeze()
    try:
        insights = Insights(store)
        for result in results:
            case = result.case
            timed = Timed(db)
            store._heavy = timed
            totals: list[float] = []
            per: dict[str, list[float]] = {}
            for i in range(DIAGNOSED + 1):  # the first warms this connection's cache
                timed.seen.clear()
                query = parse_stats_query(case.text, zone=ZONE_USER, now=time.time())
                started = time.perf_counter()
                await insights.report(query)
                if i:
                    totals.append((time.perf_counter() - started) * 1000)
                    for sql, params, ms in timed.seen:
                        per.setdefault(statement(sql, params), []).append(ms)
            # A name is one statement per report (the period before's are named apart).
            parts = sorted(((medians(v), k) for k, v in per.items()), reverse=True)
            in_sql = sum(ms for ms, _ in parts)
            report.fact(f"in-process Insights.report, /callstats {case.text}: p50 "
                        f"{medians(totals):.0f} ms (answer p50 {medians(result.answers):.0f} ms)"
                        f"; {len(timed.seen)} statements take {in_sql:.0f} ms, the rest "
                        f"(Python) {medians(totals) - in_sql:.0f} ms; slowest: "
                        + ", ".join(f"{k} {ms:.0f}" for ms, k in parts[:6]) + " ms")
            over = result.ratio > RATIO_GOAL or (case.text == "30d" and medians(
                result.answers) > STATS_GOAL_MS)
            slowest = sorted(timed.seen, key=lambda seen: seen[2], reverse=True)
            for sql, params, _ in slowest[:PLANNED] if over else ():
                plan = "; ".join(str(r[3]) for r in timed._run("EXPLAIN QUERY PLAN " + sql,
                                                               params))
                name = statement(sql, params)
                if (name, plan) not in planned:
                    planned.add((name, plan))
                    report.fact(f"  plan of {name} ({case.text}): {plan}")
            await timed.close()
            store._heavy = None
    finally:
        gc.unfreeze()
        await store.close()


def copy_database(source: Path, to: Path) -> None:
    """The file and its WAL, if it has one (the server writes to its copy)."""
    for suffix in ("", "-wal"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{to}{suffix}")


# -- the scenario ---------------------------------------------------------------------------

async def bench_history(bench: Bench, sizes: Sizes) -> None:
    report, rows = bench.report, sizes.history
    full = rows >= FULL_CALLS
    say(f"history: /callstats, /callsearch and the chart over {rows:,} mixed calls")
    source = await mixed_history(bench.tree, rows, report)
    db = bench.workdir / "history.db"
    started = time.perf_counter()
    await asyncio.to_thread(copy_database, source, db)
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        total, texts, fields, indexed = conn.execute(
            "SELECT count(*), count(transcript), count(extracted), "
            "(SELECT count(*) FROM calls_fts WHERE calls_fts MATCH :rare) FROM calls",
            {"rare": f'"{RARE_WORD}"'}).fetchone()
    report.fact(f"history copy for the server: {db.stat().st_size / 2**20:.0f} MiB in "
                f"{time.perf_counter() - started:.1f} s; {total:,} rows, {texts:,} transcripts, "
                f"{fields:,} with extracted fields, {indexed} indexed with {RARE_WORD!r} "
                f"(planted in {RARE_CALLS})")
    server = bench.server("server-history", db=db, env={"LOG_LEVEL": "INFO"})
    server.spawn()
    results: list[CaseResult] = []
    searches: dict[str, list[float]] = {}
    try:
        report.fact(f"server healthy on the history in {await server.wait_healthy():.2f} s")
        run = HistoryRun(bench, server, db, sizes)
        try:
            say(f"  /callstats: {len(CASES)} cases x {sizes.history_runs} runs, each beside "
                "its raw query")
            for case in CASES:
                results.append(await run.stats_case(case))
            say(f"  /callsearch: {len(SEARCHES)} searches x {sizes.history_runs} runs")
            for label, text, bare, _ in SEARCHES:
                searches[label] = await run.search(label, text, bare)
            say("  chart")
            await run.chart()
            idle, loaded, _ = await run.ack_path()
        finally:
            run.close()
        hwm = server.status_kib("VmHWM")
    finally:
        review_log(server, await server.stop(), report)
    if hwm is not None:
        report.fact(f"history server peak RSS (VmHWM) {hwm * 1024 / 1e6:.1f} MB")

    plain = results[0]
    p50 = medians(plain.answers)
    late = f"{plain.late} by response_url; " if plain.late else ""
    report.goal("hist30", f"{p50:.0f} ms (median of {len(plain.answers)} answers; {late}server "
                f"{medians(plain.served):.0f} ms; p90 {percentile(plain.answers, 90):.0f} ms; "
                f"{rows:,} calls)", judged(p50 <= STATS_GOAL_MS, full))
    worst = max(results, key=lambda r: r.ratio)
    report.goal("histRatio", f"worst {worst.ratio:.2f} x ({worst.case.text}); "
                + ", ".join(f"{r.case.text} {r.ratio:.1f}" for r in results),
                judged(all(r.ratio <= RATIO_GOAL for r in results), full))
    for label, _, _, key in SEARCHES:
        if key is not None:
            p50 = medians(searches[label])
            report.goal(key, f"{p50:.0f} ms (median of {len(searches[label])}; p90 "
                        f"{percentile(searches[label], 90):.0f} ms; {rows:,} calls)",
                        judged(p50 <= SEARCH_GOAL_MS, full))
    for arm in (idle, loaded):
        bad_acks(arm.acks, report, f"/call ack ({arm.label})")
        if arm.missing:
            report.problem(f"/call ({arm.label}): {arm.missing} commands never reached Retell")
    # Judged on the pooled p99 of every loaded ack, not the median of the bursts' p99s: a
    # loop held up by the answer's Python shows in a few bursts only.
    pooled, pooled_idle = percentile(loaded.ms, 99), percentile(idle.ms, 99)
    clean = not loaded.missing and not any(a.status != 200 or a.body for a in loaded.acks)
    report.goal("ackH", f"pooled p99 {pooled:.1f} ms over {len(loaded.acks)} acks in "
                f"{len(loaded.p99s)} bursts, idle {pooled_idle:.1f} ms in {len(idle.p99s)} "
                f"({pooled / pooled_idle:.2f} x); {loaded.text()}; {idle.text()}",
                judged(pooled <= ACK_GOAL_MS and clean, full))
    if bench.tree == REPO:
        say("  where the time goes: each case in this process, statements timed")
        await diagnose(db, results, report)
    else:
        report.fact(f"statement timings: this checkout only ({bench.tree} has its own store)")

