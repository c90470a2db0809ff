"""Modal and App Home views, and reading a submitted modal back: pure functions, no I/O."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from bot.input.parsing import (
    MAX_VALUE_LENGTH,
    MAX_VARIABLES,
    CommandError,
    ModalError,
    parse_modal_values,
    parse_variable_lines,
)
from bot.render.mistakes import mistake
from bot.render.views import (
    ACTION_OPEN_MODAL,
    CALL_MODAL,
    MAX_HOME_CALLS,
    NUMBER_DEFAULT_AGENT,
    call_modal,
    home_call_line,
    home_view,
    loading_modal,
    modal_metadata,
    read_modal_metadata,
)
from bot.retell.client import Agent, CallerNumber
from storage.models import STAGE_ANALYZED, CallRecord, CallStats
from tests.support.mistakes import says, words_of
from tests.support.modal import state_values

FROM = "+14155550100"
AGENTS = [
    Agent("agent_" + "a" * 24, "Sales Follow-up"),
    Agent("agent_" + "b" * 24, "appointment Reminder"),
    Agent("agent_" + "c" * 24, None),  # Retell allows agents without a name
]
NUMBERS = [
    CallerNumber(FROM, "Sales line", AGENTS[0].agent_id),
    CallerNumber("+14155550199", "Support line"),
]


def modal(
    agents: list[Agent] = AGENTS,
    numbers: list[CallerNumber] = NUMBERS,
    *,
    default_from: str = FROM,
    default_agent_id: str | None = None,
    channel_id: str | None = "C0GENERAL",
    notice: str | None = None,
) -> dict[str, Any]:
    return call_modal(agents, numbers, default_from=default_from,
                      default_agent_id=default_agent_id, channel_id=channel_id,
                      metadata=modal_metadata(channel_id), notice=notice)


def blocks_by_id(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if "block_id" in b}


def options(view: dict[str, Any], block_id: str) -> list[dict[str, Any]]:
    return list(blocks_by_id(view)[block_id]["element"]["options"])


def label(option: dict[str, Any]) -> str:
    return str(option["text"]["text"])


def assert_valid_view(view: dict[str, Any]) -> None:
    """The limits Slack enforces on views.open / views.update / views.publish."""
    assert view["type"] in ("modal", "home")
    assert 1 <= len(view["blocks"]) <= 100
    if view["type"] == "modal":
        assert 1 <= len(view["title"]["text"]) <= 24
        assert len(view.get("private_metadata", "")) <= 3000
        if "submit" in view:
            assert len(view["submit"]["text"]) <= 24
    ids = [b["block_id"] for b in view["blocks"] if "block_id" in b]
    assert len(ids) == len(set(ids)), "block ids must be unique in a view"
    for block in view["blocks"]:
        text = block.get("text", {}).get("text", "")
        assert len(text) <= 3000
        element = block.get("element", {})
        opts = element.get("options", [])
        assert len(opts) <= 100
        for option in opts:
            assert 1 <= len(label(option)) <= 75
            assert 1 <= len(option["value"]) <= 150
        if "initial_option" in element:
            assert element["initial_option"] in opts
        if block.get("type") == "input":
            assert len(block["label"]["text"]) <= 2000
            hint = block.get("hint", {}).get("text", "")
            assert len(hint) <= 2000


def fill(
    view: dict[str, Any],
    *,
    number: str | None = "+1 415 555 0123",
    agent: str | None = None,
    caller: str | None = None,
    variables: str | None = None,
    note: str | None = None,
    channel: str | None = None,
) -> dict[str, Any]:
    """`view.state.values` in Slack's shape, built from the view's own blocks."""
    return state_values(view, number=number, agent_label=agent, caller=caller,
                        variables=variables, note=note, channel=channel)


# -- the call modal ------------------------------------------------------------------------


def test_call_modal_has_every_field_and_defaults() -> None:
    view = modal()
    assert_valid_view(view)
    assert view["callback_id"] == CALL_MODAL and view["submit"]["text"] == "Call"
    assert read_modal_metadata(view["private_metadata"]) == {"channel_id": "C0GENERAL"}
    blocks = blocks_by_id(view)
    assert list(blocks) == ["number", "agent", "caller", "variables", "note", "when", "channel"]
    assert blocks["when"]["optional"] is True  # empty: the call goes now
    agent_opts = options(view, "agent")
    assert agent_opts[0]["value"] == NUMBER_DEFAULT_AGENT
    # Sorted by name without regard to case; a nameless agent is listed by its id.
    assert [label(o) for o in agent_opts[1:]] == [
        "agent_" + "c" * 24, "appointment Reminder", "Sales Follow-up"]
    assert blocks["agent"]["element"]["initial_option"]["value"] == NUMBER_DEFAULT_AGENT
    assert "hint" not in blocks["agent"]
    caller = blocks["caller"]["element"]
    assert caller["initial_option"]["value"] == FROM
    assert [label(o) for o in caller["options"]] == [
        "Sales line (+14155550100)", "Support line (+14155550199)"]
    assert blocks["channel"]["element"]["initial_conversation"] == "C0GENERAL"
    assert blocks["channel"]["element"]["response_url_enabled"] is True
    assert blocks["variables"]["optional"] and blocks["note"]["optional"]
    assert not blocks["number"].get("optional") and not blocks["channel"].get("optional")


def test_default_agent_is_preselected_and_unknown_default_number_is_added() -> None:
    view = modal(default_agent_id=AGENTS[1].agent_id, default_from="+14155550142")
    blocks = blocks_by_id(view)
    assert blocks["agent"]["element"]["initial_option"]["value"] == AGENTS[1].agent_id
    caller = blocks["caller"]["element"]
    assert caller["initial_option"]["value"] == "+14155550142"
    assert [o["value"] for o in caller["options"]] == [
        "+14155550142", FROM, "+14155550199"]
    assert_valid_view(view)


def test_modal_without_channel_or_retell_data_still_valid() -> None:
    view = modal([], [], channel_id=None, notice=":warning: Retell is down.")
    assert_valid_view(view)
    assert view["blocks"][0]["type"] == "context"
    assert ":warning: Retell is down." in json.dumps(view["blocks"][0])
    assert [o["value"] for o in options(view, "agent")] == [NUMBER_DEFAULT_AGENT]
    assert [o["value"] for o in options(view, "caller")] == [FROM]
    assert "initial_conversation" not in blocks_by_id(view)["channel"]["element"]
    assert read_modal_metadata(view["private_metadata"]) == {}


def test_250_agents_with_long_names_stay_within_slack_limits() -> None:
    agents = [Agent(f"agent_{i:024d}", f"Agent {i:03d} " + "with a very long name " * 8)
              for i in range(250)]
    view = modal(agents)
    assert_valid_view(view)
    opts = options(view, "agent")
    assert len(opts) == 100
    assert all(len(label(o)) <= 75 for o in opts)
    assert all(label(o).endswith("…") for o in opts[1:])
    hint = blocks_by_id(view)["agent"]["hint"]["text"]
    assert "99 of 250" in hint and "/call" in hint
    # Exactly at the limit: no hint, every agent listed.
    exact = modal(agents[:99])
    assert len(options(exact, "agent")) == 100 and "hint" not in blocks_by_id(exact)["agent"]


def test_a_75_character_name_is_not_cut() -> None:
    name = "x" * 75
    view = modal([Agent("agent_" + "d" * 24, name)])
    assert label(options(view, "agent")[1]) == name


def test_the_default_agent_is_offered_even_past_the_option_limit() -> None:
    """Regression: the default agent sorted past the 99 shown must not silently vanish."""
    agents = [Agent(f"agent_{i:024d}", f"Agent {i:03d}") for i in range(250)]
    view = modal(agents, default_agent_id=agents[-1].agent_id)
    assert_valid_view(view)
    initial = blocks_by_id(view)["agent"]["element"]["initial_option"]
    assert initial["value"] == agents[-1].agent_id


def test_more_than_100_caller_numbers_with_the_default_late_in_the_list() -> None:
    """Regression: the default caller ID past the 100th number must still be offered."""
    numbers = [CallerNumber(f"+1415555{i:04d}") for i in range(150)]
    view = modal([], numbers, default_from=numbers[-1].phone_number)
    assert_valid_view(view)
    caller = blocks_by_id(view)["caller"]["element"]
    assert caller["initial_option"]["value"] == numbers[-1].phone_number


def test_long_caller_nicknames_are_cut_to_75() -> None:
    numbers = [CallerNumber(FROM, "A very long nickname for the main sales line " * 3)]
    view = modal([], numbers)
    assert_valid_view(view)
    [option] = options(view, "caller")
    assert option["value"] == FROM and len(label(option)) == 75


def test_loading_modal_is_a_valid_placeholder() -> None:
    meta = modal_metadata("C0GENERAL")
    view = loading_modal(meta)
    assert_valid_view(view)
    assert view["callback_id"] == CALL_MODAL
    assert "submit" not in view and view["close"]["text"] == "Cancel"
    assert view["private_metadata"] == meta
    assert "Loading" in json.dumps(view["blocks"])
    assert not any(b["type"] == "input" for b in view["blocks"])


def test_modal_metadata_round_trip_and_garbage() -> None:
    assert read_modal_metadata(modal_metadata("C123")) == {"channel_id": "C123"}
    assert read_modal_metadata(modal_metadata(None)) == {}
    for raw in (None, "", "not json", "[1, 2]", '{"channel_id": 5}'):
        assert read_modal_metadata(raw) == {}


# -- round trip: what the modal offers is what the parser reads -----------------------------


def test_round_trip_every_field() -> None:
    view = modal(default_agent_id=AGENTS[0].agent_id)
    values = fill(view, number="(415) 555-0123", agent=AGENTS[2].agent_id,
                  caller="+14155550199", variables="customer_name=Ann\nplan=Gold tier",
                  note="  Renewal call  ", channel="C0SALES")
    request = parse_modal_values(values, "US", no_agent=NUMBER_DEFAULT_AGENT)
    assert request.command.phone.e164 == "+14155550123"
    assert request.agent_id == AGENTS[2].agent_id
    assert request.from_number == "+14155550199"
    assert request.command.variables == {"customer_name": "Ann", "plan": "Gold tier"}
    assert request.note == "Renewal call"
    assert request.channel_id == "C0SALES"


def test_round_trip_left_at_defaults() -> None:
    view = modal()
    request = parse_modal_values(fill(view), "US", no_agent=NUMBER_DEFAULT_AGENT)
    assert request.agent_id is None  # the caller ID's own agent
    assert request.from_number == FROM
    assert request.channel_id == "C0GENERAL"
    assert request.command.variables == {} and request.note is None


def test_round_trip_errors_name_real_blocks() -> None:
    view = modal(channel_id=None)
    values = fill(view, number="12", variables="oops")
    values["channel"]["value"]["selected_conversation"] = None
    with pytest.raises(ModalError) as info:
        parse_modal_values(values, "US", no_agent=NUMBER_DEFAULT_AGENT)
    assert set(info.value.errors) == {"number", "variables", "channel"}
    assert set(info.value.errors) <= set(blocks_by_id(view))


# -- parse_modal_values edge cases -----------------------------------------------------------


def values_for(**fields: Any) -> dict[str, Any]:
    """Hand-written state.values, as Slack sends them, for the edge cases."""
    base: dict[str, Any] = {
        "number": {"value": {"type": "plain_text_input", "value": "+14155550123"}},
        "agent": {"value": {"type": "static_select", "selected_option": None}},
        "caller": {"value": {"type": "static_select", "selected_option": None}},
        "variables": {"value": {"type": "plain_text_input", "value": None}},
        "note": {"value": {"type": "plain_text_input", "value": None}},
        "channel": {"value": {"type": "conversations_select",
                              "selected_conversation": "C0GENERAL"}},
    }
    for key, state in fields.items():
        if state is None:
            base.pop(key)
        else:
            base[key] = {"value": state}
    return base


def test_empty_optional_fields_arrive_as_null() -> None:
    request = parse_modal_values(values_for())
    assert request.agent_id is None and request.from_number is None
    assert request.note is None and request.command.variables == {}


def test_missing_number_and_missing_channel() -> None:
    with pytest.raises(ModalError) as info:
        parse_modal_values(values_for(
            number={"type": "plain_text_input", "value": "   "},
            channel={"type": "conversations_select", "selected_conversation": None}))
    assert words_of(info.value.errors) == {"number": "Enter the number to call.",
                                 "channel": "Choose where the call card goes."}
    with pytest.raises(ModalError) as info:
        parse_modal_values(values_for(channel=None, number=None))
    assert set(info.value.errors) == {"number", "channel"}


def test_note_is_trimmed_and_capped() -> None:
    request = parse_modal_values(values_for(
        note={"type": "plain_text_input", "value": "  " + "n" * 500 + "  "}))
    assert request.note == "n" * 200


def test_agent_placeholder_value_means_no_override() -> None:
    chosen = {"type": "static_select",
              "selected_option": {"text": {"type": "plain_text", "text": "own"}, "value": "-"}}
    assert parse_modal_values(values_for(agent=chosen), no_agent="-").agent_id is None
    chosen["selected_option"]["value"] = "agent_x"  # type: ignore[index]
    assert parse_modal_values(values_for(agent=chosen), no_agent="-").agent_id == "agent_x"


def test_smart_quotes_and_nbsp_in_the_number_field() -> None:
    request = parse_modal_values(values_for(
        number={"type": "plain_text_input", "value": "“+1\u00a0415 555 0123”"}))
    assert request.command.phone.e164 == "+14155550123"


# -- parse_variable_lines ---------------------------------------------------------------------


def test_variable_lines_skip_blank_lines_and_trim() -> None:
    text = "\n  customer_name=Ann Lee  \n\n\t\nappointment=Friday, 3pm\n  \n"
    assert parse_variable_lines(text) == {"customer_name": "Ann Lee",
                                          "appointment": "Friday, 3pm"}
    assert parse_variable_lines("") == {}
    assert parse_variable_lines("\n \n") == {}


def test_variable_values_may_hold_equals_and_be_empty() -> None:
    assert parse_variable_lines("formula=a=b\nempty=") == {"formula": "a=b", "empty": ""}


def test_quotes_around_a_value_are_not_part_of_it() -> None:
    """As in `/call`: `note="call after 5"` sends the words, not the quotes."""
    assert parse_variable_lines('note="call after 5"\nb=\'x\'\nc="open') == {
        "note": "call after 5", "b": "x", "c": '"open'}


def test_smart_quotes_read_like_straight_ones() -> None:
    assert parse_variable_lines("note=“call after 5”") == parse_variable_lines(
        'note="call after 5"')
    assert parse_variable_lines("greeting=‘hi’\u00a0there") == parse_variable_lines(
        "greeting='hi' there")


def test_spaces_around_the_equals_sign_are_accepted() -> None:
    """`name = value` is how many people type it; the name itself is valid."""
    assert parse_variable_lines("customer_name = Ann") == {"customer_name": "Ann"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("customer_name=Ann\ncustomer_name=Bob", "`customer_name` is given twice"),
        ("9lives=yes", "`9lives` is not a valid variable name"),
        ("first-name=Ann", "`first-name` is not a valid variable name"),
        ("=value", "is not a valid variable name"),
        ("just some words", "`just some words` is not `name=value`"),
        ("n=" + "v" * (MAX_VALUE_LENGTH + 1), f"longer than {MAX_VALUE_LENGTH:,}"),
        ("x" * 65 + "=1", "is not a valid variable name"),
    ],
)
def test_bad_variable_lines(text: str, fragment: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_variable_lines(text)
    assert fragment in mistake(info.value)


def test_variable_limits() -> None:
    many = "\n".join(f"v{i}=x" for i in range(MAX_VARIABLES))
    assert len(parse_variable_lines(many)) == MAX_VARIABLES
    assert parse_variable_lines("n=" + "v" * MAX_VALUE_LENGTH)["n"] == "v" * MAX_VALUE_LENGTH
    assert len(parse_variable_lines("x" * 64 + "=1")) == 1
    with says(kind=CommandError, pattern=f"At most {MAX_VARIABLES} variables"):
        parse_variable_lines(many + "\nextra=1")


def test_a_quoted_error_line_is_cut_short() -> None:
    with pytest.raises(CommandError) as info:
        parse_variable_lines("w" * 500)
    assert len(mistake(info.value)) < 100


# -- App Home ------------------------------------------------------------------------------


def call(**kw: Any) -> CallRecord:
    base = CallRecord(
        id=1, call_id="call_abc", direction="outbound", status="registered", stage=0,
        created_at=1_795_000_000.0, updated_at=1_795_000_000.0, user_id="U1",
        to_number="+14155550123", agent_name="Sales Follow-up",
    )
    return replace(base, **kw)


TEAM_STATS = CallStats(calls=12, failed_attempts=1, analyzed=10, successful=7,
                       sentiments={"Positive": 6, "Negative": 2}, connected=11,
                       avg_duration_ms=60_000, median_duration_ms=50_000,
                       total_cost_cents=321.0, top_reasons=[("user_hangup", 8)])


def test_home_view_with_no_calls() -> None:
    view = home_view([], TEAM_STATS)
    assert_valid_view(view)
    body = json.dumps(view, ensure_ascii=False)
    assert "No calls yet" in body
    [actions] = [b for b in view["blocks"] if b["type"] == "actions"]
    assert actions["elements"][0]["action_id"] == ACTION_OPEN_MODAL
    assert "*Calls*\\n12" in body and "70% (7 of 10 analyzed)" in body


def test_home_view_lists_at_most_ten_calls_within_limits() -> None:
    calls = [call(id=i, call_id=None, status="failed", error="e" * 5000,
                  agent_name="A long agent name " * 10, to_number=f"+1415555{i:04d}")
             for i in range(40)]
    view = home_view(calls, TEAM_STATS)
    assert_valid_view(view)
    body = json.dumps(view, ensure_ascii=False)
    assert body.count(":x:") == MAX_HOME_CALLS
    assert "+1 415 ••• 0009" in body and "+1 415 ••• 0010" not in body  # the first ten given
    assert "No calls yet" not in body


def test_home_view_survives_a_huge_agent_name() -> None:
    view = home_view([call(agent_name="A" * 3000)], TEAM_STATS)
    assert_valid_view(view)
    assert "AAAA" in json.dumps(view)


def test_home_call_line_masks_numbers_unless_allowed() -> None:
    line = home_call_line(call())
    assert "+1 415 ••• 0123" in line and "555" not in line
    assert ":telephone_receiver:" in line and "Sales Follow-up" in line and "Dialing" in line
    assert "<!date^1795000000^{date_short_pretty} {time}|1795000000>" in line
    full = home_call_line(call(), show_full_numbers=True)
    assert "+1 415-555-0123" in full
    home = json.dumps(home_view([call()], TEAM_STATS), ensure_ascii=False)
    assert "555-0123" not in home and "+1 415 ••• 0123" in home
    assert "+1 415-555-0123" in json.dumps(
        home_view([call()], TEAM_STATS, show_full_numbers=True), ensure_ascii=False)


def test_home_call_line_inbound_failed_and_analyzed() -> None:
    inbound = home_call_line(call(direction="inbound", from_number="+442079460123",
                                  to_number=FROM))
    assert "*From +44 20 ••• 0123*" in inbound and "0100" not in inbound
    failed = home_call_line(call(call_id=None, status="failed", agent_name="<!here>",
                                 error="Retell refused the call: <!channel> " + "x" * 500))
    assert "Retell refused the call: &lt;!channel&gt;" in failed
    assert "<!channel>" not in failed and "<!here>" not in failed
    assert len(failed) < 600
    analyzed = home_call_line(call(status="ended", stage=STAGE_ANALYZED, successful=True,
                                   sentiment="Positive", duration_ms=61_000))
    assert ":white_check_mark: Successful" in analyzed and "1m 01s" in analyzed
    nameless = home_call_line(call(agent_name=None, agent_id=None))
    assert "default agent" in nameless


def test_home_call_line_tags_a_campaigns_call_in_the_readers_language() -> None:
    assert "campaign #7" in home_call_line(call(campaign_id=7))
    assert "แคมเปญ #7" in home_call_line(call(campaign_id=7), lang="th")
    assert "campaign" not in home_call_line(call())
