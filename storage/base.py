"""The store interface the services depend on; SQLite is the embedded implementation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from storage.models import Attempt, CallFields, CallRecord, CallStats, OutboxItem


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise when the database does not answer."""

    async def record_failed_attempt(self, attempt: Attempt, error: str) -> int: ...

    async def save_placed_call(
        self, attempt: Attempt, call_id: str, status: str, raw_payload: str | None
    ) -> None:
        """Record a call Retell accepted (and queue a card update), without undoing
        webhooks that raced ahead of Retell's answer."""

    async def record_webhook(
        self, event: str, fields: CallFields, outbox_kinds: Sequence[str]
    ) -> bool:
        """Store the event, merge it into the call and queue Slack work, atomically.

        Returns False (and changes nothing) when (call id, event) was already recorded.
        """

    async def get_call(self, call_id: str) -> CallRecord | None: ...

    async def set_card(self, call_id: str, channel_id: str, message_ts: str) -> None: ...

    async def due_outbox(self, now: float, limit: int) -> list[OutboxItem]: ...

    async def next_outbox_due(self) -> float | None: ...

    async def complete_outbox(self, item_id: int, now: float) -> None: ...

    async def retry_outbox(self, item_id: int, next_attempt_at: float, error: str) -> None: ...

    async def fail_outbox(self, item_id: int, now: float, error: str) -> None: ...

    async def stats(self, since: float | None) -> CallStats: ...
