"""RetellClient.get_concurrency against the Retell stand-in: what a campaign sizes itself by."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.retell.client import (
    Concurrency,
    RetellBadAnswer,
    RetellClient,
    RetellRateLimited,
    RetellRefused,
)
from standins.retell import RetellStandIn

FROM = "+14155550100"


@pytest.fixture
async def retell() -> AsyncIterator[RetellStandIn]:
    async with RetellStandIn(concurrency_limit=5) as standin:
        yield standin


@pytest.fixture
async def client(retell: RetellStandIn) -> AsyncIterator[RetellClient]:
    c = RetellClient(retell.api_key, base_url=retell.url, timeout=5, retries=1)
    yield c
    await c.aclose()


async def test_concurrency_follows_live_calls(
    retell: RetellStandIn, client: RetellClient
) -> None:
    idle = await client.get_concurrency()
    assert (idle.current_concurrency, idle.concurrency_limit, idle.free) == (0, 5, 5)
    assert idle.base_concurrency == 5 and idle.concurrency_burst_enabled is False

    calls = [
        await client.create_phone_call(from_number=FROM, to_number=f"+1415555012{i}")
        for i in range(3)
    ]
    busy = await client.get_concurrency()
    assert (busy.current_concurrency, busy.free) == (3, 2)

    retell.event_body(calls[0].call_id, "call_ended")
    await client.stop_call(calls[1].call_id)
    assert (await client.get_concurrency()).free == 4
    assert [r.path for r in retell.requests].count("/get-concurrency") == 3


async def test_free_is_never_negative(retell: RetellStandIn, client: RetellClient) -> None:
    retell.concurrency_overrides = {"current_concurrency": 9}  # other apps' calls, say

    over = await client.get_concurrency()

    assert (over.current_concurrency, over.concurrency_limit, over.free) == (9, 5, 0)


def test_model_ignores_unknown_fields_and_takes_float_integers() -> None:
    got = Concurrency.model_validate(
        {"current_concurrency": 2.0, "concurrency_limit": 20, "something_new": {"x": 1}}
    )
    assert (got.current_concurrency, got.free, got.base_concurrency) == (2, 18, None)
    assert "something_new" not in got.model_dump()


async def test_errors_are_typed(retell: RetellStandIn, client: RetellClient) -> None:
    retell.answer_next("/get-concurrency", 200, {"concurrency_limit": 20})
    with pytest.raises(RetellBadAnswer, match="current_concurrency"):
        await client.get_concurrency()

    retell.answer_next("/get-concurrency", 200, ["not", "an", "object"])
    with pytest.raises(RetellBadAnswer):
        await client.get_concurrency()

    retell.fail_next("/get-concurrency", 429, retry_after=0, times=2)  # retries=1: both fail
    with pytest.raises(RetellRateLimited):
        await client.get_concurrency()

    wrong_key = RetellClient("key_wrong", base_url=retell.url, timeout=5, retries=0)
    try:
        with pytest.raises(RetellRefused) as refused:
            await wrong_key.get_concurrency()
    finally:
        await wrong_key.aclose()
    assert refused.value.status == 401


async def test_a_rate_limit_is_retried(retell: RetellStandIn, client: RetellClient) -> None:
    retell.fail_next("/get-concurrency", 429, retry_after=0)

    got = await client.get_concurrency()

    assert got.concurrency_limit == 5
    assert [r.path for r in retell.requests].count("/get-concurrency") == 2
