"""Retell's API: the httpx client, its models and its typed errors."""
