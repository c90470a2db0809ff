"""Calls to place later (ScheduleStore)."""

from __future__ import annotations

from storage.postgres.connection import _Connection


class SchedulePart(_Connection):
    """Calls to place later (ScheduleStore)."""
