"""`callbot import` and `callbot export` as operators run them: the real CLI in its own
process, against the Retell stand-in (seeded with past calls) and a SQLite file, with the
real server on the same file where it matters (webhook-stored calls, nothing posted)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.input.phones import mask_numbers, mask_phone
from bot.render.exports import CALL_COLUMNS
from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from storage.models import CallFilter, CallRecord
from tests.conftest import CHANNEL, SIGNING_SECRET, StartServer
from tests.support.db import db_dicts, db_rows
from tests.support.stores import database_for, store_for
from tests.support.waiting import eventually
from tests.support.webhooks import send

pytestmark = pytest.mark.slow  # real processes

ROOT = Path(__file__).resolve().parents[2]
DAY_MS = 86_400_000
CALLEE = "+14155550123"  # the stand-in's default other party of a past call
SPOKEN = "+14155550177"  # a number said on a call, inside the transcript and summary


def cli_env(retell: RetellStandIn | None, db: Path, **values: str) -> dict[str, str]:
    """The environment an operator's shell would give the CLI: this database, the
    stand-in as Retell, placeholder-free Slack settings (the CLI never calls Slack)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "RETELL_", "CALLBOT_", "DATABASE_"))}
    env.update(
        PYTHONIOENCODING="utf-8", PYTHONPATH=str(ROOT),
        SLACK_BOT_TOKEN="xoxb-0000-cli-test", SLACK_SIGNING_SECRET=SIGNING_SECRET,
        RETELL_API_KEY=retell.api_key if retell else "key_cli_test",
        RETELL_BASE_URL=retell.url if retell else "http://127.0.0.1:9",
        RETELL_FROM_NUMBER="+14155550100", DATABASE_URL=database_for(db))
    env.update(values)
    return env


async def cli(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, str, str, float]:
    """`python -m bot <args>` in its own process, without blocking the stand-ins in this
    loop; (exit code, stdout, stderr, seconds)."""
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode(), time.perf_counter() - started


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return db_rows(db, sql, *args)


def list_requests(retell: RetellStandIn) -> list[dict[str, Any]]:
    return [r.json for r in retell.requests if r.path == "/v3/list-calls"]


def seed_history(retell: RetellStandIn, n: int, *, days: int = 29) -> list[str]:
    """`n` past calls spread over the last `days` days, oldest first, in the variety a real
    account has: one in ten not answered, some inbound, extracted fields, one call placed
    from Slack (its route in the metadata), one summary with a word to search for."""
    now = int(time.time() * 1000)
    start = now - days * DAY_MS
    step = (days * DAY_MS - 3_600_000) // max(n, 1)
    ids = []
    for i in range(n):
        extra: dict[str, Any] = {}
        if i % 10 == 3:
            extra["disconnection_reason"] = "dial_no_answer"
        else:
            extra["duration_ms"] = 30_000 + (i % 7) * 10_000
            extra["call_analysis"] = {"custom_analysis_data": {
                "plan": ("gold", "silver")[i % 2], "renewal": i % 3 == 0}}
        if i == n // 2:
            extra["call_analysis"] = {"call_summary": f"Zeppelin tour booked; call back on "
                                                      f"{SPOKEN}.", "call_successful": True}
            extra["transcript"] = f"Agent: Your number?\nUser: It is {SPOKEN}.\n"
        if i == 2:  # the callee asked not to be called again
            extra["disconnection_reason"] = "user_requested_dnc"
        if i == 1:
            extra["metadata"] = {"source": "slack-callbot", "slack_team_id": "T0TEST",
                                 "slack_channel_id": CHANNEL, "slack_user_id": "U0ALICE"}
        ids.append(retell.add_past_call(start + i * step,
                                        direction="inbound" if i % 5 == 4 else "outbound",
                                        **extra))
    return ids


# -- import -----------------------------------------------------------------------------------


