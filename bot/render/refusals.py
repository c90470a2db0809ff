"""What a person is told when a rule says no: the guard raises `Refused` with a code and
the facts, and the words are made here (so a second language is a catalogue, not a hunt)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from phonenumbers import PhoneNumberType

from bot.guard.admission import Refused
from bot.input.phones import mask_phone
from bot.render.blocks import date_token, user_mention
from storage.models import DncEntry, Limits

TYPE_WORDS = {
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.TOLL_FREE: "a toll-free number",
    PhoneNumberType.UAN: "a universal access (company) number",
    PhoneNumberType.PAGER: "a pager number",
    PhoneNumberType.VOICEMAIL: "a voicemail access number",
}
# Country codes that belong to no country (phonenumbers' non-geographic entities): satellite
# phones and international services, billed at satellite or premium rates whatever type
# phonenumbers gives the number (+881 and +870 read as MOBILE). Codes missing here still
# count as special; they are only worded generically.
NON_GEOGRAPHIC_WORDS = {
    800: "a universal international freephone number",
    808: "a universal international shared-cost number",
    870: "a satellite phone number (Inmarsat)",
    878: "a universal personal telecommunications number",
    881: "a satellite phone number",
    882: "an international network number (satellite, maritime or carrier services)",
    883: "an international network number",
    888: "a number of the UN humanitarian network (OCHA)",
    979: "an international premium-rate number",
}


def refusal_words(refused: Refused) -> str:
    """The sentence for a refusal: what rule, and what to do about it where anything can."""
    facts, reason = refused.facts, refused.reason
    if reason == "do_not_call":
        return dnc_words(facts["entry"])
    if reason.startswith("limit_"):
        return limit_words(facts["limit"], facts["limits"], facts["free_at"])
    if reason == "not_admin":
        admins = ", ".join(user_mention(a) or a for a in facts["admins"])
        return f"Only admins can do that. Admins: {admins or 'none are set (`CALLBOT_ADMINS`)'}."
    if reason == "external_user":
        return ("People from other organisations can't place calls with this app. "
                "Ask someone in the workspace that runs it, or an operator to set "
                "`CALLBOT_ALLOW_EXTERNAL_USERS`.")
    if reason == "user_not_allowed":
        return "You are not allowed to place calls with this app. " + _ask_admins(facts["admins"])
    if reason == "channel_not_allowed":
        where = ", ".join(f"<#{c}>" for c in facts["channels"])
        return f"Calls can't be placed from this channel. Use {where}."
    if reason == "special_number":
        if "country_code" in facts:
            what = NON_GEOGRAPHIC_WORDS.get(facts["country_code"], "a non-geographic number")
        else:
            what = TYPE_WORDS.get(facts["kind"], "not a number a person answers")
        return (f"{mask_phone(facts['number'])} is {what}. Such numbers are refused unless an "
                "operator sets `CALLBOT_ALLOW_SPECIAL_NUMBERS`.")
    if reason == "country_not_allowed":
        return (f"Calls to {_country(facts['region'])} numbers are not allowed here. Allowed: "
                f"{', '.join(facts['allowed'])}.")
    return f"That is not allowed here (`{reason}`)."


def dnc_words(entry: DncEntry) -> str:
    why = f" ({entry.reason})" if entry.reason else ""
    return (f"{mask_phone(entry.number)} is on the do-not-call list{why}, since "
            f"{_date(entry.added_at)}. An admin can remove it with `/calldnc remove`.")


def limit_words(limit: str, limits: Limits, free_at: float | None) -> str:
    if limit == "concurrent":
        return (f"{limits.concurrent} calls are in progress, the most allowed at once. "
                "Try again when one of them ends.")
    count, window = ((limits.per_hour, "hour") if limit == "per_hour"
                     else (limits.per_day, "24 hours"))
    when = f" You can call again {_date(free_at, with_time=True)}." if free_at else ""
    return f"You have placed {count} calls in the last {window}, your limit.{when}"


def _ask_admins(admins: Sequence[str]) -> str:
    if not admins:
        return "Ask whoever runs it to add you to `CALLBOT_ALLOWED_USERS`."
    return "Ask an admin (" + ", ".join(user_mention(a) or a for a in admins) + ")."


def _country(region: str | None) -> str:
    return f"`{region}`" if region else "unknown-country"


def _date(epoch: float | None, with_time: bool = False) -> str:
    """Slack shows this in the reader's own time zone."""
    if epoch is None:
        return "an unknown time"
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))
    fmt = "{date_short_pretty} at {time}" if with_time else "{date_short_pretty}"
    return date_token(epoch, fmt, fallback)
