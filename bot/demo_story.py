"""The story `callbot demo` plays (bot/demo.py runs it): five things a team does, each
through the real HTTP routes, each with the effect that must follow it.

1. A call that connects: the card changes as it goes, the summary lands in its thread.
2. A call nobody answers (the simulator: a number ending in 0).
3. An admin puts a number on the do-not-call list; a call to it is refused.
4. The Transcript button on the first card posts the transcript in its thread.
5. /callstats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.render.blocks import ACTION_TRANSCRIPT
from bot.render.terminal import mrkdwn
from storage.models import CallRecord

if TYPE_CHECKING:
    from bot.context import AppContext
    from bot.demo import Demo

FIRST = "+14155550125"
UNANSWERED = "+14155550130"
ON_THE_LIST = "+14155550177"
FIRST_COMMAND = '+1 415 555 0125 "Appointment Reminder" customer_name=Ann appointment="Tuesday 3pm"'


async def play(demo: Demo, ctx: AppContext) -> None:
    from bot.demo import CHANNEL, USER

    slack, feed = demo.slack, demo.feed

    async def call_to(number: str) -> CallRecord | None:
        return next((c for c in await ctx.calls.recent_calls(USER, 20)
                     if c.to_number == number), None)

    def thread(card: int) -> list[dict[str, Any]]:
        return slack.thread(CHANNEL, feed.cards[card - 1])

    def said(message: dict[str, Any]) -> str:
        return mrkdwn(str(message.get("text") or "")) + str(message.get("blocks") or "")

    # 1 ---------------------------------------------------------------------------------
    demo.begin("step1")
    await demo.slash("/call", FIRST_COMMAND)
    await demo.expect("first_card", lambda: len(feed.cards) >= 1)

    async def first_analysed() -> bool:
        call = await call_to(FIRST)
        return bool(call and call.analyzed and call.status == "ended"
                    and any("Tuesday 3pm" in said(m) for m in thread(1)))

    await demo.expect("analysed", first_analysed)

    # 2 ---------------------------------------------------------------------------------
    demo.begin("step2")
    await demo.slash("/call", "+1 415 555 0130 customer_name=Bo")
    await demo.expect("second_card", lambda: len(feed.cards) >= 2)

    async def unanswered() -> bool:
        call = await call_to(UNANSWERED)
        return bool(call and call.analyzed and call.status == "not_connected"
                    and call.disconnection_reason == "dial_no_answer" and thread(2))

    await demo.expect("unanswered", unanswered)

    # 3 ---------------------------------------------------------------------------------
    demo.begin("step3")
    await demo.slash("/calldnc", "add +1 415 555 0177 asked not to be called")

    async def listed() -> bool:
        return await ctx.guard.dnc_check(ON_THE_LIST) is not None

    await demo.expect("listed", listed)
    cards_before = len(feed.cards)
    key, _ = await demo.slash("/call", "+1 415 555 0177")

    async def refused() -> bool:
        rows = await ctx.store.audit_rows(5, user_id=USER)
        return bool(slack.responses_for(key)) and any(
            r.action == "call" and r.outcome == "refused" for r in rows)

    await demo.expect("refused", refused)
    if len(feed.cards) != cards_before or await call_to(ON_THE_LIST) is not None:
        demo.fail("failed.went_ahead")

    # 4 ---------------------------------------------------------------------------------
    demo.begin("step4")
    card = slack.message(CHANNEL, feed.cards[0]) or {}
    button = next((e for b in card.get("blocks") or [] if b.get("type") == "actions"
                   for e in b.get("elements") or [] if e.get("action_id") == ACTION_TRANSCRIPT),
                  None)
    if button is None:
        demo.fail("failed.no_button")
    replies_before = len(thread(1))
    await demo.press(str(button["text"]["text"]), ACTION_TRANSCRIPT, str(button["value"]),
                     feed.cards[0])
    await demo.expect("transcript", lambda: any(
        "Hi Ann" in said(m) for m in thread(1)[replies_before:]))

    # 5 ---------------------------------------------------------------------------------
    demo.begin("step5")
    _, body = await demo.slash("/callstats", "")
    if not (isinstance(body, dict) and body.get("blocks")):
        demo.fail("failed.no_stats", body=f"{body!r:.200}")
