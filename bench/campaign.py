"""The campaign scenario: how fast a big campaign's rows are admitted, how long its preview
takes, and what a running campaign does to /call's ack (run by bench/bench.py).

One server (Retell's rate 1000 calls/s, a campaign may have 10,000 calls at once, the
global cap far away, any hour, the card refreshed every 2 s), one database, Retell instant:

1. idle: bursts of BURST tagged /call with nothing else running, for the side-by-side;
2. a `sizes.campaign_rows`-row campaign through `/callcampaign`'s modal (a CSV the app
   fetches from the Slack stand-in), concurrency 10,000: submit -> preview posted, then
   Start -> every row's create-phone-call at the Retell stand-in (rows admitted per
   second), with /call bursts one after another all along;
3. its calls end (a signed call_ended webhook each): the campaign is done, its results
   file posted;
4. a second campaign, concurrency STEADY_CONCURRENCY, whose calls end STEADY_HOLD s after
   they are created, so the runner is woken and places rows all the time: /call bursts
   alternate between it running and it paused (its card's Pause / Resume), the ratio of the
   two being the figure (the box is noisy; both arms see the same noise).

Rows are told apart at Retell by a `bench` column (a dynamic variable, "k-17"); /call by a
`bench=` variable, as in the placement scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import phonenumbers

from bench.harness import (
    ACK_GOAL_MS,
    BURST,
    CAMPAIGN_START,
    CHANNEL,
    USER,
    Answer,
    Bench,
    Client,
    Meter,
    Report,
    Sizes,
    Usage,
    bad_acks,
    block_action,
    button_value,
    db_scalar,
    percentile,
    read_db,
    review_log,
    say,
    view_submission,
)
from bench.scenarios import tagged_call
from standins.process import ChildProcess

CAMPAIGN_MAX = 10_000  # CALLBOT_CAMPAIGN_MAX_CONCURRENCY, and the big campaign's concurrency
CAMPAIGN_ENV = {
    "CALLBOT_RETELL_CALLS_PER_SECOND": "1000",
    "CALLBOT_MAX_CONCURRENT_CALLS": "100000",
    "CALLBOT_CAMPAIGN_MAX_CONCURRENCY": str(CAMPAIGN_MAX),
    "CALLBOT_CALLING_HOURS": "any",
    "CALLBOT_CAMPAIGN_CARD_SECONDS": "2",
}
FULL_ROWS = 10_000  # the campaign size: acks during admission are judged at this size
STEADY_ROWS = 3_000  # rows of the second campaign (more than the rounds use up)
STEADY_CONCURRENCY = 50
# Seconds each of its calls lasts, drawn evenly (so its calls do not end in waves): about
# STEADY_CONCURRENCY / mean rows a second to place.
STEADY_HOLD = (0.5, 1.5)
BURST_GAP = 0.3  # seconds between /call bursts
PAUSED_SETTLE = 2.0  # after Pause: its last calls ended, and a runner pass saw nothing running
PLACE_TIMEOUT = 30.0  # a /call burst's creates must reach Retell within this
PREVIEW_TIMEOUT = 180.0
ADMIT_STALL = 60.0  # no row placed for this long: admission is given up
DONE_TIMEOUT = 300.0
WEBHOOK_SENDERS = 16
POLL = 0.05
# The modal's input blocks (bot/input/campaign_form.py); action ids are read from the view.
NAME_BLOCK, FILE_BLOCK = "campaign_name", "campaign_file"
CONCURRENCY_BLOCK, ATTEMPTS_BLOCK, SPACING_BLOCK = (
    "campaign_concurrency", "campaign_attempts", "campaign_spacing")
PERSONAL = {phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}


def callees(n: int, area: int, skip: int = 0) -> list[str]:
    """`n` distinct E.164 numbers that phonenumbers takes for valid personal US numbers,
    in area code `area` from exchange 200 on, after the first `skip` such numbers."""
    found: list[str] = []
    for exchange in range(200, 1000):
        for line in range(10_000):
            text = f"+1{area}{exchange}{line:04d}"
            number = phonenumbers.parse(text, None)
            if phonenumbers.is_valid_number(number) and \
                    phonenumbers.number_type(number) in PERSONAL:
                if skip:
                    skip -= 1
                    continue
                found.append(text)
                if len(found) == n:
                    return found
    raise RuntimeError(f"only {len(found)} valid numbers in area code {area}")


def contacts_csv(numbers: list[str], family: str) -> bytes:
    """The uploaded contact list; each row's `bench` variable tells its call at Retell."""
    lines = ["phone,customer_name,bench"]
    lines += [f"{n},Customer {i},{family}-{i}" for i, n in enumerate(numbers)]
    return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True)
