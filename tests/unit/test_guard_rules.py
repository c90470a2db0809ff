"""Guardrails as pure rules and as store transactions: parsing the admin commands, who and
which numbers may be called, the wording of limits, the CSV, and the holds that make limits
exact under concurrency (on the suite's database: an SQLite file or a PostgreSQL schema)."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import phonenumbers
import pytest

from bot.config import Settings, SettingsError, load_settings
from bot.guard.admission import (
    Busy,
    HeavyGate,
    Refused,
    caller_may,
    foreign_team,
    number_may,
    team_may,
)
from bot.input.parsing import CommandError, parse_audit_text, parse_dnc_text
from bot.render import replies
from bot.render.exports import audit_csv
from bot.render.refusals import limit_words, refusal_words
from storage.base import Store
from storage.models import STAGE_ENDED, Attempt, AuditEntry, AuditRow, CallFields, Limits, Route
from tests.support.db import db_execute, db_rows
from tests.support.stores import database_for, store_for

BASE = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "RETELL_API_KEY": "k",
        "RETELL_FROM_NUMBER": "+14155550100"}


def settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **{**BASE, **overrides})


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with store_for(tmp_path / "calls.db") as s:
        yield s


# -- settings ---------------------------------------------------------------------------------


def test_lists_are_comma_separated_and_checked() -> None:
    s = settings(CALLBOT_ALLOWED_USERS=" U0A1, U0B2 ,", CALLBOT_ALLOWED_COUNTRIES="us,ca")
    assert s.allowed_users == {"U0A1", "U0B2"}
    assert s.allowed_countries == {"US", "CA"}
    assert s.allowed_channels == frozenset() and s.max_concurrent_calls == 20
    with pytest.raises(SettingsError, match=r"CALLBOT_ALLOWED_COUNTRIES.*'XX'"):
        load_settings(_env_file=None, **BASE, CALLBOT_ALLOWED_COUNTRIES="US,XX")
    with pytest.raises(SettingsError, match="CALLBOT_ADMINS"):
        load_settings(_env_file=None, **BASE, CALLBOT_ADMINS="alice")


# -- who and which numbers --------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "user", "channel", "reason"), [
    ({"CALLBOT_ALLOWED_USERS": "U0A1"}, "U0B2", "C1", "user_not_allowed"),
    ({"CALLBOT_ALLOWED_CHANNELS": "C0OK"}, "U0A1", "C0NO", "channel_not_allowed"),
    # Admins need not be listed as users; the channel rule holds for them too.
    ({"CALLBOT_ALLOWED_USERS": "U0A1", "CALLBOT_ADMINS": "U0AD",
      "CALLBOT_ALLOWED_CHANNELS": "C0OK"}, "U0AD", "C0NO", "channel_not_allowed"),
])
def test_caller_refusals(overrides: dict[str, str], user: str, channel: str, reason: str) -> None:
    with pytest.raises(Refused) as refused:
        caller_may(settings(**overrides), user, channel)
    assert refused.value.reason == reason


def test_callers_allowed() -> None:
    caller_may(settings(), "U0ANY", "C0ANY")  # empty lists: everyone, everywhere
    s = settings(CALLBOT_ALLOWED_USERS="U0A1", CALLBOT_ADMINS="U0AD",
                 CALLBOT_ALLOWED_CHANNELS="C0OK")
    caller_may(s, "U0A1", "C0OK")
    caller_may(s, "U0AD", "C0OK")


@pytest.mark.parametrize(("number", "overrides", "reason"), [
    ("+442079460123", {"CALLBOT_ALLOWED_COUNTRIES": "US,CA"}, "country_not_allowed"),
    ("+19005551234", {}, "special_number"),  # premium rate
    ("+18005551234", {}, "special_number"),  # toll free
    ("+443001234567", {}, "special_number"),  # UAN
])
def test_number_refusals(number: str, overrides: dict[str, str], reason: str) -> None:
    with pytest.raises(Refused) as refused:
        number_may(settings(**overrides), number)
    assert refused.value.reason == reason
    assert number[-7:] not in refusal_words(refused.value)  # masked in the answer


def test_numbers_allowed() -> None:
    number_may(settings(CALLBOT_ALLOWED_COUNTRIES="US,GB"), "+442079460123")
    number_may(settings(), "+14155550123")
    number_may(settings(CALLBOT_ALLOW_SPECIAL_NUMBERS="true"), "+19005551234")


# Every country code of no country phonenumbers knows, each with a valid example number.
NON_GEO = sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)


def _non_geo_example(code: int) -> str:
    example = phonenumbers.example_number_for_non_geo_entity(code)
    assert example is not None, code
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)


def test_the_non_geographic_codes_include_satellite_and_international_services() -> None:
    assert {800, 808, 870, 881, 882, 883, 888, 979} <= set(NON_GEO)
    # The reason this rule exists: phonenumbers calls satellite phones mobiles.
    satellite = phonenumbers.parse(_non_geo_example(881))
    assert phonenumbers.number_type(satellite) == phonenumbers.PhoneNumberType.MOBILE


@pytest.mark.parametrize("code", NON_GEO)
def test_non_geographic_numbers_are_special(code: int) -> None:
    number = _non_geo_example(code)
    with pytest.raises(Refused) as refused:
        number_may(settings(), number)
    assert refused.value.reason == "special_number"
    assert "CALLBOT_ALLOW_SPECIAL_NUMBERS" in refusal_words(refused.value)
    assert number[-7:] not in refusal_words(refused.value)  # masked in the answer
    # Refused as special even where a country list is set (the list names no such country).
    with pytest.raises(Refused) as refused:
        number_may(settings(CALLBOT_ALLOWED_COUNTRIES="US"), number)
    assert refused.value.reason == "special_number"
    number_may(settings(CALLBOT_ALLOW_SPECIAL_NUMBERS="true"), number)


def test_satellite_numbers_are_named_as_such() -> None:
    with pytest.raises(Refused) as refused:
        number_may(settings(), _non_geo_example(881))
    assert "is a satellite phone number" in refusal_words(refused.value)
    with pytest.raises(Refused) as refused:
        number_may(settings(), _non_geo_example(870))
    assert "satellite phone number (Inmarsat)" in refusal_words(refused.value)


def test_foreign_team_is_only_a_known_team_other_than_the_apps() -> None:
    assert foreign_team("T0OTHER", "T0HOME") == "T0OTHER"
    assert foreign_team("T0HOME", "T0HOME") is None
    assert foreign_team(None, "T0HOME") is None
    assert foreign_team("", "T0HOME") is None
    assert foreign_team("T0OTHER", None) is None


def test_external_users_are_refused_unless_allowed() -> None:
    with pytest.raises(Refused) as refused:
        team_may(settings(), "T0OTHER")
    assert refused.value.reason == "external_user"
    assert "CALLBOT_ALLOW_EXTERNAL_USERS" in refusal_words(refused.value)
    team_may(settings(), None)
    team_may(settings(CALLBOT_ALLOW_EXTERNAL_USERS="true"), "T0OTHER")


def said(busy: Busy) -> str:
    return replies.busy(busy.reason, busy.retry_after, busy.in_hand)


def test_heavy_gate_bounds_per_person_and_in_all() -> None:
    now = [0.0]
    gate = HeavyGate(capacity=2, clock=lambda: now[0])
    with gate.enter("U1"):
        with pytest.raises(Busy) as busy:
            with gate.enter("U1"):
                pass
        assert "still counting" in said(busy.value) and busy.value.retry_after >= 1
        with gate.enter("U2"):
            with pytest.raises(Busy) as busy:
                with gate.enter("U3"):
                    pass
            assert "Stats are busy (2 requests" in said(busy.value)
            assert f"Try again in {busy.value.retry_after} s" in said(busy.value)
            now[0] += 10.0  # slow requests: the estimate of when to come back grows
        assert gate.in_hand == 1
    assert gate.in_hand == 0
    with gate.enter("U1"), gate.enter("U2"), pytest.raises(Busy) as busy:
        with gate.enter("U3"):
            pass
    assert busy.value.retry_after > 2
    with gate.enter("U3"):  # places are given back, also when the work raised
        pass
    with pytest.raises(ValueError), gate.enter("U1"):
        raise ValueError
    assert gate.in_hand == 0


def test_limit_words_say_when() -> None:
    limits = Limits(per_hour=3, per_day=10, concurrent=20)
    hourly = limit_words("per_hour", limits, 1_900_000_000.0)
    assert "3 calls in the last hour" in hourly and "<!date^1900000000^" in hourly
    assert "10 calls in the last 24 hours" in limit_words("per_day", limits, 1_900_000_000.0)
    assert "20 calls are in progress" in limit_words("concurrent", limits, None)


# -- parsing the admin commands ---------------------------------------------------------------


def test_parse_dnc() -> None:
    add = parse_dnc_text("add (415) 555-0123 asked by email")
    assert add.action == "add" and add.phone and add.phone.e164 == "+14155550123"
    assert add.reason == "asked by email"
    check = parse_dnc_text("CHECK <tel:+14155550123|+1 415 555 0123>")
    assert check.action == "check" and check.phone and check.phone.e164 == "+14155550123"
    assert parse_dnc_text("list").phone is None


@pytest.mark.parametrize("text", ["", "add", "frobnicate 4155550123", "remove 4155550123 x",
                                  "list all", "add 12", "add +1 415 555 0123 " + "x" * 400])
def test_parse_dnc_refuses(text: str) -> None:
    with pytest.raises(CommandError):
        parse_dnc_text(text)


def test_parse_audit() -> None:
    assert parse_audit_text("").limit == 20
    assert parse_audit_text("5").limit == 5
    assert parse_audit_text("<@U0BOB|bob>").user_id == "U0BOB"
    assert parse_audit_text("U0BOB").user_id == "U0BOB"
    phone = parse_audit_text("+1 415 555 0123").phone
    assert phone is not None and phone.e164 == "+14155550123"
    assert parse_audit_text("Export").export
    for bad in ("0", "1000", "bob smith", "415 x"):
        with pytest.raises(CommandError):
            parse_audit_text(bad)


# -- the store: holds, audit, retention -------------------------------------------------------


async def test_concurrent_admissions_never_pass_a_limit_of_one(store: Store) -> None:
    now = time.time()
    answers = await asyncio.gather(*(store.admit("U0A1", Limits(per_hour=1), now)
                                     for _ in range(20)))
    admitted = [a for a in answers if a.hold_id is not None]
    assert len(admitted) == 1
    refused = [a for a in answers if a.hold_id is None]
    assert {a.limit for a in refused} == {"per_hour"}
    assert all(a.free_at == pytest.approx(now + 3600) for a in refused)
    # Another user, and the concurrency cap counting holds of everyone.
    assert (await store.admit("U0B2", Limits(per_hour=1), now)).hold_id is not None
    assert (await store.admit("U0C3", Limits(concurrent=2), now)).limit == "concurrent"


async def test_a_hold_gives_way_to_the_call_and_stale_holds_expire(store: Store) -> None:
    now = time.time()
    first = await store.admit("U0A1", Limits(per_hour=2), now)
    assert first.hold_id is not None
    attempt = Attempt(route=Route(team_id="T", channel_id="C", user_id="U0A1", message_ts="1.0"),
                      from_number="+14155550100", to_number="+14155550123", agent_id=None,
                      agent_name=None, variables={})
    entry = AuditEntry(action="call", outcome="placed", user_id="U0A1",
                       number="+14155550123", number_masked="+1 415 ••• 0123", call_id="c1")
    await store.save_placed_call(attempt, "c1", "registered", None, hold_id=first.hold_id,
                                 audit=entry)
    # The call now counts instead of the hold: one more place, then the limit.
    assert (await store.admit("U0A1", Limits(per_hour=2), now)).hold_id is not None
    assert (await store.admit("U0A1", Limits(per_hour=2), now)).limit == "per_hour"
    # A crash's leftover hold stops counting after a while.
    later = now + 600
    assert (await store.admit("U0A1", Limits(concurrent=2), later)).hold_id is not None
    [row] = await store.audit_rows(10, number="+14155550123")
    assert row.call_id == "c1" and row.number == "+1 415 ••• 0123"
    assert await store.audit_rows(10, number="+14155550199") == []


async def test_ended_calls_free_a_concurrent_place(store: Store) -> None:
    now = time.time()
    fields = CallFields(call_id="c1", status="ongoing", stage=1, to_number="+14155550123")
    await store.record_events([("call_started", ())], fields)
    assert (await store.admit(None, Limits(concurrent=1), now)).limit == "concurrent"
    ended = CallFields(call_id="c1", status="ended", stage=STAGE_ENDED)
    await store.record_events([("call_ended", ())], ended)
    assert (await store.admit(None, Limits(concurrent=1), now)).hold_id is not None


async def test_purge_keeps_figures_and_newer_calls(store: Store, tmp_path: Path) -> None:
    for call_id in ("old", "new"):
        await store.record_events([("call_ended", ())], CallFields(
            call_id=call_id, status="ended", stage=STAGE_ENDED, duration_ms=61_000,
            cost_cents=12.5, summary="Booked.", transcript="Agent: hi",
            recording_url="https://x/r.wav", public_log_url="https://x/log",
            raw_payload="{}"))
    url = database_for(tmp_path / "calls.db")
    db_execute(url, "UPDATE calls SET created_at = created_at - 40 * 86400 "
                    "WHERE call_id = 'old'")
    assert await store.purge_before(time.time() - 30 * 86400, batch=1) == 1
    cols = ("transcript, raw_payload, recording_url, public_log_url, duration_ms, cost_cents, "
            "summary")
    [old] = db_rows(url, f"SELECT {cols} FROM calls WHERE call_id = 'old'")
    [new] = db_rows(url, f"SELECT {cols} FROM calls WHERE call_id = 'new'")
    assert old == (None, None, None, None, 61_000, 12.5, "Booked.")
    assert new == ("Agent: hi", "{}", "https://x/r.wav", "https://x/log", 61_000, 12.5, "Booked.")
    assert await store.purge_before(time.time() - 30 * 86400) == 0  # nothing left to do


def test_audit_csv_has_one_row_per_entry() -> None:
    rows = [AuditRow(1, 0.0, "call", "refused", "U0A1", "C1", "/call", "+1 415 ••• 0123",
                     None, "limit_per_hour", None)]
    parsed = list(csv.reader(io.StringIO(audit_csv(rows))))
    assert parsed[0][:4] == ["time_utc", "user", "channel", "action"]
    assert parsed[1] == ["1970-01-01T00:00:00Z", "U0A1", "C1", "call", "/call",
                         "+1 415 ••• 0123", "", "refused", "limit_per_hour", ""]
