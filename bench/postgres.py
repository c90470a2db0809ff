"""Benchmark the real server on PostgreSQL: several instances, and /callstats at scale.

Run from the repository root, with a PostgreSQL server that lets this user create
databases (each part makes its own and drops it)::

    python -m bench.postgres [--quick] [--server postgresql://postgres@127.0.0.1:5432/postgres]

- instances: 1, 2 and 3 `python -m bot serve` processes on one database, the load generator
  (a process of its own, 32 senders) spreading signed ~15 KB call_ended webhooks over them
  round-robin as a load balancer would. Per round: ingest throughput and latency, then how
  long until every call is stored and every Slack delivery (the card and the summary of
  each call, into 8 channels, Slack's pace lifted) is done, and how many posts Slack got
  twice (must be none). The figures are medians over the rounds.
- stats: a mixed history of N calls (bench/seed.py's, 1,000,000 by default) imported
  through PostgresStore, then `/callstats 30d` answered by the server beside the same
  headline aggregate as one raw SQL query on the same database, alternating, medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from bench.harness import (
    FULL,
    QUICK,
    TEAM,
    Bench,
    BenchRetell,
    BenchSlack,
    Client,
    Report,
    Sizes,
    loadgen_process,
    new_call_id,
    review_log,
    say,
    webhook_templates,
)
from bench.seed import mixed_calls, mixed_campaigns
from storage.postgres import PostgresStore

SERVER = os.environ.get("CALLBOT_BENCH_POSTGRES",
                        "postgresql://postgres@127.0.0.1:5432/postgres")
SENDERS = 32
CHANNELS = [f"C0PGBENCH{i}" for i in range(8)]
SETTLE = 600.0  # s a round's deliveries may take at most
STATS_RUNS = 9

HEADLINE = """SELECT count(*), count(successful), count(*) FILTER (WHERE successful = 1),
    count(*) FILTER (WHERE sentiment = 'Positive'), count(*) FILTER (WHERE sentiment = 'Neutral'),
    count(*) FILTER (WHERE sentiment = 'Negative'),
    count(CASE WHEN duration_ms > 0 THEN 1 END),
    coalesce(sum(CASE WHEN duration_ms > 0 THEN duration_ms END), 0),
    coalesce(sum(cost_cents), 0)
    FROM calls WHERE call_id IS NOT NULL AND created_at >= $1"""


def on_database(server: str, name: str) -> str:
    parts = urlsplit(server)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.asynccontextmanager
async def fresh_database(server: str, label: str) -> AsyncIterator[str]:
    """A new database on `server` for one part of the bench, dropped after it."""
    name = f"callbot_bench_{label}_{os.getpid()}"
    admin = await asyncpg.connect(server)
    try:
        for left in await admin.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE 'callbot\\_bench\\_%'"):
            pid = left[0].rsplit("_", 1)[1]
            if pid.isdigit() and not _alive(int(pid)):  # left by a bench that was killed
                await admin.execute(f'DROP DATABASE IF EXISTS "{left[0]}" WITH (FORCE)')
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    try:
        yield on_database(server, name)
    finally:
        admin = await asyncpg.connect(server)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def scalar(url: str, sql: str, *args: object) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_now() -> tuple[float, float, float]:
    """(wall clock, CPU seconds of PostgreSQL's processes, CPU seconds of the machine): read
    before and after a phase, they say which part the cores went to (Linux /proc only;
    elsewhere the CPU figures are 0). Backends that end between the two readings are not
    counted, so PostgreSQL's share is a floor."""
    postgres = machine = 0.0
    with contextlib.suppress(OSError):
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
        machine = (sum(int(v) for v in fields) - int(fields[3]) - int(fields[4])) / TICK
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry.name}/stat") as f:
                    stat = f.read()
                name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat.rsplit(")", 1)[1]
                if name.startswith("postgres"):
                    values = rest.split()
                    postgres += (int(values[11]) + int(values[12])) / TICK
    return time.perf_counter(), postgres, machine


def cores_used(before: tuple[float, float, float], after: tuple[float, float, float]
               ) -> tuple[float, float]:
    """(PostgreSQL's cores, the machine's busy cores) on average between two readings."""
    wall = max(after[0] - before[0], 1e-9)
    return (after[1] - before[1]) / wall, (after[2] - before[2]) / wall


