"""The `/callcampaign` modal read back: every accepted form and every mistake, as Slack sends
`view.state.values` for the modal bot/render/campaigns.py builds. Pure functions, no I/O."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.input.campaign_form import (
    BLOCK_CAMPAIGN_AGENT,
    BLOCK_CAMPAIGN_ATTEMPTS,
    BLOCK_CAMPAIGN_CALLER,
    BLOCK_CAMPAIGN_CONCURRENCY,
    BLOCK_CAMPAIGN_FILE,
    BLOCK_CAMPAIGN_NAME,
    BLOCK_CAMPAIGN_SPACING,
    BLOCK_CAMPAIGN_START,
    NAME_LIMIT,
    CampaignFile,
    CampaignForm,
    CampaignFormError,
    read_campaign_form,
)
from bot.render.campaigns import campaign_form_errors, campaign_modal
from bot.retell.client import Agent, CallerNumber

NOW = 1_795_000_000.0
MAX_CONCURRENCY = 10
MAX_DAYS = 30
AGENTS = [Agent("agent_sales", "Sales Follow-up"), Agent("agent_survey", "Survey")]
NUMBERS = [CallerNumber("+14155550100", "Sales line"), CallerNumber("+14155550199")]
CSV_FILE: dict[str, Any] = {
    "id": "F0CONTACTS", "name": "contacts.csv", "title": "contacts", "filetype": "csv",
    "mimetype": "text/csv",
    "url_private": "https://files.slack.com/files-pri/T0-F0CONTACTS/contacts.csv",
    "url_private_download":
        "https://files.slack.com/files-pri/T0-F0CONTACTS/download/contacts.csv",
}
_THAI = re.compile(r"[\u0e00-\u0e7f]")
UNSET = object()


def view() -> dict[str, Any]:
    return campaign_modal(AGENTS, NUMBERS, default_concurrency=3,
                          max_concurrency=MAX_CONCURRENCY, metadata="{}")


def values(*, name: str | None = "Spring follow-up", agent: str | None = None,
           caller: str | None = None, files: Any = UNSET, concurrency: Any = UNSET,
           attempts: Any = UNSET, spacing: Any = UNSET,
           start: int | None = None) -> dict[str, Any]:
    """`view.state.values` for the modal as built, the way Slack sends it: untouched
    fields keep their initial value, empty ones arrive as null."""
    chosen_files = [dict(CSV_FILE)] if files is UNSET else files
    numbers = {BLOCK_CAMPAIGN_CONCURRENCY: concurrency, BLOCK_CAMPAIGN_ATTEMPTS: attempts,
               BLOCK_CAMPAIGN_SPACING: spacing}
    out: dict[str, Any] = {}
    for block in view()["blocks"]:
        if block.get("type") != "input":
            continue
        element, block_id = block["element"], block["block_id"]
        kind = element["type"]
        if kind == "plain_text_input":
            state: dict[str, Any] = {"type": kind, "value": name}
        elif kind == "static_select":
            wanted = {BLOCK_CAMPAIGN_AGENT: agent, BLOCK_CAMPAIGN_CALLER: caller}[block_id]
            option = element.get("initial_option")
            if wanted is not None:
                option = next(o for o in element["options"] if o["value"] == wanted)
            state = {"type": kind, "selected_option": option}
        elif kind == "file_input":
            state = {"type": kind, "files": chosen_files}
        elif kind == "number_input":
            typed = numbers[block_id]
            state = {"type": kind,
                     "value": element.get("initial_value") if typed is UNSET else typed}
        elif kind == "datetimepicker":
            state = {"type": kind, "selected_date_time": start}
        else:  # pragma: no cover - a new input needs a line here
            raise AssertionError(kind)
        out[block_id] = {element["action_id"]: state}
    return out


def read(state: dict[str, Any]) -> CampaignForm:
    return read_campaign_form(state, max_concurrency=MAX_CONCURRENCY, now=NOW,
                              max_days=MAX_DAYS)


def errors_of(state: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(CampaignFormError) as caught:
        read(state)
    return caught.value.errors


# -- accepted -------------------------------------------------------------------------------------


def test_a_form_left_at_its_defaults() -> None:
    form = read(values())
    assert form == CampaignForm(
        name="Spring follow-up", agent=None, from_number=None,
        file=CampaignFile("F0CONTACTS", "contacts.csv",
                          CSV_FILE["url_private_download"]),
        concurrency=3, attempts=1, retry_spacing_s=3600.0, start_at=None)


def test_every_choice_comes_back() -> None:
    start = int(NOW) + 3 * 3600
    form = read(values(agent="agent_survey", caller="+14155550199", concurrency="10",
                       attempts="5", spacing="15", start=start))
    assert (form.agent, form.from_number) == ("agent_survey", "+14155550199")
    assert (form.concurrency, form.attempts, form.retry_spacing_s) == (10, 5, 900.0)
    assert form.start_at == float(start)


def test_the_name_is_trimmed_one_spaced_and_cut() -> None:
    assert read(values(name="  Spring \t follow-up  ")).name == "Spring follow-up"
    assert read(values(name="x" * 200)).name == "x" * NAME_LIMIT


@pytest.mark.parametrize(("start", "expected"), [
    (None, None),  # empty: when Start is pressed
    (int(NOW) - 30, None),  # picked a moment ago, as the form was filled in: now
    (int(NOW), None),
    (int(NOW) + 60, NOW + 60),
    (int(NOW) + MAX_DAYS * 86400, NOW + MAX_DAYS * 86400),  # the last moment allowed
])
def test_start_times_that_are_accepted(start: int | None, expected: float | None) -> None:
    assert read(values(start=start)).start_at == expected


@pytest.mark.parametrize(("bounds"), [("1", "1", "1"), ("10", "5", "10080"), (" 4 ", "+2", "60")])
def test_bounds_are_inclusive(bounds: tuple[str, str, str]) -> None:
    concurrency, attempts, spacing = bounds
    form = read(values(concurrency=concurrency, attempts=attempts, spacing=spacing))
    assert form.concurrency == int(concurrency)
    assert form.attempts == int(attempts)
    assert form.retry_spacing_s == int(spacing) * 60


@pytest.mark.parametrize("file", [
    {**CSV_FILE},
    {**CSV_FILE, "filetype": "text", "mimetype": "text/plain"},  # Slack saw only text
    {**CSV_FILE, "filetype": "", "name": "LIST.CSV"},
    {**CSV_FILE, "filetype": "auto", "mimetype": "application/octet-stream",
     "name": "numbers.csv"},
    {**CSV_FILE, "filetype": "text", "name": "export.txt", "mimetype": "text/csv"},
])
def test_files_read_as_csv(file: dict[str, Any]) -> None:
    assert read(values(files=[file])).file.id == "F0CONTACTS"


def test_the_download_url_is_preferred_and_the_private_one_is_the_fallback() -> None:
    only_private = {k: v for k, v in CSV_FILE.items() if k != "url_private_download"}
    assert read(values(files=[only_private])).file.url == CSV_FILE["url_private"]
    named_by_title = {k: v for k, v in CSV_FILE.items() if k != "name"}
    assert read(values(files=[named_by_title])).file.name == "contacts"


def test_only_the_first_file_is_taken() -> None:
    second = {**CSV_FILE, "id": "F0OTHER"}
    assert read(values(files=[dict(CSV_FILE), second])).file.id == "F0CONTACTS"


# -- mistakes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "block", "code"), [
    (values(name=None), BLOCK_CAMPAIGN_NAME, "campaign_no_name"),
    (values(name="   "), BLOCK_CAMPAIGN_NAME, "campaign_no_name"),
    (values(files=[]), BLOCK_CAMPAIGN_FILE, "campaign_no_file"),
    (values(files=None), BLOCK_CAMPAIGN_FILE, "campaign_no_file"),
    (values(files=["F0CONTACTS"]), BLOCK_CAMPAIGN_FILE, "campaign_no_file"),
    (values(files=[{**CSV_FILE, "id": ""}]), BLOCK_CAMPAIGN_FILE, "campaign_no_file"),
    (values(files=[{k: v for k, v in CSV_FILE.items() if not k.startswith("url")}]),
     BLOCK_CAMPAIGN_FILE, "campaign_no_file"),
    (values(files=[{**CSV_FILE, "filetype": "xlsx", "mimetype": "application/vnd.ms-excel",
                    "name": "contacts.xlsx"}]), BLOCK_CAMPAIGN_FILE, "campaign_not_csv"),
    (values(files=[{**CSV_FILE, "filetype": "xlsx", "name": "renamed.csv"}]),
     BLOCK_CAMPAIGN_FILE, "campaign_not_csv"),  # Slack read it as a spreadsheet
    (values(files=[{**CSV_FILE, "filetype": "text", "mimetype": "text/plain",
                    "name": "notes.txt"}]), BLOCK_CAMPAIGN_FILE, "campaign_not_csv"),
    (values(concurrency="0"), BLOCK_CAMPAIGN_CONCURRENCY, "campaign_concurrency_range"),
    (values(concurrency=str(MAX_CONCURRENCY + 1)), BLOCK_CAMPAIGN_CONCURRENCY,
     "campaign_concurrency_range"),
    (values(concurrency="-2"), BLOCK_CAMPAIGN_CONCURRENCY, "campaign_concurrency_range"),
    (values(concurrency="2.5"), BLOCK_CAMPAIGN_CONCURRENCY, "campaign_concurrency_range"),
    (values(concurrency="many"), BLOCK_CAMPAIGN_CONCURRENCY, "campaign_concurrency_range"),
    (values(concurrency=None), BLOCK_CAMPAIGN_CONCURRENCY, "campaign_concurrency_range"),
    (values(concurrency="9" * 5000), BLOCK_CAMPAIGN_CONCURRENCY, "campaign_concurrency_range"),
    (values(attempts="0"), BLOCK_CAMPAIGN_ATTEMPTS, "campaign_attempts_range"),
    (values(attempts="6"), BLOCK_CAMPAIGN_ATTEMPTS, "campaign_attempts_range"),
    (values(attempts=None), BLOCK_CAMPAIGN_ATTEMPTS, "campaign_attempts_range"),
    (values(spacing="0"), BLOCK_CAMPAIGN_SPACING, "campaign_spacing_range"),
    (values(spacing="10081"), BLOCK_CAMPAIGN_SPACING, "campaign_spacing_range"),
    (values(spacing=""), BLOCK_CAMPAIGN_SPACING, "campaign_spacing_range"),
    (values(start=int(NOW) - 61), BLOCK_CAMPAIGN_START, "campaign_start_past"),
    (values(start=int(NOW) - 86400), BLOCK_CAMPAIGN_START, "campaign_start_past"),
    (values(start=int(NOW) + MAX_DAYS * 86400 + 1), BLOCK_CAMPAIGN_START,
     "campaign_start_too_far"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_each_mistake_is_named_under_its_field(state: dict[str, Any], block: str,
                                                code: str) -> None:
    assert errors_of(state) == {block: code}


def test_every_mistake_is_found_at_once() -> None:
    state = values(name="", files=[], concurrency="0", attempts="9", spacing="0",
                   start=int(NOW) - 3600)
    assert errors_of(state) == {
        BLOCK_CAMPAIGN_NAME: "campaign_no_name",
        BLOCK_CAMPAIGN_FILE: "campaign_no_file",
        BLOCK_CAMPAIGN_CONCURRENCY: "campaign_concurrency_range",
        BLOCK_CAMPAIGN_ATTEMPTS: "campaign_attempts_range",
        BLOCK_CAMPAIGN_SPACING: "campaign_spacing_range",
        BLOCK_CAMPAIGN_START: "campaign_start_past",
    }


def test_a_submission_missing_every_block_is_mistakes_not_a_crash() -> None:
    assert set(errors_of({})) == {BLOCK_CAMPAIGN_NAME, BLOCK_CAMPAIGN_FILE,
                                  BLOCK_CAMPAIGN_CONCURRENCY, BLOCK_CAMPAIGN_ATTEMPTS,
                                  BLOCK_CAMPAIGN_SPACING}


def test_the_concurrency_limit_is_the_callers() -> None:
    state = values(concurrency="8")
    assert read_campaign_form(state, max_concurrency=8, now=NOW, max_days=1).concurrency == 8
    with pytest.raises(CampaignFormError):
        read_campaign_form(state, max_concurrency=7, now=NOW, max_days=1)


@pytest.mark.parametrize("lang", ["en", "th"])
def test_every_mistake_reads_as_a_sentence_with_its_bounds(lang: str) -> None:
    state = values(name="", files=[{**CSV_FILE, "filetype": "pdf", "name": "x.pdf"}],
                   concurrency="0", attempts="9", spacing="0",
                   start=int(NOW) + 400 * 86400)
    said = campaign_form_errors(errors_of(state), lang, max_concurrency=MAX_CONCURRENCY,
                                max_days=MAX_DAYS)
    assert set(said) == {BLOCK_CAMPAIGN_NAME, BLOCK_CAMPAIGN_FILE, BLOCK_CAMPAIGN_CONCURRENCY,
                         BLOCK_CAMPAIGN_ATTEMPTS, BLOCK_CAMPAIGN_SPACING,
                         BLOCK_CAMPAIGN_START}
    assert all(text and "{" not in text for text in said.values())
    assert str(MAX_CONCURRENCY) in said[BLOCK_CAMPAIGN_CONCURRENCY]
    assert "5" in said[BLOCK_CAMPAIGN_ATTEMPTS]
    assert "10,080" in said[BLOCK_CAMPAIGN_SPACING]
    assert str(MAX_DAYS) in said[BLOCK_CAMPAIGN_START]
    if lang == "th":
        assert all(_THAI.search(text) for text in said.values())
    else:
        assert said[BLOCK_CAMPAIGN_FILE].startswith("That file is not CSV")


def test_a_code_this_version_does_not_word_is_still_a_sentence() -> None:
    said = campaign_form_errors({"x": "campaign_<new>"}, "en", max_concurrency=1, max_days=1)
    assert said == {"x": "Check this field (`campaign_&lt;new&gt;`)."}
