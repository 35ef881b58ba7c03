"""Service watch detections: check events of public services -> availability, TLS, DNS and
defacement alerts (kind `service_watch`), grouped into incidents like any other alert.

Modules, in flow order:
- observe: the typed facts of a `service_watch` event, and whether the check found the service up.
- defacement: a page against its learned baseline (tolerant of daily news, alarmed by defacement).
- rules: the rule ids, titles, severities and tags, and how a finding becomes an `Alert`.
- detector: `WatchDetector`, the per-target state machine (outage streaks, episodes, baselines).
- stream: `WatchDetectStep`, the worker step over `topics.EVENTS`.
- corpus: a labelled, seeded set of government-style pages, daily changes and defacements (for the
  tests, the demo and docs/detection-quality.md).

This package reads the events sensors/watch writes but never imports it (ARCHITECTURE.md).
"""

from detections.watch.defacement import Verdict, compare, diff_evidence
from detections.watch.detector import WatchDetector
from detections.watch.observe import Observation, Page, check_row, judge_availability
from detections.watch.rules import RULES, WatchRule
from detections.watch.stream import WatchDetectStep

__all__ = [
    "RULES",
    "Observation",
    "Page",
    "Verdict",
    "WatchDetectStep",
    "WatchDetector",
    "WatchRule",
    "compare",
    "diff_evidence",
    "check_row",
    "judge_availability",
]
