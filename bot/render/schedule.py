"""Scheduled calls in words and blocks: the card that says when, the list, the answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.guard.hours import places
from bot.input.phones import show_phone
from bot.render.blocks import (
    AGENT_LIMIT,
    Message,
    date_token,
    said,
    to_blocks,
    user_mention,
)
from bot.render.catalog import DEFAULT_LANGUAGE, words
from bot.render.words import their_clock
from storage.models import Scheduled

ACTION_SCHEDULE_NOW = "schedule_now"
ACTION_SCHEDULE_CANCEL = "schedule_cancel"
MAX_LISTED = 40  # a list answer stays within Slack's 50 blocks


def when_words(due_at: float, number: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """When, in each reader's zone (Slack's date token), and in the callee's own time."""
    fallback = datetime.fromtimestamp(due_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    date = date_token(due_at, "{date_short_pretty} {time}", fallback)
    if not places(number)[0]:
        return date
    return words(lang, "sched.when", date=date, their=their_clock(number, due_at, lang))


def scheduled_card(entry: Scheduled, *, show_full_numbers: bool = False,
                   lang: str = DEFAULT_LANGUAGE, simulated: bool = False,
                   waiting_until: float | None = None,
                   refusal: str | None = None) -> Message:
    """The card of a call still to come (or one that never came: cancelled, missed,
    refused at its time). `refusal`: the words of the rule that said no."""
    number = show_phone(entry.number, full=show_full_numbers)
    agent = said(entry.agent or words(lang, "card.default_agent"), AGENT_LIMIT,
                 show_full_numbers=show_full_numbers)
    head = (":alarm_clock: " + words(lang, "sched.title", number=number) + "\n"
            + words(lang, "card.agent", agent=agent))
    requester = user_mention(entry.user_id)
    if requester:
        head += " · " + words(lang, "card.requested_by", user=requester)
    if entry.note:
        head += f"\n:memo: {said(entry.note, 200, show_full_numbers=show_full_numbers)}"
    waiting = entry.status == "scheduled" or waiting_until is not None
    if entry.status == "cancelled":
        state = ":x: " + words(lang, "sched.cancelled",
                               user=user_mention(entry.detail) or entry.detail or "?")
    elif entry.status == "missed":
        state = ":x: " + words(lang, "sched.missed")
    elif entry.outcome == "refused":
        state = ":no_entry: " + words(lang, "sched.refused",
                                      reason=refusal or said(entry.detail or "", 100))
    elif entry.outcome == "failed":
        state = ":x: " + words(lang, "sched.failed", reason=said(entry.detail or "", 100))
    elif waiting_until is not None:
        state = (":hourglass_flowing_sand: " + words(lang, "sched.waiting_hours") + " "
                 + when_words(waiting_until, entry.number, lang))
    else:
        state = (":hourglass_flowing_sand: " + words(lang, "sched.waiting") + " "
                 + when_words(entry.due_at, entry.number, lang))
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=head)),
                           SectionBlock(text=MarkdownTextObject(text=state))]
    if simulated:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=":test_tube: " + words(lang, "card.simulated"))]))
    if waiting:
        blocks.append(ActionsBlock(block_id="schedule_actions",
                                   elements=schedule_buttons(entry.id, lang)))
    return Message(text=words(lang, "sched.text", number=number), blocks=to_blocks(blocks))


def schedule_buttons(schedule_id: int, lang: str = DEFAULT_LANGUAGE) -> list[ButtonElement]:
    return [
        ButtonElement(text=words(lang, "sched.call_now"), action_id=ACTION_SCHEDULE_NOW,
                      value=str(schedule_id), style="primary"),
        ButtonElement(text=words(lang, "sched.cancel"), action_id=ACTION_SCHEDULE_CANCEL,
                      value=str(schedule_id), style="danger",
                      confirm=ConfirmObject(title=words(lang, "sched.cancel_title"),
                                            text=words(lang, "sched.cancel_text"),
                                            confirm=words(lang, "sched.cancel"),
                                            deny=words(lang, "sched.keep"), style="danger")),
    ]


