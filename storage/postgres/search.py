"""Full-text search over summaries and transcripts (SearchStore)."""

from __future__ import annotations

from storage.postgres.connection import _Connection


class SearchPart(_Connection):
    """Full-text search over summaries and transcripts (SearchStore)."""
