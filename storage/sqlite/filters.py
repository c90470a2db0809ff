"""Which calls a question is about (CallFilter) as SQL, and each call's one outcome: shared
by `/callstats` and `/callsearch`, so a filter means the same calls in both."""

from __future__ import annotations

from typing import Any

from storage.models import CallFilter

# outcome:<word> -> the outcome it picks
OUTCOMES = {"success": "successful", "failed": "failed", "no-answer": "no_answer"}
# Reasons that mean nobody answered.
NO_ANSWER_REASONS = ("dial_no_answer", "dial_busy", "voicemail_reached")


def outcome_sql(alias: str = "") -> str:
    """Each call's one outcome: successful (the analysis says so), no_answer (nobody
    answered), failed (Retell refused it, it ended in error or did not connect, or the
    analysis says it did not succeed), other (connected, not judged yet)."""
    col = f"{alias}." if alias else ""
    reasons = ", ".join(f"'{r}'" for r in NO_ANSWER_REASONS)
    return (f"CASE WHEN {col}successful = 1 THEN 'successful' "
            f"WHEN {col}disconnection_reason IN ({reasons}) THEN 'no_answer' "
            f"WHEN {col}call_id IS NULL OR {col}successful = 0 "
            f"OR {col}status IN ('error', 'not_connected') THEN 'failed' ELSE 'other' END")


def filter_sql(flt: CallFilter, alias: str = "c") -> tuple[str, dict[str, Any]]:
    """`flt` as a WHERE condition on `calls` (under `alias`; "" for none) and its named
    parameters (all prefixed `f_`); "1" when it filters nothing.

    - time: `since <= created_at < until`;
    - agent: the agent id, or the agent's name without regard to (ASCII) case;
    - team_id, user_id, channel_id, campaign_id, direction: equal;
    - outcome: each call has exactly one (see `outcome_sql`), so `/callstats` and
      `/callsearch` mean the same calls by `outcome:failed`. An unknown outcome raises
      ValueError.
    """
    col = f"{alias}." if alias else ""
    parts: list[str] = []
    params: dict[str, Any] = {}
    if flt.since is not None:
        parts.append(f"{col}created_at >= :f_since")
        params["f_since"] = flt.since
    if flt.until is not None:
        parts.append(f"{col}created_at < :f_until")
        params["f_until"] = flt.until
    if flt.agent is not None:
        parts.append(f"({col}agent_id = :f_agent OR lower({col}agent_name) = lower(:f_agent))")
        params["f_agent"] = flt.agent
    for name in ("team_id", "user_id", "channel_id", "campaign_id", "direction"):
        value = getattr(flt, name)
        if value is not None:
            parts.append(f"{col}{name} = :f_{name}")
            params[f"f_{name}"] = value
    if flt.outcome is not None:
        if flt.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {flt.outcome!r}; one of {', '.join(OUTCOMES)}")
        parts.append(f"({outcome_sql(alias)}) = :f_outcome")
        params["f_outcome"] = OUTCOMES[flt.outcome]
    return (" AND ".join(parts) or "1"), params


def placed_sql(flt: CallFilter) -> tuple[str, dict[str, Any]]:
    """The calls Retell placed among those `flt` picks (figures count these)."""
    where, params = filter_sql(flt, alias="")
    if flt.since is None:  # an open start: a range on created_at keeps the plan on the
        where = f"created_at >= :f_floor AND {where}"  # covering index, not call_id's
        params["f_floor"] = float("-inf")
    return f"call_id IS NOT NULL AND {where}", params


# The figures every answer sums, as SQL aggregates over `calls` (placed calls).
FIGURES_SQL = """count(*) AS calls, count(successful) AS analyzed,
    coalesce(sum(successful = 1), 0) AS successful,
    coalesce(sum(sentiment = 'Positive'), 0) AS positive,
    coalesce(sum(sentiment = 'Neutral'), 0) AS neutral,
    coalesce(sum(sentiment = 'Negative'), 0) AS negative,
    count(CASE WHEN duration_ms > 0 THEN 1 END) AS connected,
    coalesce(sum(CASE WHEN duration_ms > 0 THEN duration_ms END), 0) AS talk_ms,
    coalesce(sum(cost_cents), 0) AS cost"""
