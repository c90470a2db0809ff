"""Holds under the limits, the audit log, do-not-call (GuardStore)."""

from __future__ import annotations

from storage.postgres.connection import _Connection


class GuardPart(_Connection):
    """Holds under the limits, the audit log, do-not-call (GuardStore)."""
