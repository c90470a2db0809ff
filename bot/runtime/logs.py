"""Logging: one line per request and per event, and a last line of defence for secrets.

Code here logs masked numbers and never logs tokens; the scrubbing below also cleans anything
a library or an exception might print: a Slack token, a bearer header, a phone number in any
spelling (`+14155550123`, `(415) 555-0123`, `415.555.0123`, ...), and control characters
(a request path with `\\r\\n` or an ANSI escape must not forge or recolour a log line).

It runs when a record is made (a log record factory), so it holds for every handler, the
root one and any a library or a test adds, and for tracebacks, which are formatted and
cleaned at that moment too.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

from aiohttp import web

from bot.input.phones import mask_numbers

# Set on a request whose handler logged its own line, so the access log adds none.
LOGGED = web.RequestKey("callbot_logged", bool)
_SECRETS = re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+|\bxapp-[A-Za-z0-9-]+|(Bearer\s+)[^\s'\",}]+")
# C0 and C1 controls, DEL, and what str.splitlines() also reads as a line break.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROLS_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}
# A record's message past this is cut: a multi-megabyte debug line helps no one.
MAX_MESSAGE_CHARS = 20_000


def _escape_control(match: re.Match[str]) -> str:
    char = match.group(0)
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else
                                f"\\u{ord(char):04x}")


def scrub(text: str) -> str:
    """One log line, safe to write: no secrets, no whole numbers, no control characters."""
    if len(text) > MAX_MESSAGE_CHARS:
        text = f"{text[:MAX_MESSAGE_CHARS]}… [{len(text) - MAX_MESSAGE_CHARS:,} more characters]"
    text = _SECRETS.sub(lambda m: (m.group(1) or "") + "[redacted]", text)
    return _CONTROLS.sub(_escape_control, mask_numbers(text))


def scrub_block(text: str) -> str:
    """A traceback or stack: kept on several lines, each indented so none can pass for a
    log line of its own, with the same cleaning as a message."""
    text = _SECRETS.sub(lambda m: (m.group(1) or "") + "[redacted]", text)
    text = _CONTROLS_BUT_NEWLINE.sub(_escape_control, mask_numbers(text))
    return "\n".join("  " + line for line in text.split("\n"))


def clean_record(record: logging.LogRecord) -> None:
    """Replace the record's message, traceback and stack by their scrubbed forms, once."""
    if record.__dict__.get("_callbot_clean"):
        return
    record.__dict__["_callbot_clean"] = True
    try:
        message = record.getMessage()
    except Exception:  # a bad format string; logging would print the raw arguments to stderr
        message = f"{record.msg} [log arguments do not fit the message]"
    record.msg, record.args = scrub(message), ()
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = scrub_block("".join(traceback.format_exception(*record.exc_info))
                                      .rstrip("\n"))
    elif record.exc_text:
        record.exc_text = scrub_block(record.exc_text)
    if record.stack_info:
        record.stack_info = scrub_block(record.stack_info)


class ScrubFilter(logging.Filter):
    """For a handler set up elsewhere; the record factory already does the same."""

    def filter(self, record: logging.LogRecord) -> bool:
        clean_record(record)
        return True


def install_scrubbing() -> None:
    """Clean every record as it is made, whichever logger and handler it goes to."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_callbot_scrubbing", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        clean_record(record)
        return record

    factory._callbot_scrubbing = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def setup_logging(level: str = "INFO") -> None:
    install_scrubbing()
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
