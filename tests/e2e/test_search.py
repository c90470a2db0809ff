"""`/callsearch` through the real server: English and Thai words found in summaries and
transcripts, filters, paging with *More*, links to the cards (chat.getPermalink), a number
in any spelling, summaries only when transcripts are kept out of Slack."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from standins.slack import SlackStandIn
from storage.models import STAGE_ANALYZED, CallRecord
from tests.conftest import CHANNEL, USER, Server, StartServer, button
from tests.support.stores import store_for

# Whole real servers (or databases) per test: the full suite runs them; the fast lane
# (`-m "not slow"`) leaves them out.
pytestmark = pytest.mark.slow


NOW = time.time()


def call(n: int, summary: str, transcript: str = "", **kw: Any) -> CallRecord:
    at = NOW - n * 60
    base: dict[str, Any] = dict(
        id=0, call_id=f"call_{n:03d}", direction="outbound", status="ended",
        stage=STAGE_ANALYZED, created_at=at, updated_at=at, user_id=USER,
        channel_id=CHANNEL, agent_id="agent_a", agent_name="Sales",
        to_number=f"+1415555{n:04d}", duration_ms=60_000, successful=True,
        summary=summary, transcript=transcript or None)
    base.update(kw)
    return CallRecord(**base)


async def seeded(start: StartServer, slack: SlackStandIn, calls: list[CallRecord],
                 **settings: Any) -> Server:
    server = await start(**settings)
    web = AsyncWebClient(token=slack.token, base_url=slack.api_url)
    cards = []
    for c in calls:  # each call's card, as the app would have posted it
        posted = await web.chat_postMessage(channel=CHANNEL, text=f"card {c.call_id}")
        cards.append(CallRecord(**{**c.__dict__, "message_ts": str(posted["ts"])}))
    async with store_for(server.settings.database_url) as store:
        await store.import_calls(cards)
    return server


async def search(server: Server, slack: SlackStandIn, text: str) -> dict[str, Any]:
    status, body = await server.slash("/callsearch", text,
                                      response_url=slack.response_url("q"))
    assert status == 200
    assert isinstance(body, dict)
    return body


async def test_words_are_found_highlighted_and_linked_to_their_cards(
    start: StartServer, slack: SlackStandIn
) -> None:
    server = await seeded(start, slack, [
        call(1, "The customer asked about the new price and agreed."),
        call(2, "ลูกค้าต้องการเลื่อนนัดเป็นวันศุกร์"),
        call(3, "A wrong number.", "Agent: hello\nUser: the new price is too high"),
        call(4, "Booked for Monday.", agent_name="Survey", agent_id="agent_b"),
    ])
    body = await search(server, slack, "new price")
    text = json.dumps(body, ensure_ascii=False)
    assert text.count("<http") == 2  # calls 1 and 3, each with its card's link
    assert "*new price*" in text or "*new* *price*" in text
    assert "/archives/" + CHANNEL + "/p" in text
    thai = json.dumps(await search(server, slack, "เลื่อนนัด"), ensure_ascii=False)
    assert "เลื่อนนัด" in thai and "+1 415 ••• 0002" in thai
    narrowed = json.dumps(await search(server, slack, "new price agent:survey"))
    assert "No call mentions" in narrowed
    assert "too short" in json.dumps(await search(server, slack, "a an"))


async def test_more_pages_through_the_matches(start: StartServer, slack: SlackStandIn) -> None:
    server = await seeded(start, slack, [call(n, f"Refund request number {n}")
                                         for n in range(1, 24)])
    first = await search(server, slack, "refund")
    text = json.dumps(first)
    assert "(1\\u201310)" in text or "(1–10)" in json.dumps(first, ensure_ascii=False)
    [more] = [e for b in first["blocks"] if b["type"] == "actions" for e in b["elements"]]
    seen = {b["text"]["text"].split("*")[1] for b in first["blocks"][1:11]}
    status, _ = await server.interactive(button("search_more", more["value"],
                                                response_url=slack.response_url("more")))
    assert status == 200
    await slack.wait_for(lambda: bool(slack.responses_for("more")))
    second = slack.responses_for("more")[0]
    assert "(11–20)" in json.dumps(second, ensure_ascii=False)
    assert not seen & {b["text"]["text"].split("*")[1] for b in second["blocks"][1:11]}


async def test_a_number_in_any_spelling_finds_its_calls(
    start: StartServer, slack: SlackStandIn
) -> None:
    server = await seeded(start, slack, [call(7, "First call."), call(8, "Other number."),
                                         call(9, "Second call.", to_number="+14155550007")])
    for spelling in ("+1 (415) 555-0007", "415.555.0007", "14155550007"):
        body = await search(server, slack, spelling)
        hits = [b["text"]["text"] for b in body["blocks"][1:] if b["type"] == "section"]
        assert len(hits) == 2 and all("*+1 415 ••• 0007*" in h for h in hits)
        assert "0008" not in json.dumps(body, ensure_ascii=False)


async def test_transcripts_kept_out_of_slack_are_not_searched(
    start: StartServer, slack: SlackStandIn
) -> None:
    server = await seeded(start, slack, [call(1, "Short summary.", "User: secret phrase")],
                          CALLBOT_POST_TRANSCRIPTS=False)
    assert "No call mentions" in json.dumps(await search(server, slack, "secret phrase"))
    assert "Short *summary*" in json.dumps(await search(server, slack, "summary"))
