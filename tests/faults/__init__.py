"""What Slack, Retell, the database or an attacker can do wrong, and what must still hold."""
