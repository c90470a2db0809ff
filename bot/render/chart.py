"""The calls-per-day chart: bars stacked by outcome, the success rate as a line, as a PNG.

Drawn with matplotlib's Agg backend (no display) in a worker thread by the caller: a chart
takes tens of milliseconds of CPU, which the event loop must not wait for. The picture has
its own opaque light background and dark ink, so it reads the same in Slack's light and dark
themes. Thai labels need a font with Thai glyphs (e.g. Debian's fonts-thai-tlwg); without
one the labels are drawn in English rather than as empty boxes.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence

from bot.render.catalog import DEFAULT_LANGUAGE, language, words
from storage.models import DayCounts

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 3.6, 100  # 800 x 360 px: Slack shows it whole
COLOURS = {"successful": "#2E9E5B", "other": "#8AA1B1", "no_answer": "#E8A33D",
           "failed": "#D64545"}
INK, GRID, PAPER, RATE = "#1D1C1D", "#DDDDDD", "#FFFFFF", "#1264A3"
THAI_FONTS = ("Noto Sans Thai", "Noto Sans Thai UI", "Sarabun", "TH Sarabun New", "Loma",
              "Garuda", "Kinnari", "Norasi", "Tlwg Typo")


@functools.cache
def _thai_font() -> str | None:
    """A font family that has Thai glyphs, if the machine has one."""
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in THAI_FONTS if name in names), None)


def chart_language(lang: str) -> str:
    """The language the chart can be labelled in here."""
    lang = language(lang)
    return lang if lang != "th" or _thai_font() else DEFAULT_LANGUAGE


def calls_chart(days: Sequence[DayCounts], *, title: str | None = None,
                lang: str = DEFAULT_LANGUAGE, english_title: str | None = None) -> bytes:
    """A PNG of `days`: one stacked bar per day, the success rate on a second axis.
    `english_title` is drawn instead of `title` where `lang` cannot be (no font for it)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    drawn = chart_language(lang)
    if drawn != language(lang) and english_title is not None:
        title = english_title
    lang = drawn
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, facecolor=PAPER,
                 layout="constrained")
    font = _thai_font() if lang == "th" else None
    family = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    ax = fig.add_subplot()
    ax.set_facecolor(PAPER)
    labels = [d.day[5:] for d in days]  # MM-DD
    x = list(range(len(days)))
    bottom = [0] * len(days)
    for kind in ("successful", "other", "no_answer", "failed"):
        heights = [getattr(d, kind) for d in days]
        ax.bar(x, heights, bottom=bottom, color=COLOURS[kind], width=0.8,
               label=words(lang, f"chart.{kind}"))
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylim(0, max([1, *bottom]) * 1.3)  # room above the bars for the legend
    ax.set_ylabel(words(lang, "chart.calls"), color=INK, fontfamily=family)
    ax.tick_params(colors=INK, labelsize=8)
    step = max(1, len(days) // 15)
    ax.set_xticks(x[::step], labels[::step], fontfamily=family)
    ax.grid(axis="y", color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    judged = [(i, d.successful / (d.successful + d.failed)) for i, d in enumerate(days)
              if d.successful + d.failed]
    rate_ax = ax.twinx()
    rate_ax.set_ylim(0, 130)  # 100% sits level with the tallest bar's headroom
    rate_ax.tick_params(colors=RATE, labelsize=8)
    rate_ax.set_ylabel(words(lang, "chart.success_rate"), color=RATE, fontfamily=family)
    rate_ax.spines["top"].set_visible(False)
    if judged:
        rate_ax.plot([i for i, _ in judged], [r * 100 for _, r in judged], color=RATE,
                     marker="o", markersize=3, linewidth=1.5)
    legend = ax.legend(loc="upper left", fontsize=8, frameon=False, ncols=4,
                       prop={"family": family, "size": 8})
    for text in legend.get_texts():
        text.set_color(INK)
    if title:
        ax.set_title(title, color=INK, fontsize=10, loc="left", fontfamily=family)
    out = io.BytesIO()
    fig.savefig(out, format="png", facecolor=PAPER)
    return out.getvalue()
