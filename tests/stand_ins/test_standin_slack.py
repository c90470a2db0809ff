"""Self-test of the Slack stand-in, driven by the real slack_sdk clients.

Why: the stand-in is only useful if slack_sdk accepts its answers exactly as it accepts
Slack's, so every test goes through ``AsyncWebClient`` / ``AsyncWebhookClient``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.models.blocks import ActionsBlock, ButtonElement, SectionBlock
from slack_sdk.models.metadata import Metadata
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from standins.slack import DEFAULT_SCOPES, SlackStandIn


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
def client(slack: SlackStandIn) -> AsyncWebClient:
    # No retry handlers: errors surface at once.
    return AsyncWebClient(token=slack.token, base_url=slack.api_url, retry_handlers=[])


async def test_urls_and_auth_test(slack: SlackStandIn, client: AsyncWebClient) -> None:
    assert slack.url.startswith("http://127.0.0.1:")
    assert not slack.url.endswith("/")
    assert slack.api_url == f"{slack.url}/api/"

    resp = await client.auth_test()

    assert resp["ok"] is True
    assert resp["user_id"] == "U0BOT"
    assert resp["team_id"] == "T0TEST"
    assert resp["bot_id"] == "B0BOT"
    (call,) = slack.calls_to("auth.test")
    assert call.headers["Authorization"] == "(redacted)"
    assert slack.token not in str(call.headers)


async def test_post_and_update_with_blocks_and_metadata(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    blocks = [
        SectionBlock(text="Calling *+1 555 0100*..."),
        ActionsBlock(elements=[ButtonElement(text="Hang up", action_id="hangup", value="c1")]),
    ]
    metadata = Metadata(event_type="call_started", event_payload={"call_id": "call_1"})

    first = await client.chat_postMessage(
        channel="C1", text="Calling", blocks=blocks, metadata=metadata
    )
    second = await client.chat_postMessage(channel="C1", text="second")

    assert first["channel"] == "C1"
    assert first["ts"] < second["ts"]
    assert first["message"]["metadata"]["event_payload"] == {"call_id": "call_1"}
    stored = slack.message("C1", first["ts"])
    assert stored is not None
    assert stored["blocks"][1]["elements"][0]["action_id"] == "hangup"
    assert stored["user"] == "U0BOT"
    assert stored["metadata"]["event_type"] == "call_started"

    updated = await client.chat_update(
        channel="C1",
        ts=first["ts"],
        text="Call ended",
        blocks=[SectionBlock(text="Call ended after 42s")],
    )

    assert updated["ts"] == first["ts"]
    assert updated["text"] == "Call ended"
    assert [m["text"] for m in slack.messages("C1")] == ["Call ended", "second"]
    assert slack.message("C1", first["ts"])["blocks"][0]["text"]["text"] == (  # type: ignore[index]
        "Call ended after 42s"
    )
    call = slack.calls_to("chat.postMessage")[0]
    assert call.args["metadata"]["event_type"] == "call_started"


async def test_post_message_validation(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as no_text:
        await client.api_call("chat.postMessage", json={"channel": "C1"})
    assert no_text.value.response["error"] == "no_text"

    with pytest.raises(SlackApiError) as missing:
        await client.chat_update(channel="C1", ts="1.000001", text="x")
    assert missing.value.response["error"] == "message_not_found"


async def test_form_encoded_json_fields_are_decoded(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    await client.api_call(
        "chat.postMessage",
        data={"channel": "C1", "text": "t", "blocks": '[{"type": "divider"}]'},
    )

    (call,) = slack.calls_to("chat.postMessage")
    assert call.args["blocks"] == [{"type": "divider"}]
    assert slack.messages("C1")[0]["blocks"] == [{"type": "divider"}]


async def test_threads_and_replies_with_metadata(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel="C1", text="parent")
    meta = {"event_type": "transcript_chunk", "event_payload": {"n": 1}}
    r1 = await client.chat_postMessage(
        channel="C1", thread_ts=parent["ts"], text="r1", metadata=meta
    )
    await client.chat_postMessage(channel="C1", thread_ts=parent["ts"], text="r2")
    await client.chat_postMessage(channel="C1", text="later top-level")

    assert [m["text"] for m in slack.thread("C1", parent["ts"])] == ["r1", "r2"]
    assert [m["text"] for m in slack.messages("C1")] == ["parent", "later top-level"]

    replies = await client.conversations_replies(
        channel="C1", ts=parent["ts"], include_all_metadata=True
    )
    texts = [m["text"] for m in replies["messages"]]
    assert texts == ["parent", "r1", "r2"]
    assert replies["messages"][0]["reply_count"] == 2
    assert replies["messages"][1]["metadata"] == meta

    after_r1 = await client.conversations_replies(channel="C1", ts=parent["ts"], oldest=r1["ts"])
    assert [m["text"] for m in after_r1["messages"]] == ["parent", "r2"]

    history = await client.conversations_history(channel="C1", limit=1)
    assert [m["text"] for m in history["messages"]] == ["later top-level"]
    assert history["has_more"] is True


async def test_invalid_token(slack: SlackStandIn) -> None:
    bad = AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url)

    with pytest.raises(SlackApiError) as err:
        await bad.chat_postMessage(channel="C1", text="hi")

    assert err.value.response["error"] == "invalid_auth"
    assert slack.messages("C1") == []
    assert len(slack.calls_to("chat.postMessage")) == 1  # still recorded


async def test_unknown_method(slack: SlackStandIn, client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.api_call("reactions.add", json={"channel": "C1", "name": "tada"})
    assert err.value.response["error"] == "unknown_method"
    assert slack.calls_to("reactions.add")[0].args["name"] == "tada"


async def test_fail_injection_by_channel_and_times(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    slack.fail("chat.postMessage", "not_in_channel", channel="C0PRIVATE")
    slack.fail("chat.update", "ratelimited_custom", times=1)

    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C0PRIVATE", text="hi")
    assert err.value.response["error"] == "not_in_channel"
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="C0PRIVATE", text="again")  # times=None: always

    ok = await client.chat_postMessage(channel="C1", text="hi")  # other channel unaffected
    with pytest.raises(SlackApiError) as err2:
        await client.chat_update(channel="C1", ts=ok["ts"], text="x")
    assert err2.value.response["error"] == "ratelimited_custom"
    await client.chat_update(channel="C1", ts=ok["ts"], text="x")  # times=1 used up

    assert slack.messages("C0PRIVATE") == []
    assert slack.messages("C1")[0]["text"] == "x"


async def test_http_429_without_retry_handler(slack: SlackStandIn, client: AsyncWebClient) -> None:
    slack.http_error("chat.postMessage", 429, retry_after=1)

    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C1", text="hi")

    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "1"
    assert err.value.response["error"] == "ratelimited"
    assert slack.messages("C1") == []


@pytest.mark.slow
async def test_http_429_with_rate_limit_retry_handler(slack: SlackStandIn) -> None:
    retrying = AsyncWebClient(
        token=slack.token,
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    slack.http_error("chat.postMessage", 429, retry_after=0)

    resp = await retrying.chat_postMessage(channel="C1", text="hi")

    assert resp["ok"] is True
    assert len(slack.calls_to("chat.postMessage")) == 2
    assert [m["text"] for m in slack.messages("C1")] == ["hi"]


async def test_files_upload_v2(slack: SlackStandIn, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel="C1", text="call")
    content = "Agent: hello\nUser: hi\n" * 100

    resp = await client.files_upload_v2(
        content=content,
        filename="transcript.txt",
        title="Transcript",
        channel="C1",
        thread_ts=parent["ts"],
        initial_comment="Full transcript",
    )

    file_id = resp["file"]["id"]
    stored = slack.files[file_id]
    assert stored["content"] == content.encode()
    assert stored["filename"] == "transcript.txt"
    assert stored["title"] == "Transcript"
    assert stored["channel"] == "C1"
    assert stored["thread_ts"] == parent["ts"]
    assert stored["initial_comment"] == "Full transcript"
    (get_url,) = slack.calls_to("files.getUploadURLExternal")
    assert int(get_url.args["length"]) == len(content.encode())


async def test_views_open_and_update(slack: SlackStandIn, client: AsyncWebClient) -> None:
    view = View(
        type="modal",
        callback_id="call_modal",
        title="Place a call",
        submit="Call",
        blocks=[SectionBlock(text="Loading...")],
    )

    opened = await client.views_open(trigger_id="123.456", view=view)

    view_id = opened["view"]["id"]
    assert view_id.startswith("V")
    assert opened["view"]["callback_id"] == "call_modal"
    assert slack.views[view_id]["blocks"][0]["text"]["text"] == "Loading..."

    updated = await client.views_update(
        view_id=view_id,
        hash=opened["view"]["hash"],
        view={"type": "modal", "title": {"type": "plain_text", "text": "Ready"}, "blocks": []},
    )
    assert updated["view"]["id"] == view_id
    assert updated["view"]["hash"] != opened["view"]["hash"]
    assert slack.views[view_id]["title"]["text"] == "Ready"

    with pytest.raises(SlackApiError) as err:
        await client.views_update(view_id=view_id, hash=opened["view"]["hash"], view=view)
    assert err.value.response["error"] == "hash_conflict"


async def test_users_and_conversations_info(slack: SlackStandIn, client: AsyncWebClient) -> None:
    slack.users["U123"] = {"tz": "Europe/Paris"}

    user = await client.users_info(user="U123")
    channel = await client.conversations_info(channel="C42")

    assert user["user"]["id"] == "U123"
    assert user["user"]["tz"] == "Europe/Paris"
    assert channel["channel"]["id"] == "C42"
    assert slack.calls_to("users.info")[0].args == {"user": "U123"}


async def test_response_url_via_webhook_client(slack: SlackStandIn) -> None:
    webhook = AsyncWebhookClient(url=slack.response_url("x"))

    resp = await webhook.send(text="Dialing...", response_type="ephemeral")

    assert resp.status_code == 200
    assert resp.body == "ok"
    assert slack.responses_for("x") == [{"text": "Dialing...", "response_type": "ephemeral"}]
    assert slack.responses_for("other") == []


async def test_post_ephemeral(slack: SlackStandIn, client: AsyncWebClient) -> None:
    resp = await client.chat_postEphemeral(channel="C1", user="U1", text="only you")

    assert resp["message_ts"]
    assert slack.ephemerals[0]["to_user"] == "U1"
    assert slack.messages("C1") == []


async def test_wait_for_wakes_on_recorded_call(slack: SlackStandIn, client: AsyncWebClient) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel="C1", text="done")

    task = asyncio.create_task(later())
    await slack.wait_for(lambda: len(slack.messages("C1")) == 1, timeout=2)
    await task
    assert slack.messages("C1")[0]["text"] == "done"


@pytest.mark.slow
async def test_wait_for_times_out_with_summary(slack: SlackStandIn, client: AsyncWebClient) -> None:
    await client.chat_postMessage(channel="C1", text="something else")

    with pytest.raises(AssertionError) as err:
        await slack.wait_for(lambda: bool(slack.messages("C9")), timeout=0.2)

    assert "chat.postMessage" in str(err.value)
    assert "something else" in str(err.value)


async def test_http_error_defaults(slack: SlackStandIn, client: AsyncWebClient) -> None:
    slack.http_error("auth.test", 429)
    slack.http_error("auth.test", 500)

    with pytest.raises(SlackApiError) as limited:
        await client.auth_test()
    with pytest.raises(SlackApiError) as broken:
        await client.auth_test()
    ok = await client.auth_test()  # each rule defaults to times=1

    assert limited.value.response.headers["Retry-After"] == "1"
    assert broken.value.response.status_code == 500
    assert "Retry-After" not in broken.value.response.headers
    assert ok["ok"] is True


# ---------------------------------------------------------------------- share-based faults


async def post_many(client: AsyncWebClient, n: int) -> list[int]:
    """Post n messages to C1; the HTTP status of each (200 or the error status)."""
    statuses = []
    for i in range(n):
        try:
            await client.chat_postMessage(channel="C1", text=f"m{i}")
            statuses.append(200)
        except SlackApiError as err:
            assert err.response["error"] == "ratelimited"
            assert err.response.headers["Retry-After"] == "3"
            statuses.append(err.response.status_code)
    return statuses


async def test_rate_limited_share_is_seeded_and_posts_nothing(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    slack.faults(rate_limited=0.5, retry_after=3, seed=7)
    first = await post_many(client, 40)
    slack.faults(rate_limited=0.5, retry_after=3, seed=7)
    second = await post_many(client, 40)

    limited = first.count(429)
    assert 5 < limited < 35
    assert set(first) == {200, 429}
    assert second == first  # same seed, same calls: same faults
    assert slack.fault_counts["rate_limited"] == 2 * limited
    assert len(slack.messages("C1")) == 2 * (40 - limited)  # a 429 did nothing


@pytest.mark.slow
async def test_rate_limit_retry_handler_gets_every_post_through(slack: SlackStandIn) -> None:
    retrying = AsyncWebClient(
        token=slack.token,
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=50)],
    )
    # Seed 1 limits 2 of these calls; each retry costs slack_sdk's 0-1 s jitter.
    slack.faults(rate_limited=0.3, retry_after=0, seed=1)

    for i in range(6):
        await retrying.chat_postMessage(channel="C1", text=f"m{i}")

    assert [m["text"] for m in slack.messages("C1")] == [f"m{i}" for i in range(6)]
    assert slack.fault_counts["rate_limited"] == 2
    assert len(slack.calls_to("chat.postMessage")) == 6 + 2


async def test_server_error_share_only_hits_the_chosen_methods(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    slack.faults(methods=["chat.update"], server_error=1.0)

    posted = await client.chat_postMessage(channel="C1", text="before")
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel="C1", ts=posted["ts"], text="after")

    assert err.value.response.status_code == 500
    assert "Retry-After" not in err.value.response.headers
    assert slack.messages("C1")[0]["text"] == "before"  # a 500 did nothing
    assert slack.fault_counts == {
        "rate_limited": 0,
        "server_error": 1,
        "drop_after": 0,
        "channel_rate_limited": 0,
    }


async def test_drop_after_performs_the_call_then_cuts_the_connection(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="C1", text="card")
    slack.faults(drop_after=1.0)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.chat_postMessage(channel="C1", thread_ts=posted["ts"], text="summary")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.chat_update(channel="C1", ts=posted["ts"], text="card, ended")

    assert [m["text"] for m in slack.thread("C1", posted["ts"])] == ["summary"]
    assert slack.messages("C1")[0]["text"] == "card, ended"
    assert slack.fault_counts["drop_after"] == 2
    slack.faults()  # all zero: off
    assert (await client.chat_postMessage(channel="C1", text="fine"))["ok"] is True


async def test_drop_after_on_a_file_share_still_shares_it(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel="C1", text="call")
    slack.faults(methods=["files.completeUploadExternal"], drop_after=1.0)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.files_upload_v2(
            content="x" * 5000, filename="t.txt", channel="C1", thread_ts=parent["ts"]
        )

    [reply] = slack.thread("C1", parent["ts"])
    assert reply["files"][0]["name"] == "t.txt"
    assert slack.fault_counts["drop_after"] == 1


@pytest.mark.slow
async def test_default_slack_sdk_client_retries_a_drop_and_posts_twice(
    slack: SlackStandIn,
) -> None:
    """Why this matters: AsyncWebClient's default AsyncConnectionErrorRetryHandler resends
    a POST whose connection dropped, so a post Slack already stored is stored again."""
    default = AsyncWebClient(token=slack.token, base_url=slack.api_url)
    slack.faults(drop_after=1.0)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await default.chat_postMessage(channel="C1", text="once?")

    assert [m["text"] for m in slack.messages("C1")] == ["once?", "once?"]
    assert slack.fault_counts["drop_after"] == 2


async def test_faults_validation_and_clear_faults(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    with pytest.raises(ValueError):
        slack.faults(rate_limited=0.6, drop_after=0.6)
    with pytest.raises(ValueError):
        slack.faults(server_error=-0.1)
    slack.faults(rate_limited=1.0)
    slack.fail("chat.postMessage", "not_in_channel")
    slack.http_error("chat.postMessage", 503)
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="C1", text="x")  # the 503 rule
    slack.delay(30)

    slack.clear_faults()

    ok = await asyncio.wait_for(client.chat_postMessage(channel="C1", text="ok"), 10)
    assert ok["ok"] is True
    assert slack.fault_counts["rate_limited"] == 0  # http_error came first and used the call
    assert [m["text"] for m in slack.messages("C1")] == ["ok"]


# ---------------------------------------------------------------------- latency


@pytest.mark.slow
async def test_delay_answers_late_after_doing_the_work(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    loop = asyncio.get_running_loop()
    slack.delay(0.2, methods=["auth.test"])
    started = loop.time()
    await client.auth_test()
    assert loop.time() - started >= 0.2

    slack.delay(30, methods=["chat.postMessage"])
    post = asyncio.create_task(client.chat_postMessage(channel="C1", text="in flight"))
    await slack.wait_for(lambda: bool(slack.messages("C1")))  # stored before the answer

    assert (await client.auth_test())["ok"] is True  # auth.test no longer delayed
    assert not post.done()
    started = loop.time()
    await slack.close()  # cuts the delay short instead of hanging for 30 s
    assert (await asyncio.wait_for(post, 10))["ok"] is True
    assert loop.time() - started < 10
    assert [m["text"] for m in slack.messages("C1")] == ["in flight"]


# ---------------------------------------------------------------------- metadata


async def test_metadata_only_listed_with_include_all_metadata(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    meta = {"event_type": "call_card", "event_payload": {"call_id": "c1"}}
    parent = await client.chat_postMessage(channel="C1", text="card", metadata=meta)  # JSON
    await client.api_call(  # form-encoded: metadata arrives as a JSON string
        "chat.postMessage",
        data={
            "channel": "C1",
            "thread_ts": parent["ts"],
            "text": "s",
            "metadata": json.dumps(meta),
        },
    )

    plain = await client.conversations_history(channel="C1")
    full = await client.conversations_history(channel="C1", include_all_metadata=True)
    plain_thread = await client.conversations_replies(channel="C1", ts=parent["ts"])
    full_thread = await client.api_call(
        "conversations.replies",
        http_verb="GET",
        params={"channel": "C1", "ts": parent["ts"], "include_all_metadata": "1"},
    )

    assert "metadata" not in plain["messages"][0]
    assert full["messages"][0]["metadata"] == meta
    assert [("metadata" in m) for m in plain_thread["messages"]] == [False, False]
    assert [m.get("metadata") for m in full_thread["messages"]] == [meta, meta]
    assert slack.message("C1", parent["ts"])["metadata"] == meta  # type: ignore[index]


async def test_malformed_metadata_is_refused(slack: SlackStandIn, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C1", text="x")
    for bad in ({"event_type": "t"}, {"event_type": 1, "event_payload": {}}, "not json"):
        with pytest.raises(SlackApiError) as err:
            await client.api_call(
                "chat.postMessage", json={"channel": "C1", "text": "y", "metadata": bad}
            )
        assert err.value.response["error"] == "invalid_metadata_format"
        with pytest.raises(SlackApiError):
            await client.api_call(
                "chat.update",
                json={"channel": "C1", "ts": posted["ts"], "text": "y", "metadata": bad},
            )
    assert [m["text"] for m in slack.messages("C1")] == ["x"]


# ---------------------------------------------------------------------- pagination


def texts_of(page: Any) -> list[str]:
    return [m["text"] for m in page["messages"]]


async def test_history_pages_newest_first_with_stable_cursors(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    stamps = [(await client.chat_postMessage(channel="C1", text=f"m{i}"))["ts"] for i in range(5)]
    await client.chat_postMessage(channel="C1", thread_ts=stamps[0], text="a reply")

    page = await client.conversations_history(channel="C1", limit=2)
    await client.chat_postMessage(channel="C1", text="newer")  # must not shift later pages
    pages = [page]
    while page["response_metadata"]["next_cursor"] and len(pages) < 10:
        cursor = page["response_metadata"]["next_cursor"]
        page = await client.conversations_history(channel="C1", limit=2, cursor=cursor)
        pages.append(page)

    assert [texts_of(p) for p in pages] == [["m4", "m3"], ["m2", "m1"], ["m0"]]
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert pages[2]["messages"][0]["reply_count"] == 1

    # slack_sdk's own paginator follows next_cursor (and reuses one response object).
    window = []
    async for p in await client.conversations_history(
        channel="C1", limit=1, oldest=stamps[1], latest=stamps[3], inclusive=True
    ):
        window.append(texts_of(p))
        if len(window) > 5:
            break  # a cursor that never ends must fail, not hang
    assert window == [["m3"], ["m2"], ["m1"]]

    with pytest.raises(SlackApiError) as err:
        await client.conversations_history(channel="C1", cursor="bm9wZQ==")
    assert err.value.response["error"] == "invalid_cursor"


async def test_replies_pages_oldest_first_with_the_parent_first(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel="C1", text="parent")
    for i in range(4):
        await client.chat_postMessage(channel="C1", thread_ts=parent["ts"], text=f"r{i}")

    seen = []
    async for page in await client.conversations_replies(channel="C1", ts=parent["ts"], limit=2):
        seen.append((texts_of(page), page["has_more"], page["response_metadata"]["next_cursor"]))
        if len(seen) > 5:
            break  # a cursor that never ends must fail, not hang

    assert [(texts, more) for texts, more, _ in seen] == [
        (["parent", "r0"], True),
        (["r1", "r2"], True),
        (["r3"], False),
    ]
    assert seen[0][2] and seen[1][2] and seen[2][2] == ""
    first = await client.conversations_replies(channel="C1", ts=parent["ts"], limit=2)
    assert first["messages"][0]["reply_count"] == 4


# ---------------------------------------------------------------------- file shares


async def test_file_shared_into_a_thread_is_a_reply_there(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel="C1", text="call")

    resp = await client.files_upload_v2(
        content="Agent: hi\n" * 500,
        filename="transcript.txt",
        title="Transcript",
        channel="C1",
        thread_ts=parent["ts"],
        initial_comment="Full transcript",
    )
    await client.files_upload_v2(content="private", filename="nowhere.txt")  # no channel
    await client.files_upload_v2(content="top", filename="top.txt", channel="C1")

    replies = await client.conversations_replies(channel="C1", ts=parent["ts"])
    shared = replies["messages"][1]
    assert len(replies["messages"]) == 2
    assert shared["text"] == "Full transcript"
    assert shared["thread_ts"] == parent["ts"]
    assert shared["user"] == "U0BOT"
    assert [(f["id"], f["name"], f["title"]) for f in shared["files"]] == [
        (resp["file"]["id"], "transcript.txt", "Transcript")
    ]
    history = await client.conversations_history(channel="C1")
    assert [[f["name"] for f in m.get("files", [])] for m in history["messages"]] == [
        ["top.txt"],
        [],
    ]
    assert len(slack.files) == 3


async def test_uploaded_reads_back_bytes_thread_and_comment(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel="C1", text="campaign")
    await client.files_upload_v2(
        content=b"phone,result\n+14155550123,ok\n",
        filename="results.csv",
        title="Results",
        channel="C1",
        thread_ts=parent["ts"],
        initial_comment="Campaign results",
    )
    await client.files_upload_v2(content="elsewhere", filename="x.txt", channel="C2")

    (upload,) = slack.uploaded("C1")
    assert upload["name"] == "results.csv" and upload["title"] == "Results"
    assert upload["content"] == b"phone,result\n+14155550123,ok\n"
    assert upload["thread_ts"] == parent["ts"]
    assert upload["initial_comment"] == "Campaign results"
    assert [u["name"] for u in slack.uploaded("C2")] == ["x.txt"]
    assert slack.uploaded("C3") == []


# ---------------------------------------------------------------------- files people upload

CSV = "name,phone\nZoë,+14155550123\n".encode()


async def fetch(url: str, token: str | None) -> tuple[int, str, bytes]:
    """GET a file URL as an app would, with or without the bot token."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, resp.content_type, await resp.read()


