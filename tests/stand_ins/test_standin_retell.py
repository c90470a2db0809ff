"""Self-test of the Retell stand-in, so other tests can trust what it answers and signs."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from retell.lib.webhook_auth import symmetric, verify

from standins.retell import RecordedRequest, RetellStandIn, sign

FROM = "+14155550100"
TO = "+14155550123"


@pytest.fixture
async def retell() -> AsyncIterator[RetellStandIn]:
    async with RetellStandIn() as r:
        yield r


@pytest.fixture
async def client(retell: RetellStandIn) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {retell.api_key}"}
    async with httpx.AsyncClient(base_url=retell.url, headers=headers, timeout=5) as c:
        yield c


async def create(
    client: httpx.AsyncClient, http_timeout: float | None = None, **body: Any
) -> httpx.Response:
    """POST a create-phone-call from the bound default number, plus ``body`` fields."""
    payload = {"from_number": FROM, "to_number": TO, **body}
    if http_timeout is None:
        return await client.post("/v2/create-phone-call", json=payload)
    return await client.post("/v2/create-phone-call", json=payload, timeout=http_timeout)


# ----- server and defaults --------------------------------------------------------------


async def test_url_and_default_data(retell: RetellStandIn) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", retell.url)
    assert [a["agent_name"] for a in retell.agents] == [
        "Sales Follow-up",
        "Appointment Reminder",
        "Survey Bot",
    ]
    assert all(re.fullmatch(r"agent_[0-9a-f]{24}", a["agent_id"]) for a in retell.agents)
    assert len(retell.phone_numbers) == 2
    assert all(re.fullmatch(r"\+[1-9]\d{6,14}", n["phone_number"]) for n in retell.phone_numbers)
    assert retell.phone_numbers[0]["outbound_agent_id"] == retell.agents[0]["agent_id"]


async def test_custom_data_and_not_started() -> None:
    r = RetellStandIn("k", agents=[{"agent_name": "Only"}], phone_numbers=[])
    with pytest.raises(RuntimeError):
        _ = r.url
    assert r.agents[0]["agent_name"] == "Only"
    assert re.fullmatch(r"agent_[0-9a-f]{24}", r.agents[0]["agent_id"])
    assert r.phone_numbers == []


async def test_401_on_missing_or_wrong_key(retell: RetellStandIn) -> None:
    async with httpx.AsyncClient(base_url=retell.url) as c:
        none = await c.get("/v2/list-phone-numbers")
        wrong = await c.get("/v2/list-phone-numbers", headers={"Authorization": "Bearer nope"})
    for resp in (none, wrong):
        assert resp.status_code == 401
        assert resp.json() == {"status": "error", "message": "Invalid API key"}
    assert "authorization" not in retell.requests[0].headers
    assert retell.requests[1].headers["authorization"] == "<redacted>"


# ----- create-phone-call ----------------------------------------------------------------


async def test_create_phone_call_shape(retell: RetellStandIn, client: httpx.AsyncClient) -> None:
    meta = {"slack_user": "U123", "nested": {"ok": True}}
    dyn = {"customer_name": "Zoë"}
    resp = await create(client, metadata=meta, retell_llm_dynamic_variables=dyn)
    assert resp.status_code == 201
    call = resp.json()
    assert re.fullmatch(r"call_[0-9a-f]{32}", call["call_id"])
    agent = retell.agents[0]
    assert call["agent_id"] == agent["agent_id"]
    assert call["agent_name"] == "Sales Follow-up"
    assert call["agent_version"] == 1
    assert call["call_type"] == "phone_call"
    assert call["direction"] == "outbound"
    assert (call["from_number"], call["to_number"]) == (FROM, TO)
    assert call["call_status"] == "registered"
    assert call["metadata"] == meta
    assert call["retell_llm_dynamic_variables"] == dyn
    assert retell.calls[call["call_id"]] == call
    assert retell.created_calls() == [
        {
            "from_number": FROM,
            "to_number": TO,
            "metadata": meta,
            "retell_llm_dynamic_variables": dyn,
        }
    ]
    rec = retell.requests[-1]
    assert isinstance(rec, RecordedRequest)
    assert (rec.method, rec.path) == ("POST", "/v2/create-phone-call")
    assert rec.headers["authorization"] == "<redacted>"
    assert retell.api_key not in json.dumps(rec.headers)


async def test_create_with_override_agent(retell: RetellStandIn, client: httpx.AsyncClient) -> None:
    survey = retell.agents[2]
    resp = await create(client, override_agent_id=survey["agent_id"])
    assert resp.status_code == 201
    assert resp.json()["agent_id"] == survey["agent_id"]
    assert resp.json()["agent_name"] == "Survey Bot"


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"to_number": TO}, 400, "from_number"),
        ({"from_number": FROM}, 400, "to_number"),
        ({"from_number": FROM, "to_number": "4155550123"}, 400, "E.164"),
        ({"from_number": FROM, "to_number": "+0123456789"}, 400, "E.164"),
        ({"from_number": "+14155559999", "to_number": TO}, 404, "+14155559999"),
        (
            {"from_number": FROM, "to_number": TO, "override_agent_id": "agent_" + "0" * 24},
            422,
            "Cannot find requested asset under given api key",
        ),
        (
            {"from_number": FROM, "to_number": TO, "retell_llm_dynamic_variables": {"n": 1}},
            400,
            "retell_llm_dynamic_variables",
        ),
        (
            {"from_number": FROM, "to_number": TO, "retell_llm_dynamic_variables": ["x"]},
            400,
            "retell_llm_dynamic_variables",
        ),
        ({"from_number": "+14155550199", "to_number": TO}, 400, "no outbound agent"),
    ],
)
async def test_create_validation(
    retell: RetellStandIn,
    client: httpx.AsyncClient,
    body: dict[str, Any],
    status: int,
    needle: str,
) -> None:
    resp = await client.post("/v2/create-phone-call", json=body)
    assert resp.status_code == status
    data = resp.json()
    assert data["status"] == "error"
    assert needle in data["message"]
    assert retell.calls == {}
    assert retell.created_calls() == []


async def test_idempotency_key_returns_same_call(
    retell: RetellStandIn, client: httpx.AsyncClient
) -> None:
    first = await create(client, idempotency_key="k-1")
    again = await create(client, idempotency_key="k-1")
    other = await create(client, idempotency_key="k-2")
    assert first.status_code == again.status_code == 201
    assert first.json()["call_id"] == again.json()["call_id"]
    assert other.json()["call_id"] != first.json()["call_id"]
    assert len(retell.calls) == 2
    assert len(retell.created_calls()) == 2
    assert retell.idempotency_keys["k-1"] == first.json()["call_id"]


@pytest.mark.slow
async def test_create_delay(retell: RetellStandIn, client: httpx.AsyncClient) -> None:
    retell.create_delay = 0.3
    t0 = time.monotonic()
    resp = await create(client)
    assert resp.status_code == 201
    assert time.monotonic() - t0 >= 0.3


# ----- concurrency ----------------------------------------------------------------------


async def concurrency(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.get("/get-concurrency")
    assert resp.status_code == 200
    data: dict[str, Any] = resp.json()
    return data


async def test_get_concurrency_shape_and_auth(
    retell: RetellStandIn, client: httpx.AsyncClient
) -> None:
    assert await concurrency(client) == {
        "current_concurrency": 0,
        "concurrency_limit": 20,
        "base_concurrency": 20,
        "purchased_concurrency": 0,
        "concurrency_purchase_limit": 100,
        "remaining_purchase_limit": 100,
        "reserved_inbound_concurrency": 0,
        "concurrency_burst_enabled": False,
        "concurrency_burst_limit": 0,
    }
    async with httpx.AsyncClient(base_url=retell.url) as anonymous:
        refused = await anonymous.get("/get-concurrency")
    assert refused.status_code == 401
    assert retell.requests[-1].path == "/get-concurrency"


async def test_concurrency_limit_is_base_plus_purchased() -> None:
    async with RetellStandIn(concurrency_limit=3) as small, httpx.AsyncClient(
        base_url=small.url, headers={"Authorization": f"Bearer {small.api_key}"}
    ) as c:
        got = await concurrency(c)
        assert (got["concurrency_limit"], got["base_concurrency"]) == (3, 3)
        assert got["purchased_concurrency"] == 0
        small.concurrency_limit = 50
        small.concurrency_overrides = {"concurrency_burst_enabled": True, "current_concurrency": 7}
        got = await concurrency(c)
        assert (got["concurrency_limit"], got["base_concurrency"]) == (50, 20)
        assert got["purchased_concurrency"] == 30
        assert got["concurrency_burst_enabled"] is True
        assert got["current_concurrency"] == 7


async def test_live_calls_counted_from_create_until_they_end(
    retell: RetellStandIn, client: httpx.AsyncClient
) -> None:
    ids = [(await create(client)).json()["call_id"] for _ in range(4)]
    assert retell.live_now == retell.max_live == 4
    assert (await concurrency(client))["current_concurrency"] == 4

    retell.event_body(ids[0], "call_started")  # ongoing still holds its slot
    assert retell.live_now == 4
    retell.event_body(ids[0], "call_ended")
    retell.event_body(ids[0], "call_analyzed")  # a second end event frees nothing more
    assert retell.live_now == 3
    retell.event_body(ids[1], "call_ended", disconnection_reason="dial_no_answer")
    assert retell.calls[ids[1]]["call_status"] == "not_connected"
    retell.event_body(ids[2], "call_analyzed")  # webhooks may arrive out of order
    assert retell.live_now == 1
    assert (await client.post(f"/v2/stop-call/{ids[3]}")).status_code == 204
    assert retell.live_now == 0
    assert (await concurrency(client))["current_concurrency"] == 0
    assert retell.max_live == 4  # the high-water mark stays


async def test_error_status_ends_a_call_and_inbound_calls_count(
    retell: RetellStandIn, client: httpx.AsyncClient
) -> None:
    call_id = (await create(client)).json()["call_id"]
    retell.event_body(
        call_id, "call_ended", disconnection_reason="concurrency_limit_reached",
        call_status="error",
    )
    assert retell.live_now == 0
    inbound = retell.new_inbound_call("+4930123456789", FROM)
    assert retell.live_now == 1
    retell.event_body(inbound, "call_ended")
    assert retell.live_now == 0 and retell.max_live == 1


async def test_reset_max_live(retell: RetellStandIn, client: httpx.AsyncClient) -> None:
    ids = [(await create(client)).json()["call_id"] for _ in range(3)]
    for call_id in ids[:2]:
        retell.event_body(call_id, "call_ended")
    assert (retell.live_now, retell.max_live) == (1, 3)

    retell.reset_max_live()

    assert retell.max_live == 1
    await create(client)
    await create(client)
    assert (retell.live_now, retell.max_live) == (3, 3)
    retell.event_body(ids[2], "call_ended")
    assert (retell.live_now, retell.max_live) == (2, 3)


async def test_idempotent_repeat_is_not_a_second_live_call(
    retell: RetellStandIn, client: httpx.AsyncClient
) -> None:
    first = (await create(client, idempotency_key="k-1")).json()["call_id"]
    again = (await create(client, idempotency_key="k-1")).json()["call_id"]
    assert first == again
    assert (retell.live_now, retell.max_live) == (1, 1)
    assert (await concurrency(client))["current_concurrency"] == 1

    retell.event_body(first, "call_ended")
    replay = await create(client, idempotency_key="k-1")  # after the end: still the same call
    assert replay.json()["call_id"] == first and replay.json()["call_status"] == "ended"
    assert (retell.live_now, retell.max_live) == (0, 1)


# ----- get, stop, list ------------------------------------------------------------------


async def test_get_and_stop_call(retell: RetellStandIn, client: httpx.AsyncClient) -> None:
    call_id = (await create(client)).json()["call_id"]
    got = await client.get(f"/v2/get-call/{call_id}")
    assert got.status_code == 200
    assert got.json()["call_status"] == "registered"

    missing = await client.get("/v2/get-call/call_" + "0" * 32)
    assert missing.status_code == 404
    assert missing.json() == {"status": "error", "message": "Call not found"}

    stopped = await client.post(f"/v2/stop-call/{call_id}")
    assert stopped.status_code == 204
    assert stopped.content == b""
    after = (await client.get(f"/v2/get-call/{call_id}")).json()
    assert after["call_status"] == "ended"
    assert after["disconnection_reason"] == "manual_stopped"
    assert (await client.post("/v2/stop-call/call_nope")).status_code == 404


async def test_list_calls(retell: RetellStandIn, client: httpx.AsyncClient) -> None:
    ids = [(await create(client)).json()["call_id"] for _ in range(3)]
    retell.event_body(ids[0], "call_ended")
    assert "transcript" in retell.calls[ids[0]]

    first = (await client.post("/v3/list-calls", json={"limit": 2})).json()
    assert [c["call_id"] for c in first["items"]] == [ids[2], ids[1]]
    assert first["has_more"] is True
    rest = (
        await client.post(
            "/v3/list-calls", json={"limit": 2, "pagination_key": first["pagination_key"]}
        )
    ).json()
    assert [c["call_id"] for c in rest["items"]] == [ids[0]]
    assert rest["has_more"] is False
    assert rest["pagination_key"] is None
    assert "transcript" not in rest["items"][0]
    assert "transcript_object" not in rest["items"][0]
    assert rest["items"][0]["call_status"] == "ended"


async def test_list_agents_paginates(retell: RetellStandIn, client: httpx.AsyncClient) -> None:
    retell.agents_page_size = 1
    seen: list[str] = []
    key: str | None = None
    pages = 0
    while True:
        params = {"pagination_key": key} if key else {}
        page = (await client.post("/v2/list-agents", params=params)).json()
        pages += 1
        assert len(page["items"]) == 1
        seen += [a["agent_id"] for a in page["items"]]
        if not page["has_more"]:
            assert page["pagination_key"] is None
            break
        key = page["pagination_key"]
    assert pages == 3
    assert seen == [a["agent_id"] for a in retell.agents]
    item = retell.agents[0]
    first = (await client.post("/v2/list-agents")).json()["items"][0]
    assert first["agent_id"] == item["agent_id"]
    assert first["channel"] == "voice"
    assert first["is_suspended"] is False

    retell.agents_page_size = 1000
    two = (await client.post("/v2/list-agents", params={"limit": 2})).json()
    assert len(two["items"]) == 2
    assert two["has_more"] is True
    bad = await client.post("/v2/list-agents", params={"pagination_key": "agent_bogus"})
    assert bad.status_code == 400


async def test_get_agent(retell: RetellStandIn, client: httpx.AsyncClient) -> None:
    agent = retell.agents[1]
    got = await client.get(f"/get-agent/{agent['agent_id']}")
    assert got.status_code == 200
    assert got.json()["agent_name"] == "Appointment Reminder"
    assert got.json()["response_engine"]["type"] == "retell-llm"
    missing = await client.get("/get-agent/agent_" + "0" * 24)
    assert missing.status_code == 404


async def test_list_phone_numbers(retell: RetellStandIn, client: httpx.AsyncClient) -> None:
    page = (await client.get("/v2/list-phone-numbers")).json()
    assert [n["phone_number"] for n in page["items"]] == [FROM, "+14155550199"]
    assert page["items"][0]["outbound_agent_id"] == retell.agents[0]["agent_id"]
    assert page["items"][0]["phone_number_pretty"] == "+1 (415) 555-0100"
    assert page["has_more"] is False
    assert page["pagination_key"] is None


# ----- failure injection ----------------------------------------------------------------


async def test_fail_next_default_messages_and_retry_after(
    retell: RetellStandIn, client: httpx.AsyncClient
) -> None:
    retell.fail_next("/v2/create-phone-call", 429, retry_after=3)
    retell.fail_next("/v2/create-phone-call", 402)
    retell.fail_next("/v2/create-phone-call", 500, times=2)

    r429 = await create(client)
    assert r429.status_code == 429
    assert r429.json() == {"status": "error", "message": "Account rate limited"}
    assert r429.headers["retry-after"] == "3"
    r402 = await create(client)
    assert r402.json() == {"status": "error", "message": "Insufficient credit in account"}
    assert "retry-after" not in r402.headers
    for _ in range(2):
        r500 = await create(client)
        assert r500.status_code == 500
        assert r500.json()["message"] == "Internal server error"
    ok = await create(client)
    assert ok.status_code == 201
    assert len(retell.calls) == 1
    assert len(retell.created_calls()) == 1
    assert len([r for r in retell.requests if r.path == "/v2/create-phone-call"]) == 5


async def test_fail_next_legacy_key_and_path_prefix(
    retell: RetellStandIn, client: httpx.AsyncClient
) -> None:
    retell.fail_next("/v2/get-call", 400, "Bad call id", legacy_error_key=True)
    other = await client.get("/v2/list-phone-numbers")
    assert other.status_code == 200
    resp = await client.get("/v2/get-call/call_anything")
    assert resp.status_code == 400
    assert resp.json() == {"error_message": "Bad call id"}
    assert (await client.get("/v2/get-call/call_anything")).status_code == 404


@pytest.mark.slow
async def test_hang_next_triggers_client_timeout(
    retell: RetellStandIn, client: httpx.AsyncClient
) -> None:
    retell.hang_next("/v2/list-phone-numbers", 2.0)
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/v2/list-phone-numbers", timeout=0.2)
    t0 = time.monotonic()
    assert (await client.get("/v2/list-phone-numbers")).status_code == 200
    assert time.monotonic() - t0 < 1.0


@pytest.mark.slow
async def test_hang_next_then_answers(retell: RetellStandIn, client: httpx.AsyncClient) -> None:
    retell.hang_next("/v2/create-phone-call", 0.3)
    t0 = time.monotonic()
    resp = await create(client)
    assert time.monotonic() - t0 >= 0.3
    assert resp.status_code == 201


@pytest.mark.slow
async def test_close_is_quick_while_a_request_hangs() -> None:
    r = RetellStandIn()
    await r.start()
    r.hang_next("/v2/list-phone-numbers", 30)
    async with httpx.AsyncClient(base_url=r.url) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.get("/v2/list-phone-numbers", timeout=0.2)
    t0 = time.monotonic()
    await r.close()
    assert time.monotonic() - t0 < 5


async def test_drop_next_gives_connection_error(
    retell: RetellStandIn, client: httpx.AsyncClient
) -> None:
    retell.drop_next("/v2/create-phone-call")
    with pytest.raises(httpx.TransportError):
        await create(client)
    assert retell.calls == {}
    assert (await create(client)).status_code == 201

    headers = {"Authorization": f"Bearer {retell.api_key}"}
    body = {"from_number": FROM, "to_number": TO}
    retell.drop_next("/v2/create-phone-call")
    # aiohttp retries idempotent methods once on a disconnect, hence times=2 for the GET.
    retell.drop_next("/v2/list-phone-numbers", times=2)
    async with aiohttp.ClientSession(retell.url, headers=headers) as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.post("/v2/create-phone-call", json=body):
                pass
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get("/v2/list-phone-numbers"):
                pass
        async with session.get("/v2/list-phone-numbers") as resp:
            assert resp.status == 200
    assert len(retell.calls) == 1


# ----- webhooks -------------------------------------------------------------------------


def test_sign_matches_official_sdk() -> None:
    body = json.dumps(
        {"call": {"transcript": "User: Viele Grüße aus dem Café"}}, ensure_ascii=False
    )
    key = "key_webhook_ü"
    assert verify(body, key, sign(body, key)) is True
    assert verify(body, "other", sign(body, key)) is False
    assert sign(body, key, 1_700_000_000_000) == symmetric["sign"](body, key, 1_700_000_000_000)
    assert sign(body, key, 1).startswith("v=1,d=")


async def test_event_lifecycle(retell: RetellStandIn, client: httpx.AsyncClient) -> None:
    call_id = (await create(client, metadata={"m": 1})).json()["call_id"]

    started_text = retell.event_body(call_id, "call_started")
    started = json.loads(started_text)
    assert started["event"] == "call_started"
    assert started["call"]["call_status"] == "ongoing"
    assert isinstance(started["call"]["start_timestamp"], int)
    assert "end_timestamp" not in started["call"]

    ended_text = retell.event_body(call_id, "call_ended")
    ended = json.loads(ended_text)["call"]
    assert ended["call_status"] == "ended"
    assert ended["disconnection_reason"] == "user_hangup"
    assert ended["end_timestamp"] - ended["start_timestamp"] == ended["duration_ms"]
    assert ended["transcript"].startswith("Agent: ")
    assert "\nUser: " in ended["transcript"]
    assert ended["transcript_object"][0]["role"] == "agent"
    assert ended["recording_url"].startswith("https://")
    assert ended["public_log_url"].startswith("https://")
    assert ended["call_cost"]["combined_cost"] > 0
    assert ended["call_cost"]["total_duration_seconds"] == ended["duration_ms"] / 1000
    assert set(ended["latency"]) >= {"e2e", "llm", "tts", "asr"}
    assert ended["metadata"] == {"m": 1}
    assert "call_analysis" not in ended
    assert "café" in ended_text  # raw UTF-8, not \u escapes

    analyzed = json.loads(retell.event_body(call_id, "call_analyzed"))["call"]
    analysis = analyzed["call_analysis"]
    assert analysis["user_sentiment"] in {"Positive", "Negative", "Neutral", "Unknown"}
    assert isinstance(analysis["call_successful"], bool)
    assert analysis["in_voicemail"] is False
    assert analysis["custom_analysis_data"] == {}
    assert analyzed["transcript"] == ended["transcript"]
    got = (await client.get(f"/v2/get-call/{call_id}")).json()
    assert got["call_analysis"] == analysis


async def test_event_overrides_and_not_connected(
    retell: RetellStandIn, client: httpx.AsyncClient
) -> None:
    call_id = (await create(client)).json()["call_id"]
    ended = json.loads(
        retell.event_body(call_id, "call_ended", disconnection_reason="dial_no_answer")
    )["call"]
    assert ended["call_status"] == "not_connected"
    assert ended["disconnection_reason"] == "dial_no_answer"
    analyzed = json.loads(
        retell.event_body(call_id, "call_analyzed", call_analysis={"user_sentiment": "Negative"})
    )["call"]
    assert analyzed["call_status"] == "not_connected"
    assert analyzed["call_analysis"]["user_sentiment"] == "Negative"
    assert analyzed["call_analysis"]["call_successful"] is False

    other = (await create(client)).json()["call_id"]
    long = json.loads(retell.event_body(other, "call_ended", duration_ms=95000))["call"]
    assert long["duration_ms"] == 95000
    assert long["call_cost"]["total_duration_seconds"] == 95


async def test_events_out_of_order(retell: RetellStandIn, client: httpx.AsyncClient) -> None:
    call_id = (await create(client)).json()["call_id"]
    analyzed = json.loads(retell.event_body(call_id, "call_analyzed"))["call"]
    ended = json.loads(retell.event_body(call_id, "call_ended"))["call"]
    started = json.loads(retell.event_body(call_id, "call_started"))["call"]
    assert analyzed["call_status"] == ended["call_status"] == "ended"
    assert "call_analysis" in analyzed
    assert "call_analysis" not in ended
    assert ended["end_timestamp"] == analyzed["end_timestamp"]
    assert started["call_status"] == "ongoing"
    assert "transcript" not in started
    assert retell.calls[call_id]["call_status"] == "ended"


async def test_inbound_call(retell: RetellStandIn) -> None:
    call_id = retell.new_inbound_call("+4930123456789", FROM)
    call = retell.calls[call_id]
    assert call["direction"] == "inbound"
    assert "metadata" not in call
    assert call["agent_id"] == retell.agents[0]["agent_id"]
    body = json.loads(retell.event_body(call_id, "call_ended"))
    assert body["call"]["from_number"] == "+4930123456789"
    with pytest.raises(KeyError):
        retell.event_body("call_unknown", "call_ended")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A tiny webhook endpoint that checks signatures with the official SDK."""
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        text = await request.text()
        sig = request.headers.get("x-retell-signature")
        seen.append({"text": text, "sig": sig, "ctype": request.headers.get("content-type")})
        if sig is None or not verify(text, "key_test_retell", sig):
            return web.Response(status=401, text="bad signature")
        return web.json_response({"ok": True, "event": json.loads(text)["event"]})

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/hook", seen
    await runner.cleanup()