class Launched:
    """A campaign as previewed: its id and card, and how long the preview took."""

    id: int
    ts: str  # the card's
    family: str
    rows: int
    preview_s: float  # view_submission sent -> preview message posted
    submit_ms: float  # the submission's ack
    upload_bytes: int


@dataclass
class Arm:
    """/call bursts under one condition."""

    label: str
    acks: list[Answer] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)
    p50s: list[float] = field(default_factory=list)
    missing: int = 0  # commands whose create never reached Retell
    places: list[float] = field(default_factory=list)  # s from each command to its create
    place_p99s: list[float] = field(default_factory=list)  # ms, per burst

    def add(self, burst: list[Answer], missing: int, places: list[float]) -> None:
        self.acks += burst
        self.places += places
        self.place_p99s.append(percentile(places, 99) * 1000)
        self.p99s.append(percentile([a.ms for a in burst], 99))
        self.p50s.append(percentile([a.ms for a in burst], 50))
        self.missing += missing

    @property
    def ms(self) -> list[float]:
        return [a.ms for a in self.acks]

    @property
    def p99(self) -> float:
        """The median of the bursts' p99s (as the /call scenario judges it)."""
        return statistics.median(self.p99s) if self.p99s else float("nan")

    def add_rows(self, report: Report, label: str, usage: Usage | None = None,
                 note: str = "") -> None:
        """Its acks and its command-to-create times, as two rows of the table."""
        report.add(f"/call ack, {label}", self.ms,
                   f"{len(self.p99s)} bursts; {self.missing} never reached Retell"
                   + (f"; {note}" if note else ""), usage)
        per = self.place_p99s
        worst = max(range(len(per)), key=per.__getitem__, default=0)
        report.add(f"/call to create, {label}", [x * 1000 for x in self.places],
                   "p99 per burst " + (", ".join(f"{x:.0f}" for x in per) if len(per) <= 12
                                       else f"median {statistics.median(per):.0f}, worst "
                                            f"{per[worst]:.0f} (burst {worst + 1} of {len(per)})"))

    def text(self) -> str:
        if not self.p99s:
            return f"{self.label}: no burst"
        return (f"{self.label} {self.p99:.1f} ms (median of {len(self.p99s)} bursts' p99; "
                f"p50 {statistics.median(self.p50s):.1f}, pooled p99 "
                f"{percentile(self.ms, 99):.1f}, worst burst {max(self.p99s):.1f} ms; command "
                f"to create p99 {percentile(self.places, 99):.2f} s)")


