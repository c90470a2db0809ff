"""The sentences a use case records on a call's card: a protocol, so bot/calls imports no
rendering. bot/render/answers.py's `CardWords` is the implementation (wired in bot/app.py);
each is in the card's language (the channel's), since the card shows it to everyone."""

from __future__ import annotations

from typing import Protocol

from bot.retell.client import RetellError

DEFAULT_LANGUAGE = "en"  # as bot/render/catalog.py's


class CardWords(Protocol):
    def retell_failed(self, exc: RetellError, lang: str) -> str:
        """Why Retell did not place the call, and whether it still might."""

    def failed_unrecorded(self, message: str, lang: str) -> str:
        """`message`, and that the database could not record the attempt either."""

    def placed_not_recorded(self, call_id: str, cause: str | None, lang: str) -> str:
        """Retell placed it; the database could not record it (`cause`: locked, full...)."""

    def card_lost(self, lang: str) -> str:
        """On a card Slack posted but never confirmed: nothing was placed."""

    def unexpected(self, name: str, lang: str) -> str:
        """Something unforeseen (`name`: the exception's type) stopped the placing."""