async def test_import_pages_through_history_once_waits_out_a_429_and_posts_nothing(
    start: StartServer, slack: SlackStandIn, retell: RetellStandIn, db_path: Path,
    tmp_path: Path,
) -> None:
    # Two calls the running server stored from their webhooks (and posted, as it does).
    server = await start(CALLBOT_NOTIFY_CHANNEL=CHANNEL)
    webhook_ids = [retell.new_inbound_call(n, "+14155550100")
                   for n in ("+442071838750", "+442071838751")]
    for call_id in webhook_ids:
        for event in ("call_started", "call_ended", "call_analyzed"):
            assert (await send(server, retell, call_id, event))[0] == 200
    await eventually(server.outbox_idle)
    webhook_rows = rows(db_path, "SELECT * FROM calls ORDER BY id")
    posts = len(slack.calls_to("chat.postMessage"))
    assert posts >= 2

    history = seed_history(retell, 2500)
    retell.add_past_call(int(time.time() * 1000) - 40 * DAY_MS)  # before --since: left out
    live = retell.new_inbound_call("+442071838752", "+14155550100")
    retell.event_body(live, "call_started")  # still on the line: its webhooks will tell
    retell.fail_next("/v3/list-calls", 429, retry_after=1, after=1)  # page 2, once

    code, out, err, first_run = await cli(tmp_path, cli_env(retell, db_path),
                                          "import", "--since", "30d")
    assert code == 0, err
    assert out.splitlines() == [
        "Imported from Retell: 2,503 calls fetched in 3 page(s), 2,500 added, 2 already "
        "stored, 1 still live (their webhooks will record them)."]
    assert "Retell asked to slow down (list-calls)" in err and "Traceback" not in err
    assert "Importing [########################] 2,503 / 2,503 calls · page 3" in err
    # Three pages of at most 1000, oldest first, from 30 days back; the page that met the 429
    # was asked again with the same key after the second Retry-After asked for.
    asked = list_requests(retell)
    assert [a.get("pagination_key") for a in asked][1] == asked[2].get("pagination_key")
    pages = [asked[0], asked[2], asked[3]]
    assert len(asked) == 4 and len({a.get("pagination_key") for a in pages}) == 3
    for body in asked:
        assert body["limit"] == 1000 and body["sort_order"] == "ascending"
        since = body["filter_criteria"]["start_timestamp"]
        assert since["op"] == "ge" and since["type"] == "number"
        assert abs(since["value"] - (time.time() - 30 * 86400) * 1000) < 300_000
    assert first_run >= 1.0

    # Every call is there once, the webhooks' rows exactly as they were, and nothing was
    # queued for Slack: the running server posts nothing more.
    assert rows(db_path, "SELECT count(*), count(DISTINCT call_id) FROM calls") == [
        (2502, 2502)]
    stored = rows(db_path, "SELECT * FROM calls ORDER BY id")
    assert stored[:2] == webhook_rows
    assert rows(db_path, "SELECT count(*) FROM outbox WHERE call_id NOT IN (?, ?)",
                *webhook_ids) == [(0,)]
    assert rows(db_path, "SELECT count(*) FROM calls WHERE call_id = ?", live) == [(0,)]
    await asyncio.sleep(0.3)
    assert server.outbox_idle() and len(slack.calls_to("chat.postMessage")) == posts
    # The callee who asked not to be called again is on the list, as a webhook would put them.
    dnc = rows(db_path, "SELECT number, call_id FROM dnc")
    assert dnc == [(retell.calls[history[2]]["to_number"], history[2])]
    assert rows(db_path, "SELECT count(*) FROM audit WHERE action = 'dnc_auto'") == [(1,)]

    # Stored as their webhooks would have left them (compared with what Retell holds).
    async with store_for(db_path) as store:
        for call_id in (history[0], history[1], history[3], history[1250]):
            record = await store.get_call(call_id)
            assert record is not None
            assert_same_as_retell(record, retell.calls[call_id])
        routed = await store.get_call(history[1])
        assert routed is not None and routed.channel_id == CHANNEL  # the route is kept

        # /callstats and /callsearch find them, at the time they happened.
        month = await store.report(CallFilter(since=time.time() - 30 * 86400))
        assert month.stats.calls == 2502
        assert month.stats.analyzed == 2502
        assert month.stats.successful == 2 + sum(1 for i in range(2500) if i % 10 != 3)
        week = await store.report(CallFilter(since=time.time() - 7 * 86400))
        expected_week = 2 + sum(1 for c in history
                                if retell.calls[c]["start_timestamp"]
                                >= (time.time() - 7 * 86400) * 1000)
        assert abs(week.stats.calls - expected_week) <= 1  # a call may cross the edge
        assert week.stats.calls < 2502 // 3
        inbound = await store.report(CallFilter(since=0, direction="inbound"))
        assert inbound.stats.calls == 2 + 500
        [hit] = await store.search_calls("zeppelin", CallFilter(), limit=5)
        assert hit.call.call_id == history[1250]

    # Again: nothing added, nothing changed.
    code, out, err, second_run = await cli(tmp_path, cli_env(retell, db_path),
                                           "import", "--since", "30d")
    assert code == 0, err
    assert out.startswith("Imported from Retell: 2,503 calls fetched in 3 page(s), 0 added, "
                          "2,502 already stored")
    assert rows(db_path, "SELECT * FROM calls ORDER BY id") == stored
    assert rows(db_path, "SELECT number, call_id FROM dnc") == dnc
    assert rows(db_path, "SELECT count(*) FROM audit WHERE action = 'dnc_auto'") == [(1,)]
    assert len(slack.calls_to("chat.postMessage")) == posts
    print(f"\nimport of 2,500 calls: {first_run:.2f} s (1 s of it the Retry-After); "
          f"again: {second_run:.2f} s")


