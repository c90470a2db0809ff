"""Modal and App Home views: pure functions from data to Slack view payloads.

Block ids and action ids here are read back by the handlers when a view is submitted or a
button pressed, so they are named constants. Slack caps modals and the Home tab at 100
blocks and static selects at 100 options.
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    ConversationFilter,
    ConversationSelectElement,
    DateTimePickerElement,
    DividerBlock,
    HeaderBlock,
    ImageBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.input.phones import show_phone
from bot.render.blocks import (
    AGENT_LIMIT,
    outcome_line,
    said,
    slack_date,
    status_words,
)
from bot.render.catalog import DEFAULT_LANGUAGE, words
from bot.render.words import count_words, percent_words, sentiment_words
from bot.retell.client import Agent, CallerNumber
from storage.models import CallRecord, CallStats

CALL_MODAL = "call_modal"
ACTION_OPEN_MODAL = "home_place_call"
INPUT = "value"  # the action id of every input in the modal
BLOCK_NUMBER = "number"
BLOCK_AGENT = "agent"
BLOCK_CALLER = "caller"
BLOCK_VARIABLES = "variables"
BLOCK_NOTE = "note"
BLOCK_CHANNEL = "channel"
BLOCK_WHEN = "when"  # Slack's datetimepicker: empty places the call now
NUMBER_DEFAULT_AGENT = "-"  # option value: let the caller number's own agent answer
MAX_OPTIONS = 100
MAX_HOME_CALLS = 10
NOTE_LIMIT = 200
HOME_ERROR_LIMIT = 300  # the Home tab lists ten calls: a shorter cut than the card
STATUS_EMOJI = {
    "placing": ":hourglass_flowing_sand:",
    "failed": ":x:",
    "registered": ":telephone_receiver:",
    "ongoing": ":large_green_circle:",
    "ended": ":checkered_flag:",
    "not_connected": ":no_entry_sign:",
    "error": ":warning:",
}


def modal_metadata(channel_id: str | None) -> str:
    """What the submission needs to know about where the modal was opened."""
    return json.dumps({"channel_id": channel_id} if channel_id else {})


def read_modal_metadata(raw: str | None) -> dict[str, str]:
    try:
        data = json.loads(raw or "{}")
    except ValueError:
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def _modal(blocks: list[Block], metadata: str, *, submit: bool, lang: str) -> dict[str, Any]:
    view = View(
        type="modal",
        callback_id=CALL_MODAL,
        title=words(lang, "modal.title"),
        submit=words(lang, "modal.submit") if submit else None,
        close=words(lang, "modal.close"),
        blocks=blocks,
        private_metadata=metadata,
    )
    return view.to_dict()


def loading_modal(metadata: str, lang: str = DEFAULT_LANGUAGE) -> dict[str, Any]:
    """Shown at once while Retell's agents load: the trigger id would not wait for them."""
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(
            text=":hourglass_flowing_sand: " + words(lang, "modal.loading")))
    ]
    return _modal(blocks, metadata, submit=False, lang=lang)


def call_modal(
    agents: list[Agent],
    numbers: list[CallerNumber],
    *,
    default_from: str,
    default_agent_id: str | None,
    channel_id: str | None,
    metadata: str,
    notice: str | None = None,
    lang: str = DEFAULT_LANGUAGE,
) -> dict[str, Any]:
    blocks: list[Block] = []
    if notice:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=notice)]))
    blocks.append(
        InputBlock(
            block_id=BLOCK_NUMBER,
            label=words(lang, "modal.number"),
            element=PlainTextInputElement(action_id=INPUT, placeholder="+1 415 555 0123",
                                          max_length=40),
            hint=words(lang, "modal.number_hint"),
        )
    )
    agent_options = [Option(value=NUMBER_DEFAULT_AGENT, label=words(lang, "modal.number_agent"))]
    ordered = sorted(agents, key=lambda a: (a.agent_name or a.agent_id).casefold())
    # The default agent is always offered, however far down the sorted list it is.
    shown = [a for a in ordered if a.agent_id == default_agent_id]
    shown += [a for a in ordered if a.agent_id != default_agent_id][: MAX_OPTIONS - 1 - len(shown)]
    agent_options += [
        Option(value=a.agent_id, label=_label(a.agent_name or a.agent_id)) for a in shown
    ]
    initial_agent = next((o for o in agent_options if o.value == default_agent_id),
                         agent_options[0])
    hint = None
    if len(ordered) > MAX_OPTIONS - 1:
        hint = words(lang, "modal.agents_cut", shown=MAX_OPTIONS - 1,
                     total=count_words(len(ordered), lang))
    blocks.append(
        InputBlock(
            block_id=BLOCK_AGENT,
            label=words(lang, "modal.agent"),
            element=StaticSelectElement(action_id=INPUT, options=agent_options,
                                        initial_option=initial_agent),
            hint=hint,
        )
    )
    default = next((n for n in numbers if n.phone_number == default_from),
                   CallerNumber(default_from))
    numbers = [default, *(n for n in numbers if n.phone_number != default_from)]
    number_options = [
        Option(value=n.phone_number,
               label=_label(f"{n.nickname} ({n.phone_number})" if n.nickname else n.phone_number))
        for n in numbers[:MAX_OPTIONS]
    ]
    initial_number = next(o for o in number_options if o.value == default_from)
    blocks.append(
        InputBlock(
            block_id=BLOCK_CALLER,
            label=words(lang, "modal.caller"),
            element=StaticSelectElement(action_id=INPUT, options=number_options,
                                        initial_option=initial_number),
        )
    )
    blocks.append(
        InputBlock(
            block_id=BLOCK_VARIABLES,
            label=words(lang, "modal.variables"),
            optional=True,
            element=PlainTextInputElement(action_id=INPUT, multiline=True,
                                          placeholder="customer_name=Ann\nappointment=Friday 3pm"),
            hint=words(lang, "modal.variables_hint", variable="{{name}}"),
        )
    )
    blocks.append(
        InputBlock(
            block_id=BLOCK_NOTE,
            label=words(lang, "modal.note"),
            optional=True,
            element=PlainTextInputElement(action_id=INPUT, max_length=NOTE_LIMIT),
        )
    )
    blocks.append(
        InputBlock(
            block_id=BLOCK_WHEN,
            label=words(lang, "modal.when"),
            optional=True,
            element=DateTimePickerElement(action_id=INPUT),
            hint=words(lang, "modal.when_hint"),
        )
    )
    blocks.append(
        InputBlock(
            block_id=BLOCK_CHANNEL,
            label=words(lang, "modal.channel"),
            element=ConversationSelectElement(
                action_id=INPUT,
                initial_conversation=channel_id,
                # Slack then sends a response_url for the chosen channel with the submission,
                # so problems can be answered there, visible to the person only.
                response_url_enabled=True,
                filter=ConversationFilter(include=["public", "private"],
                                          exclude_bot_users=True),
            ),
        )
    )
    return _modal(blocks, metadata, submit=True, lang=lang)


