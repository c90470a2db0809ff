"""The set-up checking itself: placeholder values refused at start-up (`placeholders.py`),
the checks of `callbot check` against the live services (`check.py`), the scopes the app
asks Slack for (`scopes.py`), and the same checks run in the background by `serve`
(`monitor.py`), logged and shown in /healthz."""