def assert_same_as_retell(record: CallRecord, call: dict[str, Any]) -> None:
    analysis = call.get("call_analysis") or {}
    assert record.status == call["call_status"]
    assert record.stage == 3  # analysed
    assert record.direction == call["direction"]
    assert (record.from_number, record.to_number) == (call["from_number"], call["to_number"])
    assert (record.agent_id, record.agent_name) == (call["agent_id"], call["agent_name"])
    assert record.created_at == record.started_at == call["start_timestamp"] / 1000
    assert record.ended_at == call["end_timestamp"] / 1000
    assert record.duration_ms == call["duration_ms"]
    assert record.disconnection_reason == call["disconnection_reason"]
    assert record.cost_cents == call["call_cost"]["combined_cost"]
    assert record.summary == analysis["call_summary"]
    assert record.sentiment == analysis["user_sentiment"]
    assert record.successful == analysis["call_successful"]
    assert record.extracted == (analysis.get("custom_analysis_data") or {})
    assert record.transcript is None  # list-calls leaves it out; --transcripts fetches it


async def test_transcripts_come_from_get_call_once_even_through_a_429(
    retell: RetellStandIn, db_path: Path, tmp_path: Path,
) -> None:
    history = seed_history(retell, 40)
    connected = [c for c in history if retell.calls[c]["duration_ms"]]
    retell.fail_next("/v2/get-call/", 429, retry_after=1, after=5)

    code, out, err, _ = await cli(tmp_path, cli_env(retell, db_path),
                                  "import", "--since", "30d", "--transcripts")
    assert code == 0, err
    assert out.splitlines() == [
        f"Imported from Retell: 40 calls fetched in 1 page(s), 40 added, 0 already stored; "
        f"{len(connected)} transcripts fetched."]
    assert "Retell asked to slow down (get-call)" in err
    gets = [r.path.rsplit("/", 1)[1] for r in retell.requests
            if r.path.startswith("/v2/get-call/")]
    assert sorted(set(gets)) == sorted(connected) and len(gets) == len(connected) + 1
    stored = dict(rows(db_path, "SELECT call_id, transcript FROM calls"))
    for call_id in history:
        want = retell.calls[call_id]["transcript"] if call_id in connected else None
        assert stored[call_id] == want
    async with store_for(db_path) as store:  # the words are searchable
        hits = await store.search_calls("street", CallFilter(), limit=100)
        assert {h.call.call_id for h in hits} == set(connected) - {history[20]}

    code, out, _, _ = await cli(tmp_path, cli_env(retell, db_path),
                                "import", "--since", "2000-01-01", "--transcripts")
    assert code == 0 and "0 added, 40 already stored; 0 transcripts fetched." in out
    assert len([r for r in retell.requests if r.path.startswith("/v2/get-call/")]) == len(gets)


@pytest.mark.parametrize(("fault", "words"), [
    ("bad_key", "Retell refused RETELL_API_KEY (HTTP 401: Invalid API key [redacted]); copy"),
    ("down", "Retell is unavailable (HTTP 503: Service unavailable); check the network"),
], ids=["bad_key", "down"])
async def test_retell_failures_exit_1_with_one_line(
    retell: RetellStandIn, db_path: Path, tmp_path: Path, fault: str, words: str,
) -> None:
    seed_history(retell, 3)
    env = cli_env(retell, db_path)
    if fault == "bad_key":  # and a Retell that echoes it: the line does not show it
        env["RETELL_API_KEY"] = "key_wrong_0123456789"
        retell.fail_next("/v3/list-calls", 401, "Invalid API key key_wrong_0123456789")
    else:  # down: every try answered 503 (Retry-After 0: no wait between them)
        retell.fail_next("/v3/list-calls", 503, retry_after=0, times=100)
    code, out, err, _ = await cli(tmp_path, env, "import", "--since", "7d")
    assert (code, out) == (1, "")
    [line] = err.splitlines()
    assert line.startswith(f"callbot: import stopped: {words}")
    assert "key_wrong" not in err


