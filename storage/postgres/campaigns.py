"""Campaigns and their rows (CampaignStore)."""

from __future__ import annotations

from storage.postgres.connection import _Connection


class CampaignsPart(_Connection):
    """Campaigns and their rows (CampaignStore)."""
