"""Answers made in bot/render from what the use cases return as data."""

from __future__ import annotations

from bot.render.answers import hang_up_refused, retell_words
from bot.retell.client import RetellRefused, RetellServerError, RetellTimeout


def test_hang_up_refusals_name_the_placer_only_by_a_real_slack_id() -> None:
    assert hang_up_refused("not_theirs", "U0ALICE") == (
        "Only <@U0ALICE> or an admin can hang up this call.")
    # An id that is not Slack's is never turned into a mention (or shown).
    text = hang_up_refused("not_theirs", "<!channel>")
    assert "<!channel>" not in text and "the person who placed it" in text
    assert hang_up_refused("ended", None) == "This call has already ended."
    assert hang_up_refused("unknown_call", None) == "I have no record of this call."


def test_retell_failures_are_said_by_kind() -> None:
    assert retell_words(RetellRefused("bad number", 422)) == "Retell refused the call: bad number"
    assert "server error (HTTP 502)" in retell_words(RetellServerError("oops", 502))
    assert retell_words(RetellTimeout("no answer within 8 s"), "to hang up") == (
        "Retell did not answer in time (no answer within 8 s).")