@pytest.mark.sqlite_only("an export with no database file there")
async def test_settings_problems_exit_2(tmp_path: Path, db_path: Path) -> None:
    code, _, err, _ = await cli(tmp_path, cli_env(None, db_path, RETELL_MODE="simulate"),
                                "import", "--since", "30d")
    assert code == 2 and "RETELL_MODE=simulate" in err
    code, _, err, _ = await cli(tmp_path, cli_env(None, db_path), "import", "--since", "soon")
    assert code == 2 and "'soon' is neither a number of days" in err
    code, out, err, _ = await cli(tmp_path, cli_env(None, db_path), "export")
    assert (code, out) == (1, "") and "no database there" in err
    assert db_path.name not in os.listdir(db_path.parent)  # an export creates no database


# -- export -----------------------------------------------------------------------------------


async def test_export_jsonl_and_csv_match_the_stored_calls(
    retell: RetellStandIn, db_path: Path, tmp_path: Path,
) -> None:
    history = seed_history(retell, 60)
    code, _, err, _ = await cli(tmp_path, cli_env(retell, db_path),
                                "import", "--since", "30d", "--transcripts")
    assert code == 0, err
    stored = stored_calls(db_path)
    assert [c["call_id"] for c in stored] == history  # oldest first
    fields = ["plan", "renewal"]

    for full in (False, True):
        env = cli_env(retell, db_path, CALLBOT_SHOW_FULL_NUMBERS=str(full).lower())
        code, out, err, _ = await cli(tmp_path, env, "export", "--format", "jsonl")
        assert code == 0, err
        shown = "in full" if full else "masked"
        assert err == f"Exported 60 calls as jsonl to stdout (numbers {shown}).\n"
        lines = [json.loads(line) for line in out.splitlines()]
        assert len(lines) == 60
        for got, call in zip(lines, stored, strict=True):
            assert got == expected_json(call, full)
        assert (SPOKEN in out) is full and (CALLEE in out) is full

        target = tmp_path / "calls.csv"
        code, out, err, _ = await cli(tmp_path, env, "export", "--format", "csv",
                                      "--output", str(target))
        assert (code, out) == (0, "") and f"to {target}" in err
        assert "calls.csv.partial" not in os.listdir(tmp_path)
        table = list(csv.reader(io.StringIO(target.read_bytes().decode("utf-8"), newline="")))
        assert table[0] == [*CALL_COLUMNS, *(f"field:{f}" for f in fields), "transcript"]
        assert len(table) == 61
        for got_row, call in zip(table[1:], stored, strict=True):
            assert dict(zip(table[0], got_row, strict=True)) == expected_csv(call, full)

    # --since picks by when the calls happened.
    week_ago = time.time() - 7 * 86400
    code, out, _, _ = await cli(tmp_path, cli_env(retell, db_path), "export", "--since", "7d")
    assert code == 0
    assert [json.loads(line)["call_id"] for line in out.splitlines()] == [
        c["call_id"] for c in stored if c["created_at"] >= week_ago]


def stored_calls(db: Path) -> list[dict[str, Any]]:
    return db_dicts(db, "SELECT * FROM calls ORDER BY id")


