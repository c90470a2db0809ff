"""What a store failure means, in the words an answer to a person can use; and the
store's own refusals the layers above may catch."""

from __future__ import annotations

import sqlite3

import asyncpg

# What either store raises when its database fails (not when it refuses input): SQLite's
# errors, PostgreSQL's (the server's and the driver's), and a server that cannot be reached.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError)

_POSTGRES_LOCKED = (asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError,
                    asyncpg.SerializationError, asyncpg.DeadlockDetectedError,
                    asyncpg.TooManyConnectionsError)


def store_failure(exc: BaseException) -> str | None:
    """`locked`, `full` or `unavailable` for a database failure; None for anything else."""
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        if isinstance(exc, _POSTGRES_LOCKED):
            return "locked"
        if isinstance(exc, asyncpg.DiskFullError | asyncpg.OutOfMemoryError):
            return "full"
        return "unavailable"
    if not isinstance(exc, sqlite3.Error):
        return None
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return "locked"
    if "full" in text:
        return "full"
    return "unavailable"


MIN_TERM_CHARS = 3  # the trigram tokenizer cannot look up anything shorter


class SearchTooShort(ValueError):
    """No search term has MIN_TERM_CHARS characters: nothing the index can look up."""

    code = "search_too_short"

    def __init__(self) -> None:
        super().__init__(f"{self.code}: a search needs a word of {MIN_TERM_CHARS} "
                         "characters or more")
