"""Slack delivery: the outbox worker and App Home publishing."""
