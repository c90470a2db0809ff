"""The scenarios, one coroutine each (`bench_<name>`), run by bench/bench.py."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.harness import (
    ACK_GOAL_MS,
    BURST,
    CALL_TEXT,
    CHANNEL,
    CHANNELS,
    CORES,
    CREATE_DELAY,
    DRAIN_TIMEOUT,
    EVENTS,
    FIRST_GOAL_S,
    FLOOR_GOAL,
    MEDIAN_GOAL_S,
    P99_GOAL_MS,
    PLACE_GOAL_S,
    RECENT,
    REPO,
    RSS_CHUNK,
    RSS_GOAL_MB,
    RSS_SLASH,
    SENDERS,
    SETTLE_TIMEOUT,
    START_GOAL_S,
    Answer,
    Bench,
    Client,
    Meter,
    Round,
    Sizes,
    bad_acks,
    cached_history,
    child_env,
    db_scalar,
    drain_outbox,
    ingested,
    loadgen_process,
    new_call_id,
    percentile,
    placed_after,
    review_log,
    say,
    seed_database,
    server_process,
    settle,
    stored_count,
    wrong_answers,
)
from standins.process import ChildProcess, free_port


async def bench_startup(bench: Bench, sizes: Sizes) -> ChildProcess:
    """Start the server `sizes.starts` times; the last one stays up for the next scenarios."""
    say(f"start-up: {sizes.starts} starts to a healthy /healthz")
    seconds: list[float] = []
    for i in range(1, sizes.starts + 1):
        server = bench.server(f"server-start{i}" if i < sizes.starts else "server")
        server.spawn()
        try:
            seconds.append(await server.wait_healthy())
        except BaseException:
            await server.stop()
            raise
        if i < sizes.starts:
            review_log(server, await server.stop(), bench.report, quiet=True)
    median = statistics.median(seconds)
    bench.report.goal("start", f"{median:.2f} s (median of {len(seconds)} starts; "
                      f"{min(seconds):.2f} to {max(seconds):.2f} s)", median <= START_GOAL_S)
    return server


async def bench_call(bench: Bench, client: Client, server: ChildProcess, sizes: Sizes) -> None:
    slack, retell, report = bench.slack, bench.retell, bench.report
    say(f"/call acks: {sizes.calls} one at a time, then {sizes.bursts} bursts of {BURST}; "
        f"Retell create takes {CREATE_DELAY * 1000:.0f} ms")
    created_before = len(retell.created_calls())
    responses_before = len(slack.responses)
    retell.create_delay = CREATE_DELAY
    try:
        meter, placed = Meter(server.pid), placed_after(slack, sizes.calls)
        sequential = [await client.slash("/call", CALL_TEXT, f"call-seq-{i}")
                      for i in range(sizes.calls)]
        waited = await settle(slack, placed)
        bad = bad_acks(sequential, report, "/call sequential")
        after = f"all placed {waited:.2f} s after the last ack" if waited else "NOT all placed"
        report.add("/call ack, sequential", [a.ms for a in sequential],
                   f"{bad} bad acks; {after}", meter.read())

        meter = Meter(server.pid)
        acks: list[Answer] = []
        p50s: list[float] = []
        p99s: list[float] = []
        waits: list[float | None] = []
        for b in range(sizes.bursts):
            placed = placed_after(slack, BURST)
            burst = await asyncio.gather(
                *(client.slash("/call", CALL_TEXT, f"call-burst{b}-{i}") for i in range(BURST))
            )
            waits.append(await settle(slack, placed))
            acks += burst
            p50s.append(percentile([a.ms for a in burst], 50))
            p99s.append(percentile([a.ms for a in burst], 99))
        bad = bad_acks(acks, report, "/call burst")
        worst = None if None in waits else max(w for w in waits if w is not None)
        after = f"worst burst all placed {worst:.2f} s after" if worst else "NOT all placed"
        report.add(f"/call ack, {sizes.bursts} bursts of {BURST}", [a.ms for a in acks],
                   f"{bad} bad acks; {after}", meter.read())
    finally:
        retell.create_delay = 0.0
    p99 = statistics.median(p99s)
    report.goal("ack", f"{p99:.1f} ms (median of {sizes.bursts} bursts; p50 "
                f"{statistics.median(p50s):.1f} ms; worst burst's p99 {max(p99s):.1f} ms)",
                p99 <= ACK_GOAL_MS and not bad)

    created = len(retell.created_calls()) - created_before
    if created != sizes.calls + sizes.bursts * BURST:
        report.problem(f"Retell saw {created} creates for "
                       f"{sizes.calls + sizes.bursts * BURST} /call commands")
    responded = len(slack.responses) - responses_before
    if responded:
        sample = slack.responses[-1][1].get("text", "")
        report.problem(f"{responded} /call commands answered via response_url, e.g. {sample!r}")


async def bench_ingest(bench: Bench, sizes: Sizes) -> None:
    """Ingest alone: a server of its own that posts to Slack at Slack's real pace (one
    message a second per channel), as in production, so the outbox mostly waits during a
    burst instead of competing for the CPU; the backlog is drained after the rounds."""
    report = bench.report
    db = bench.workdir / "ingest.db"  # its backlog must not spill into the other runs
    app = bench.server("ingest", channel_rate=None, db=db)
    app.spawn()
    try:
        await app.wait_healthy()
        await _ingest_rounds(bench, app, db, sizes)
    finally:
        review_log(app, await app.stop(), report)


async def _ingest_rounds(bench: Bench, app: ChildProcess, db: Path, sizes: Sizes) -> None:
    report = bench.report
    body = len(bench.templates["call_ended"].encode()) - len(loadgen.CALL_ID) + len(
        new_call_id()) - len(loadgen.CHANNEL) + len(CHANNELS[0])
    say(f"webhook ingest: {sizes.rounds} rounds per target of {sizes.webhooks} call_ended "
        f"webhooks ({body / 1024:.1f} KiB, each a new call), {SENDERS} senders, "
        "bare and app alternating")
    port = free_port()
    bare = server_process([sys.executable, "-m", "bench.bare", str(port)], child_env(),
                          bench.workdir, port, "bare")
    port = free_port()
    floor = server_process([sys.executable, "-m", "bench.floor", str(port),
                            str(bench.workdir / "floor.db"), bench.retell.api_key],
                           child_env(), bench.workdir, port, "floor")
    backlogs: list[int] = []  # Slack deliveries waiting after each app round
    drains: list[str] = []  # seconds from each app round's last answer to all calls stored

    async def run_round(kind: str, number: int, server: ChildProcess) -> None:
        target = "bare" if server is bare else "floor" if server is floor else "app"
        senders, n = (1, sizes.single) if kind == "single" else (SENDERS, sizes.webhooks)
        ids = [new_call_id() for _ in range(n)]
        job = bench.webhooks(server, senders, [
            ("call_ended", call_id, CHANNELS[i % len(CHANNELS)] if sizes.ingest_channels else "")
            for i, call_id in enumerate(ids)
        ])
        inline = kind == "inline"
        result = await (loadgen.blast(job) if inline else loadgen_process(job, bench.workdir))
        done = Round(kind, number, target, senders, result)
        report.rounds.append(done)
        say(f"  {done.label:>8} {target:<4} {done.rate:6.0f} req/s  p50 {done.p(50):5.1f}  "
            f"p99 {done.p(99):5.1f} ms  CPU: load generator {result.share('loadgen'):.0%}, "
            f"{target} {result.share('server'):.0%}; others {done.others:.2f} cores")
        for answer, count in list(wrong_answers(result, target).items())[:3]:
            report.problem(f"webhook round {done.label} {target}: {count} answers {answer!r}")
        if target == "app":
            settled = await ingested(db, ids)
            if settled is None:
                report.problem(f"webhook round {done.label}: {n - stored_count(db, ids)} of {n}"
                               f" calls not stored {SETTLE_TIMEOUT:.0f} s after their answers")
            else:
                drains.append(f"{settled:.2f} s ({done.label})")
            backlogs.append(int(db_scalar(db, "SELECT count(*) FROM outbox "
                                                    "WHERE done_at IS NULL")))

    bare.spawn()
    floor.spawn()
    try:
        await bare.wait_healthy()
        await floor.wait_healthy()
        for number in range(1, sizes.rounds + 1):
            await run_round("own", number, bare)
            await run_round("own", number, floor)
            await run_round("own", number, app)
            if number <= sizes.inline_rounds:  # the same with the senders in this process
                await run_round("inline", number, bare)
                await run_round("inline", number, app)
        await run_round("single", 1, bare)
        await run_round("single", 1, app)
    finally:
        review_log(bare, await bare.stop(), report, quiet=True)
        review_log(floor, await floor.stop(), report, quiet=True)

    def median(target: str, value: Callable[[Round], float], kind: str = "own") -> float:
        return statistics.median(value(r) for r in report.rounds
                                 if r.target == target and r.kind == kind)

    bare_rate, app_rate = median("bare", lambda r: r.rate), median("app", lambda r: r.rate)
    floor_rate = median("floor", lambda r: r.rate)
    ratio = app_rate / floor_rate
    app_p50 = median("app", lambda r: r.p(50))
    app_p99 = median("app", lambda r: r.p(99))
    clean = not any(wrong_answers(r.result, r.target) for r in report.rounds)
    report.goal("ratio", f"app {app_rate:.0f} req/s = {ratio:.2f} x floor {floor_rate:.0f} "
                f"req/s (= {app_rate / bare_rate:.2f} x bare {bare_rate:.0f}; medians of "
                f"{sizes.rounds} rounds of {sizes.webhooks})", ratio >= FLOOR_GOAL and clean)
    report.goal("p99", f"{app_p99:.1f} ms (p50 {app_p50:.1f} ms; floor p50/p99 "
                f"{median('floor', lambda r: r.p(50)):.1f}/"
                f"{median('floor', lambda r: r.p(99)):.1f} ms; bare p50/p99 "
                f"{median('bare', lambda r: r.p(50)):.1f}/{median('bare', lambda r: r.p(99)):.1f}"
                " ms)", app_p99 <= P99_GOAL_MS and clean)
    report.fact(f"floor (bench/floor.py: signature, JSON, one group-committed insert; nothing "
                f"else): {floor_rate:.0f} req/s = {floor_rate / bare_rate:.2f} x bare")
    report.fact("after each app round's last answer, every body was a call row (webhook inbox "
                "empty) within: " + (", ".join(drains) or "never"))
    report.fact("outbox backlog then (Slack's pace, 1 message/s per channel): "
                + ", ".join(f"{b:,}" for b in backlogs))

    loadgen_busy = median("bare", lambda r: r.result.share("loadgen"))
    bound = ("bound by the load generator, so bare is a floor and the ratio reads high"
             if loadgen_busy >= 0.9 else "not bound by the load generator alone")
    report.fact(f"{SENDERS}-sender bare rounds: load generator {loadgen_busy:.0%} of a core, bare "
                f"server {median('bare', lambda r: r.result.share('server')):.0%}, machine "
                f"{median('bare', lambda r: r.result.busy):.0%} of {CORES} cores: {bound}")
    others = statistics.median(r.others for r in report.rounds if r.kind == "own")
    if others >= 0.25:
        report.fact(f"other processes kept {others:.2f} cores busy during the rounds (median): "
                    "the box was shared, so every figure is pessimistic")
    inline_bare = median("bare", lambda r: r.rate, "inline")
    inline_app = median("app", lambda r: r.rate, "inline")
    report.fact(f"load generator in the bench process instead of its own ({sizes.inline_rounds} "
                f"rounds): bare {inline_bare:.0f} req/s ({inline_bare / bare_rate - 1:+.0%}), "
                f"app {inline_app:.0f} req/s ({inline_app / app_rate - 1:+.0%}), "
                f"ratio {inline_app / inline_bare:.2f}")


async def bench_rss(bench: Bench, sizes: Sizes) -> None:
    """A fresh server takes RSS_SLASH /call commands and `sizes.rss_calls` calls of three
    webhooks each, RSS_CHUNK calls per wave, and delivers its outbox; then its peak RSS."""
    report, slack, n = bench.report, bench.slack, sizes.rss_calls
    say(f"peak RSS: a fresh server takes {RSS_SLASH} /call and {n:,} calls x "
        f"{len(EVENTS)} webhooks over {len(CHANNELS)} channels, then drains its outbox")
    server = bench.server("server-rss")
    server.spawn()
    try:
        await server.wait_healthy()
        client = Client(server.url, bench.session, slack)
        before = slack.counts.copy()
        placed = placed_after(slack, RSS_SLASH)
        acks: list[Answer] = []
        for start in range(0, RSS_SLASH, BURST):
            acks += await asyncio.gather(*(client.slash("/call", CALL_TEXT, f"call-rss-{i}")
                                           for i in range(start, start + BURST)))
        bad_acks(acks, report, "/call in the peak-RSS run")
        if await settle(slack, placed) is None:
            report.problem("peak-RSS run: not every /call was placed")

        ids = [new_call_id() for _ in range(n)]
        requests = [(event, ids[i], CHANNELS[i % len(CHANNELS)])
                    for wave in range(0, n, RSS_CHUNK) for event in EVENTS
                    for i in range(wave, min(wave + RSS_CHUNK, n))]
        meter = Meter(server.pid)
        result = await loadgen_process(bench.webhooks(server, SENDERS, requests,
                                                      batch=len(EVENTS) * RSS_CHUNK),
                                       bench.workdir)
        for answer, count in list(wrong_answers(result, "app").items())[:3]:
            report.problem(f"peak-RSS run: {count} webhooks answered {answer!r}")
        drain = await drain_outbox(bench.db, DRAIN_TIMEOUT)
        usage = meter.read()
        hwm, now = server.status_kib("VmHWM"), server.status_kib("VmRSS")
    finally:
        review_log(server, await server.stop(), report)
    sent = slack.counts - before
    drained = f"{drain.seconds:.1f} s" if drain.seconds is not None else "NEVER"
    report.fact(f"peak-RSS run: {len(requests):,} webhooks in {result.wall:.1f} s "
                f"({result.rate:.0f} req/s, p99 {percentile(result.latencies_ms, 99):.1f} ms); "
                f"outbox drained {drained} after the last one ({drain.pending} pending, "
                f"{drain.errors} with errors); Slack got {sent['chat.postMessage']:,} "
                f"chat.postMessage and {sent['chat.update']:,} chat.update; server CPU "
                f"{usage.server_cpu:.1f} s over {usage.wall:.1f} s")
    if drain.seconds is None or drain.errors:
        report.problem(f"peak-RSS run: outbox {drain}")
    if sent["chat.postMessage"] < 2 * n:  # a card and a summary per call at least
        report.problem(f"peak-RSS run: only {sent['chat.postMessage']:,} chat.postMessage "
                       f"for {n:,} calls")
    if hwm is None or now is None:
        report.problem("peak-RSS run: could not read the server's /proc/<pid>/status")
        return
    mb = hwm * 1024 / 1e6
    met: bool | None = mb <= RSS_GOAL_MB
    if met and (drain.seconds is None or n < 10_000):
        met = None  # under the goal, but not after 10,000 delivered calls
    report.goal("rss", f"{mb:.1f} MB ({hwm / 1024:.1f} MiB; {now * 1024 / 1e6:.1f} MB at the "
                f"end) after {n:,} calls; outbox drained in {drained}", met)


def reported_calls(body: Any) -> int | None:
    """The call count from the stats text: '12345 calls in the last 7 days, ...'."""
    text = body.get("text", "") if isinstance(body, dict) else ""
    head = text.split(" ", 1)[0]
    return int(head) if head.isdigit() else None


async def bench_stats(bench: Bench, client: Client, server: ChildProcess, sizes: Sizes) -> None:
    report, db = bench.report, bench.db
    total = db_scalar(db, "SELECT count(*) FROM calls WHERE call_id IS NOT NULL")
    say(f"/callstats: {sizes.stats_runs} runs per period over {total:,} stored calls")
    for period in ("7d", "30d", "all"):
        meter = Meter(server.pid)
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


async def tagged_call(client: Client, tag: str, sent: dict[str, float]) -> Answer:
    """/call with a `bench=<tag>` variable, so its create can be told apart at Retell."""
    sent[tag] = time.perf_counter()
    return await client.slash("/call", f"{CALL_TEXT} bench={tag}", tag)


async def placement_db(bench: Bench, sizes: Sizes, case: str) -> Path:
    """The database of one placement case: empty, RECENT calls in the last two hours, or the
    cached history (a copy, since the server writes to it) plus those RECENT calls."""
    path = bench.workdir / f"placement-{case}.db"
    if case == "history":
        source = await cached_history(bench.tree, sizes.history, bench.report)
        await asyncio.to_thread(shutil.copyfile, source, path)
    done = await seed_database(path, bench.tree, recent=0 if case == "empty" else RECENT)
    if done["added"]:
        bench.report.fact(f"placement ({case}): {done['added']:,} recent calls stored through "
                          f"the store in {done['seconds']:.1f} s")
    return path


async def bench_placement(bench: Bench, sizes: Sizes) -> None:
    """Bursts of BURST /call at once while Retell takes CREATE_DELAY per create: the ack, and
    the time from each command to its create-phone-call reaching Retell, on an empty
    database, with RECENT calls in the last two hours, and with the history on top."""
    report, retell, slack = bench.report, bench.retell, bench.slack
    cases = [("empty", "0 calls"), ("recent", f"{RECENT:,} calls in the last 2 h")]
    if bench.tree == REPO:  # an older tree cannot open this tree's cached history
        cases.append(("history", f"{sizes.history:,} + {RECENT:,} calls"))
    else:
        report.fact(f"placement at {sizes.history:,} calls: measured for this checkout only "
                    f"({bench.tree} cannot open its schema)")
    for case, label in cases:
        say(f"placement, {label}: {sizes.bursts} bursts of {BURST} /call, Retell create takes "
            f"{CREATE_DELAY * 1000:.0f} ms")
        db = await placement_db(bench, sizes, case)
        server = bench.server(f"server-place-{case}", db=db)
        server.spawn()
        retell.create_delay = CREATE_DELAY
        try:
            await server.wait_healthy()
            client = Client(server.url, bench.session, slack)
            meter, ticks = Meter(server.pid), loadgen.machine_ticks()
            acks: list[Answer] = []
            places: list[float] = []
            burst_p99s: list[float] = []
            missing = 0
            sent: dict[str, float] = {}
            for b in range(sizes.bursts):
                placed = placed_after(slack, BURST)
                tags = [f"p{case}{b}x{i}" for i in range(BURST)]
                acks += await asyncio.gather(*(tagged_call(client, tag, sent) for tag in tags))
                await settle(slack, placed)
                burst = [retell.arrived[t] - sent[t] for t in tags if t in retell.arrived]
                missing += BURST - len(burst)
                places += burst
                burst_p99s.append(percentile(burst, 99))
            usage, (busy, total) = meter.read(), loadgen.machine_ticks()
            machine = (busy - ticks[0]) / max(total - ticks[1], 1)
        finally:
            retell.create_delay = 0.0
            review_log(server, await server.stop(), report)
        bad = bad_acks(acks, report, f"/call burst ({case})")
        if missing:
            report.problem(f"placement ({case}): {missing} commands never reached Retell")
        report.add(f"/call ack, {label}", [a.ms for a in acks],
                   f"{bad} bad acks; machine {machine:.0%} busy of {CORES} cores", usage)
        report.add(f"/call to create, {label}", [x * 1000 for x in places],
                   f"{missing} never reached Retell; p99 per burst " +
                   ", ".join(f"{x * 1000:.0f}" for x in burst_p99s))
        place99, ack99 = percentile(places, 99), percentile([a.ms for a in acks], 99)
        figure = (f"{place99:.2f} s (p50 {percentile(places, 50):.2f} s; {len(places)} commands"
                  f" in {sizes.bursts} bursts, {label})")
        ack_figure = (f"{ack99:.1f} ms (p50 {percentile([a.ms for a in acks], 50):.1f} ms, "
                      f"{label})")
        if case == "history":
            full = sizes.history >= 1_000_000 or None  # under a million: shown, not judged
            report.goal("placeN", figure, full and place99 <= PLACE_GOAL_S and not missing)
            report.goal("ackN", ack_figure, full and ack99 <= ACK_GOAL_MS and not bad)
        elif case == "empty":
            report.goal("place0", figure, place99 <= PLACE_GOAL_S and not missing)
            report.goal("ack0", ack_figure, ack99 <= ACK_GOAL_MS and not bad)
        else:
            report.fact(f"placement p99 {figure}; ack p99 {ack_figure}")


async def post_cards(bench: Bench, n: int) -> list[str]:
    """`n` call cards in CHANNEL, posted to the Slack stand-in as the bot would have."""
    stamps = []
    for i in range(n):
        async with bench.session.post(
            bench.slack.api_url + "chat.postMessage",
            json={"channel": CHANNEL, "text": f"Call {i}: in progress"},
            headers={"Authorization": f"Bearer {bench.slack.token}"},
        ) as resp:
            answer = await resp.json()
        if not answer.get("ok"):
            raise RuntimeError(f"Slack stand-in refused a card: {answer}")
        stamps.append(str(answer["ts"]))
    return stamps


async def bench_outcomes(bench: Bench, sizes: Sizes) -> None:
    """`sizes.endings` calls in progress, their cards posted, all in CHANNEL, end at once
    (call_ended and call_analyzed each, 32 senders) while the app posts at Slack's real pace
    (CALLBOT_SLACK_CHANNEL_RATE=1): when does each call's outcome (its first thread reply,
    the summary) land, counted from the start of the webhook burst?"""
    report, slack, n = bench.report, bench.slack, sizes.endings
    say(f"outcomes: {n} calls ending at once into one channel at 1 message/s")
    ids = [new_call_id() for _ in range(n)]
    stamps = await post_cards(bench, n)
    db = bench.workdir / "outcomes.db"
    await seed_database(db, bench.tree, cards=list(zip(ids, [CHANNEL] * n, stamps, strict=True)))
    server = bench.server("server-outcomes", channel_rate="1", db=db)
    server.spawn()
    try:
        await server.wait_healthy()
        updates = slack.counts["chat.update"]
        requests = [(event, call_id, CHANNEL) for event in ("call_ended", "call_analyzed")
                    for call_id in ids]
        started = time.perf_counter()
        result = await loadgen.blast(bench.webhooks(server, SENDERS, requests))
        for answer, count in list(wrong_answers(result, "app").items())[:3]:
            report.problem(f"outcomes: {count} webhooks answered {answer!r}")
        cards = [(CHANNEL, ts) for ts in stamps]
        try:
            await slack.wait_for(lambda: all(c in slack.replied for c in cards),
                                 timeout=4.0 * n + 60)
        except AssertionError:
            report.problem(f"outcomes: {sum(c not in slack.replied for c in cards)} of {n} "
                           "summaries never landed")
        landed = sorted(slack.replied[c] - started for c in cards if c in slack.replied)
        updated = slack.counts["chat.update"] - updates
    finally:
        review_log(server, await server.stop(), report)
    if not landed:
        return
    report.add(f"outcomes, {n} calls, 1 channel", [x * 1000 for x in landed],
               f"webhooks answered in {result.wall:.2f} s; {updated} chat.update for {n} cards")
    first, middle, last = landed[0], statistics.median(landed), landed[-1]
    full = n >= 100 or None  # fewer calls: shown, not judged
    report.goal("first", f"{first:.1f} s (of {n} calls; last {last:.1f} s)",
                full and first <= FIRST_GOAL_S)
    report.goal("median", f"{middle:.1f} s (of {n} calls; {updated} card updates)",
                full and middle <= MEDIAN_GOAL_S)