async def settled(url: str, ids: list[str], since: float) -> tuple[float, float] | None:
    """(seconds to every call stored, seconds to every delivery done) after `since`."""
    stored_at = None
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        if stored_at is None and await scalar(
                url, "SELECT count(*) FROM calls WHERE call_id = ANY($1::text[])", ids) == len(ids):
            stored_at = time.perf_counter() - since
        if stored_at is not None and not await scalar(
                url, "SELECT count(*) FROM outbox WHERE done_at IS NULL") and not await scalar(
                url, "SELECT count(*) FROM webhook_inbox"):
            return stored_at, time.perf_counter() - since
        await asyncio.sleep(0.05)
    return None


async def bench_instances(bench: Bench, sizes: Sizes, server: str) -> None:
    report = bench.report
    for n in (1, 2, 3):
        async with fresh_database(server, f"i{n}") as url:
            apps = [bench.server(f"pg{n}-{i}", env={"DATABASE_URL": url,
                                                    "CALLBOT_DATABASE_POOL": "10"})
                    for i in range(n)]
            for app in apps:
                app.spawn()
            try:
                for app in apps:
                    await app.wait_healthy()
                rates, p50s, p99s, stored, delivered, cpu = [], [], [], [], [], []
                pg_cores, busy = [], []
                for number in range(1, sizes.rounds + 1):
                    ids = [new_call_id() for _ in range(sizes.webhooks)]
                    job = bench.webhooks(apps[0], SENDERS, [
                        ("call_ended", call_id, CHANNELS[i % len(CHANNELS)])
                        for i, call_id in enumerate(ids)])
                    job.also = [app.url + "/retell/webhook" for app in apps[1:]]
                    job.watch = {f"server{i}": app.pid for i, app in enumerate(apps)}
                    started = time.perf_counter()
                    before = cpu_now()
                    result = await loadgen_process(job, bench.workdir)
                    after = await settled(url, ids, started)
                    pg, machine = cores_used(before, cpu_now())
                    wrong = {a: c for a, c in result.answers.items()
                             if not a.startswith(("200 ", "202 "))}
                    if wrong:
                        report.problem(f"{n} instance(s), round {number}: answers {wrong}")
                    if after is None:
                        report.problem(f"{n} instance(s), round {number}: not settled within "
                                       f"{SETTLE:.0f} s")
                        continue
                    rates.append(result.rate)
                    p50s.append(statistics.median(result.latencies_ms))
                    p99s.append(sorted(result.latencies_ms)[int(0.99 * len(ids)) - 1])
                    stored.append(after[0])
                    delivered.append(after[1])
                    cpu.append(sum(result.watched.values()) / result.wall)
                    pg_cores.append(pg)
                    busy.append(machine)
                    say(f"  {n} instance(s) round {number}: {result.rate:6.0f} req/s, "
                        f"p50 {p50s[-1]:.1f} ms, p99 {p99s[-1]:.1f} ms; all stored after "
                        f"{after[0]:.1f} s, all delivered after {after[1]:.1f} s; servers "
                        f"{cpu[-1]:.2f} cores while sending; from the first request to the "
                        f"last delivery PostgreSQL {pg:.2f} cores, the machine {machine:.2f} "
                        f"of {os.cpu_count()} busy")
                if rates:
                    items = 2 * sizes.webhooks
                    report.fact(
                        f"PostgreSQL, {n} instance(s), {sizes.webhooks:,} call_ended per round "
                        f"(medians of {len(rates)}): ingest {statistics.median(rates):.0f} req/s, "
                        f"p50 {statistics.median(p50s):.1f} ms, p99 {statistics.median(p99s):.1f} "
                        f"ms; every call stored {statistics.median(stored):.1f} s and every "
                        f"card and summary delivered {statistics.median(delivered):.1f} s after "
                        f"the first request ({items / statistics.median(delivered):.0f} "
                        f"deliveries/s); servers used {statistics.median(cpu):.2f} cores "
                        f"while sending; until the last delivery PostgreSQL used "
                        f"{statistics.median(pg_cores):.2f} cores and the machine "
                        f"{statistics.median(busy):.2f} of {os.cpu_count()}")
            finally:
                for app in apps:
                    review_log(app, await app.stop(), report)


