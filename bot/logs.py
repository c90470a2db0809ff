"""Logging: one line per request and per event, and a last line of defence for secrets.

Code here logs masked numbers and never logs tokens; the filter below also scrubs anything a
library might print (a Slack token, a bearer header, a full E.164 number).
"""

from __future__ import annotations

import logging
import re

from aiohttp import web

from bot.phones import mask_phone

# Set on a request whose handler logged its own line, so the access log adds none.
LOGGED = web.RequestKey("callbot_logged", bool)
_SECRETS = re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+|\bxapp-[A-Za-z0-9-]+|(Bearer\s+)[^\s'\",}]+")
_E164 = re.compile(r"(?<![\w+])\+[1-9]\d{7,14}\b")


def scrub(text: str) -> str:
    text = _SECRETS.sub(lambda m: (m.group(1) or "") + "[redacted]", text)
    return _E164.sub(lambda m: mask_phone(m.group(0)), text)


class ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    handler.addFilter(ScrubFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter (request bodies, headers) only when debugging on purpose.
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in ("slack_bolt", "slack_sdk", "httpx", "httpcore", "aiosqlite", "aiohttp.access"):
        logging.getLogger(name).setLevel(quiet)
