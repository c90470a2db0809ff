"""Which language each person reads, and their time zone: their Slack locale and `tz`,
asked once and remembered.

Slack sends no locale with slash commands or button presses; `users.info` with
`include_locale` has it (`th-TH`, `en-US`). Answers must not wait long for it (an ack has
3 s), so a look-up that is slow or fails gives the default language at once and is asked
again later, and people asking at the same moment share one look-up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from slack_sdk.web.async_client import AsyncWebClient

from bot.render.catalog import language

log = logging.getLogger(__name__)
KNOWN_FOR = 6 * 3600.0  # a locale changes rarely; people who change it wait at most this
UNKNOWN_FOR = 60.0  # after a failed look-up, ask again after this
WAIT = 1.0  # the longest an answer waits for a look-up
MAX_PEOPLE = 10_000
DEFAULT_ZONE = "UTC"


class Languages:
    def __init__(self, client: AsyncWebClient, default: str, *, wait: float = WAIT,
                 size: int = MAX_PEOPLE, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.default = language(default)
        self.wait = wait
        self.size = size
        self._clock = clock
        # user -> (until, language, time zone)
        self._known: OrderedDict[str, tuple[float, str, str]] = OrderedDict()
        self._asking: dict[str, asyncio.Task[tuple[str, str]]] = {}

    async def of(self, user_id: str | None) -> str:
        """The person's language, or the default when Slack does not say in time."""
        return (await self._profile(user_id))[0]

    async def zone(self, user_id: str | None) -> str:
        """The person's time zone (Slack's `tz`, e.g. America/New_York); UTC if unknown."""
        return (await self._profile(user_id))[1]

    async def _profile(self, user_id: str | None) -> tuple[str, str]:
        if not user_id:
            return self.default, DEFAULT_ZONE
        known = self._known.get(user_id)
        if known is not None and known[0] > self._clock():
            self._known.move_to_end(user_id)
            return known[1], known[2]
        task = self._asking.get(user_id)
        if task is None:
            task = asyncio.create_task(self._ask(user_id))
            self._asking[user_id] = task
            task.add_done_callback(lambda _: self._asking.pop(user_id, None))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.wait)
        except TimeoutError:
            return self.default, DEFAULT_ZONE

    async def _ask(self, user_id: str) -> tuple[str, str]:
        try:
            answer = await self.client.users_info(user=user_id, include_locale=True)
            user = answer.get("user") or {}
            locale = user.get("locale") if isinstance(user, dict) else None
            lang = language(locale if isinstance(locale, str) else None, self.default)
            tz = user.get("tz") if isinstance(user, dict) else None
            zone = tz if isinstance(tz, str) and tz else DEFAULT_ZONE
            self._remember(user_id, lang, zone, KNOWN_FOR)
        except Exception as exc:  # Slack down, rate limited, scope missing: default for now
            log.info("locale unknown user=%s: %s", user_id, type(exc).__name__)
            lang, zone = self.default, DEFAULT_ZONE
            self._remember(user_id, lang, zone, UNKNOWN_FOR)
        return lang, zone

    def _remember(self, user_id: str, lang: str, zone: str, seconds: float) -> None:
        self._known[user_id] = (self._clock() + seconds, lang, zone)
        self._known.move_to_end(user_id)
        while len(self._known) > self.size:
            self._known.popitem(last=False)
