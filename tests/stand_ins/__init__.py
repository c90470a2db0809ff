"""The stand-ins behave as Slack and Retell do (checked against their SDKs)."""
