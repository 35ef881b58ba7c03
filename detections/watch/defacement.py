"""Defacement: a page compared with its learned baseline -> a verdict with reasons and a diff.

In: the baseline `Page` and the new one (detections/watch/observe.py). Out: a `Verdict`.

Tolerant of what changes every day on a government portal: digits are masked before anything is
compared (dates, counters, visitor numbers), the structure is a *set* of short tag paths (ten news
items or twelve make the same set), and changed text lines alone never alarm: a news list may be
replaced entirely while the template (menu, headings, footer) stays.
Alarmed by, each one enough:
- a known defacement phrase (English, Vietnamese, common leetspeak, plus configured ones) that
  the baseline did not contain; only strong phrases: a news item may well say "hacker";
- the title replaced (masked similarity below `TITLE_SIMILARITY`);
- a script from a host the baseline never loaded, or a new inline script; any new iframe; links to
  `NEW_LINK_HOSTS` or more outside hosts the baseline never linked (spam);
- a very different page: structure similarity below `STRUCTURE_SIMILARITY`, or text similarity
  below `TEXT_SIMILARITY` together with a changed structure, or the visible text shrunk to a
  fraction of the baseline's.
Thresholds were set on the labelled set of detections/watch/corpus.py (docs/detection-quality.md).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from detections.watch.observe import Page

DEFACEMENT_PHRASES = (
    "hacked by", "hacked!", "h4ck3d", "h4cked by", "defaced by", "pwned by", "0wn3d", "was here", "greetz",
    "greets to", "your security is", "security is low", "we are anonymous", "expect us", "cyber army",
    "cyber team", "đã bị hack bởi", "bị hack bởi", "bị tấn công bởi",
    # gambling spam, the commonest defacement of Vietnamese public sites
    "nhà cái uy tín", "casino online", "nổ hũ", "tài xỉu", "bắn cá đổi thưởng", "link vào nhà cái",
)
NEW_LINK_HOSTS = 3
TITLE_SIMILARITY = 0.5
STRUCTURE_SIMILARITY = 0.45
TEXT_SIMILARITY = 0.15
STRUCTURE_CHANGED = 0.8
SHRUNK_TO = 0.15
MAX_DIFF_LINES = 60
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class Verdict:
    defaced: bool
    reasons: tuple[str, ...]
    text_similarity: float
    structure_similarity: float


def _mask(text: str) -> str:
    return _DIGITS.sub("0", text).casefold()


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _script_host(ref: str) -> str:
    return ref[4:].split("/", 1)[0] if ref.startswith("src:") else ref


def compare(baseline: Page, page: Page, phrases: Sequence[str] = ()) -> Verdict:
    """Judge `page` against `baseline`; pure and deterministic."""
    reasons: list[str] = []
    before_text, after_text = _mask(baseline.text), _mask(page.text)
    for phrase in (*DEFACEMENT_PHRASES, *phrases):
        wanted = _mask(phrase)
        if wanted in after_text and wanted not in before_text:
            reasons.append(f"defacement phrase {phrase!r}")
            break
    title_ratio = difflib.SequenceMatcher(None, _mask(baseline.title), _mask(page.title)).ratio()
    if title_ratio < TITLE_SIMILARITY:
        reasons.append(f"title replaced: {baseline.title!r} -> {page.title!r}")
    reasons.extend(_injected(baseline, page))
    text_sim = _jaccard({_mask(x) for x in baseline.lines}, {_mask(x) for x in page.lines})
    struct_sim = _jaccard(set(baseline.paths), set(page.paths))
    if struct_sim < STRUCTURE_SIMILARITY:
        reasons.append(f"page structure changed ({struct_sim:.0%} alike)")
    elif text_sim < TEXT_SIMILARITY and struct_sim < STRUCTURE_CHANGED:
        reasons.append(f"page text and structure changed ({text_sim:.0%} / {struct_sim:.0%} alike)")
    before_len, after_len = sum(map(len, baseline.lines)), sum(map(len, page.lines))
    if before_len > 500 and after_len < before_len * SHRUNK_TO:
        reasons.append(f"visible text shrank from {before_len} to {after_len} characters")
    return Verdict(bool(reasons), tuple(reasons), round(text_sim, 3), round(struct_sim, 3))


def _injected(baseline: Page, page: Page) -> list[str]:
    found: list[str] = []
    known_hosts = {_script_host(s) for s in baseline.scripts if s.startswith("src:")}
    new_external = [s for s in page.scripts if s.startswith("src:") and _script_host(s) not in known_hosts]
    if new_external:
        found.append(f"script from a new host: {new_external[0][4:]}")
    new_inline = {s for s in page.scripts if s.startswith("inline:")} - set(baseline.scripts)
    if new_inline:
        found.append(f"{len(new_inline)} new inline script(s)")
    new_links = sorted(set(page.link_hosts) - set(baseline.link_hosts))
    if len(new_links) >= NEW_LINK_HOSTS:
        found.append(f"links to {len(new_links)} new outside sites, e.g. {new_links[0]}")
    new_frames = sorted(set(page.iframes) - set(baseline.iframes))
    if new_frames:
        found.append(f"new iframe: {new_frames[0] or '(no src)'}")
    return found


def diff_evidence(baseline: Page, page: Page) -> str:
    """A unified diff of the visible text (title first), at most `MAX_DIFF_LINES` lines."""
    lines = list(difflib.unified_diff([baseline.title, *baseline.lines], [page.title, *page.lines],
                                      fromfile="before", tofile="after", lineterm="", n=1))
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... ({len(lines) - MAX_DIFF_LINES} more diff lines)"]
    return "\n".join(lines)