def schedule_list(entries: list[Scheduled], *, everyone: bool,
                  show_full_numbers: bool = False, lang: str = DEFAULT_LANGUAGE) -> Message:
    """`/callschedule`: calls still waiting, soonest first, each with a Cancel button."""
    title = words(lang, "sched.list_all" if everyone else "sched.list_mine")
    if not entries:
        text = words(lang, "sched.list_empty")
        return Message(text=text, blocks=to_blocks([SectionBlock(
            text=MarkdownTextObject(text=f"{title}\n{text}"))]))
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=title))]
    for entry in entries[:MAX_LISTED]:
        line = words(lang, "sched.list_line",
                     when=when_words(entry.due_at, entry.number, lang),
                     number=show_phone(entry.number, full=show_full_numbers),
                     agent=said(entry.agent or words(lang, "sched.default_agent"), 80),
                     user=user_mention(entry.user_id) or "?")
        cancel = schedule_buttons(entry.id, lang)[1]
        blocks.append(SectionBlock(text=MarkdownTextObject(text=line), accessory=cancel))
    return Message(text=title.strip("*"), blocks=to_blocks(blocks))


def scheduled_answer(entry: Scheduled, lang: str = DEFAULT_LANGUAGE) -> str:
    """To the requester, at once: when it will go, in their zone and the callee's."""
    return ":alarm_clock: " + words(lang, "sched.scheduled",
                                    when=when_words(entry.due_at, entry.number, lang))


def not_yours(reason: str, owner: str | None, lang: str = DEFAULT_LANGUAGE) -> str:
    if reason == "not_theirs":
        return words(lang, "sched.not_theirs",
                     who=user_mention(owner) or words(lang, "hang_up.placer"))
    return words(lang, "sched.unknown" if reason == "unknown" else "sched.not_waiting")


def missed_words(entry: Scheduled, *, show_full_numbers: bool = False,
                 lang: str = DEFAULT_LANGUAGE) -> str:
    return ":x: " + words(lang, "sched.missed_dm",
                          number=show_phone(entry.number, full=show_full_numbers),
                          date=when_words(entry.due_at, entry.number, lang))


def not_placed_words(entry: Scheduled, why: str, *, show_full_numbers: bool = False,
                     lang: str = DEFAULT_LANGUAGE) -> str:
    """Told to the requester when their scheduled call was refused or failed at its time;
    `why` is what placing says about it."""
    return words(lang, "sched.not_placed_dm",
                 number=show_phone(entry.number, full=show_full_numbers),
                 date=when_words(entry.due_at, entry.number, lang)) + "\n" + why


ACTION_HOURS_SCHEDULE = "hours_schedule"
ACTION_HOURS_OVERRIDE = "hours_override"


def hours_offer(text: str, opens_at: float, number: str, value: str, *, admin: bool,
                lang: str = DEFAULT_LANGUAGE) -> list[dict[str, Any]]:
    """A refusal for calling hours, with what can be done: schedule it for the opening
    (in the callee's time), or, for an admin, call anyway after a confirmation."""
    their = their_clock(number, opens_at, lang)
    buttons = [ButtonElement(text=words(lang, "sched.offer", their=their)[:75],
                             action_id=ACTION_HOURS_SCHEDULE, value=value, style="primary")]
    if admin:
        buttons.append(ButtonElement(
            text=words(lang, "sched.override"), action_id=ACTION_HOURS_OVERRIDE, value=value,
            style="danger", confirm=ConfirmObject(
                title=words(lang, "sched.override_title"),
                text=words(lang, "sched.override_text"),
                confirm=words(lang, "sched.override_confirm"),
                deny=words(lang, "sched.keep"), style="danger")))
    return to_blocks([SectionBlock(text=MarkdownTextObject(text=text)),
                      ActionsBlock(block_id="hours_actions", elements=buttons)])
