"""The edge against the real server process (`python -m bot serve`) over real sockets:
compressed and oversized bodies, slow and idle clients, connection shedding, floods of
malformed HTTP, the open-files limit, and start-up faults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.http.signatures import retell_signature
from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.support.process import ServerProcess, free_port, raw_exchange, status_of

pytestmark = pytest.mark.slow  # processes, faults with waits, or many examples

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
def spawn(
    slack: SlackStandIn, retell: RetellStandIn, db_path: Path, tmp_path: Path
) -> AsyncIterator[type[ServerProcess]]:
    """A factory for ServerProcess on this test's stand-ins; every one is killed at the end."""
    made: list[ServerProcess] = []

    def make(extra: dict[str, str] | None = None, **kwargs: object) -> ServerProcess:
        proc = ServerProcess(slack, retell, db_path, tmp_path / f"p{len(made)}", extra=extra,
                             **kwargs)  # type: ignore[arg-type]
        made.append(proc)
        return proc

    yield make  # type: ignore[misc]
    for proc in made:
        proc.kill()


async def open_idle(port: int, count: int) -> list[Conn]:
    return list(await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port)
                                       for _ in range(count))))


async def closed_by_server(conn: Conn, timeout: float) -> bool:  # noqa: ASYNC109
    """True when the server closed the connection (EOF or reset) within `timeout` s."""
    reader, _ = conn
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


def close_all(conns: list[Conn]) -> None:
    for _, writer in conns:
        writer.close()


def new_lines(server: ServerProcess, since: int) -> list[str]:
    return [line for line in server.log_text(since).splitlines() if line.strip()]


def signed_webhook(retell: RetellStandIn, call_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"event": "call_started", "call": {"call_id": call_id}}).encode()
    return body, {"Content-Type": "application/json",
                  "x-retell-signature": retell_signature(body, retell.api_key,
                                                         int(time.time() * 1000))}


# -- bodies -----------------------------------------------------------------------------------