class Endings:
    """Ends calls as Retell reports them: a signed call_ended webhook each, WEBHOOK_SENDERS
    at once; the answers' times and the wrong answers are kept."""

    def __init__(self, bench: Bench, server: ChildProcess) -> None:
        self.bench = bench
        self.url = server.url + "/retell/webhook"
        self.gate = asyncio.Semaphore(WEBHOOK_SENDERS)
        self.ms: list[float] = []
        self.wrong: Counter[str] = Counter()
        self.tasks: set[asyncio.Task[None]] = set()

    async def end(self, call_id: str) -> None:
        retell = self.bench.retell
        async with self.gate:
            body = retell.event_body(call_id, "call_ended")
            started = time.perf_counter()
            try:
                async with self.bench.session.post(
                        self.url, data=body.encode(),
                        headers=retell.webhook_headers(body)) as resp:
                    text, status = await resp.text(), resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.wrong[type(exc).__name__] += 1
                return
            self.ms.append((time.perf_counter() - started) * 1000)
            if not 200 <= status < 300:
                self.wrong[f"{status} {text[:100]}"] += 1

    def start(self, call_id: str) -> None:
        task = asyncio.create_task(self.end(call_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def finish(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks))


class CampaignRun:
    def __init__(self, bench: Bench, server: ChildProcess, sizes: Sizes) -> None:
        self.bench = bench
        self.server = server
        self.sizes = sizes
        self.report = bench.report
        self.slack = bench.slack
        self.retell = bench.retell
        self.db = bench.workdir / "campaign.db"
        self.client = Client(server.url, bench.session, bench.slack)
        self.bursts = 0

    # -- /call -----------------------------------------------------------------------------

    async def placed(self, tags: list[str], within: float = PLACE_TIMEOUT) -> int:
        """Wait until every tagged /call's create reached Retell; how many never did."""
        deadline = time.perf_counter() + within
        while time.perf_counter() < deadline:
            if all(t in self.retell.arrived for t in tags):
                return 0
            await asyncio.sleep(0.02)
        return sum(t not in self.retell.arrived for t in tags)

    async def call(self, tag: str, sent: dict[str, float]) -> Answer:
        """A tagged /call; a request that fails or times out (60 s: the server is stuck)
        is a bad ack (status 0), timed to when it gave up, and the run goes on."""
        began = time.perf_counter()
        try:
            return await tagged_call(self.client, tag, sent)
        except (TimeoutError, aiohttp.ClientError) as exc:
            return Answer(0, (time.perf_counter() - began) * 1000, type(exc).__name__)

    async def burst(self, arm: Arm, kind: str) -> None:
        """BURST tagged /call at once; waits until all are placed."""
        self.bursts += 1
        tags = [f"c{kind}{self.bursts}x{i}" for i in range(BURST)]
        sent: dict[str, float] = {}
        answers = await asyncio.gather(*(self.call(t, sent) for t in tags))
        missing = await self.placed(tags)
        arm.add(list(answers), missing, [self.retell.arrived[t] - sent[t] for t in tags
                                         if t in self.retell.arrived])

    # -- the campaign's Slack side ---------------------------------------------------------

    async def launch(self, name: str, numbers: list[str], family: str,
                     concurrency: int) -> Launched:
        """`/callcampaign`, the modal submitted with the CSV; the preview posted."""
        slack = self.slack
        opened = len(slack.views_opened)
        ack = await self.client.slash("/callcampaign", "", f"cc-{family}")
        if ack.status != 200 or ack.body:
            raise RuntimeError(f"/callcampaign answered HTTP {ack.status} {str(ack.body)[:200]}")
        await slack.wait_for(lambda: len(slack.views_opened) > opened, timeout=10)
        view = slack.views_opened[-1]
        content = contacts_csv(numbers, family)
        file = slack.add_file(f"{family}-contacts.csv", content, user=USER)
        given: dict[str, dict[str, Any]] = {
            NAME_BLOCK: {"type": "plain_text_input", "value": name},
            FILE_BLOCK: {"type": "file_input", "files": [file]},
            CONCURRENCY_BLOCK: {"type": "number_input", "value": str(concurrency)},
            ATTEMPTS_BLOCK: {"type": "number_input", "value": "1"},
            SPACING_BLOCK: {"type": "number_input", "value": "60"},
        }
        values: dict[str, Any] = {}
        for block in view.get("blocks") or ():
            block_id = block.get("block_id")
            if block_id in given:
                values[block_id] = {block["element"]["action_id"]: given[block_id]}
        if len(values) != len(given):
            raise RuntimeError(f"the campaign modal lacks {sorted(set(given) - set(values))}")
        cards = len(slack.campaign_cards)
        started = time.perf_counter()
        submitted = await self.client.interactive(view_submission(view, values))
        if submitted.status != 200 or submitted.body:
            raise RuntimeError(f"campaign modal submission answered HTTP {submitted.status} "
                               f"{str(submitted.body)[:300]}")
        try:
            await slack.wait_for(lambda: len(slack.campaign_cards) > cards,
                                 timeout=PREVIEW_TIMEOUT)
        except AssertionError:
            raise RuntimeError(f"no preview of {len(numbers):,} rows within "
                               f"{PREVIEW_TIMEOUT:.0f} s; Slack saw:\n"
                               + slack.summary()[-1500:]) from None
        at, card = slack.campaign_cards[-1]
        value = button_value(card, CAMPAIGN_START)
        if value is None or not value.isdigit():
            raise RuntimeError(f"the preview's Start button carries {value!r}")
        return Launched(int(value), str(card["ts"]), family, len(numbers), at - started,
                        submitted.ms, len(content))

    async def press(self, action: str, campaign: Launched) -> Answer:
        """A button on the campaign's card, by its owner."""
        began = time.perf_counter()
        try:
            answer = await self.client.interactive(block_action(
                action, str(campaign.id), message_ts=campaign.ts,
                response_url=self.slack.response_url(f"{action}-{campaign.id}")))
        except (TimeoutError, aiohttp.ClientError) as exc:
            answer = Answer(0, (time.perf_counter() - began) * 1000, type(exc).__name__)
        if answer.status != 200 or answer.body:
            self.report.problem(f"{action} answered HTTP {answer.status} after "
                                f"{answer.ms:.0f} ms: {str(answer.body)[:200]}")
        return answer

    def status(self, campaign: Launched) -> str:
        return str(db_scalar(self.db, "SELECT status FROM campaigns WHERE id = ?",
                             (campaign.id,)))

    def rows_by_status(self, campaign: Launched) -> dict[str, int]:
        with contextlib.closing(read_db(self.db)) as conn:
            return {str(s): int(n) for s, n in conn.execute(
                "SELECT status, count(*) FROM campaign_rows WHERE campaign_id = ? "
                "GROUP BY status", (campaign.id,))}

    def outcomes(self, campaign: Launched) -> dict[str, int]:
        """Rows done, by outcome and detail ("failed:timeout")."""
        with contextlib.closing(read_db(self.db)) as conn:
            return {f"{o}:{d}": int(n) for o, d, n in conn.execute(
                "SELECT outcome, detail, count(*) FROM campaign_rows WHERE campaign_id = ? "
                "AND status = 'done' GROUP BY 1, 2", (campaign.id,))}

    async def until(self, predicate: Callable[[], bool], within: float,
                    every: float = POLL) -> float | None:
        """Seconds until `predicate` holds, polled; None on timeout."""
        started = time.perf_counter()
        while time.perf_counter() - started < within:
            if predicate():
                return time.perf_counter() - started
            await asyncio.sleep(every)
        return None

    # -- the phases ------------------------------------------------------------------------

    async def idle(self) -> Arm:
        arm = Arm("idle")
        say(f"  idle: {self.sizes.bursts} bursts of {BURST} /call, nothing else running")
        meter = Meter(self.server.pid)
        for _ in range(self.sizes.bursts):
            await self.burst(arm, "i")
            await asyncio.sleep(BURST_GAP)
        arm.add_rows(self.report, "no campaign", meter.read())
        return arm

    async def admission(self, n: int) -> tuple[Launched, Arm, bool]:
        """The big campaign: preview, Start, every row placed, /call bursts all along.
        Returns the campaign (its `rows`: those its preview kept to call), the bursts' arm,
        and whether every such row was placed."""
        report = self.report
        numbers = callees(n, 415)
        say(f"  big campaign: {n:,} rows, concurrency {CAMPAIGN_MAX:,}: preview ...")
        big = await self.launch(f"Bench {n}", numbers, "k", CAMPAIGN_MAX)
        rows = self.rows_by_status(big)
        kept = rows.get("waiting", 0)
        report.add(f"campaign preview, {n:,} rows", [big.preview_s * 1000],
                   f"submit ack {big.submit_ms:.1f} ms; CSV {big.upload_bytes / 1024:.0f} KiB; "
                   f"{kept:,} rows to call")
        if kept != n or sum(rows.values()) != n:
            last = db_scalar(self.db, "SELECT max(line) FROM campaign_rows WHERE "
                                      "campaign_id = ?", (big.id,))
            report.problem(f"the preview of a {n:,}-row CSV ({big.upload_bytes:,} bytes, every "
                           f"row valid) keeps rows {rows}, the last from line {last} of "
                           f"{n + 1:,}: the app read only part of the file; the admission "
                           f"below is of those {kept:,} rows")
            if not kept:
                raise RuntimeError("the big campaign has no row to call")
            big = dataclasses.replace(big, rows=kept)
            n = kept
        say(f"  Start; /call bursts until all {n:,} rows are placed ...")
        arm = Arm(f"during the {n:,}-row admission")
        meter = Meter(self.server.pid)
        started = time.perf_counter()
        start_ack = await self.press("campaign_start", big)
        admitted = asyncio.Event()

        async def bursts() -> None:
            while True:
                await self.burst(arm, "a")
                if admitted.is_set():
                    return
                await asyncio.sleep(BURST_GAP)

        bursting = asyncio.create_task(bursts())
        families = self.retell.families

        def live() -> int:
            return self.rows_by_status(big).get("live", 0)

        def pending() -> int:
            rows = self.rows_by_status(big)
            return rows.get("waiting", 0) + rows.get("placing", 0)

        last, last_at = families["k"], time.perf_counter()
        looked, stalled = last_at, False
        # Until Retell saw every row, or the database has none left to place (some may have
        # failed), or nothing moved for ADMIT_STALL s.
        try:
            while families["k"] < n:
                await asyncio.sleep(POLL)
                if families["k"] != last:
                    last, last_at = families["k"], time.perf_counter()
                elif time.perf_counter() - last_at >= ADMIT_STALL:
                    stalled = True
                    break
                if time.perf_counter() - looked >= 1.0:
                    looked = time.perf_counter()
                    if not pending():
                        break
        finally:
            admitted.set()
            await bursting
        usage = meter.read()
        arrivals = sorted(at - started for at, tag, _ in self.retell.tagged
                          if tag.startswith("k-"))
        placed = len(arrivals)
        arm.add_rows(report, f"{n:,}-row admission", usage)
        live_s = await self.until(lambda: live() >= min(n, placed), 60.0, every=0.2)
        if placed < n and live() < n:
            why = f"none for {ADMIT_STALL:.0f} s" if stalled else "none left to place"
            report.problem(f"big campaign: only {placed:,} of {n:,} rows reached Retell ({why}, "
                           f"{time.perf_counter() - started:.0f} s after Start); rows by status "
                           f"{self.rows_by_status(big)}, done ones by outcome "
                           f"{self.outcomes(big) or '-'}, campaign {self.status(big)}")
        if not arrivals:
            return big, arm, False
        span = arrivals[-1]
        per_second = Counter(int(t) for t in arrivals)
        series = [per_second.get(s, 0) for s in range(int(arrivals[0]), int(span) + 1)]
        lag = f"{live_s:.2f} s after" if live_s is not None else "NOT within 60 s of"
        report.fact(
            f"campaign admission: {placed:,} rows placed {span:.2f} s after Start (start ack "
            f"{start_ack.ms:.1f} ms): {placed / span:.0f} rows/s overall, median "
            f"{statistics.median(series):.0f} rows/s over {len(series)} one-second buckets "
            f"(min {min(series)}, max {max(series)}); first create {arrivals[0]:.2f} s after "
            f"Start; every row 'live' in the database {lag} the last create; server CPU "
            f"{usage.server_cpu:.1f} s over {usage.wall:.1f} s, Retell instant, pace 1000/s")
        report.fact("rows placed per second from Start: " + ", ".join(map(str, series)))
        return big, arm, placed >= n or live() >= n

    async def settle_big(self, big: Launched) -> None:
        """End every call of the big campaign: it is done and posts its results."""
        report, slack = self.report, self.slack
        ids = [call_id for _, tag, call_id in self.retell.tagged if tag.startswith("k-")]
        total = sum(self.rows_by_status(big).values())  # the results list skipped rows too
        say(f"  ending its {len(ids):,} calls (call_ended webhooks, {WEBHOOK_SENDERS} senders)")
        endings = Endings(self.bench, self.server)
        started = time.perf_counter()
        await asyncio.gather(*(endings.end(i) for i in ids))
        sent = time.perf_counter() - started
        for answer, count in list(endings.wrong.items())[:3]:
            report.problem(f"ending the big campaign: {count} webhooks answered {answer!r}")
        done = await self.until(lambda: self.status(big) == "done", DONE_TIMEOUT, every=0.25)

        def results() -> list[dict[str, Any]]:
            return [u for u in slack.uploaded(CHANNEL) if u["thread_ts"] == big.ts
                    and u["name"].endswith("-results.csv")]

        posted = await self.until(lambda: bool(results()), 60.0, every=0.25) \
            if done is not None else None
        report.add(f"call_ended webhook, {len(ids):,} campaign calls", endings.ms,
                   f"{len(ids) / sent:.0f} req/s from {WEBHOOK_SENDERS} senders")
        if done is None:
            report.problem(f"big campaign not done {DONE_TIMEOUT:.0f} s after its calls ended: "
                           f"{self.status(big)}, rows {self.rows_by_status(big)}")
            return
        text = f"results file NOT posted within 60 s of that ({len(results())} files)"
        if posted is not None:
            lines = results()[0]["content"].decode("utf-8-sig").count("\n") - 1
            text = f"its results file ({lines:,} rows) posted {posted:.1f} s after that"
            if lines != total:
                report.problem(f"big campaign's results file has {lines:,} rows for {total:,}")
        else:
            report.problem(f"big campaign: {text}")
        report.fact(f"{len(ids):,} calls ended by webhooks in {sent:.1f} s; the campaign was "
                    f"done {done:.1f} s after the last; {text}")

    async def grown(self, family: str, count: int, within: float) -> float | None:
        """Seconds until Retell has more than `count` calls of `family`; None on timeout."""
        return await self.until(lambda: self.retell.families[family] > count, within)

    async def steady(self) -> tuple[Arm, Arm]:
        """Bursts alternating between a churning campaign running and paused."""
        report, families = self.report, self.retell.families
        rounds = 2 * self.sizes.bursts
        say(f"  steady campaign: concurrency {STEADY_CONCURRENCY}, each call ended "
            f"{STEADY_HOLD[0]:g} to {STEADY_HOLD[1]:g} s after its create; {rounds} rounds of a "
            "/call burst with it running, then one with it paused")
        steady = await self.launch("Bench steady", callees(STEADY_ROWS, 650),
                                   "s", STEADY_CONCURRENCY)
        running, paused = Arm("running"), Arm("paused")
        endings = Endings(self.bench, self.server)
        stop = asyncio.Event()

        loop, draw = asyncio.get_running_loop(), random.Random(7)
        hangups: list[asyncio.TimerHandle] = []

        async def churn() -> None:
            """End each of its calls STEADY_HOLD s after its create, as a callee would."""
            at = 0
            while not stop.is_set():
                tagged = self.retell.tagged
                for created, tag, call_id in tagged[at:]:
                    if tag.startswith("s-"):
                        hold = draw.uniform(*STEADY_HOLD) - (time.perf_counter() - created)
                        hangups.append(loop.call_later(max(0.0, hold), endings.start, call_id))
                at = len(tagged)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL)
            for handle in hangups:
                handle.cancel()

        churning = asyncio.create_task(churn())
        rates: list[float] = []
        run_usage: list[float] = []
        try:
            await self.press("campaign_start", steady)
            if await self.until(lambda: families["s"] >= STEADY_CONCURRENCY, 30.0) is None:
                raise RuntimeError(f"steady campaign: {families['s']} calls placed 30 s after "
                                   f"Start; rows {self.rows_by_status(steady)}")
            for _ in range(rounds):
                # In the churn, past its first wave; the rate over the whole running stretch.
                before, meter = families["s"], Meter(self.server.pid)
                await asyncio.sleep(STEADY_HOLD[1] + BURST_GAP)
                await self.burst(running, "r")
                usage = meter.read()
                rates.append((families["s"] - before) / usage.wall)
                run_usage.append(usage.server_cpu / usage.wall)
                if (status := self.status(steady)) != "running":
                    report.problem(f"steady campaign {status} before the rounds were over")
                    break
                await self.press("campaign_pause", steady)
                await asyncio.sleep(PAUSED_SETTLE)
                await self.burst(paused, "p")
                await self.press("campaign_resume", steady)
                await self.grown("s", families["s"], 10.0)
        finally:
            stop.set()
            await churning
            await endings.finish()
            with contextlib.suppress(Exception):
                await self.press("campaign_cancel", steady)
        for answer, count in list(endings.wrong.items())[:3]:
            report.problem(f"steady campaign: {count} webhooks answered {answer!r}")
        rate = statistics.median(rates) if rates else 0.0
        running.add_rows(report, "campaign running", note=f"it placed {rate:.0f} rows/s")
        paused.add_rows(report, "campaign paused")
        report.fact(f"steady campaign: {families['s']:,} rows placed in all, "
                    f"{len(endings.ms):,} calls ended by webhooks (p99 "
                    f"{percentile(endings.ms, 99):.1f} ms); while running (each stretch from "
                    f"its Resume to the end of its burst) it placed {rate:.0f} rows/s (median) "
                    f"and the server used "
                    f"{statistics.median(run_usage) if run_usage else 0:.0%} of a core")
        return running, paused


