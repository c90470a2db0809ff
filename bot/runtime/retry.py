"""Reading a server's own word on when to try again."""

from __future__ import annotations

import math


def retry_after_seconds(value: object) -> float | None:
    """Seconds from a `Retry-After` header: HTTP's delay-seconds (ASCII digits only; an HTTP
    date is rare enough from Slack and Retell to skip). None for anything else."""
    text = str(value).strip() if value is not None else ""
    if not text or not text.isascii() or not text.isdigit():
        return None
    seconds = float(text)
    return seconds if math.isfinite(seconds) else None