async def test_add_file_returns_slacks_file_object(slack: SlackStandIn) -> None:
    obj = slack.add_file("contacts list.csv", CSV, user="U0ALICE")

    assert obj["id"].startswith("F") and obj["id"] in slack.user_files
    assert (obj["name"], obj["title"], obj["filetype"], obj["mimetype"]) == (
        "contacts list.csv", "contacts list.csv", "csv", "text/csv",
    )
    assert obj["size"] == len(CSV)
    assert obj["user"] == "U0ALICE"
    assert abs(obj["created"] - time.time()) < 60
    assert obj["url_private"].startswith(f"{slack.url}/files-pri/{obj['id']}/")
    assert obj["url_private"].endswith("/contacts%20list.csv")
    assert obj["url_private_download"] == (
        f"{slack.url}/files-pri/{obj['id']}/download/contacts%20list.csv"
    )
    other = slack.add_file("notes.txt", b"hi", filetype="text")
    assert other["id"] != obj["id"] and other["mimetype"] == "text/plain"
    assert other["user"] == "U0USER"
    assert slack.files == {}  # the app's own uploads stay apart


async def test_files_info(slack: SlackStandIn, client: AsyncWebClient) -> None:
    obj = slack.add_file("contacts.csv", CSV)

    info = await client.files_info(file=obj["id"])

    assert info["file"] == obj
    with pytest.raises(SlackApiError) as err:
        await client.files_info(file="F0NOTHERE")
    assert err.value.response["error"] == "file_not_found"
    assert [c.args["file"] for c in slack.calls_to("files.info")] == [obj["id"], "F0NOTHERE"]


