"""CallFilter as PostgreSQL SQL: the SQLite store's filters (storage/sqlite/filters.py) in
PostgreSQL's spelling, so a filter picks the very calls it picks on SQLite.

Three spellings differ: "no condition" is TRUE (SQLite's 1 is no boolean here), a boolean
is counted with FILTER (SQLite sums it as 0/1), and an agent's name is matched without
regard to ASCII case only (SQLite's lower() folds ASCII alone; PostgreSQL's folds by the
database's locale unless told the "C" collation)."""

from __future__ import annotations

from typing import Any

from storage.models import CallFilter
from storage.sqlite import filters as sqlite_filters

# SQLite's `lower(col) = lower(:f_agent)`, and what stands for it here.
_SQLITE_AGENT = "lower({col}agent_name) = lower(:f_agent)"
_AGENT = 'lower({col}agent_name COLLATE "C") = lower(:f_agent COLLATE "C")'


def filter_sql(flt: CallFilter, alias: str = "c") -> tuple[str, dict[str, Any]]:
    """`flt` as a WHERE condition on `calls` (under `alias`; "" for none) and its named
    parameters (all prefixed `f_`): SQLite's, respelled; "TRUE" when it filters nothing."""
    where, params = sqlite_filters.filter_sql(flt, alias)
    if where == "1":
        return "TRUE", params
    col = f"{alias}." if alias else ""
    sqlite_agent = _SQLITE_AGENT.format(col=col)
    if flt.agent is not None and sqlite_agent not in where:  # the SQLite filter changed
        raise AssertionError("storage/sqlite/filters.py's agent condition is not known here")
    return where.replace(sqlite_agent, _AGENT.format(col=col)), params


def placed_sql(flt: CallFilter) -> tuple[str, dict[str, Any]]:
    """The calls Retell placed among those `flt` picks (figures count these); an open
    start is a range from -infinity, as on SQLite, so the plan stays on a time index."""
    where, params = filter_sql(flt, alias="")
    if flt.since is None:
        where = f"created_at >= :f_floor AND {where}"
        params["f_floor"] = float("-inf")
    return f"call_id IS NOT NULL AND {where}", params


# The figures every answer sums (storage/sqlite/filters.py's), with PostgreSQL's FILTER.
FIGURES_SQL = """count(*) AS calls, count(successful) AS analyzed,
    count(*) FILTER (WHERE successful = 1) AS successful,
    count(*) FILTER (WHERE sentiment = 'Positive') AS positive,
    count(*) FILTER (WHERE sentiment = 'Neutral') AS neutral,
    count(*) FILTER (WHERE sentiment = 'Negative') AS negative,
    count(CASE WHEN duration_ms > 0 THEN 1 END) AS connected,
    coalesce(sum(CASE WHEN duration_ms > 0 THEN duration_ms END), 0) AS talk_ms,
    coalesce(sum(cost_cents), 0) AS cost"""