def _label(text: str) -> str:
    """Option labels stop at 75 characters."""
    return text if len(text) <= 75 else text[:74] + "…"


def home_view(
    calls: list[CallRecord], team: CallStats, *, show_full_numbers: bool = False,
    lang: str = DEFAULT_LANGUAGE, simulated: bool = False, chart_file: str | None = None,
) -> dict[str, Any]:
    blocks: list[Block] = [
        HeaderBlock(text=words(lang, "home.header")),
        ActionsBlock(
            block_id="home_actions",
            elements=[ButtonElement(text=words(lang, "home.place_call"),
                                    action_id=ACTION_OPEN_MODAL, style="primary")],
        ),
    ]
    if simulated:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=":test_tube: " + words(lang, "home.simulated"))]))
    blocks.append(SectionBlock(text=MarkdownTextObject(text=words(lang, "home.recent"))))
    if not calls:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=words(lang, "home.no_calls"))]))
    for call in calls[:MAX_HOME_CALLS]:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=home_call_line(
            call, show_full_numbers=show_full_numbers, lang=lang))))
    blocks.append(DividerBlock())
    blocks.append(SectionBlock(text=MarkdownTextObject(text=words(lang, "home.team"))))
    mix = "  ".join(
        f"{sentiment_words(k, lang)} {count_words(team.sentiments.get(k, 0), lang)}"
        for k in ("Positive", "Neutral", "Negative", "Unknown")
    )
    success = words(lang, "stats.success_detail", rate=percent_words(team.success_rate, lang),
                    successful=count_words(team.successful, lang),
                    analyzed=count_words(team.analyzed, lang))
    blocks.append(
        SectionBlock(
            fields=[
                MarkdownTextObject(text=f"*{words(lang, 'stats.calls')}*\n"
                                        f"{count_words(team.calls, lang)}"),
                MarkdownTextObject(text=f"*{words(lang, 'stats.success_rate')}*\n{success}"),
                MarkdownTextObject(text=f"*{words(lang, 'stats.sentiment')}*\n{mix}"),
            ]
        )
    )
    if chart_file:  # the calls-per-day chart the app uploaded (an image block needs no URL)
        blocks.append(ImageBlock(slack_file={"id": chart_file},
                                 alt_text=words(lang, "home.chart_alt"),
                                 title=words(lang, "home.chart_title")))
    return View(type="home", blocks=blocks).to_dict()


def home_call_line(call: CallRecord, *, show_full_numbers: bool = False,
                   lang: str = DEFAULT_LANGUAGE) -> str:
    """One call in the Home tab; text from Retell is masked and escaped as on the card."""
    inbound = call.direction == "inbound"
    full = show_full_numbers
    number = show_phone(call.other_number, full=full)
    agent = said(call.agent_name or call.agent_id or words(lang, "home.default_agent"),
                 AGENT_LIMIT, show_full_numbers=full)
    emoji = STATUS_EMOJI.get(call.status, ":grey_question:")
    when = slack_date(call.created_at)
    who = words(lang, "home.from", number=number) if inbound else number
    line = f"{emoji} *{who}* · {agent} · {status_words(call.status, lang)} · {when}"
    if call.campaign_id:
        line += " · " + words(lang, "home.campaign_tag", id=call.campaign_id)
    outcome = outcome_line(call, lang)
    if outcome:
        line += f"\n{outcome}"
    elif call.status == "failed" and call.error:
        line += f"\n{said(call.error, HOME_ERROR_LIMIT, show_full_numbers=full)}"
    return line
