"""`callbot serve` / `python -m bot serve`."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from bot.config import SettingsError, load_settings
from bot.logs import setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callbot", description="Retell calls from Slack")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the HTTP server (the default)")
    serve.add_argument("--host", help="overrides HOST")
    serve.add_argument("--port", type=int, help="overrides PORT")
    args = parser.parse_args(argv)

    overrides = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"callbot: {exc}", file=sys.stderr)
        return 2

    from bot.app import create_app

    setup_logging(settings.log_level)
    logging.getLogger("bot").info("listening on http://%s:%d", settings.host, settings.port)
    web.run_app(
        create_app(settings), host=settings.host, port=settings.port,
        access_log=None, print=None, shutdown_timeout=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