async def test_send_webhook(
    retell: RetellStandIn, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = receiver
    call_id = retell.new_inbound_call("+14155550111", FROM)
    body = retell.event_body(call_id, "call_ended")

    assert await retell.send_webhook(url, body) == (200, {"ok": True, "event": "call_ended"})
    assert seen[-1]["text"] == body
    assert seen[-1]["ctype"] == "application/json"

    assert await retell.send_webhook(url, body, key="wrong") == (401, "bad signature")
    status, _ = await retell.send_webhook(url, body, signature="")
    assert status == 401
    assert seen[-1]["sig"] is None
    old = int(time.time() * 1000) - 10 * 60 * 1000
    assert (await retell.send_webhook(url, body, ts_ms=old))[0] == 401
    assert (await retell.send_webhook(url, body, signature="v=1,d=abc"))[0] == 401
    assert seen[-1]["sig"] == "v=1,d=abc"

    headers = retell.webhook_headers(body)
    assert headers["content-type"] == "application/json"
    assert verify(body, retell.api_key, headers["x-retell-signature"])
    async with httpx.AsyncClient() as c:
        resp = await c.post(url, content=body.encode(), headers=headers)
    assert resp.status_code == 200


@pytest.mark.slow
async def test_timed_out_create_still_creates_the_call(
    retell: RetellStandIn, client: httpx.AsyncClient
) -> None:
    retell.hang_next("/v2/create-phone-call", 0.4)
    with pytest.raises(httpx.ReadTimeout):
        await create(client, idempotency_key="retry-me", http_timeout=0.1)
    await asyncio.sleep(0.6)
    assert len(retell.calls) == 1
    again = await create(client, idempotency_key="retry-me")
    assert again.json()["call_id"] in retell.calls
    assert len(retell.calls) == 1