async def bench_campaign(bench: Bench, sizes: Sizes) -> None:
    report, n = bench.report, sizes.campaign_rows
    say(f"campaign: {n:,}-row admission and preview; /call acks beside campaigns")
    server = bench.server("server-campaign", db=bench.workdir / "campaign.db",
                          env=CAMPAIGN_ENV)
    server.spawn()
    bench.retell.create_delay = 0.0  # Retell instant: the runner's own overhead counts
    try:
        await server.wait_healthy()
        run = CampaignRun(bench, server, sizes)
        idle = await run.idle()
        big, admitting, complete = await run.admission(n)
        if complete:
            await run.settle_big(big)
        else:  # what is left of it must not run beside the next campaign
            await run.press("campaign_cancel", big)
        running, paused = await run.steady()
        hwm = server.status_kib("VmHWM")
    finally:
        review_log(server, await server.stop(), report)
    if hwm is not None:
        report.fact(f"campaign server peak RSS (VmHWM) {hwm * 1024 / 1e6:.1f} MB")
    for arm in (idle, admitting, running, paused):
        bad_acks(arm.acks, report, f"/call ack ({arm.label})")
        if arm.missing:
            report.problem(f"/call ({arm.label}): {arm.missing} commands never reached Retell")

    def clean(arm: Arm) -> bool:
        return bool(arm.p99s) and not arm.missing and not any(
            a.status != 200 or a.body for a in arm.acks)

    def ratio(a: Arm, b: Arm) -> str:
        return f"{a.p99 / b.p99:.2f} x" if b.p99 > 0 else "n/a"

    met: bool | None = admitting.p99 <= ACK_GOAL_MS and clean(admitting)
    if met and big.rows < FULL_ROWS:
        met = None  # under the goal, but with fewer rows admitted than the 10,000
    report.goal("ackA", f"{admitting.text()}; {idle.text()} before it: "
                f"{ratio(admitting, idle)}", met)
    report.goal("ackS", f"{running.text()}; {paused.text()}, alternating: "
                f"{ratio(running, paused)}",
                running.p99 <= ACK_GOAL_MS and clean(running))
