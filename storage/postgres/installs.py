"""Slack installations and OAuth states, for several workspaces (InstallStore)."""

from __future__ import annotations

from storage.postgres.connection import Tx, _Connection


class InstallsPart(_Connection):
    """Slack installations and OAuth states, for several workspaces (InstallStore)."""

    async def save_install(self, enterprise_id: str | None, team_id: str | None,
                           installation: str, bot: str | None, now: float) -> None:
        """Keep the workspace's newest installation (and bot, when it has a token)."""
        await self._execute(
            "INSERT INTO installations (enterprise_id, team_id, installation, bot, "
            "installed_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (enterprise_id, team_id) "
            "DO UPDATE SET installation = excluded.installation, "
            "bot = coalesce(excluded.bot, installations.bot), "
            "installed_at = excluded.installed_at",
            (enterprise_id or "", team_id or "", installation, bot, now))

    async def find_install(self, enterprise_id: str | None, team_id: str | None
                           ) -> tuple[str, str | None] | None:
        rows = await self._read(
            "SELECT installation, bot FROM installations WHERE enterprise_id = ? "
            "AND team_id = ?", (enterprise_id or "", team_id or ""))
        return (str(rows[0][0]), rows[0][1]) if rows else None

    async def delete_install(self, enterprise_id: str | None, team_id: str | None, *,
                             bot_only: bool = False) -> None:
        """Forget the workspace's tokens (all of them, or its bot's)."""
        await self._execute(
            "UPDATE installations SET bot = NULL WHERE enterprise_id = ? AND team_id = ?"
            if bot_only else
            "DELETE FROM installations WHERE enterprise_id = ? AND team_id = ?",
            (enterprise_id or "", team_id or ""))

    async def issue_state(self, state: str, expires_at: float) -> None:
        await self._execute("INSERT INTO oauth_states (state, expires_at) VALUES (?, ?)",
                            (state, expires_at))

    async def consume_state(self, state: str, now: float) -> bool:
        """True once for a state issued and not expired; it is gone after."""
        async def consume(tx: Tx) -> bool:
            await tx.execute("DELETE FROM oauth_states WHERE expires_at <= ?", (now,))
            return bool(await tx.execute("DELETE FROM oauth_states WHERE state = ?", (state,)))

        return await self._write(consume)
