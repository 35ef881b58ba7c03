"""Bar charts as numbers for server-rendered SVG: no script, no library, a few hundred bytes each.

In: labelled counts. Out: `Bar`s with their geometry in a `WIDTH` x `HEIGHT` viewBox; the
template draws them (`templates/_chart.html`) and the stylesheet colours them by class. Each
chart also lists its numbers as text, so a screen reader reads the same data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 600
HEIGHT = 160
LABEL_SPACE = 20


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float
    css: str = ""


@dataclass(frozen=True, slots=True)
class Chart:
    bars: list[Bar]
    maximum: int
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def baseline(self) -> int:
        return self.height - LABEL_SPACE


def column_chart(points: Sequence[tuple[str, int]], css: Sequence[str] | None = None) -> Chart:
    """Vertical bars, one per point, scaled to the largest value (an empty chart for no points)."""
    maximum = max((value for _, value in points), default=0)
    slot = WIDTH / max(1, len(points))
    plot = HEIGHT - LABEL_SPACE - 14  # room for the value above the tallest bar
    bars = []
    for n, (label, value) in enumerate(points):
        height = plot * value / maximum if maximum else 0.0
        bars.append(Bar(label, value, round(n * slot + slot * 0.15, 1), round(HEIGHT - LABEL_SPACE - height, 1),
                        round(slot * 0.7, 1), round(height, 1), css[n] if css else ""))
    return Chart(bars, maximum)