def _utc(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else ""


def _other(call: dict[str, Any]) -> str:
    return str(call["from_number"] if call["direction"] == "inbound" else call["to_number"])


def _text(text: str | None, full: bool) -> str | None:
    return text if full or text is None else mask_numbers(text)


def expected_json(call: dict[str, Any], full: bool) -> dict[str, Any]:
    number = _other(call)
    return {
        "source": "slack-callbot", "call_id": call["call_id"],
        "created_at": _utc(call["created_at"]), "started_at": _utc(call["started_at"]),
        "ended_at": _utc(call["ended_at"]), "direction": call["direction"],
        "agent_id": call["agent_id"], "agent": call["agent_name"],
        "number": number if full else mask_phone(number), "user": call["user_id"],
        "channel": call["channel_id"], "campaign": None, "status": call["status"],
        "duration_ms": call["duration_ms"], "cost_usd": call["cost_cents"] / 100,
        "sentiment": call["sentiment"], "successful": bool(call["successful"]),
        "reason": call["disconnection_reason"], "summary": _text(call["summary"], full),
        "fields": json.loads(call["extracted"]) if call["extracted"] else {},
        "transcript": _text(call["transcript"], full),
    }


def expected_csv(call: dict[str, Any], full: bool) -> dict[str, str]:
    number = _other(call)
    extracted = json.loads(call["extracted"]) if call["extracted"] else {}

    def flag(value: Any) -> str:
        return "" if value is None else "true" if value else "false"

    def seconds(value: float, places: int) -> str:
        text = f"{value:.{places}f}".rstrip("0").rstrip(".")
        return "0" if text in ("", "-0") else text

    return {
        "time_utc": _utc(call["created_at"]), "call_id": call["call_id"],
        # The formula guard of every CSV cell this app writes: a leading + is kept as text.
        "direction": call["direction"], "number": "'" + (number if full else mask_phone(number)),
        "user": call["user_id"] or "", "channel": call["channel_id"] or "",
        "agent": call["agent_name"], "campaign": "", "status": call["status"],
        "duration_s": seconds(call["duration_ms"] / 1000, 3),
        "cost_usd": seconds(call["cost_cents"] / 100, 4),
        "sentiment": call["sentiment"], "successful": flag(call["successful"]),
        "reason": call["disconnection_reason"], "summary": _text(call["summary"], full) or "",
        "field:plan": extracted.get("plan", ""),
        "field:renewal": flag(extracted.get("renewal")),
        "transcript": _text(call["transcript"], full) or "",
    }


# -- export memory ----------------------------------------------------------------------------

TRANSCRIPT = ("Agent: Hello, this is the renewal desk calling about your plan. " * 16).strip()


def history_records(n: int) -> Iterator[CallRecord]:
    """`n` analysed calls of about 1 KB of transcript each, made on the fly."""
    base = time.time() - 20 * 86400
    for i in range(n):
        at = base + i
        yield CallRecord(
            id=0, call_id=f"call_{i:012d}", direction="outbound", status="ended", stage=3,
            created_at=at, updated_at=at, from_number="+14155550100", to_number=CALLEE,
            agent_id="agent_1", agent_name="Renewals", started_at=at, ended_at=at + 60,
            duration_ms=60_000, sentiment="Positive", successful=True, cost_cents=12.5,
            summary=f"Renewal call {i}: the customer kept the gold plan.",
            extracted={"plan": "gold", "seats": i % 50}, transcript=f"{TRANSCRIPT} #{i}")


async def fill(db: Path, n: int) -> None:
    async with store_for(db) as store:
        assert await store.import_calls(history_records(n)) == n


@pytest.fixture(scope="module")
def histories(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two databases, of 5,000 and of 50,000 calls (filled once for both formats)."""
    folder = tmp_path_factory.mktemp("histories")
    small, large = folder / "small.db", folder / "large.db"
    asyncio.run(fill(small, 5_000))
    asyncio.run(fill(large, 50_000))
    return small, large


def export_peak_rss(tmp_path: Path, db: Path, kind: str) -> tuple[int, float, Path]:
    """Export `db` through the CLI to a file; (the process's peak RSS in KiB, seconds, the
    file). The peak is the child's VmHWM, read while it runs: unlike ru_maxrss, which
    starts from the size of the process that forked it (pytest, here), it counts only
    what the CLI itself touched."""
    target = tmp_path / f"{db.stem}.{kind}"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "export", "--format", kind, "--output", str(target)],
        cwd=tmp_path, env=cli_env(None, db), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _vm_hwm(proc.pid))
        time.sleep(0.005)
    seconds = time.perf_counter() - started
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.returncode == 0, err.decode()
    assert peak > 0
    return peak, seconds, target


def _vm_hwm(pid: int) -> int:
    """A live process's peak resident size in KiB (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_export_streams_in_constant_memory(histories: tuple[Path, Path], tmp_path: Path,
                                           kind: str) -> None:
    small, large = histories
    small_rss, _, _ = export_peak_rss(tmp_path, small, kind)
    large_rss, seconds, target = export_peak_rss(tmp_path, large, kind)
    with open(target, encoding="utf-8", newline="") as f:
        written = sum(1 for _ in (csv.reader(f) if kind == "csv" else f))
    assert written == 50_000 + (kind == "csv")
    size_mb = target.stat().st_size / 2**20
    grown_mb = (large_rss - small_rss) / 1024
    print(f"\nexport of 50,000 calls as {kind}: {seconds:.2f} s, {size_mb:.0f} MB written, "
          f"peak RSS {large_rss / 1024:.0f} MB (5,000 calls: {small_rss / 1024:.0f} MB)")
    # Holding the rows (or the file) would add tens of MB: the file alone is over 50 MB.
    assert size_mb > 50
    assert grown_mb < 15, f"peak RSS grew {grown_mb:.1f} MB from 5,000 to 50,000 calls"

