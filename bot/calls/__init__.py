"""The use cases: placing and recording calls, polling, retention, webhook ingest."""
