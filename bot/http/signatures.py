"""Request signatures: Retell's (`x-retell-signature: v=<unix ms>,d=<hex>`, retell-api.md) and
Slack's (`X-Slack-Signature: v0=<hex>` over `v0:<timestamp>:<body>`, slack-notes.md).

The digests cover the raw body bytes exactly as received, so the checks run before any JSON
parsing: re-serialised JSON would not match. Headers are parsed without regular expressions,
in ASCII only and with capped lengths: `\\d` matches any Unicode digit and `int()` of thousands
of digits costs quadratic time, and both headers come from anyone on the internet.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TOLERANCE_MS = 5 * 60 * 1000
# slack_sdk.signature.SignatureVerifier: a timestamp more than five minutes off is refused.
SLACK_TOLERANCE_S = 5 * 60
# Unix milliseconds have 13 digits until the year 2286; seconds have 10. Anything longer is
# not a timestamp, and never reaches int().
MAX_TS_DIGITS = 16
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdef")
_DIGEST_LEN = 64  # sha256, hex
_MAX_HEADER = 128  # longer than any well-formed header of either kind


def _ascii_int(text: str) -> int | None:
    """A small non-negative integer in ASCII digits, else None (no Unicode digits, no sign)."""
    if not 0 < len(text) <= MAX_TS_DIGITS or not _DIGITS.issuperset(text):
        return None
    return int(text)


def _is_digest(text: str) -> bool:
    return len(text) == _DIGEST_LEN and _HEX.issuperset(text)


# -- Retell -----------------------------------------------------------------------------------


def retell_signature(body: bytes, key: str, ts_ms: int) -> str:
    digest = hmac.new(key.encode(), body + str(ts_ms).encode(), hashlib.sha256).hexdigest()
    return f"v={ts_ms},d={digest}"


def parse_retell_header(header: str | None) -> tuple[int, str] | str:
    """(timestamp ms, digest) from the header, or a short reason why it is unusable."""
    if not header:
        return "missing signature"
    text = header.strip()
    if len(text) > _MAX_HEADER or not text.startswith("v="):
        return "malformed signature"
    ts_text, sep, digest = text[2:].partition(",d=")
    ts_ms = _ascii_int(ts_text)
    if not sep or ts_ms is None or not _is_digest(digest):
        return "malformed signature"
    return ts_ms, digest


def check_retell_header(header: str | None, *, now_ms: int | None = None) -> tuple[int, str] | str:
    """The header's (timestamp, digest) if it is well formed and fresh, else a reason. Cheap:
    run it before reading the body, so a stale or malformed request costs no body read."""
    parsed = parse_retell_header(header)
    if isinstance(parsed, str):
        return parsed
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if abs(now - parsed[0]) > TOLERANCE_MS:
        return "stale timestamp"
    return parsed


def check_retell_signature(
    body: bytes, key: str, header: str | None, *, now_ms: int | None = None
) -> str | None:
    """None when the signature is good, else a short reason fit for logs (never secrets)."""
    checked = check_retell_header(header, now_ms=now_ms)
    if isinstance(checked, str):
        return checked
    ts_ms, digest = checked
    expected = retell_signature(body, key, ts_ms).split("d=", 1)[1]
    if not hmac.compare_digest(expected, digest):
        return "digest mismatch"
    return None


# -- Slack ------------------------------------------------------------------------------------


def slack_signature(body: bytes, secret: str, timestamp: str) -> str:
    """What Slack sends in X-Slack-Signature (SignatureVerifier.generate_signature, on bytes)."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def check_slack_headers(
    timestamp: str | None, signature: str | None, *, now: float | None = None
) -> str | None:
    """None when both headers are well formed and the timestamp is fresh, else a reason.
    slack_sdk calls int() on the timestamp unchecked (a 500 on "abc"); this never raises."""
    if not timestamp or not signature:
        return "missing signature"
    ts = _ascii_int(timestamp)
    if ts is None:
        return "malformed timestamp"
    if not (signature.startswith("v0=") and _is_digest(signature[3:])):
        return "malformed signature"
    current = now if now is not None else time.time()
    if abs(current - ts) > SLACK_TOLERANCE_S:
        return "stale timestamp"
    return None


def check_slack_signature(
    body: bytes, secret: str, timestamp: str | None, signature: str | None,
    *, now: float | None = None,
) -> str | None:
    """None when Slack signed this body, else a short reason (SignatureVerifier semantics)."""
    refused = check_slack_headers(timestamp, signature, now=now)
    if refused:
        return refused
    assert timestamp is not None and signature is not None
    if not hmac.compare_digest(slack_signature(body, secret, timestamp), signature):
        return "digest mismatch"
    return None