async def bench_stats(bench: Bench, sizes: Sizes, server: str) -> None:
    report = bench.report
    async with fresh_database(server, "stats") as url:
        say(f"importing a mixed history of {sizes.history:,} calls into PostgreSQL ...")
        started = time.perf_counter()
        now = time.time()
        async with PostgresStore(url) as store:
            campaigns = await mixed_campaigns(store, now)  # type: ignore[arg-type]
            added = await store.import_calls(mixed_calls(sizes.history, 7, campaigns, now),
                                             batch=20_000)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("VACUUM ANALYZE calls")
            size = await conn.fetchval("SELECT pg_database_size(current_database())")
            report.fact(f"PostgreSQL history: {added:,} calls imported through the store and "
                        f"analyzed in {time.perf_counter() - started:.0f} s, database "
                        f"{size / 2**20:.0f} MiB")
            app = bench.server("pg-stats", env={"DATABASE_URL": url})
            app.spawn()
            try:
                await app.wait_healthy()
                client = Client(app.url, bench.session, bench.slack)
                await client.slash("/callstats", "30d", "warm")
                await conn.fetch(HEADLINE, now - 30 * 86400)
                answers, raws = [], []
                for run in range(STATS_RUNS):
                    t0 = time.perf_counter()
                    answer = await client.slash("/callstats", "30d", f"pg{run}")
                    answers.append((time.perf_counter() - t0) * 1000)
                    if answer.status != 200:
                        report.problem(f"/callstats 30d on PostgreSQL: HTTP {answer.status}")
                    t0 = time.perf_counter()
                    await conn.fetch(HEADLINE, time.time() - 30 * 86400)
                    raws.append((time.perf_counter() - t0) * 1000)
                answer_ms, raw_ms = statistics.median(answers), statistics.median(raws)
                report.fact(f"PostgreSQL, /callstats 30d over {added:,} calls: answer "
                            f"{answer_ms:.0f} ms median (its ack, end to end), the same "
                            f"headline aggregate in raw SQL {raw_ms:.0f} ms median, ratio "
                            f"{answer_ms / raw_ms:.2f} (medians of {STATS_RUNS}, alternating)")
            finally:
                review_log(app, await app.stop(), report)
        finally:
            await conn.close()


async def run(sizes: Sizes, parts: list[str], server: str) -> int:
    report = Report()
    with tempfile.TemporaryDirectory(prefix="callbot-pgbench-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            slack = await stack.enter_async_context(BenchSlack(team_id=TEAM))
            retell = await stack.enter_async_context(BenchRetell())
            session = await stack.enter_async_context(
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)))
            bench = Bench(Path(tmp), Path(tmp) / "unused.db", slack, retell, session,
                          await webhook_templates(retell, session), report)
            if "instances" in parts:
                await bench_instances(bench, sizes, server)
            if "stats" in parts:
                await bench_stats(bench, sizes, server)
            repeated = {key: n for key, n in slack.marked.items() if n > 1}
            report.fact(f"Slack got {slack.counts['chat.postMessage']:,} posts, "
                        f"{len(repeated):,} of them keyed posts that went out more than once")
            if repeated:
                report.problem(f"{len(repeated)} outbox posts went out more than once")
    say("")
    say(f"== PostgreSQL results ({os.cpu_count()} cores; load generator, instances and "
        "PostgreSQL share them) ==")
    for fact in report.facts:
        say(f"- {fact}")
    say(f"problems: {len(report.problems)}")
    for problem in report.problems:
        say(f"  ! {problem}")
    return 1 if report.problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.postgres", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK.webhooks:,} webhooks a round, {QUICK.history:,} calls of "
                             "history")
    parser.add_argument("--only", default="instances,stats", help="instances, stats")
    parser.add_argument("--history", type=int, metavar="N", help="calls of history")
    parser.add_argument("--server", default=SERVER,
                        help="a PostgreSQL URL (any database; the bench makes its own)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.history:
        sizes = Sizes(**{**sizes.__dict__, "history": args.history})
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    return asyncio.run(run(sizes, parts, args.server))


if __name__ == "__main__":
    sys.exit(main())
