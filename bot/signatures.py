"""Retell webhook signatures (`x-retell-signature: v=<unix ms>,d=<hex>`), as retell-api.md says.

The digest covers the raw body bytes exactly as received followed by the timestamp, so the
check runs before any JSON parsing: re-serialised JSON would not match.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

_HEADER = re.compile(r"v=(\d+),d=([0-9a-f]{64})")
TOLERANCE_MS = 5 * 60 * 1000


def retell_signature(body: bytes, key: str, ts_ms: int) -> str:
    digest = hmac.new(key.encode(), body + str(ts_ms).encode(), hashlib.sha256).hexdigest()
    return f"v={ts_ms},d={digest}"


def check_retell_signature(
    body: bytes, key: str, header: str | None, *, now_ms: int | None = None
) -> str | None:
    """None when the signature is good, else a short reason fit for logs (never secrets)."""
    if not header:
        return "missing signature"
    match = _HEADER.fullmatch(header.strip())
    if match is None:
        return "malformed signature"
    ts_ms = int(match.group(1))
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if abs(now - ts_ms) > TOLERANCE_MS:
        return "stale timestamp"
    expected = retell_signature(body, key, ts_ms).split("d=", 1)[1]
    if not hmac.compare_digest(expected, match.group(2)):
        return "digest mismatch"
    return None
