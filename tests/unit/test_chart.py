"""The calls-per-day chart is a real PNG of the expected size, in either language."""

from __future__ import annotations

import io
import struct

import pytest

from bot.render.chart import DPI, HEIGHT_IN, WIDTH_IN, calls_chart, chart_language
from storage.models import DayCounts

# Whole real servers (or databases, or charts) per test: the full suite runs them; the
# fast lane (`-m "not slow"`) leaves them out.
pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n"


def size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG) and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def test_a_month_of_days_is_a_png_of_the_stated_size() -> None:
    days = [DayCounts(f"2026-11-{d:02d}", successful=d, failed=d % 4, no_answer=1, other=2)
            for d in range(1, 31)]
    png = calls_chart(days, title="Calls, 30 days")
    assert size(png) == (int(WIDTH_IN * DPI), int(HEIGHT_IN * DPI))
    assert len(png) > 5_000  # bars were drawn, not an empty frame


def test_no_days_and_a_day_with_nothing_judged_still_draw() -> None:
    assert size(calls_chart([])) == (800, 360)
    assert size(calls_chart([DayCounts("2026-11-01", other=3)], lang="th")) == (800, 360)


def test_thai_labels_fall_back_to_english_without_a_thai_font() -> None:
    lang = chart_language("th")
    assert lang in ("th", "en")
    assert chart_language("en") == "en"
    png = calls_chart([DayCounts("2026-11-01", successful=1)], lang="th")
    assert io.BytesIO(png).read(8) == PNG
