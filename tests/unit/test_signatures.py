"""Our Retell signature check against the official SDK's `retell.lib.webhook_auth`."""

from __future__ import annotations

import json
import time

import pytest
from retell.lib import webhook_auth  # type: ignore[import-untyped]

from bot.http.signatures import check_retell_signature, retell_signature

KEY = "key_0123456789abcdef"
BODY = json.dumps(
    {"event": "call_ended", "call": {"call_id": "call_1", "transcript": "User: Grüße, café ☕"}},
    ensure_ascii=False,
)


def now_ms() -> int:
    return int(time.time() * 1000)


def test_accepts_what_the_sdk_signs() -> None:
    header = webhook_auth.symmetric["sign"](BODY, KEY)
    assert check_retell_signature(BODY.encode(), KEY, header) is None


def test_sdk_accepts_what_we_sign() -> None:
    header = retell_signature(BODY.encode(), KEY, now_ms())
    assert webhook_auth.verify(BODY, KEY, header) is True
    assert header == webhook_auth.symmetric["sign"](BODY, KEY, int(header[2:15]))


def test_refuses_tampered_body() -> None:
    header = webhook_auth.symmetric["sign"](BODY, KEY)
    tampered = BODY.replace("call_1", "call_2").encode()
    assert check_retell_signature(tampered, KEY, header) == "digest mismatch"
    assert webhook_auth.verify(tampered.decode(), KEY, header) is False


def test_reserialised_json_does_not_verify() -> None:
    header = webhook_auth.symmetric["sign"](BODY, KEY)
    ascii_body = json.dumps(json.loads(BODY)).encode()  # \u escapes, as a careless server would
    assert check_retell_signature(ascii_body, KEY, header) == "digest mismatch"


def test_refuses_other_key() -> None:
    header = webhook_auth.symmetric["sign"](BODY, "key_other")
    assert check_retell_signature(BODY.encode(), KEY, header) == "digest mismatch"


@pytest.mark.parametrize("skew_ms", [-5 * 60 * 1000 - 1000, 5 * 60 * 1000 + 1000])
def test_refuses_stale_or_future_timestamps(skew_ms: int) -> None:
    ts = now_ms() + skew_ms
    header = webhook_auth.symmetric["sign"](BODY, KEY, ts)
    assert check_retell_signature(BODY.encode(), KEY, header) == "stale timestamp"
    assert webhook_auth.verify(BODY, KEY, header) is False


def test_within_tolerance_is_accepted_like_the_sdk() -> None:
    header = webhook_auth.symmetric["sign"](BODY, KEY, now_ms() - 4 * 60 * 1000)
    assert check_retell_signature(BODY.encode(), KEY, header) is None
    assert webhook_auth.verify(BODY, KEY, header) is True


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing signature"),
        ("", "missing signature"),
        ("d=abc", "malformed signature"),
        ("v=123,d=" + "A" * 64, "malformed signature"),
        ("v=123,d=" + "a" * 63, "malformed signature"),
    ],
)
def test_malformed_headers(header: str | None, reason: str) -> None:
    assert check_retell_signature(BODY.encode(), KEY, header) == reason
