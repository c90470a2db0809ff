"""What a store failure means, in the words an answer to a person can use."""

from __future__ import annotations

import sqlite3


def store_failure(exc: BaseException) -> str | None:
    """`locked`, `full` or `unavailable` for a database failure; None for anything else."""
    if not isinstance(exc, sqlite3.Error):
        return None
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return "locked"
    if "full" in text:
        return "full"
    return "unavailable"
