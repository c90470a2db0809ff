"""Benchmark the real server, in its own process, against the targets of the issues.

Run from the repository root::

    python -m bench.bench [--quick] [--only NAMES] [--tree PATH]

`--only ingest,placement,outcomes` runs just those scenarios; `--tree ../old-checkout` measures
another checkout's server (its schema too: the databases are seeded through its store), with
this checkout's bench, floor, load generator and stand-ins, for "before" figures.

Scenarios and targets, on a 2-core machine with load generator and server apart:

- ingest: `POST /retell/webhook` with a signed ~15 KB call_ended body (transcript included),
  a new call per request, from 32 concurrent senders. Rounds of N requests alternate bare
  (bench/bare.py, 204 and nothing else), floor (bench/floor.py: signature, JSON, one
  group-committed insert, nothing else) and app, so machine noise hits all; figures are
  medians over the rounds. Target: app throughput at least 0.8 x the floor's, p99 at most
  20 ms. Because a handler may answer once the verified body is stored and turn it into the
  call row and outbox items later (a webhook inbox), each app round also reports how long
  after its last answer every call was in `calls` with the inbox empty. The senders are
  bench/loadgen.py, a process of its own per round; some rounds are repeated inline.
- placement: bursts of 50 `/call` while Retell takes 500 ms per create: the ack (target p99
  <= 100 ms) and the time from each command to its create-phone-call arriving at the Retell
  stand-in (target p99 <= 0.5 s), on an empty database, with 20,000 calls in the last two
  hours, and (this checkout only) with 1,000,000 stored calls plus those 20,000. The history
  is seeded through `SQLiteStore.import_calls` once and cached under $TMPDIR, keyed by a hash
  of storage/migrations.py.
- outcomes: 100 calls in progress in one channel, cards posted, end at once (call_ended and
  call_analyzed each) while the app posts at Slack's pace (CALLBOT_SLACK_CHANNEL_RATE=1):
  when each summary lands, from the start of the burst. Targets: first <= 5 s, median ~110 s.
- call: `/call` acks, one at a time and in bursts of 50 (p99 <= 100 ms).
- stats: `/callstats` over the stored history (reference figures).
- rss: a fresh server takes 10,000 calls (three webhooks each, over several channels, plus
  some /call) and delivers its outbox; then its VmHWM must be at most 100 MB.
- startup: from exec to a healthy `/healthz` within 1 s (median of a few starts).
- campaign (bench/campaign.py): a server with Retell's rate at 1000 calls/s and a campaign
  concurrency of up to 10,000, Retell instant. A 10,000-row campaign through `/callcampaign`'s
  modal (the CSV fetched from the Slack stand-in): submit to preview posted, and Start to every
  row's create-phone-call at Retell (rows admitted per second, overall and the median
  second; no target), while bursts of 50 `/call` go on (ack p99 <= 100 ms, beside the same
  bursts with nothing running). Its calls then end by webhooks (done, results posted). A
  second campaign (concurrency 50, each call ended 1 s after its create, so the runner
  places rows all the time) alternates running and paused under more bursts: the ack p99
  running (<= 100 ms) and its ratio to paused.
- history (bench/history.py): 1,000,000 calls over 120 days, a realistic mix (agents, people,
  channels, campaigns, outcomes, extracted fields, summaries, transcripts on a fifth), seeded
  through the store and cached like placement's. `/callstats 30d` with filters and
  breakdowns, each beside the same aggregate as one raw SQL query on the same file: the
  answer (it rides on the ack) at most 2 x the raw query each, and at most 150 ms median for
  30d; `/callsearch` of a rare and a common word (<= 100 ms median); the 30-day chart
  (<= 500 ms, warm); `/call` bursts' ack p99 while heavy `/callstats` run (<= 100 ms).

`--quick` takes fewer and smaller rounds, 100,000 calls of history (placement and history),
20 endings, 2,000 calls for peak RSS and a 2,000-row campaign (shown, not judged where the
size is below the target's).

The server is `python -m bot serve`, configured only through its environment
(CALLBOT_MAX_CONCURRENT_CALLS is set high: counted on every /call, never reached). The Slack
and Retell stand-ins from standins/ run in this process, on loopback. Databases are
seeded through the store (bench/seed.py); the bench only reads them, to see what the server
did. Posts the outbox marks with a key are counted per key, so a post that goes out twice is
reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from bench.campaign import bench_campaign
from bench.harness import (
    CACHE,
    FULL,
    QUICK,
    REPO,
    SCENARIOS,
    TEAM,
    Bench,
    BenchRetell,
    BenchSlack,
    Client,
    Report,
    Sizes,
    attempt,
    print_table,
    review_log,
    say,
    seed_database,
    webhook_templates,
)
from bench.history import bench_history
from bench.scenarios import (
    bench_call,
    bench_ingest,
    bench_outcomes,
    bench_placement,
    bench_rss,
    bench_startup,
    bench_stats,
)


async def run(sizes: Sizes, mode: str, only: Sequence[str], tree: Path) -> int:
    report = Report()
    with tempfile.TemporaryDirectory(prefix="callbot-bench-") as tmp:
        workdir = Path(tmp)
        db = workdir / "bench.db"
        if {"startup", "call", "stats", "rss"} & set(only):
            say(f"filling {db} with {sizes.rows:,} calls ...")
            done = await seed_database(db, tree, history=sizes.rows, transcripts=True)
            report.fact(f"setup: {done['added']:,} calls stored through the store in "
                        f"{done['seconds']:.1f} s, database {db.stat().st_size / 2**20:.0f} MiB")

        async with contextlib.AsyncExitStack() as stack:
            slack = await stack.enter_async_context(BenchSlack(team_id=TEAM))
            retell = await stack.enter_async_context(BenchRetell())
            session = await stack.enter_async_context(
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
            )
            bench = Bench(workdir, db, slack, retell, session,
                          await webhook_templates(retell, session), report, tree)
            if {"startup", "call", "stats"} & set(only):
                server = await attempt(report, "start-up", bench_startup(bench, sizes))
                if server is not None:
                    try:
                        client = Client(server.url, session, slack)
                        if "call" in only:
                            await attempt(report, "/call",
                                          bench_call(bench, client, server, sizes))
                        if "stats" in only:
                            await attempt(report, "/callstats",
                                          bench_stats(bench, client, server, sizes))
                        hwm = server.status_kib("VmHWM")
                        if hwm is not None:
                            report.fact(f"main server peak RSS (VmHWM) {hwm * 1024 / 1e6:.1f} MB")
                    finally:
                        review_log(server, await server.stop(), report)
            if "ingest" in only:
                await attempt(report, "webhook ingest", bench_ingest(bench, sizes))
            if "placement" in only:
                await attempt(report, "placement", bench_placement(bench, sizes))
            if "outcomes" in only:
                await attempt(report, "outcomes", bench_outcomes(bench, sizes))
            if "rss" in only:
                await attempt(report, "peak RSS", bench_rss(bench, sizes))
            if "campaign" in only:
                await attempt(report, "campaign", bench_campaign(bench, sizes))
            if "history" in only:
                await attempt(report, "history", bench_history(bench, sizes))
            repeated = {key: n for key, n in slack.marked.items() if n > 1}
            report.fact(f"Slack got {slack.counts['chat.postMessage']:,} posts, "
                        f"{slack.marked.total():,} with the outbox's key, "
                        f"{len(slack.marked):,} distinct keys")
            if repeated:
                kinds = Counter(key.split(":", 1)[0] for key in repeated)
                report.problem(f"{len(repeated):,} outbox posts went out more than once "
                               f"({', '.join(f'{n:,} {kind}' for kind, n in kinds.items())}), "
                               "e.g. " + ", ".join(f"{k} x{n}" for k, n in
                                                   list(repeated.items())[:3]))
    stored = f"; {sizes.rows:,} calls stored for start-up, /call, /callstats, RSS" if {
        "startup", "call", "stats", "rss"} & set(only) else ""
    print_table(report, sizes, f"{mode}: {', '.join(only)}; server from {tree}{stored}")
    return 1 if report.problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"smaller run: {QUICK.webhooks} webhooks per ingest round, "
                             f"{QUICK.rows:,} stored calls, fewer repeats")
    parser.add_argument("--webhooks", type=int, metavar="N",
                        help="requests per webhook ingest round (default "
                             f"{FULL.webhooks}, {QUICK.webhooks} with --quick)")
    parser.add_argument("--only", metavar="NAMES", default=",".join(SCENARIOS),
                        help="comma-separated scenarios to run, of: " + ", ".join(SCENARIOS)
                             + " (default: all)")
    parser.add_argument("--tree", type=Path, default=REPO, metavar="PATH",
                        help="checkout whose server (and schema) is measured (an old worktree) "
                             "for before figures; the bench, floor and stand-ins stay this "
                             "checkout's (default: this checkout)")
    parser.add_argument("--ingest-nowhere", action="store_true",
                        help="ingest rounds with calls that post nowhere (no Slack channel): "
                             "the ingest path alone, without Slack deliveries running beside it")
    parser.add_argument("--history", type=int, metavar="N",
                        help="stored calls for the placement figure at scale and the history "
                             "scenario (default "
                             f"{FULL.history:,}, {QUICK.history:,} with --quick; cached "
                             f"under {CACHE})")
    args = parser.parse_args(argv)
    sizes, mode = (QUICK, "quick") if args.quick else (FULL, "full")
    if args.webhooks:
        sizes = dataclasses.replace(sizes, webhooks=args.webhooks)
    if args.history:
        sizes = dataclasses.replace(sizes, history=args.history)
    if args.ingest_nowhere:
        sizes = dataclasses.replace(sizes, ingest_channels=False)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SCENARIOS))
    if unknown or not only:
        parser.error(f"--only: unknown {', '.join(unknown) or 'nothing'}; "
                     f"choose from {', '.join(SCENARIOS)}")
    tree = args.tree.resolve()
    if not (tree / "bot").is_dir():
        parser.error(f"--tree: {tree} is not a checkout (no bot/)")

    async def guarded() -> int:
        # SIGTERM cancels the run so the finally blocks stop the servers and remove the files.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run(sizes, mode, only, tree)

    try:
        return asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted; servers stopped and temporary files removed")
        return 130


if __name__ == "__main__":
    sys.exit(main())
