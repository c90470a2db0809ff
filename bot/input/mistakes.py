"""What is wrong with something a person typed, as data: render/mistakes.py says it."""

from __future__ import annotations


class Mistake(ValueError):
    """Input people can fix. `code` names the problem (a catalogue key under `mistake.`);
    `facts` are what the sentence needs. Text people typed is kept raw (cut short) here and
    escaped where it is shown."""

    def __init__(self, code: str, /, **facts: object) -> None:
        super().__init__(code)
        self.code = code
        self.facts = facts


def typed(text: str, limit: int = 80) -> str:
    """Enough of what a person typed to echo back (render cuts it further and masks it)."""
    return text[:limit]
