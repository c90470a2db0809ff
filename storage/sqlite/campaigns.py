"""Campaigns (CampaignStore): the list, its rows, and the claims that make each row's try
happen once across restarts and processes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from storage.models import STAGE_ENDED, CallRecord, Campaign, CampaignCounts, CampaignRow
from storage.sqlite.connection import _Connection
from storage.sqlite.rows import _LIGHT_COLUMNS, _to_record

_CAMPAIGN = ("id, name, owner, channel_id, status, concurrency, attempts, retry_spacing, "
             "created_at, team_id, card_ts, agent, from_number, start_at, columns, file_name, "
             "started_at, finished_at, results_posted")
_ROW = ("id, campaign_id, line, number, status, variables, agent, attempts, next_at, call_id, "
        "outcome, detail")
_CHUNK = 500  # numbers per IN (...) list, well under SQLite's variable limit


def _campaign(row: Any) -> Campaign:
    values = list(row)
    values[14] = tuple(json.loads(values[14])) if values[14] else ()
    values[18] = bool(values[18])
    return Campaign(*values)


def _row(row: Any) -> CampaignRow:
    values = list(row)
    values[5] = json.loads(values[5]) if values[5] else {}
    return CampaignRow(*values)


def _get(conn: sqlite3.Connection, campaign_id: int) -> Campaign | None:
    row = conn.execute(f"SELECT {_CAMPAIGN} FROM campaigns WHERE id = ?",
                       (campaign_id,)).fetchone()
    return _campaign(row) if row else None


class CampaignsPart(_Connection):
    """Campaigns and their rows (CampaignStore)."""

    async def create_campaign(self, campaign: Campaign, rows: Sequence[CampaignRow],
                              now: float) -> int:
        def insert(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO campaigns (team_id, name, owner, channel_id, status, agent, "
                "from_number, concurrency, attempts, retry_spacing, start_at, columns, "
                "file_name, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (campaign.team_id, campaign.name, campaign.owner, campaign.channel_id,
                 campaign.status, campaign.agent, campaign.from_number, campaign.concurrency,
                 campaign.attempts, campaign.retry_spacing, campaign.start_at,
                 json.dumps(list(campaign.columns)), campaign.file_name, now, now))
            campaign_id = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO campaign_rows (campaign_id, line, number, status, variables, "
                "agent, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(campaign_id, r.line, r.number, r.status,
                  json.dumps(r.variables) if r.variables else None, r.agent, r.outcome,
                  r.detail) for r in rows])
            return campaign_id

        return await self._writer.write(insert)

    async def get_campaign(self, campaign_id: int) -> Campaign | None:
        rows = await self._read(f"SELECT {_CAMPAIGN} FROM campaigns WHERE id = ?",
                                (campaign_id,))
        return _campaign(rows[0]) if rows else None

    async def find_campaigns(self, *, name: str | None = None, owner: str | None = None,
                             limit: int = 20, team_id: str | None = None) -> list[Campaign]:
        where, params = [], []
        if name is not None:
            where.append("name = ? COLLATE NOCASE")
            params.append(name)
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
        marks = ",".join("?" * len(allowed))

        def move(conn: sqlite3.Connection) -> Campaign | None:
            cur = conn.execute(
                f"UPDATE campaigns SET status = ?, updated_at = ?, "
                "started_at = CASE WHEN ? = 'running' THEN coalesce(started_at, ?) "
                "ELSE started_at END, "
                "finished_at = CASE WHEN ? IN ('cancelled', 'done') THEN ? ELSE NULL END "
                f"WHERE id = ? AND status IN ({marks})",
                (to, now, to, now, to, now, campaign_id, *allowed))
            if not cur.rowcount:
                return None
            if to == "cancelled":
                conn.execute(
                    "UPDATE campaign_rows SET status = 'cancelled', outcome = 'cancelled', "
                    "claimed_until = NULL WHERE campaign_id = ? AND status = 'waiting'",
                    (campaign_id,))
            return _get(conn, campaign_id)

        return await self._writer.write(move)

    async def finish_campaign(self, campaign_id: int, now: float) -> Campaign | None:
        """Running -> done once no row is waiting, being placed or on a call; None if not."""
        def finish(conn: sqlite3.Connection) -> Campaign | None:
            cur = conn.execute(
                "UPDATE campaigns SET status = 'done', finished_at = ?, updated_at = ? "
                "WHERE id = ? AND status = 'running' AND NOT EXISTS (SELECT 1 FROM "
                "campaign_rows WHERE campaign_id = ? AND status IN "
                "('waiting', 'placing', 'live'))", (now, now, campaign_id, campaign_id))
            return _get(conn, campaign_id) if cur.rowcount else None

        return await self._writer.write(finish)

    async def claim_results(self, campaign_id: int) -> bool:
        """The right to post a finished campaign's results, once."""
        def claim(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("UPDATE campaigns SET results_posted = 1 WHERE id = ? "
                               "AND results_posted = 0", (campaign_id,))
            return bool(cur.rowcount)

        return await self._writer.write(claim)

    async def running_campaigns(self, now: float) -> list[Campaign]:
        rows = await self._read(
            f"SELECT {_CAMPAIGN} FROM campaigns INDEXED BY campaigns_active "
            "WHERE status IN ('running', 'paused') AND status = 'running' "
            "AND coalesce(start_at, 0) <= ? ORDER BY id", (now,))
        return [_campaign(r) for r in rows]

    async def claim_campaign_rows(self, campaign_id: int, concurrency: int, now: float,
                                  until: float, limit: int | None = None) -> list[CampaignRow]:
        """Rows to place now, as many as the campaign has room for under `concurrency`
        (rows being placed or on a call count) and at most `limit`: waiting rows that are
        due (a new try: `attempts` goes up) and tries whose claim ran out (a crash: the same
        try again)."""
        def claim(conn: sqlite3.Connection) -> list[CampaignRow]:
            busy = conn.execute(
                "SELECT count(*) FROM campaign_rows WHERE campaign_id = ? AND "
                "(status = 'live' OR (status = 'placing' AND claimed_until >= ?))",
                (campaign_id, now)).fetchone()[0]
            room = concurrency - int(busy)
            if limit is not None:
                room = min(room, limit)
            if room <= 0:
                return []
            ids = [(r[0], r[1]) for r in conn.execute(
                "SELECT id, status FROM campaign_rows INDEXED BY campaign_rows_due "
                "WHERE campaign_id = ? AND status IN ('waiting', 'placing') AND next_at <= ? "
                "AND (status = 'waiting' OR claimed_until < ?) ORDER BY next_at, id LIMIT ?",
                (campaign_id, now, now, room))]
            for row_id, status in ids:
                conn.execute(
                    "UPDATE campaign_rows SET status = 'placing', claimed_until = ?, "
                    "attempts = attempts + ? WHERE id = ?",
                    (until, 1 if status == "waiting" else 0, row_id))
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            rows = conn.execute(f"SELECT {_ROW} FROM campaign_rows WHERE id IN ({marks}) "
                                "ORDER BY next_at, id", [i for i, _ in ids]).fetchall()
            return [_row(r) for r in rows]

        return await self._writer.write(claim)

    async def resume_claims(self) -> int:
        """Tries a dead runner left claimed become due at once (the same try, same key)."""
        def resume(conn: sqlite3.Connection) -> int:
            return int(conn.execute(
                "UPDATE campaign_rows SET claimed_until = 0 WHERE status = 'placing'").rowcount)

        return await self._writer.write(resume)

    async def row_placed(self, row_id: int, call_id: str) -> None:
        await self._execute(
            "UPDATE campaign_rows SET status = 'live', call_id = ?, claimed_until = NULL "
            "WHERE id = ? AND status = 'placing'", (call_id, row_id))

    async def row_waits(self, row_id: int, next_at: float, detail: str | None, *,
                        undo_attempt: bool) -> None:
        """Back to waiting until `next_at`; `undo_attempt`: the try never reached Retell
        (calling hours, the global cap), so it does not count."""
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
        """Rows whose call ended, in one transaction: (row id, `done` or `waiting`, outcome,
        detail, next_at for a row waiting for its next try)."""
        def settle(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE campaign_rows SET status = ?, outcome = ?, detail = ?, "
                "next_at = CASE WHEN ? = 'waiting' THEN ? ELSE next_at END, "
                "claimed_until = NULL WHERE id = ? AND status = 'live'",
                [(status, outcome, detail, status, next_at, row_id)
                 for row_id, status, outcome, detail, next_at in settled])

        await self._writer.write(settle)

    async def ended_campaign_rows(self, limit: int) -> list[tuple[CampaignRow, CallRecord]]:
        """Rows on a call that has ended (any campaign): ready to be settled."""
        rows = await self._read(
            f"SELECT {', '.join('r.' + c.strip() for c in _ROW.split(','))}, "
            f"{', '.join('c.' + c.strip() for c in _LIGHT_COLUMNS.split(','))} "
            "FROM campaign_rows r INDEXED BY campaign_rows_live JOIN calls c "
            f"ON c.call_id = r.call_id WHERE r.status = 'live' AND c.stage >= {STAGE_ENDED} "
            "LIMIT ?", (limit,))
        width = len(_ROW.split(","))
        names = [c.strip() for c in _LIGHT_COLUMNS.split(",")]
        return [(_row(r[:width]), _to_record(dict(zip(names, r[width:], strict=True))))
                for r in rows]

    async def campaign_rows(self, campaign_id: int, *, statuses: Collection[str] = (),
                            limit: int = 100) -> list[CampaignRow]:
        sql = f"SELECT {_ROW} FROM campaign_rows WHERE campaign_id = ?"
        params: list[Any] = [campaign_id]
        if statuses:
            sql += f" AND status IN ({','.join('?' * len(statuses))})"
            params.extend(statuses)
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
            call = r[width:]
            out.append((_row(r[:width]), _to_record(dict(zip(names, call, strict=True)))
                        if call[0] is not None else None))
        return out

    async def campaign_counts(self, campaign_id: int) -> CampaignCounts:
        rows = await self._read(
            "SELECT r.status, r.outcome, r.detail = 'calling_hours', count(*), min(r.next_at), "
            "sum(c.successful = 1) FROM campaign_rows r LEFT JOIN calls c "
            "ON c.call_id = r.call_id WHERE r.campaign_id = ? GROUP BY 1, 2, 3",
            (campaign_id,))
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
            "FROM calls INDEXED BY calls_campaign WHERE campaign_id = ? "
            "AND call_id IS NOT NULL", (campaign_id,))
        placed, duration, cost = totals[0]
        return CampaignCounts(**counts, skipped_by=skipped_by, opens_at=opens_at,
                              placed=int(placed),
                              duration_ms=int(duration), cost_cents=float(cost))

    async def listed_numbers(self, numbers: Collection[str], *,
                             team_id: str | None = None) -> set[str]:
        """Which of these numbers are on the do-not-call list (a preview's check)."""
        found: set[str] = set()
        ordered = list(numbers)
        team = "" if team_id is None else " AND team_id IN ('', ?)"
        for i in range(0, len(ordered), _CHUNK):
            chunk = ordered[i:i + _CHUNK]
            rows = await self._read(
                f"SELECT number FROM dnc WHERE number IN ({','.join('?' * len(chunk))}){team}",
                [*chunk, *(() if team_id is None else (team_id,))])
            found.update(r[0] for r in rows)
        return found

    async def calls_to_numbers(self, numbers: Collection[str], since: float) -> dict[str, int]:
        """Calls placed to each of these numbers since `since` (the per-number cap)."""
        found: dict[str, int] = {}
        ordered = list(numbers)
        for i in range(0, len(ordered), _CHUNK):
            chunk = ordered[i:i + _CHUNK]
            rows = await self._read(
                "SELECT to_number, count(*) FROM calls INDEXED BY calls_number WHERE "
                f"to_number IN ({','.join('?' * len(chunk))}) AND created_at >= ? "
                "AND call_id IS NOT NULL GROUP BY to_number", (*chunk, since))
            found.update({r[0]: int(r[1]) for r in rows})
        return found
