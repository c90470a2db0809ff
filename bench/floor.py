"""The floor for webhook ingest: the least a signed, durable webhook handler can do.

    python -m bench.floor PORT DB_PATH KEY

It checks the Retell signature, parses the JSON, and stores the body through the app's own
group commit (WAL, synchronous FULL), answering only after its commit, as the real handler
must. It skips everything else the app does (validation, the call row, the outbox, logs,
metrics). Whatever this reaches is an upper bound for the app on the same machine, so the
bench runs it beside the bare 204 handler to show how much of the gap any handler that
stores before answering must pay.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import orjson
from aiohttp import web

from bench.bare import MAX_BODY_BYTES, healthz
from bot.http.signatures import check_retell_signature
from storage.writer import GroupWriter

PRAGMAS = ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL"]
STORED = b'{"status": "stored"}'


def make_app(db: Path, key: str) -> web.Application:
    writer = GroupWriter(db, PRAGMAS)

    async def start(app: web.Application) -> None:
        await writer.open()
        await writer.run_script(
            "CREATE TABLE IF NOT EXISTS events (call_id TEXT, event TEXT, body TEXT, "
            "PRIMARY KEY (call_id, event))")

    async def stop(app: web.Application) -> None:
        await writer.close()

    async def accept(request: web.Request) -> web.Response:
        raw = await request.read()
        refused = check_retell_signature(raw, key, request.headers.get("x-retell-signature"))
        if refused:
            return web.json_response({"error": refused}, status=401)
        data = orjson.loads(raw)
        row = (data["call"]["call_id"], data["event"], raw.decode())

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR IGNORE INTO events VALUES (?, ?, ?)", row)

        await writer.write(insert)
        return web.Response(body=STORED, content_type="application/json")

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/{path:.*}", accept)
    return app


def main(argv: list[str]) -> int:
    port, db, key = int(argv[0]), Path(argv[1]), argv[2]
    web.run_app(make_app(db, key), host="127.0.0.1", port=port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
