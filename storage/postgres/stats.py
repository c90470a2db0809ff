"""Figures over the call history (StatsStore)."""

from __future__ import annotations

from storage.postgres.connection import _Connection


class StatsPart(_Connection):
    """Figures over the call history (StatsStore)."""
