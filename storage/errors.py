"""What a store failure means, in the words an answer to a person can use; and the
store's own refusals the layers above may catch."""

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


MIN_TERM_CHARS = 3  # the trigram tokenizer cannot look up anything shorter


class SearchTooShort(ValueError):
    """No search term has MIN_TERM_CHARS characters: nothing the index can look up."""

    code = "search_too_short"

    def __init__(self) -> None:
        super().__init__(f"{self.code}: a search needs a word of {MIN_TERM_CHARS} "
                         "characters or more")
