"""The server as a real process: the CLI, signals, crashes, slow clients, two processes."""
