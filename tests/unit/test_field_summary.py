"""Extracted fields summarised from their distinct values and counts (as SQL groups them)
say what summarising every value one by one says."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import pytest

from storage.sqlite.stats import _summary


@pytest.mark.parametrize("seed", range(30))
def test_numbers_from_counts_match_the_values_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.choice([1, 2, 3, 4, 5, 2.5, 10, -3]) for _ in range(rng.randint(1, 60))]
    grouped = Counter(("real" if isinstance(v, float) else "integer", v) for v in values)
    found = [(kind, v, n) for (kind, v), n in grouped.items()]
    summary = _summary("rating", found)
    assert summary.kind == "number" and summary.count == len(values)
    assert summary.median == statistics.median(values)
    assert summary.mean == pytest.approx(statistics.fmean(values))
    assert (summary.low, summary.high) == (min(values), max(values))


def test_booleans_and_texts_are_counted_with_their_weights() -> None:
    yes_no = _summary("will_attend", [("true", 1, 7), ("false", 0, 3), ("null", None, 1)])
    assert (yes_no.kind, yes_no.count, yes_no.yes, yes_no.no) == ("boolean", 11, 7, 3)
    city = _summary("city", [("text", "Bangkok", 5), ("text", " Bangkok ", 2),
                             ("text", "Chiang Mai", 4), ("null", None, 9)])
    assert city.kind == "text" and city.count == 20
    assert city.top == (("Bangkok", 7), ("Chiang Mai", 4))
