"""Process plumbing: logs, metrics, background tasks and leases."""
