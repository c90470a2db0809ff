"""`callbot migrate-db`: an SQLite installation's data copied into PostgreSQL.

Table by table in batches, each batch one transaction on the target that also records how
far the copy got (in the target's `meta`), so a copy that stops (Ctrl-C, a lost server)
goes on where it was when run again. A copy that finishes forgets those marks, so the next
run copies every row again, updating those already there (never doubling them): the
source may keep running while it is copied, and a last run once it has stopped brings the
final changes across. The counts are then compared table by table.

SQLite's per-day sums are not copied (PostgreSQL answers /callstats from the calls), nor
its search index (PostgreSQL indexes the columns themselves), nor leases (they belong to
the processes of the moment)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from storage.postgres import PostgresStore
from storage.postgres.connection import storable


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]  # the primary key: the order of the copy and where it resumes


TABLES = (
    Table("meta", ("key",)),  # first: the salt of the audit log's number keys
    Table("calls", ("id",)),
    Table("webhook_events", ("call_id", "event")),
    Table("webhook_inbox", ("id",)),
    Table("outbox", ("id",)),
    Table("claims", ("key",)),
    Table("dnc", ("team_id", "number")),
    Table("audit", ("id",)),
    Table("call_holds", ("id",)),
    Table("scheduled_calls", ("id",)),
    Table("campaigns", ("id",)),
    Table("campaign_rows", ("id",)),
    Table("slack_installs", ("enterprise_id", "team_id")),
)
_SKIPPED_META = ("health_heartbeat",)


@dataclass
class CopyReport:
    copied: dict[str, int] = field(default_factory=dict)  # rows written this run
    source: dict[str, int] = field(default_factory=dict)  # rows in the source at the end
    target: dict[str, int] = field(default_factory=dict)

    @property
    def mismatched(self) -> list[str]:
        return [t for t, n in self.source.items() if self.target.get(t) != n]


Progress = Callable[[str, int, int], None]  # table, rows copied so far, rows in the table


def _coerce(kind: str, value: Any) -> Any:
    """SQLite's loosely typed value as the target column's type wants it."""
    if value is None:
        return None
    if kind in ("bigint", "integer"):
        return int(value)
    if kind == "double precision":
        return float(value)
    return storable(value if isinstance(value, str) else str(value))


async def copy_sqlite(source: Path, target_url: str, *, batch: int = 5000,
                      progress: Progress | None = None) -> CopyReport:
    """Copy every table of the SQLite file `source` into the PostgreSQL at `target_url`
    (its schema made or brought up to date first); resumable, and safe to repeat."""
    report = CopyReport()
    async with PostgresStore(target_url, pool_size=1):
        pass  # the target's schema, made or brought up to date (under the migration lock)
    # Read-only and never creating anything: the source stays exactly as it was.
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=10)
    try:
        conn = await asyncpg.connect(target_url)
        try:
            for table in TABLES:
                report.copied[table.name] = await _copy_table(src, conn, table, batch, progress)
            # Done: the next run starts over (and updates what changed meanwhile).
            await conn.execute("DELETE FROM meta WHERE key LIKE 'migrate_db:%'")
            for table in TABLES:
                report.source[table.name] = _source_count(src, table)
                report.target[table.name] = int(await conn.fetchval(
                    f"SELECT count(*) FROM {table.name}{_target_filter(table)}"))
            await _advance_sequences(conn)
        finally:
            await conn.close()
    finally:
        src.close()
    return report


def _source_count(src: sqlite3.Connection, table: Table) -> int:
    where = (f" WHERE key NOT IN ({', '.join('?' * len(_SKIPPED_META))})"
             if table.name == "meta" else "")
    args = _SKIPPED_META if table.name == "meta" else ()
    return int(src.execute(f"SELECT count(*) FROM {table.name}{where}", args).fetchone()[0])


def _target_filter(table: Table) -> str:
    if table.name != "meta":
        return ""
    return " WHERE key NOT IN (" + ", ".join(f"'{k}'" for k in _SKIPPED_META) + ")"


async def _copy_table(src: sqlite3.Connection, conn: asyncpg.Connection, table: Table,
                      batch: int, progress: Progress | None) -> int:
    types = {r["column_name"]: r["data_type"] for r in await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = $1 AND table_schema = current_schema()", table.name)}
    source_columns = [r[1] for r in src.execute(f"PRAGMA table_info({table.name})")]
    columns = [c for c in source_columns if c in types]
    marker = f"migrate_db:{table.name}"
    saved = await conn.fetchval("SELECT value FROM meta WHERE key = $1", marker)
    last: list[Any] | None = json.loads(saved) if saved else None
    keys = ", ".join(table.key)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in table.key)
    insert = (f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
              f"({', '.join(f'${i + 1}' for i in range(len(columns)))}) "
              f"ON CONFLICT ({keys}) DO " + (f"UPDATE SET {updates}" if updates else "NOTHING"))
    total = _source_count(src, table)
    copied = 0
    skip_meta = table.name == "meta"
    while True:
        after = ""
        if last is not None:
            after = f" WHERE ({keys}) > ({', '.join('?' * len(table.key))})"
        rows = src.execute(
            f"SELECT {', '.join(columns)} FROM {table.name}{after} ORDER BY {keys} LIMIT ?",
            (*(last or ()), batch)).fetchall()
        if not rows:
            return copied
        values = [tuple(_coerce(types[c], v) for c, v in zip(columns, row, strict=True))
                  for row in rows
                  if not (skip_meta and (row[0] in _SKIPPED_META
                                         or str(row[0]).startswith("migrate_db:")))]
        last = [rows[-1][columns.index(k)] for k in table.key]
        async with conn.transaction():
            if values:
                await conn.executemany(insert, values)
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                marker, json.dumps(last))
        copied += len(values)
        if progress is not None:
            progress(table.name, copied, total)


async def _advance_sequences(conn: asyncpg.Connection) -> None:
    """Ids were copied as they were: each identity continues after the largest one."""
    for table in TABLES:
        if table.key == ("id",):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"greatest((SELECT max(id) FROM {table.name}), 1))")

