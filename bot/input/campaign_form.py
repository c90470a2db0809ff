"""Reading a submitted `/callcampaign` modal (`view.state.values`). Pure functions, no I/O.

The block ids live here, not in bot/render: rendering imports them to build the modal, and
this module must not know rendering. Every field's problem is found at once, so Slack can
show each under its field (`response_action: errors`); the problems are mistake codes
(catalogue keys under `mistake.`), worded by bot/render/campaigns.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.input.mistakes import Mistake

BLOCK_CAMPAIGN_NAME = "campaign_name"
BLOCK_CAMPAIGN_AGENT = "campaign_agent"
BLOCK_CAMPAIGN_CALLER = "campaign_caller"
BLOCK_CAMPAIGN_FILE = "campaign_file"
BLOCK_CAMPAIGN_CONCURRENCY = "campaign_concurrency"
BLOCK_CAMPAIGN_ATTEMPTS = "campaign_attempts"
BLOCK_CAMPAIGN_SPACING = "campaign_spacing"
BLOCK_CAMPAIGN_START = "campaign_start"
NO_AGENT = "-"  # the agent option that lets each caller ID's own agent answer
NAME_LIMIT = 80
MIN_ATTEMPTS = 1
MAX_ATTEMPTS = 5
DEFAULT_SPACING_MINUTES = 60
MIN_SPACING_MINUTES = 1
MAX_SPACING_MINUTES = 7 * 24 * 60
# A start picked a little in the past (the minute the person spent filling in the form)
# means "now", not a mistake.
START_GRACE_S = 60
# number_input sends text; more digits than this is no count anyone meant (and int() of a
# huge text is work for nothing).
_WHOLE_NUMBER = re.compile(r"\s*\+?(\d{1,7})\s*")
CSV_FILETYPES = frozenset({"csv"})
CSV_MIMETYPES = frozenset({"text/csv", "application/csv"})
# Types Slack gives a file it did not recognise by content: the name then decides.
GENERIC_FILETYPES = frozenset({"", "text", "auto"})


@dataclass(frozen=True)
class CampaignFile:
    """The uploaded contact list as Slack describes it; fetched later with the bot token."""

    id: str
    name: str
    url: str  # url_private_download, or url_private


@dataclass(frozen=True)
class CampaignForm:
    name: str
    agent: str | None  # an agent id; None: each caller ID's own agent
    from_number: str | None  # None: the default caller ID
    file: CampaignFile
    concurrency: int
    attempts: int
    retry_spacing_s: float
    start_at: float | None  # None: as soon as the preview's Start is pressed


class CampaignFormError(ValueError):
    """Fields people can fix: block id -> mistake code, as Slack's `errors` wants them."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def read_campaign_form(values: dict[str, Any], *, max_concurrency: int, now: float,
                       max_days: int) -> CampaignForm:
    """The campaign modal's fields, checked; CampaignFormError with every problem found.

    Slack enforces the number inputs' bounds and the file types in the browser, but a
    submission is only a request: every bound is checked again here."""

    def field(block: str) -> dict[str, Any]:
        inner = values.get(block) if isinstance(values, dict) else None
        first = next(iter(inner.values()), None) if isinstance(inner, dict) else None
        return first if isinstance(first, dict) else {}

    def selected(block: str) -> str | None:
        option = field(block).get("selected_option")
        value = option.get("value") if isinstance(option, dict) else None
        return value if isinstance(value, str) and value else None

    def whole(block: str) -> int | None:
        raw = field(block).get("value")
        match = _WHOLE_NUMBER.fullmatch(raw) if isinstance(raw, str) else None
        return int(match.group(1)) if match else None

    errors: dict[str, Mistake] = {}
    raw_name = field(BLOCK_CAMPAIGN_NAME).get("value")
    name = " ".join(raw_name.split())[:NAME_LIMIT] if isinstance(raw_name, str) else ""
    if not name:
        errors[BLOCK_CAMPAIGN_NAME] = Mistake("campaign_no_name")
    upload = _first_file(field(BLOCK_CAMPAIGN_FILE).get("files"))
    if upload is None:
        errors[BLOCK_CAMPAIGN_FILE] = Mistake("campaign_no_file")
    elif not _is_csv(upload[1]):
        errors[BLOCK_CAMPAIGN_FILE] = Mistake("campaign_not_csv")
    concurrency = whole(BLOCK_CAMPAIGN_CONCURRENCY)
    if concurrency is None or not 1 <= concurrency <= max_concurrency:
        errors[BLOCK_CAMPAIGN_CONCURRENCY] = Mistake("campaign_concurrency_range")
    attempts = whole(BLOCK_CAMPAIGN_ATTEMPTS)
    if attempts is None or not MIN_ATTEMPTS <= attempts <= MAX_ATTEMPTS:
        errors[BLOCK_CAMPAIGN_ATTEMPTS] = Mistake("campaign_attempts_range")
    spacing = whole(BLOCK_CAMPAIGN_SPACING)
    if spacing is None or not MIN_SPACING_MINUTES <= spacing <= MAX_SPACING_MINUTES:
        errors[BLOCK_CAMPAIGN_SPACING] = Mistake("campaign_spacing_range")
    start_at: float | None = None
    picked = field(BLOCK_CAMPAIGN_START).get("selected_date_time")
    if isinstance(picked, int | float) and not isinstance(picked, bool):
        if picked < now - START_GRACE_S:
            errors[BLOCK_CAMPAIGN_START] = Mistake("campaign_start_past")
        elif picked - now > max_days * 86400:
            errors[BLOCK_CAMPAIGN_START] = Mistake("campaign_start_too_far")
        elif picked > now:
            start_at = float(picked)
    if (errors or upload is None or concurrency is None or attempts is None
            or spacing is None):
        raise CampaignFormError({block: m.code for block, m in errors.items()})
    agent = selected(BLOCK_CAMPAIGN_AGENT)
    return CampaignForm(
        name=name,
        agent=None if agent in (None, NO_AGENT) else agent,
        from_number=selected(BLOCK_CAMPAIGN_CALLER),
        file=upload[0],
        concurrency=concurrency,
        attempts=attempts,
        retry_spacing_s=float(spacing * 60),
        start_at=start_at,
    )


def _first_file(files: object) -> tuple[CampaignFile, dict[str, Any]] | None:
    """The first uploaded file with what it takes to fetch it, and Slack's whole record."""
    if not isinstance(files, list) or not files or not isinstance(files[0], dict):
        return None
    record: dict[str, Any] = files[0]
    file_id = record.get("id")
    url = record.get("url_private_download") or record.get("url_private")
    if not isinstance(file_id, str) or not file_id or not isinstance(url, str) or not url:
        return None
    name = record.get("name") or record.get("title") or ""
    return CampaignFile(file_id, name if isinstance(name, str) else "", url), record


def _is_csv(record: dict[str, Any]) -> bool:
    """Slack's own reading of the file first; when Slack only saw text, its media type or
    its name."""
    filetype = str(record.get("filetype") or "").lower()
    if filetype in CSV_FILETYPES:
        return True
    if filetype not in GENERIC_FILETYPES:
        return False  # Slack read it as something else (a spreadsheet renamed .csv, ...)
    mimetype = str(record.get("mimetype") or "").lower().split(";", 1)[0].strip()
    name = str(record.get("name") or "").lower()
    return mimetype in CSV_MIMETYPES or name.endswith(".csv")
