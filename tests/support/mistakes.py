"""Input mistakes are raised as data and worded by render/: tests read the words."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bot.input.mistakes import Mistake
from bot.render.mistakes import mistake


@contextmanager
def says(pattern: str, kind: type[Mistake] = Mistake, lang: str = "en") -> Iterator[None]:
    """Like `pytest.raises(kind, match=pattern)`, matched against the sentence people read."""
    with pytest.raises(kind) as refused:
        yield
    sentence = mistake(refused.value, lang)
    assert re.search(pattern, sentence), sentence


def words_of(errors: dict[str, Mistake]) -> dict[str, str]:
    """A modal's errors as Slack receives them."""
    return {block: mistake(error) for block, error in errors.items()}
