"""Prometheus metrics for `GET /metrics`: one registry per app, so tests can run several."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Latencies from a few milliseconds (a webhook) to Retell's slowest answers.
_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "callbot_http_requests", "HTTP requests answered", ["route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "callbot_http_request_duration_seconds", "Time to answer an HTTP request",
            ["route"], buckets=_BUCKETS, registry=r,
        )
        self.webhook_events = Counter(
            "callbot_webhook_events", "Retell webhook events by type and what became of them",
            ["event", "outcome"], registry=r,
        )
        self.outbox_backlog = Gauge(
            "callbot_outbox_backlog", "Slack deliveries waiting in the outbox", registry=r
        )
        self.outbox_oldest_age = Gauge(
            "callbot_outbox_oldest_age_seconds", "Age of the oldest waiting delivery", registry=r
        )
        self.outbox_delivered = Counter(
            "callbot_outbox_delivered", "Outbox items delivered to Slack", ["kind"], registry=r
        )
        self.outbox_retries = Counter(
            "callbot_outbox_retries", "Outbox deliveries to be tried again", ["reason"],
            registry=r,
        )
        self.outbox_failed = Counter(
            "callbot_outbox_failed", "Outbox items given up on", ["kind"], registry=r
        )
        self.outbox_recovered = Counter(
            "callbot_outbox_recovered",
            "Posts found already in Slack after their answer was lost (not posted twice)",
            registry=r,
        )
        self.slack_errors = Counter(
            "callbot_slack_errors", "Slack Web API errors", ["method", "error"], registry=r
        )
        self.slack_seconds = Histogram(
            "callbot_slack_request_duration_seconds", "Slack Web API call time", ["method"],
            buckets=_BUCKETS, registry=r,
        )
        self.retell_errors = Counter(
            "callbot_retell_errors", "Retell API errors", ["operation", "kind"], registry=r
        )
        self.retell_seconds = Histogram(
            "callbot_retell_request_duration_seconds", "Retell API request time", ["operation"],
            buckets=_BUCKETS, registry=r,
        )
        self.db_transactions = Gauge(
            "callbot_db_transactions", "Write transactions committed since start", registry=r
        )
        self.db_writes = Gauge(
            "callbot_db_writes", "Writes committed since start (several share a transaction)",
            registry=r,
        )

        self.slack_auth_ok = Gauge(
            "callbot_slack_auth_ok", "1 once auth.test accepted the bot token, else 0",
            registry=r,
        )
        self.heavy_refused = Counter(
            "callbot_heavy_requests_refused",
            "Heavy requests (stats) turned away because too many were in hand", ["command"],
            registry=r,
        )

    def observe_retell(self, operation: str, seconds: float, error_kind: str | None) -> None:
        self.retell_seconds.labels(operation).observe(seconds)
        if error_kind is not None:
            self.retell_errors.labels(operation, error_kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
