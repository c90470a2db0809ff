"""A call whose outbox turn fails outside any step (its stored row cannot be read back, the
store fails under the turn's bookkeeping) is tried again with a growing delay, not at once
in a loop, and holds up no other call."""

from __future__ import annotations

import itertools
import logging
import re

import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn
from tests.conftest import CHANNEL, Server
from tests.support.db import db_execute
from tests.support.delivery import place, posts_with_key, webhook
from tests.support.waiting import eventually

OTHER = "C0OTHER"
AGAIN = re.compile(r"outbox turn for call_id=(\S+) failed; trying it again in ([0-9.]+) s")


async def test_a_turn_that_keeps_failing_backs_off_and_holds_up_no_other_call(
        server: Server, slack: SlackStandIn, retell: RetellStandIn,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="bot.slack.outbox")
    broken, _ = await place(server, slack, retell, CHANNEL)
    sound, sound_ts = await place(server, slack, retell, OTHER)
    # The broken call's row no longer reads back (its variables are not JSON any more).
    db_execute(server, "UPDATE calls SET variables = '{not json' WHERE call_id = ?", broken)
    for call_id in (broken, sound):
        await webhook(server, retell, call_id, "call_ended")
        await webhook(server, retell, call_id, "call_analyzed")

    def tries() -> list[tuple[float, float]]:
        """(when, the wait it announced) of each failed turn of the broken call."""
        return [(r.created, float(m.group(2))) for r in caplog.records
                if (m := AGAIN.search(r.getMessage())) and m.group(1) == broken]

    # Another call's summary goes out meanwhile.
    await eventually(lambda: posts_with_key(slack, OTHER, sound_ts, f"summary:{sound}") == 1,
                     timeout=10)
    await eventually(lambda: len(tries()) >= 4, timeout=20)
    found = tries()
    waits = [wait for _, wait in found]
    # Doubling with jitter (0.5 to 1 of it): the fourth wait is over twice the first.
    assert waits[3] > 2 * waits[0], waits
    # And each wait is kept: the next try comes no sooner.
    for (at, wait), (then, _) in itertools.pairwise(found[:4]):
        assert then - at >= 0.9 * wait, found
    # One traceback for the error, then one line per try.
    assert sum(1 for r in caplog.records if r.exc_info) == 1
