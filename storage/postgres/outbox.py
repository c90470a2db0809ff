"""Slack work and its delivery leases (OutboxStore)."""

from __future__ import annotations

from storage.postgres.connection import _Connection


class OutboxPart(_Connection):
    """Slack work and its delivery leases (OutboxStore)."""
