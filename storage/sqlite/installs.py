"""Slack installations and the install flow's one-time states (InstallStore)."""

from __future__ import annotations

import functools

from storage.sqlite.connection import _Connection
from storage.sqlite.rows import _rowcount


class InstallsPart(_Connection):
    """Slack installations and the install flow's one-time states (InstallStore)."""

    async def save_install(self, enterprise_id: str, team_id: str, data: str,
                           now: float) -> None:
        """Keep a workspace's latest installation (a reinstall replaces the one before)."""
        await self._execute(
            "INSERT INTO slack_installs (enterprise_id, team_id, data, installed_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (enterprise_id, team_id) DO UPDATE SET "
            "data = excluded.data, installed_at = excluded.installed_at",
            (enterprise_id, team_id, data, now))

    async def find_install(self, enterprise_id: str, team_id: str) -> str | None:
        rows = await self._read(
            "SELECT data FROM slack_installs WHERE enterprise_id = ? AND team_id = ?",
            (enterprise_id, team_id))
        return str(rows[0][0]) if rows else None

    async def delete_install(self, enterprise_id: str, team_id: str) -> int:
        return await self._writer.write(functools.partial(
            _rowcount, "DELETE FROM slack_installs WHERE enterprise_id = :e AND team_id = :t",
            {"e": enterprise_id, "t": team_id}))

    async def installed_teams(self) -> list[str]:
        rows = await self._read("SELECT team_id FROM slack_installs ORDER BY installed_at")
        return [str(r[0]) for r in rows]

    async def issue_state(self, key: str, expires_at: float, now: float) -> None:
        """Keep a state's key until it expires (the expired ones go as new ones come)."""
        await self._execute("DELETE FROM oauth_states WHERE expires_at <= ?", (now,))
        await self._execute("INSERT INTO oauth_states (state_key, expires_at) VALUES (?, ?)",
                            (key, expires_at))

    async def consume_state(self, key: str, now: float) -> bool:
        """True once for a state issued and not yet expired: a replayed callback fails."""
        return bool(await self._writer.write(functools.partial(
            _rowcount, "DELETE FROM oauth_states WHERE state_key = :k AND expires_at > :now",
            {"k": key, "now": now})))