async def test_files_info_knows_the_apps_own_uploads(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    resp = await client.files_upload_v2(content="a,b\n", filename="out.csv", channel="C1")

    info = await client.files_info(file=resp["file"]["id"])

    assert (info["file"]["name"], info["file"]["filetype"]) == ("out.csv", "csv")
    assert info["file"]["user"] == slack.bot_user_id and info["file"]["size"] == 4
    assert info["file"]["url_private"] == resp["file"]["url_private"]


async def test_download_needs_the_bot_token(slack: SlackStandIn) -> None:
    obj = slack.add_file("contacts.csv", CSV)

    for url in (obj["url_private"], obj["url_private_download"]):
        status, ctype, body = await fetch(url, slack.token)
        assert (status, ctype, body) == (200, "text/csv", CSV)
    for token in (None, "xoxb-wrong"):
        status, ctype, body = await fetch(obj["url_private_download"], token)
        assert (status, ctype) == (200, "text/html")  # as Slack does: no error status
        assert body.startswith(b"<!DOCTYPE html>") and b"Sign in" in body
        assert CSV not in body
    assert slack.downloads == [
        (obj["id"], True), (obj["id"], True), (obj["id"], False), (obj["id"], False),
    ]


async def test_download_of_an_app_upload_and_of_an_unknown_file(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    resp = await client.files_upload_v2(content="Agent: hi\n", filename="t.txt", channel="C1")
    url = resp["file"]["url_private"]

    assert await fetch(url, slack.token) == (200, "text/plain", b"Agent: hi\n")
    status, ctype, _ = await fetch(f"{slack.url}/files-pri/F0NOTHERE/x.csv", slack.token)
    assert (status, ctype) == (404, "text/html")
    status, ctype, _ = await fetch(f"{slack.url}/files-pri/F0NOTHERE/x.csv", None)
    assert (status, ctype) == (200, "text/html")  # without a token Slack cannot tell
    assert slack.downloads[-2:] == [("F0NOTHERE", True), ("F0NOTHERE", False)]


# ---------------------------------------------------------------------- per-channel rate limit


async def test_channel_rate_limit_per_channel_with_burst(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    now = [100.0]
    slack.clock = lambda: now[0]
    slack.channel_rate_limit(1.0, burst=2)

    await client.chat_postMessage(channel="C1", text="a")
    await client.chat_postMessage(channel="C1", text="b")
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C1", text="too fast")
    await client.chat_postMessage(channel="C2", text="other channel")
    now[0] += 1.0
    await client.chat_postMessage(channel="C1", text="c")

    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "1"
    assert err.value.response["error"] == "ratelimited"
    assert [m["text"] for m in slack.messages("C1")] == ["a", "b", "c"]
    assert slack.fault_counts["channel_rate_limited"] == 1
    with pytest.raises(ValueError):
        slack.channel_rate_limit(0)


async def test_membership_public_channel_posts_but_cannot_be_read_until_joined(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    slack.not_member("C0PUBLIC")
    posted = await client.chat_postMessage(channel="C0PUBLIC", text="hi")  # chat:write.public
    info = await client.conversations_info(channel="C0PUBLIC")
    assert info["channel"]["is_member"] is False
    for read in (client.conversations_history(channel="C0PUBLIC"),
                 client.conversations_replies(channel="C0PUBLIC", ts=posted["ts"])):
        with pytest.raises(SlackApiError) as err:
            await read
        assert err.value.response["error"] == "not_in_channel"

    joined = await client.conversations_join(channel="C0PUBLIC")

    assert joined["channel"]["id"] == "C0PUBLIC" and joined["channel"]["is_member"] is True
    assert "warning" not in joined.data
    history = await client.conversations_history(channel="C0PUBLIC")
    assert [m["ts"] for m in history["messages"]] == [posted["ts"]]
    again = await client.conversations_join(channel="C0PUBLIC")
    assert again["warning"] == "already_in_channel"
    assert slack.is_member("C0PUBLIC") and slack.is_member("C0ANYOTHER")


async def test_membership_private_channel_refuses_posts_reads_and_joins(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    slack.not_member("G0PRIVATE")
    for call, error in (
        (client.chat_postMessage(channel="G0PRIVATE", text="hi"), "not_in_channel"),
        (client.conversations_history(channel="G0PRIVATE"), "channel_not_found"),
        (client.conversations_join(channel="G0PRIVATE"), "method_not_supported_for_channel_type"),
    ):
        with pytest.raises(SlackApiError) as err:
            await call
        assert err.value.response["error"] == error
    assert slack.messages("G0PRIVATE") == []
    assert not slack.is_member("G0PRIVATE")


async def test_answer_replies_as_told_without_doing_the_work(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    slack.answer("chat.postMessage", {"ok": True}, channel="C0ODD", times=2)
    for _ in range(2):
        odd = await client.chat_postMessage(channel="C0ODD", text="hi")
        assert odd.data == {"ok": True}
    elsewhere = await client.chat_postMessage(channel="C0FINE", text="hi")
    assert elsewhere["ts"]
    assert slack.messages("C0ODD") == []
    third = await client.chat_postMessage(channel="C0ODD", text="hi")  # the rule is used up
    assert third["ts"] and len(slack.messages("C0ODD")) == 1
    slack.answer("chat.update", {"ok": True, "surprise": 1})
    slack.clear_faults()
    with pytest.raises(SlackApiError):
        await client.chat_update(channel="C0ODD", ts="1.0", text="x")  # message_not_found


async def test_hold_keeps_calls_waiting_undone_until_release(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    slack.hold(["chat.postMessage"])
    held = asyncio.create_task(client.chat_postMessage(channel="C1", text="held"))
    await slack.wait_for(lambda: len(slack.calls_to("chat.postMessage")) == 1)
    other = await client.conversations_history(channel="C1")  # other methods still answer
    assert other["messages"] == [] and not held.done()

    slack.release()
    posted = await held
    assert posted["ts"] and [m["text"] for m in slack.messages("C1")] == ["held"]
    assert (await client.chat_postMessage(channel="C1", text="free"))["ts"]


# ---------------------------------------------------------------------- workspaces and installs


async def install(
    slack: SlackStandIn, team_id: str, **kwargs: Any
) -> AsyncSlackResponse:
    """The app's side of an install: exchange the code Slack's authorize page handed over."""
    code = slack.issue_code(team_id, **kwargs)
    return await AsyncWebClient(base_url=slack.api_url, retry_handlers=[]).oauth_v2_access(
        client_id=slack.client_id, client_secret=slack.client_secret, code=code
    )


def bot(slack: SlackStandIn, token: str) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=slack.api_url, retry_handlers=[])


async def test_oauth_v2_access_answers_slacks_shape_with_the_workspaces_bot_token(
    slack: SlackStandIn,
) -> None:
    resp = await install(slack, "T0ACME", team_name="Acme", installer="U0ALICE")

    assert resp.data == {
        "ok": True,
        "app_id": "A0APP",
        "authed_user": {"id": "U0ALICE"},
        "scope": ",".join(DEFAULT_SCOPES),
        "token_type": "bot",
        "access_token": resp["access_token"],
        "bot_user_id": resp["bot_user_id"],
        "team": {"id": "T0ACME", "name": "Acme"},
        "enterprise": None,
        "is_enterprise_install": False,
    }
    assert resp["access_token"].startswith("xoxb-T0ACME-")
    assert resp["access_token"] != slack.token and resp["bot_user_id"] != slack.bot_user_id
    (call,) = slack.calls_to("oauth.v2.access")
    # slack_sdk sends the credentials by HTTP Basic auth, not as fields; no bot token at all.
    assert call.headers["Authorization"] == "(redacted)"
    assert "client_secret" not in call.args and call.team_id is None
    workspace = slack.workspace("T0ACME")
    assert (workspace.token, workspace.bot_user_id, workspace.installer, workspace.team_name) == (
        resp["access_token"], resp["bot_user_id"], "U0ALICE", "Acme",
    )
    assert workspace.revoked_with is None
    with pytest.raises(KeyError):
        slack.workspace("T0NEVER")


async def test_auth_test_answers_for_the_tokens_own_workspace(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    acme = await install(slack, "T0ACME", team_name="Acme")
    other = await install(slack, "T0OTHER")

    mine = await bot(slack, acme["access_token"]).auth_test()
    theirs = await bot(slack, other["access_token"]).auth_test()
    default = await client.auth_test()

    assert (mine["team_id"], mine["team"], mine["user_id"]) == (
        "T0ACME", "Acme", acme["bot_user_id"],
    )
    assert (theirs["team_id"], theirs["team"]) == ("T0OTHER", "Workspace T0OTHER")
    assert (default["team_id"], default["user_id"], default["bot_id"]) == (
        "T0TEST", "U0BOT", "B0BOT",
    )
    assert len({mine["bot_id"], theirs["bot_id"], default["bot_id"]}) == 3
    assert mine.headers["x-oauth-scopes"] == ",".join(DEFAULT_SCOPES)
    assert [c.team_id for c in slack.calls_to("auth.test")] == ["T0ACME", "T0OTHER", "T0TEST"]


async def test_oauth_v2_access_takes_credentials_as_form_fields(slack: SlackStandIn) -> None:
    code = slack.issue_code("T0ACME")
    anonymous = AsyncWebClient(base_url=slack.api_url, retry_handlers=[])

    resp = await anonymous.api_call(
        "oauth.v2.access",
        data={"client_id": slack.client_id, "client_secret": slack.client_secret, "code": code},
    )

    assert resp["access_token"] == slack.workspace("T0ACME").token
    # A client that also holds a bot token still authenticates the exchange by Basic auth.
    holding = bot(slack, slack.token)
    again = await holding.oauth_v2_access(
        client_id=slack.client_id, client_secret=slack.client_secret,
        code=slack.issue_code("T0ACME"),
    )
    assert again["team"]["id"] == "T0ACME"
    assert slack.calls_by(None) == slack.calls_to("oauth.v2.access")


async def test_oauth_v2_access_errors_as_slack_answers_them(slack: SlackStandIn) -> None:
    now = [1000.0]
    slack.clock = lambda: now[0]
    anonymous = AsyncWebClient(base_url=slack.api_url, retry_handlers=[])
    code = slack.issue_code("T0ACME")

    async def error_of(client_id: str, client_secret: str, code: str, **kw: Any) -> str:
        with pytest.raises(SlackApiError) as err:
            await anonymous.oauth_v2_access(
                client_id=client_id, client_secret=client_secret, code=code, **kw
            )
        assert err.value.response.status_code == 200  # like Slack: ok false, HTTP 200
        return str(err.value.response["error"])

    good_id, good_secret = slack.client_id, slack.client_secret
    assert await error_of("9.9", good_secret, code) == "invalid_client_id"
    assert await error_of(good_id, "wrong", code) == "bad_client_secret"
    assert await error_of(good_id, good_secret, "1.2.nope") == "invalid_code"
    assert await error_of(good_id, good_secret, code, grant_type="x") == "invalid_grant_type"
    ok = await anonymous.oauth_v2_access(  # failed exchanges left the code usable
        client_id=good_id, client_secret=good_secret, code=code
    )
    assert ok["team"]["id"] == "T0ACME"
    assert await error_of(good_id, good_secret, code) == "invalid_code"  # single use

    late = slack.issue_code("T0ACME")
    now[0] += 599.0
    soon = slack.issue_code("T0ACME")
    now[0] += 1.0  # `late` is 10 minutes old now
    assert await error_of(good_id, good_secret, late) == "invalid_code"
    assert (await anonymous.oauth_v2_access(
        client_id=good_id, client_secret=good_secret, code=soon
    ))["ok"]


async def test_oauth_v2_access_checks_the_redirect_uri_the_code_was_issued_for(
    slack: SlackStandIn,
) -> None:
    anonymous = AsyncWebClient(base_url=slack.api_url, retry_handlers=[])
    uri = "https://callbot.example.com/slack/oauth_redirect"
    code = slack.issue_code("T0ACME", redirect_uri=uri)

    for sent in ("https://evil.example.com/cb", None):  # a different one, or none at all
        with pytest.raises(SlackApiError) as err:
            await anonymous.oauth_v2_access(
                client_id=slack.client_id, client_secret=slack.client_secret,
                code=code, redirect_uri=sent,
            )
        assert err.value.response["error"] == "bad_redirect_uri"
    resp = await anonymous.oauth_v2_access(
        client_id=slack.client_id, client_secret=slack.client_secret, code=code, redirect_uri=uri
    )
    assert resp["ok"] is True
    assert slack.calls_to("oauth.v2.access")[-1].args["redirect_uri"] == uri
    # No redirect_uri on the authorize URL: the exchange may send one or not.
    free = await anonymous.oauth_v2_access(
        client_id=slack.client_id, client_secret=slack.client_secret,
        code=slack.issue_code("T0ACME"), redirect_uri=uri,
    )
    assert free["ok"] is True


async def test_reinstall_keeps_the_token_and_an_uninstall_revokes_it(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    first = await install(slack, "T0ACME", installer="U0ALICE")
    again = await install(slack, "T0ACME", installer="U0BOB")
    assert again["access_token"] == first["access_token"]
    assert again["authed_user"] == {"id": "U0BOB"}
    pending = slack.issue_code("T0ACME")
    acme = bot(slack, first["access_token"])
    other = bot(slack, (await install(slack, "T0OTHER"))["access_token"])

    events = slack.revoke("T0ACME")

    assert [e["event"]["type"] for e in events] == ["tokens_revoked", "app_uninstalled"]
    for event in events:
        assert (event["type"], event["team_id"], event["api_app_id"]) == (
            "event_callback", "T0ACME", "A0APP",
        )
        assert event["event_id"].startswith("Ev") and isinstance(event["event_time"], int)
    assert events[0]["event"]["tokens"] == {"oauth": [], "bot": [first["bot_user_id"]]}
    assert events[0]["event_id"] != events[1]["event_id"]
    for call in (acme.auth_test(), acme.chat_postMessage(channel="C0ACME", text="hi")):
        with pytest.raises(SlackApiError) as err:
            await call
        assert err.value.response["error"] == "token_revoked"
    assert slack.messages("C0ACME") == []
    assert [c.team_id for c in slack.calls_to("chat.postMessage")] == ["T0ACME"]  # still known
    assert (await other.auth_test())["team_id"] == "T0OTHER"  # other installs unaffected
    assert (await client.auth_test())["team_id"] == "T0TEST"
    assert slack.workspace("T0ACME").revoked_with == "token_revoked"
    assert slack.revoke("T0ACME") == []  # already uninstalled: no second set of events
    with pytest.raises(SlackApiError) as stale:  # a code from before the uninstall
        await AsyncWebClient(base_url=slack.api_url, retry_handlers=[]).oauth_v2_access(
            client_id=slack.client_id, client_secret=slack.client_secret, code=pending
        )
    assert stale.value.response["error"] == "invalid_code"

    back = await install(slack, "T0ACME")  # installed again: a new token, the same bot user

    assert back["access_token"] != first["access_token"]
    assert back["bot_user_id"] == first["bot_user_id"]
    assert (await bot(slack, back["access_token"]).auth_test())["team_id"] == "T0ACME"
    with pytest.raises(SlackApiError) as old:
        await acme.auth_test()
    assert old.value.response["error"] == "token_revoked"


async def test_revoke_the_default_workspace_with_another_error(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    (revoked, uninstalled) = slack.revoke(slack.team_id, error="invalid_auth")

    assert revoked["event"]["tokens"]["bot"] == ["U0BOT"]
    assert uninstalled["team_id"] == "T0TEST"
    with pytest.raises(SlackApiError) as err:
        await client.auth_test()
    assert err.value.response["error"] == "invalid_auth"
    with pytest.raises(KeyError):
        slack.revoke("T0NEVER")


async def test_every_call_carries_the_workspace_whose_token_made_it(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    acme = await install(slack, "T0ACME")
    other = await install(slack, "T0OTHER")

    a = await bot(slack, acme["access_token"]).chat_postMessage(channel="C0ACME", text="a")
    await bot(slack, other["access_token"]).chat_postMessage(channel="C0OTHER", text="o")
    await client.chat_postMessage(channel="C1", text="default")
    await bot(slack, acme["access_token"]).chat_update(channel="C0ACME", ts=a["ts"], text="a2")
    with pytest.raises(SlackApiError):
        await bot(slack, "xoxb-unknown").chat_postMessage(channel="C0ACME", text="x")
    await bot(slack, other["access_token"]).api_call(  # the token as a form field
        "chat.postMessage", data={"token": other["access_token"], "channel": "C0OTHER",
                                  "text": "form"}
    )

    assert [(c.method, c.args["channel"]) for c in slack.calls_by("T0ACME")] == [
        ("chat.postMessage", "C0ACME"), ("chat.update", "C0ACME"),
    ]
    assert [c.args["text"] for c in slack.calls_by("T0OTHER")] == ["o", "form"]
    assert [c.args["text"] for c in slack.calls_by("T0TEST")] == ["default"]
    assert [c.method for c in slack.calls_by(None)] == ["oauth.v2.access"] * 2 + [
        "chat.postMessage"
    ]
    posted = slack.message("C0ACME", a["ts"])
    assert posted is not None
    assert (posted["user"], posted["team"], posted["text"]) == (
        acme["bot_user_id"], "T0ACME", "a2",
    )
    assert posted["bot_id"] == slack.workspace("T0ACME").bot_id
    assert posted["edited"]["user"] == acme["bot_user_id"]
    assert slack.messages("C1")[0]["user"] == "U0BOT"
    assert "by T0ACME" in slack.summary() and "by T0TEST" not in slack.summary()


async def test_a_workspaces_token_acts_as_its_bot_across_methods(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    acme = await install(slack, "T0ACME")
    web = bot(slack, acme["access_token"])
    obj = slack.add_file("contacts.csv", CSV)

    user = await web.users_info(user=acme["bot_user_id"])
    channel = await web.conversations_info(channel="C0ACME")
    view = await web.views_open(trigger_id="1.2", view={"type": "modal", "title": {
        "type": "plain_text", "text": "x"}, "blocks": []})
    upload = await web.files_upload_v2(content="a,b\n", filename="out.csv", channel="C0ACME")

    assert (user["user"]["team_id"], user["user"]["is_bot"]) == ("T0ACME", True)
    assert (await client.users_info(user=acme["bot_user_id"]))["user"]["is_bot"] is True
    assert channel["channel"]["context_team_id"] == "T0ACME"
    assert view["view"]["team_id"] == "T0ACME"
    assert (upload["file"]["user"], upload["file"]["user_team"]) == (
        acme["bot_user_id"], "T0ACME",
    )
    assert await fetch(obj["url_private_download"], acme["access_token"]) == (
        200, "text/csv", CSV,
    )
    slack.revoke("T0ACME")
    status, ctype, _ = await fetch(obj["url_private_download"], acme["access_token"])
    assert (status, ctype) == (200, "text/html")  # a revoked token gets the sign-in page
    assert slack.downloads == [(obj["id"], True), (obj["id"], False)]


async def test_client_credentials_are_constructor_arguments() -> None:
    async with SlackStandIn(client_id="42.43", client_secret="s3cret") as slack:
        assert (slack.client_id, slack.client_secret) == ("42.43", "s3cret")
        resp = await AsyncWebClient(base_url=slack.api_url).oauth_v2_access(
            client_id="42.43", client_secret="s3cret", code=slack.issue_code("T0ACME")
        )
        assert resp["team"]["id"] == "T0ACME"
    assert (SlackStandIn().client_id, SlackStandIn().client_secret) == (
        "1234.5678", "stand-in-client-secret",
    )


async def test_oauth_v2_access_refuses_a_malformed_basic_header(slack: SlackStandIn) -> None:
    code = slack.issue_code("T0ACME")
    anonymous = AsyncWebClient(base_url=slack.api_url, retry_handlers=[])
    for header in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()):
        with pytest.raises(SlackApiError) as err:
            await anonymous.api_call(
                "oauth.v2.access", data={"code": code}, headers={"Authorization": header}
            )
        assert err.value.response["error"] == "invalid_client_id"
    ok = await anonymous.api_call("oauth.v2.access", data={"code": code}, headers={
        "Authorization": "Basic " + base64.b64encode(b"1234.5678:stand-in-client-secret").decode()
    })
    assert ok["access_token"] == slack.workspace("T0ACME").token
