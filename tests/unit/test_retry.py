"""One reading of Retry-After for Slack, Retell and the health check."""

from __future__ import annotations

import pytest

from bot.runtime.retry import retry_after_seconds


@pytest.mark.parametrize(("value", "seconds"), [
    ("3", 3.0), (" 0 ", 0.0), (30, 30.0), ("86400", 86400.0),
    (None, None), ("", None), ("-1", None), ("1.5", None), ("inf", None), ("nan", None),
    ("١٢", None),  # Arabic-Indic digits: float() would take them
    ("9" * 400, None),  # too large to be a number of seconds
    ("Wed, 21 Oct 2026 07:28:00 GMT", None),
])
def test_retry_after_is_delay_seconds_in_ascii_digits_or_nothing(
    value: object, seconds: float | None
) -> None:
    assert retry_after_seconds(value) == seconds
