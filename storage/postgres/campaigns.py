"""Campaigns (CampaignStore): the list, its rows, and the claims that make each row's try
happen once across restarts and instances."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from storage.models import STAGE_ENDED, CallRecord, Campaign, CampaignCounts, CampaignRow
from storage.postgres.connection import Tx, _Connection
from storage.sqlite.campaigns import _CAMPAIGN, _ROW, _campaign, _row
from storage.sqlite.rows import _LIGHT_COLUMNS, _to_record

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = _UPPER.lower()


async def _get(tx: Tx, campaign_id: int) -> Campaign | None:
    row = await tx.fetchrow(f"SELECT {_CAMPAIGN} FROM campaigns WHERE id = ?", (campaign_id,))
    return _campaign(row) if row is not None else None


class CampaignsPart(_Connection):
    """Campaigns and their rows (CampaignStore)."""

    async def create_campaign(self, campaign: Campaign, rows: Sequence[CampaignRow],
                              now: float) -> int:
        async def insert(tx: Tx) -> int:
            campaign_id = int(await tx.fetchval(
                "INSERT INTO campaigns (team_id, name, owner, channel_id, status, agent, "
                "from_number, concurrency, attempts, retry_spacing, start_at, columns, "
                "file_name, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (campaign.team_id, campaign.name, campaign.owner, campaign.channel_id,
                 campaign.status, campaign.agent, campaign.from_number, campaign.concurrency,
                 campaign.attempts, campaign.retry_spacing, campaign.start_at,
                 json.dumps(list(campaign.columns)), campaign.file_name, now, now)))
            await tx.executemany(
                "INSERT INTO campaign_rows (campaign_id, line, number, status, variables, "
                "agent, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(campaign_id, r.line, r.number, r.status,
                  json.dumps(r.variables) if r.variables else None, r.agent, r.outcome,
                  r.detail) for r in rows])
            return campaign_id

        return await self._write(insert)

    async def get_campaign(self, campaign_id: int) -> Campaign | None:
        rows = await self._read(f"SELECT {_CAMPAIGN} FROM campaigns WHERE id = ?",
                                (campaign_id,))
        return _campaign(rows[0]) if rows else None

    async def find_campaigns(self, *, name: str | None = None, owner: str | None = None,
                             limit: int = 20, team_id: str | None = None) -> list[Campaign]:
        where: list[str] = []
        params: list[Any] = []
        if name is not None:
            # SQLite's NOCASE folds ASCII letters only: the translate() keeps that meaning
            # (é and É stay apart, as there); lower() first lets campaigns_name serve.
            where.append("lower(name) = lower(?::text) AND "
                         f"translate(name, '{_UPPER}', '{_LOWER}') = "
                         f"translate(?::text, '{_UPPER}', '{_LOWER}')")
            params.extend((name, name))
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if team_id is not None:
            where.append("team_id = ?")
            params.append(team_id)
        sql = f"SELECT {_CAMPAIGN} FROM campaigns"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self._read(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [_campaign(r) for r in rows]

    async def set_campaign_card(self, campaign_id: int, card_ts: str) -> None:
        await self._execute("UPDATE campaigns SET card_ts = ? WHERE id = ?",
                            (card_ts, campaign_id))

    async def move_campaign(self, campaign_id: int, to: str, *, allowed: Collection[str],
                            now: float) -> Campaign | None:
        """Change the status if it is one of `allowed` now; None when it is not. Cancelling
        cancels the rows not yet placed, in the same transaction."""
        async def move(tx: Tx) -> Campaign | None:
            if not await tx.execute(
                "UPDATE campaigns SET status = :to, updated_at = :now, "
                "started_at = CASE WHEN :to = 'running' "
                "THEN coalesce(started_at, :now::double precision) ELSE started_at END, "
                "finished_at = CASE WHEN :to IN ('cancelled', 'done') "
                "THEN :now::double precision ELSE NULL END "
                "WHERE id = :id AND status = ANY(:allowed::text[])",
                {"to": to, "now": now, "id": campaign_id, "allowed": list(allowed)},
            ):
                return None
            if to == "cancelled":
                await tx.execute(
                    "UPDATE campaign_rows SET status = 'cancelled', outcome = 'cancelled', "
                    "claimed_until = NULL WHERE campaign_id = ? AND status = 'waiting'",
                    (campaign_id,))
            return await _get(tx, campaign_id)

        return await self._write(move)

    async def finish_campaign(self, campaign_id: int, now: float) -> Campaign | None:
        """Running -> done once no row is waiting, being placed or on a call; None if not."""
        async def finish(tx: Tx) -> Campaign | None:
            if not await tx.execute(
                "UPDATE campaigns SET status = 'done', finished_at = ?, updated_at = ? "
                "WHERE id = ? AND status = 'running' AND NOT EXISTS (SELECT 1 FROM "
                "campaign_rows WHERE campaign_id = ? AND status IN "
                "('waiting', 'placing', 'live'))", (now, now, campaign_id, campaign_id)):
                return None
            return await _get(tx, campaign_id)

        return await self._write(finish)

    async def claim_results(self, campaign_id: int) -> bool:
        """The right to post a finished campaign's results, once across instances."""
        return bool(await self._execute(
            "UPDATE campaigns SET results_posted = 1 WHERE id = ? AND results_posted = 0",
            (campaign_id,)))

    async def running_campaigns(self, now: float) -> list[Campaign]:
        rows = await self._read(
            f"SELECT {_CAMPAIGN} FROM campaigns WHERE status = 'running' "
            "AND coalesce(start_at, 0) <= ? ORDER BY id", (now,))
        return [_campaign(r) for r in rows]

    async def claim_campaign_rows(self, campaign_id: int, concurrency: int, now: float,
                                  until: float, limit: int | None = None) -> list[CampaignRow]:
        """Rows to place now, as many as the campaign has room for under `concurrency`
        and at most `limit`. The campaign's row is locked first, so two instances claiming
        for one campaign count its room one after the other; the rows themselves are taken
        with SKIP LOCKED."""
        async def claim(tx: Tx) -> list[CampaignRow]:
            await tx.execute("SELECT 1 FROM campaigns WHERE id = ? FOR UPDATE", (campaign_id,))
            busy = await tx.fetchval(
                "SELECT count(*) FROM campaign_rows WHERE campaign_id = ? AND "
                "(status = 'live' OR (status = 'placing' AND claimed_until >= ?))",
                (campaign_id, now))
            room = concurrency - int(busy)
            if limit is not None:
                room = min(room, limit)
            if room <= 0:
                return []
            rows = await tx.fetch(
                f"UPDATE campaign_rows r SET status = 'placing', claimed_until = ?, "
                f"attempts = r.attempts + CASE WHEN r.status = 'waiting' THEN 1 ELSE 0 END "
                f"FROM (SELECT id FROM campaign_rows WHERE campaign_id = ? "
                f"AND status IN ('waiting', 'placing') AND next_at <= ? "
                f"AND (status = 'waiting' OR claimed_until < ?) ORDER BY next_at, id "
                f"LIMIT ? FOR UPDATE SKIP LOCKED) due WHERE r.id = due.id "
                f"RETURNING {', '.join('r.' + c.strip() for c in _ROW.split(','))}",
                (until, campaign_id, now, now, room))
            return sorted((_row(r) for r in rows), key=lambda r: (r.next_at, r.id))

        return await self._write(claim)

    async def resume_claims(self) -> int:
        """Tries a dead runner left claimed become due at once (the same try, same key)."""
        return await self._execute(
            "UPDATE campaign_rows SET claimed_until = 0 WHERE status = 'placing'")

    async def row_placed(self, row_id: int, call_id: str) -> None:
        await self._execute(
            "UPDATE campaign_rows SET status = 'live', call_id = ?, claimed_until = NULL "
            "WHERE id = ? AND status = 'placing'", (call_id, row_id))

    async def row_waits(self, row_id: int, next_at: float, detail: str | None, *,
                        undo_attempt: bool) -> None:
        """Back to waiting until `next_at`; `undo_attempt`: the try never reached Retell."""
        await self._execute(
            "UPDATE campaign_rows SET status = 'waiting', next_at = ?, detail = ?, "
            "claimed_until = NULL, attempts = attempts - ? "
            "WHERE id = ? AND status IN ('placing', 'live')",
            (next_at, detail, 1 if undo_attempt else 0, row_id))

    async def row_done(self, row_id: int, outcome: str, detail: str | None) -> None:
        await self._execute(
            "UPDATE campaign_rows SET status = 'done', outcome = ?, detail = ?, "
            "claimed_until = NULL WHERE id = ? AND status IN ('placing', 'live')",
            (outcome, detail, row_id))

    async def settle_rows(self, settled: Sequence[tuple[int, str, str | None, str | None, float]]
                          ) -> None:
        """Rows whose call ended, in one transaction."""
        async def settle(tx: Tx) -> None:
            await tx.executemany(
                "UPDATE campaign_rows SET status = ?, outcome = ?, detail = ?, "
                "next_at = CASE WHEN ?::text = 'waiting' THEN ?::double precision "
                "ELSE next_at END, claimed_until = NULL WHERE id = ? AND status = 'live'",
                [(status, outcome, detail, status, next_at, row_id)
                 for row_id, status, outcome, detail, next_at in settled])

        await self._write(settle)

    async def ended_campaign_rows(self, limit: int) -> list[tuple[CampaignRow, CallRecord]]:
        """Rows on a call that has ended (any campaign): ready to be settled."""
        rows = await self._read(
            f"SELECT {', '.join('r.' + c.strip() for c in _ROW.split(','))}, "
            f"{', '.join('c.' + c.strip() for c in _LIGHT_COLUMNS.split(','))} "
            "FROM campaign_rows r JOIN calls c "
            f"ON c.call_id = r.call_id WHERE r.status = 'live' AND c.stage >= {STAGE_ENDED} "
            "LIMIT ?", (limit,))
        width = len(_ROW.split(","))
        names = [c.strip() for c in _LIGHT_COLUMNS.split(",")]
        return [(_row(tuple(r)[:width]),
                 _to_record(dict(zip(names, tuple(r)[width:], strict=True)))) for r in rows]

    async def campaign_rows(self, campaign_id: int, *, statuses: Collection[str] = (),
                            limit: int = 100) -> list[CampaignRow]:
        sql = f"SELECT {_ROW} FROM campaign_rows WHERE campaign_id = ?"
        params: list[Any] = [campaign_id]
        if statuses:
            sql += " AND status = ANY(?::text[])"
            params.append(list(statuses))
        rows = await self._read(sql + " ORDER BY line LIMIT ?", (*params, limit))
        return [_row(r) for r in rows]

    async def campaign_results(self, campaign_id: int
                               ) -> list[tuple[CampaignRow, CallRecord | None]]:
        """Every row with its latest call (no transcript), in the file's order."""
        names = [c.strip() for c in _LIGHT_COLUMNS.split(",")] + ["summary"]
        rows = await self._read(
            f"SELECT {', '.join('r.' + c.strip() for c in _ROW.split(','))}, "
            f"{', '.join('c.' + c for c in names)} FROM campaign_rows r "
            "LEFT JOIN calls c ON c.call_id = r.call_id WHERE r.campaign_id = ? "
            "ORDER BY r.line", (campaign_id,))
        width = len(_ROW.split(","))
        out: list[tuple[CampaignRow, CallRecord | None]] = []
        for r in rows:
            call = tuple(r)[width:]
            out.append((_row(tuple(r)[:width]), _to_record(dict(zip(names, call, strict=True)))
                        if call[0] is not None else None))
        return out

    async def campaign_counts(self, campaign_id: int) -> CampaignCounts:
        rows = await self._read(
            "SELECT r.status, r.outcome, r.detail = 'calling_hours', count(*), min(r.next_at), "
            "sum(CASE WHEN c.successful = 1 THEN 1 ELSE 0 END) FROM campaign_rows r "
            "LEFT JOIN calls c ON c.call_id = r.call_id WHERE r.campaign_id = ? "
            "GROUP BY 1, 2, 3", (campaign_id,))
        counts: dict[str, Any] = dict.fromkeys(
            ("rows", "skipped", "waiting", "waiting_hours", "live", "connected", "successful",
             "no_answer", "failed", "refused", "cancelled"), 0)
        opens_at: float | None = None
        skipped_by: dict[str, int] = {}
        for status, outcome, hours, n, first, successful in rows:
            if status == "skipped":
                counts["skipped"] += n
                skipped_by[outcome or "invalid"] = skipped_by.get(outcome or "invalid", 0) + n
                continue
            counts["rows"] += n
            if status == "waiting":
                counts["waiting"] += n
                if hours:
                    counts["waiting_hours"] += n
                    opens_at = first if opens_at is None else min(opens_at, first)
            elif status in ("placing", "live"):
                counts["live"] += n
            elif status == "cancelled":
                counts["cancelled"] += n
            elif outcome in ("connected", "success"):
                counts["connected"] += n
                counts["successful"] += int(successful or 0)
            elif outcome in ("no_answer", "failed", "refused"):
                counts[outcome] += n
        totals = await self._read(
            "SELECT count(*), coalesce(sum(duration_ms), 0), coalesce(sum(cost_cents), 0) "
            "FROM calls WHERE campaign_id = ? AND call_id IS NOT NULL", (campaign_id,))
        placed, duration, cost = totals[0]
        return CampaignCounts(**counts, skipped_by=skipped_by, opens_at=opens_at,
                              placed=int(placed),
                              duration_ms=int(duration), cost_cents=float(cost))

    async def listed_numbers(self, numbers: Collection[str], *,
                             team_id: str | None = None) -> set[str]:
        """Which of these numbers are on the do-not-call list (a preview's check)."""
        team = "" if team_id is None else " AND team_id IN ('', ?)"
        rows = await self._read(f"SELECT number FROM dnc WHERE number = ANY(?::text[]){team}",
                                (list(numbers), *(() if team_id is None else (team_id,))))
        return {r[0] for r in rows}

    async def calls_to_numbers(self, numbers: Collection[str], since: float) -> dict[str, int]:
        """Calls placed to each of these numbers since `since` (the per-number cap)."""
        rows = await self._read(
            "SELECT to_number, count(*) FROM calls WHERE to_number = ANY(?::text[]) "
            "AND created_at >= ? AND call_id IS NOT NULL GROUP BY to_number",
            (list(numbers), since))
        return {r[0]: int(r[1]) for r in rows}
