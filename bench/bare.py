"""The yardstick for webhook ingest: a bare aiohttp app that answers 204 to any POST.

    python -m bench.bare PORT

It reads each body (as the real handler must) and does nothing else; GET /healthz says 200 so
the bench can tell when it is up. Run the same way as the server (`web.run_app`, no access log).
"""

from __future__ import annotations

import sys

from aiohttp import web

MAX_BODY_BYTES = 32 * 1024 * 1024  # as bot/app.py allows


async def accept(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=204)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main(argv: list[str]) -> int:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/{path:.*}", accept)
    web.run_app(app, host="127.0.0.1", port=int(argv[0]), access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
