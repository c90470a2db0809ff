"""Helpers first written for tests/e2e/test_call.py, shared with the other suites."""

from __future__ import annotations

from typing import Any

from standins.retell import RetellStandIn


def creates(retell: RetellStandIn) -> list[Any]:
    return [r for r in retell.requests if r.path == "/v2/create-phone-call"]
