"""Defacement detection measured on the labelled set (detections/watch/corpus.py).

Run `python -m tests.detections.watch.test_quality` to print the table docs/detection-quality.md holds.
Pages go through the sensor's real extraction, then the detector's comparison, as in production.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from detections.watch.corpus import DEFACEMENT_KINDS, labelled_set
from detections.watch.defacement import compare
from detections.watch.observe import Page
from sensors.watch.content import extract_page


def page_of(html: str) -> Page:
    page = Page.from_doc(extract_page(html.encode()).to_doc())
    assert page is not None
    return page


@dataclass(frozen=True)
class Quality:
    counts: Counter[tuple[str, bool]]  # (kind, flagged) -> pages

    @property
    def tp(self) -> int:
        return sum(n for (kind, flagged), n in self.counts.items() if kind != "daily" and flagged)

    @property
    def fp(self) -> int:
        return self.counts[("daily", True)]

    @property
    def fn(self) -> int:
        return sum(n for (kind, flagged), n in self.counts.items() if kind != "daily" and not flagged)

    @property
    def precision(self) -> float:
        return self.tp / max(1, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return self.tp / max(1, self.tp + self.fn)


def measure(portals: int = 40, days: int = 7, seed: int = 13) -> Quality:
    counts: Counter[tuple[str, bool]] = Counter()
    for pair in labelled_set(portals, days, seed):
        counts[(pair.kind, compare(page_of(pair.before), page_of(pair.after)).defaced)] += 1
    return Quality(counts)


def test_precision_and_recall_on_the_labelled_set() -> None:
    quality = measure(portals=20, days=6)
    assert quality.fp == 0  # no alert for any daily change
    assert quality.precision == 1.0 and quality.recall >= 0.8
    for kind in DEFACEMENT_KINDS[:-1]:  # every kind but the quiet message is always caught
        assert quality.counts[(kind, False)] == 0, kind


def test_the_set_is_deterministic() -> None:
    assert [p.after for p in labelled_set(3, 2)] == [p.after for p in labelled_set(3, 2)]


if __name__ == "__main__":
    q = measure()
    print("| kind | pages | flagged |\n|---|---|---|")  # noqa: T201
    for kind in ("daily", *DEFACEMENT_KINDS):
        total = q.counts[(kind, True)] + q.counts[(kind, False)]
        print(f"| {kind} | {total} | {q.counts[(kind, True)]} |")  # noqa: T201
    print(f"\nTP {q.tp} FP {q.fp} FN {q.fn} precision {q.precision:.3f} recall {q.recall:.3f}")  # noqa: T201
