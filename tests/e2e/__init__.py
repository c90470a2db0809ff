"""The real server through each Slack surface and each Retell event, against the stand-ins."""
