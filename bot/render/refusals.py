"""What a person is told when a rule says no: the guard raises `Refused` with a code and
the facts, and the words are made here (so a second language is a catalogue, not a hunt)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from babel.dates import format_datetime
from phonenumbers import PhoneNumberType

from bot.guard.admission import Refused
from bot.input.phones import mask_phone
from bot.render.blocks import date_token, dnc_reason, user_mention
from bot.render.catalog import DEFAULT_LANGUAGE, catalogue, words
from bot.render.words import their_clock
from storage.models import DncEntry, Limits

TYPE_KEYS = {
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.VOICEMAIL: "voicemail",
}
# Country codes that belong to no country (phonenumbers' non-geographic entities): satellite
# phones and international services, billed at satellite or premium rates whatever type
# phonenumbers gives the number (+881 and +870 read as MOBILE). Codes missing here still
# count as special; they are only worded generically.
NON_GEOGRAPHIC_WORDED = frozenset({800, 808, 870, 878, 881, 882, 883, 888, 979})


def refusal_words(refused: Refused, lang: str = DEFAULT_LANGUAGE) -> str:
    """The sentence for a refusal: what rule, and what to do about it where anything can."""
    facts, reason = refused.facts, refused.reason
    if reason == "do_not_call":
        return dnc_words(facts["entry"], lang)
    if reason == "limit_per_number":
        return number_limit_words(facts["number"], facts["limits"], facts["free_at"], lang)
    if reason.startswith("limit_"):
        return limit_words(facts["limit"], facts["limits"], facts["free_at"], lang)
    if reason == "calling_hours":
        return hours_words(facts["number"], facts["zones"], facts["window"], facts["opens_at"],
                           lang)
    if reason == "not_admin":
        admins = ", ".join(user_mention(a) or a for a in facts["admins"])
        return words(lang, "refusal.not_admin",
                     admins=admins or words(lang, "refusal.no_admins"))
    if reason == "external_user":
        return words(lang, "refusal.external_user")
    if reason == "user_not_allowed":
        return words(lang, "refusal.user_not_allowed", ask=_ask_admins(facts["admins"], lang))
    if reason == "channel_not_allowed":
        where = ", ".join(f"<#{c}>" for c in facts["channels"])
        return words(lang, "refusal.channel_not_allowed", channels=where)
    if reason == "special_number":
        if "country_code" in facts:
            code = facts["country_code"]
            kind = f"nongeo_{code}" if code in NON_GEOGRAPHIC_WORDED else "nongeo_other"
        else:
            kind = TYPE_KEYS.get(facts["kind"], "other")
        return words(lang, "refusal.special_number", number=mask_phone(facts["number"]),
                     what=words(lang, f"number_kind.{kind}"))
    if reason == "country_not_allowed":
        return words(lang, "refusal.country_not_allowed",
                     country=_country(facts["region"], lang),
                     allowed=", ".join(facts["allowed"]))
    return words(lang, "refusal.other", reason=reason)


def short_refusal(reason: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """A rule that said no, in a few words and without its facts (a scheduled call's card
    keeps only the code; the requester was told the whole sentence)."""
    key = f"refusal_short.{reason}"
    return (words(lang, key) if key in catalogue(DEFAULT_LANGUAGE)
            else words(lang, "refusal.other", reason=reason))


def dnc_words(entry: DncEntry, lang: str = DEFAULT_LANGUAGE) -> str:
    reason = dnc_reason(entry, lang)
    why = f" ({reason})" if reason else ""
    return words(lang, "refusal.do_not_call", number=mask_phone(entry.number), why=why,
                 date=_date(entry.added_at, lang))


def limit_words(limit: str, limits: Limits, free_at: float | None,
                lang: str = DEFAULT_LANGUAGE) -> str:
    if limit == "concurrent":
        return words(lang, "refusal.concurrent", count=limits.concurrent)
    if limit == "per_hour":
        text = words(lang, "refusal.per_hour", count=limits.per_hour)
    else:
        text = words(lang, "refusal.per_day", count=limits.per_day)
    if free_at:
        text += " " + words(lang, "refusal.call_again_at",
                            date=_date(free_at, lang, with_time=True))
    return text


def number_limit_words(number: str, limits: Limits, free_at: float | None,
                       lang: str = DEFAULT_LANGUAGE) -> str:
    text = words(lang, "refusal.per_number", number=mask_phone(number),
                 count=limits.per_number_day)
    if free_at:
        text += " " + words(lang, "refusal.call_again_at",
                            date=_date(free_at, lang, with_time=True))
    return text


MAX_ZONES_SHOWN = 3


def hours_words(number: str, zones: Sequence[tuple[str, datetime]], window: str,
                opens_at: float | None, lang: str = DEFAULT_LANGUAGE) -> str:
    """Outside the callee's calling hours: their local time, and when calls can go."""
    shown = mask_phone(number)
    if not zones:
        return words(lang, "refusal.calling_hours_no_zone", number=shown)
    local = ", ".join(words(lang, "refusal.local_time", zone=zone,
                            time=format_datetime(at, "EEE HH:mm", locale=lang))
                      for zone, at in zones[:MAX_ZONES_SHOWN])
    if len(zones) > MAX_ZONES_SHOWN:
        local += " " + words(lang, "refusal.more_zones", count=len(zones) - MAX_ZONES_SHOWN)
    text = words(lang, "refusal.calling_hours", local=local, number=shown, window=window)
    if opens_at is None:
        return text + " " + words(lang, "refusal.calling_hours_never")
    return text + " " + words(lang, "refusal.calling_hours_opens",
                              date=_date(opens_at, lang, with_time=True),
                              their=their_clock(number, opens_at, lang))


def _ask_admins(admins: Sequence[str], lang: str) -> str:
    if not admins:
        return words(lang, "refusal.ask_operator")
    return words(lang, "refusal.ask_admins",
                 admins=", ".join(user_mention(a) or a for a in admins))


def _country(region: str | None, lang: str) -> str:
    return f"`{region}`" if region else words(lang, "refusal.unknown_country")


def _date(epoch: float | None, lang: str, with_time: bool = False) -> str:
    """Slack shows this in the reader's own time zone."""
    if epoch is None:
        return words(lang, "refusal.unknown_time")
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))
    # Slack's own tokens, kept as they are through the catalogue's formatting.
    fmt = (words(lang, "refusal.date_time", date_short_pretty="{date_short_pretty}",
                 time="{time}") if with_time else "{date_short_pretty}")
    return date_token(epoch, fmt, fallback)
