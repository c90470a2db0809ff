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
from tests.conftest import CHANNEL, MakeServer, Server
from tests.support.db import db_execute, db_rows
from tests.support.delivery import place, posts_with_key, webhook
from tests.support.stores import on_postgres
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
    # One traceback for the error, then one line per try. (App Home, which reads the same
    # row for its owner's recent calls, may log its own failure: another worker's line.)
    assert sum(1 for r in caplog.records if r.exc_info and r.name == "bot.slack.outbox") == 1


# While `test_fail` holds a row, marking an item as being posted fails the way a database
# that is busy fails (SQLite's "database is locked", PostgreSQL's lock_not_available);
# other writes (a retry's bookkeeping, giving up) still go through.
LOCKED_SQLITE = [
    "CREATE TABLE test_fail (x INTEGER)",
    """CREATE TRIGGER test_locked BEFORE UPDATE OF posting_since ON outbox
       WHEN OLD.posting_since IS NULL AND NEW.posting_since IS NOT NULL
            AND EXISTS (SELECT 1 FROM test_fail)
       BEGIN SELECT RAISE(ABORT, 'database is locked'); END""",
]
LOCKED_POSTGRES = [
    "CREATE TABLE test_fail (x integer)",
    """CREATE FUNCTION test_locked() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
           IF OLD.posting_since IS NULL AND NEW.posting_since IS NOT NULL
              AND EXISTS (SELECT 1 FROM test_fail) THEN
               RAISE EXCEPTION 'canceling statement due to lock timeout'
                   USING ERRCODE = 'lock_not_available';
           END IF;
           RETURN NEW;
       END $$""",
    """CREATE TRIGGER test_locked BEFORE UPDATE ON outbox
       FOR EACH ROW EXECUTE FUNCTION test_locked()""",
]


async def test_a_busy_database_mid_delivery_is_waited_out_not_given_up(
        make_server: MakeServer, slack: SlackStandIn, retell: RetellStandIn,
        caplog: pytest.LogCaptureFixture) -> None:
    """Items that fail unexpectedly are given up after a few tries; a database that is busy
    for a while is not the item's fault: its summary goes out, once, when the store is back."""
    caplog.set_level(logging.ERROR, logger="bot.slack.outbox")
    server = await make_server(CALLBOT_OUTBOX_RETRY_BASE="0.05", CALLBOT_OUTBOX_RETRY_MAX="0.2")
    call_id, card_ts = await place(server, slack, retell, CHANNEL)
    for sql in LOCKED_POSTGRES if on_postgres() else LOCKED_SQLITE:
        db_execute(server, sql)
    db_execute(server, "INSERT INTO test_fail (x) VALUES (1)")
    await webhook(server, retell, call_id, "call_ended")
    await webhook(server, retell, call_id, "call_analyzed")

    def tries() -> int:
        return sum(1 for r in caplog.records if AGAIN.search(r.getMessage()))

    # Well past the five tries an unexpected failure gets (max_unexpected).
    await eventually(lambda: tries() >= 8, timeout=20)
    assert posts_with_key(slack, CHANNEL, card_ts, f"summary:{call_id}") == 0
    db_execute(server, "DELETE FROM test_fail")
    await eventually(lambda: posts_with_key(slack, CHANNEL, card_ts, f"summary:{call_id}") == 1,
                     timeout=10)
    await eventually(server.outbox_idle)
    assert not [r for r in caplog.records if "gave up" in r.getMessage()]
    assert db_rows(server, "SELECT count(*) FROM outbox WHERE last_error LIKE 'gave up%'") == [
        (0,)]
    assert posts_with_key(slack, CHANNEL, card_ts, f"summary:{call_id}") == 1
