"""Helpers shared by test modules: requests signed as Slack and Retell sign them, reads
of the database, waiting, processes."""