async def test_compressed_or_oversized_bodies_are_refused_before_the_body_is_sent(
    spawn: type[ServerProcess],
) -> None:
    server = spawn()
    await server.start()
    since = server.log_size()
    heads = {
        # A gzip bomb would inflate to the cap; only the headers are ever sent here.
        ("/slack/events", "Content-Encoding: gzip\r\nContent-Length: 1000000"): 415,
        ("/retell/webhook", "Content-Encoding: deflate\r\nContent-Length: 1000000"): 415,
        ("/retell/webhook", "Content-Encoding: br\r\nTransfer-Encoding: chunked"): 415,
        ("/slack/events", f"Content-Length: {(1 << 20) + 1}"): 413,
        ("/retell/webhook", f"Content-Length: {(32 << 20) + 1}"): 413,
    }
    for (route, extra), status in heads.items():
        head = (f"POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"{extra}\r\n\r\n").encode()
        answer = await raw_exchange(server.port, head, timeout=5)
        assert status_of(answer) == status, (route, extra, answer[:200])
        assert b'{"error": ' in answer
    lines = new_lines(server, since)
    # One line per refusal; what else a loaded machine's server logs meanwhile (its set-up
    # checks answering late) is no error.
    refused = [line for line in lines if "refused POST" in line]
    assert len(refused) == len(heads), lines
    assert not [line for line in lines if line not in refused and " ERROR " in line], lines
    assert "Traceback" not in server.log_text(since)


# -- slow and idle clients ----------------------------------------------------------------------


async def timed_healthz(server: ServerProcess) -> float:
    """Seconds for one GET /healthz on a new connection; it must answer 200."""
    started = time.monotonic()
    status, _ = await server.get("/healthz", timeout=5)
    assert status == 200
    return time.monotonic() - started


async def trickle(writer: asyncio.StreamWriter, data: bytes, every: float) -> None:
    """Send `data` one byte at a time until it runs out or the server closes."""
    with contextlib.suppress(ConnectionError, OSError):
        for i in range(len(data)):
            writer.write(data[i:i + 1])
            await writer.drain()
            await asyncio.sleep(every)


async def test_healthz_and_webhooks_are_served_while_1000_slow_clients_hold_connections(
    spawn: type[ServerProcess], retell: RetellStandIn,
) -> None:
    header_timeout = body_timeout = 8.0
    server = spawn({"CALLBOT_HEADER_TIMEOUT": str(header_timeout),
                    "CALLBOT_BODY_TIMEOUT": str(body_timeout)})
    await server.start()
    port = server.port
    baseline = [await timed_healthz(server) for _ in range(20)]
    idle = await open_idle(port, 1000)
    head_conns = await open_idle(port, 100)
    body_conns = await open_idle(port, 50)
    body, headers = signed_webhook(retell, "call_slow_body")
    body += b" " * 300  # at a byte every 0.1 s, longer than the body timeout
    slow_head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 1000
    slow_body = ("POST /retell/webhook HTTP/1.1\r\nHost: x\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    senders = [asyncio.create_task(trickle(w, slow_head, 0.1)) for _, w in head_conns]
    body_senders = []
    for _, writer in body_conns:  # headers at once, then the body a byte at a time
        writer.write(slow_body)
        body_senders.append(asyncio.create_task(trickle(writer, body, 0.1)))
    senders += body_senders
    opened = time.monotonic()

    latencies = [await timed_healthz(server) for _ in range(20)]
    assert (await server.webhook(json.dumps({"event": "call_started",
                                             "call": {"call_id": "call_fast"}})))[0] < 300
    probed = time.monotonic() - opened
    everyone = idle + head_conns + body_conns
    assert probed < header_timeout, "probing took longer than the timeout: nothing measured"
    assert not any(r.at_eof() for r, _ in everyone), "a slow client was dropped early"
    print(f"\nhealthz alone: p50 {statistics.median(baseline) * 1000:.1f} ms, max "
          f"{max(baseline) * 1000:.1f} ms; with {len(everyone)} slow connections held: p50 "
          f"{statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")

    # Then every one of them is timed out: idle and slow headers get closed, slow bodies a 408.
    # The slow bodies stop sending now: a byte written after the server's 408 and close would
    # be answered with a reset, which can discard the 408 before this side reads it.
    for task in body_senders:
        task.cancel()
    closed = await asyncio.gather(*(closed_by_server(c, header_timeout + 10) for c in idle
                                    + head_conns))
    assert all(closed)
    answers = await asyncio.gather(*(r.read() for r, _ in body_conns))
    assert {status_of(a) for a in answers} == {408}
    for task in senders:
        task.cancel()
    close_all(everyone)
    assert (await server.get("/healthz"))[0] == 200


async def test_when_connections_are_full_the_oldest_waiting_ones_are_shed(
    spawn: type[ServerProcess],
) -> None:
    server = spawn({"CALLBOT_MAX_CONNECTIONS": "20", "CALLBOT_HEADER_TIMEOUT": "120"})
    await server.start()
    conns = []
    for _ in range(30):  # one at a time: the server sees them in this order
        conns.append(await asyncio.open_connection("127.0.0.1", server.port))
        await asyncio.sleep(0.01)  # not a condition: keeps accept order = connect order
    assert (await server.get("/healthz"))[0] == 200  # a new client gets in
    # 31 connections for 20 places: the 11 oldest idle ones made room.
    shed = await asyncio.gather(*(closed_by_server(c, 5) for c in conns[:11]))
    assert all(shed)
    kept = await asyncio.gather(*(closed_by_server(c, 0.2) for c in conns[11:]))
    assert not any(kept)
    close_all(conns)


# -- floods -------------------------------------------------------------------------------------


async def test_a_flood_of_malformed_http_logs_a_bounded_number_of_lines(
    spawn: type[ServerProcess],
) -> None:
    server = spawn()
    await server.start()
    since = server.log_size()
    bad = [
        b"GET / HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n",
        b"GET /\x00\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /retell/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"a" * 20_000 + b"\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    ]
    sem = asyncio.Semaphore(20)

    async def one(i: int) -> int | None:
        async with sem:
            return status_of(await raw_exchange(server.port, bad[i % len(bad)], timeout=5))

    statuses = await asyncio.gather(*(one(i) for i in range(500)))
    assert all(s is not None and 400 <= s < 500 for s in statuses), set(statuses)
    assert (await server.get("/healthz"))[0] == 200
    lines = new_lines(server, since)
    assert len(lines) <= 10, "\n".join(lines)
    assert "Traceback" not in server.log_text(since)


# -- start-up ---------------------------------------------------------------------------------


async def test_the_open_files_soft_limit_is_raised_once_at_start_up(
    spawn: type[ServerProcess],
) -> None:
    server = spawn(nofile=(256, 4096))
    await server.start()
    lines = [ln for ln in server.log_text().splitlines() if "open files" in ln]
    assert len(lines) == 1, lines
    assert "soft limit 4096 (raised from 256); up to 3840 connections" in lines[0]


def fault_lines(server: ServerProcess) -> list[str]:
    text = server.log_text()
    assert "Traceback" not in text, text
    assert "ready:" not in text, text
    return [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("-----")]


async def test_a_port_in_use_exits_2_with_one_line(spawn: type[ServerProcess]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = spawn(port=taken.getsockname()[1])
        assert await server.start_expecting_exit() == 2
    [line] = fault_lines(server)
    assert f"PORT {server.port} is already in use" in line


async def test_a_host_that_does_not_resolve_exits_2_with_one_line(
    spawn: type[ServerProcess],
) -> None:
    server = spawn({"HOST": "no-such-host.invalid"})
    assert await server.start_expecting_exit() == 2
    [line] = fault_lines(server)
    assert "HOST 'no-such-host.invalid' does not resolve" in line


@pytest.mark.parametrize("case", ["under-a-file", "not-a-database", "a-directory"])
async def test_a_database_that_cannot_be_opened_exits_2_with_one_line(
    spawn: type[ServerProcess], tmp_path: Path, case: str,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    path = {"under-a-file": blocker / "sub" / "callbot.db", "not-a-database": blocker,
            "a-directory": tmp_path}[case]
    server = spawn({"DATABASE_URL": f"sqlite:///{path}"})
    assert await server.start_expecting_exit() == 2
    [line] = fault_lines(server)
    assert line.startswith(f"callbot: DATABASE_URL sqlite:///{path} cannot be")
    assert {"under-a-file": "a-file is a file, not a directory",
            "not-a-database": "file is not a database",
            "a-directory": "unable to open database file"}[case] in line
    assert blocker.read_text() == "not a directory"


async def test_ready_is_logged_once_the_port_is_bound(spawn: type[ServerProcess]) -> None:
    port = free_port()
    server = spawn(port=port)
    await server.start()
    lines = server.log_text().splitlines()
    ready = [i for i, ln in enumerate(lines) if "ready:" in ln]
    assert len(ready) == 1 and f"ready: listening on http://127.0.0.1:{port}" in lines[ready[0]]
    started = [i for i, ln in enumerate(lines) if "started: database" in ln]
    assert started and started[0] < ready[0]
