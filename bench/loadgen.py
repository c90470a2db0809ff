"""Webhook load generator: signed Retell webhooks from a number of concurrent senders.

    python -m bench.loadgen JOB.json    # prints the Result as JSON on stdout

The bench starts it as its own process per round, so it does not share a core with the
stand-ins in the bench process; `blast()` also runs inline for comparison. One ClientSession
whose connector allows exactly `senders` connections, opened before the clock starts. Bodies
are built from templates and signed before the clock starts too, `batch` at a time (a
signature's timestamp is good for 5 minutes, and 30,000 bodies of 15 KB need not all be in
memory at once); only the sending is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from standins.retell import sign

CALL_ID = "@CALL_ID@"  # placeholders in the templates
CHANNEL = "@CHANNEL@"


@dataclass
class Job:
    url: str  # where to POST
    health_url: str  # GET once per connection to open them before the clock starts
    key: str  # Retell webhook key
    senders: int
    templates: dict[str, str]  # name -> body text with CALL_ID and CHANNEL placeholders
    requests: list[tuple[str, str, str]]  # (template name, call_id, channel), in order
    batch: int = 0  # build and sign this many bodies at a time; 0: all at once
    watch: dict[str, int] = field(default_factory=dict)  # name -> pid whose CPU to measure
    # More servers behind the same "load balancer": sender i posts to ([url] + also)[i % n].
    also: list[str] = field(default_factory=list)


@dataclass
class Result:
    """Figures over the time spent sending (building and signing the bodies excluded)."""

    latencies_ms: list[float]  # one per request, in completion order
    wall: float  # seconds
    cpu: float  # this process's CPU seconds
    watched: dict[str, float]  # CPU seconds of each process in Job.watch
    busy: float  # share of all the machine's CPUs that was busy, 0..1
    answers: dict[str, int]  # "<status> <start of body>" -> count

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.wall if self.wall else 0.0

    def share(self, name: str) -> float:
        """CPU of a watched process as a share of one core (or of this one: "loadgen")."""
        seconds = self.cpu if name == "loadgen" else self.watched.get(name, 0.0)
        return seconds / self.wall if self.wall else 0.0


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc/<pid>/stat (0.0 if unreadable)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs together since boot, from /proc/stat."""
    with contextlib.suppress(OSError, ValueError):
        ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # all but idle and iowait
    return 0, 0


class Span:
    """Adds up wall, CPU and machine time over the stretches spent sending."""

    def __init__(self, watch: dict[str, int]) -> None:
        self.watch = watch
        self.wall = self.cpu = 0.0
        self.watched = dict.fromkeys(watch, 0.0)
        self.busy_ticks = self.total_ticks = 0

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        wall, cpu, (busy, total) = time.perf_counter(), time.process_time(), machine_ticks()
        watched = {name: process_cpu(pid) for name, pid in self.watch.items()}
        yield
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        for name, pid in self.watch.items():
            self.watched[name] += process_cpu(pid) - watched[name]
        now_busy, now_total = machine_ticks()
        self.busy_ticks += now_busy - busy
        self.total_ticks += now_total - total

    @property
    def busy(self) -> float:
        return self.busy_ticks / self.total_ticks if self.total_ticks else 0.0


def build(job: Job, part: list[tuple[str, str, str]]) -> list[tuple[bytes, dict[str, str]]]:
    signed = []
    for name, call_id, channel in part:
        text = job.templates[name].replace(CALL_ID, call_id).replace(CHANNEL, channel)
        headers = {"content-type": "application/json", "x-retell-signature": sign(text, job.key)}
        signed.append((text.encode(), headers))
    return signed


async def blast(job: Job) -> Result:
    latencies: list[float] = []
    answers: Counter[str] = Counter()
    span = Span(job.watch)

    targets = [job.url, *job.also]

    async def sender(work: Iterator[tuple[bytes, dict[str, str]]], url: str) -> None:
        for body, headers in work:
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    text = await resp.read()
                answers[f"{resp.status} {text[:60].decode(errors='replace')}"] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                answers[f"error {type(exc).__name__}"] += 1
            latencies.append((time.perf_counter() - started) * 1000)

    connector = aiohttp.TCPConnector(limit=job.senders)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def warm(url: str) -> None:
            async with session.get(url.rsplit("/", 2)[0] + "/healthz"
                                   if url != job.url else job.health_url) as resp:
                await resp.read()

        await asyncio.gather(*(warm(targets[i % len(targets)]) for i in range(job.senders)))
        step = job.batch or len(job.requests) or 1
        for start in range(0, len(job.requests), step):
            work = iter(build(job, job.requests[start : start + step]))
            with span.measure():
                await asyncio.gather(*(sender(work, targets[i % len(targets)])
                                       for i in range(job.senders)))
    return Result(latencies, span.wall, span.cpu, span.watched, span.busy, dict(answers))


def main(argv: list[str]) -> int:
    raw = json.loads(Path(argv[0]).read_text())
    raw["requests"] = [tuple(r) for r in raw["requests"]]
    result = asyncio.run(blast(Job(**raw)))
    json.dump(asdict(result), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
