"""Incidents: alerts grouped so that one person works one case, through its lifecycle and clocks.

Modules, in flow order:
- noise: dedup, time-window suppressions and a flood guard, before grouping, for every alert kind.
- grouping: alerts of one tenant, rule and entity within a window join one incident (`IncidentService`).
- lifecycle: the allowed state transitions, assignment, comments, regulatory clocks met; all audited.
- clocks: SLA and regulatory deadlines of an incident, and warnings before one is missed.
"""

from detections.incidents.clocks import (
    Deadline,
    DeadlineStatus,
    DeadlineWarning,
    DeadlineWatch,
    deadline_warnings,
    incident_deadlines,
)
from detections.incidents.grouping import IncidentService, incident_severity
from detections.incidents.lifecycle import (
    STATE_LABELS_VI,
    TRANSITIONS,
    IncidentLifecycle,
    IncidentNotFound,
    LifecycleError,
    TransitionRefused,
)
from detections.incidents.noise import Decision, NoiseFilter, Verdict, preview_suppression

__all__ = [
    "STATE_LABELS_VI",
    "TRANSITIONS",
    "Deadline",
    "DeadlineStatus",
    "DeadlineWarning",
    "DeadlineWatch",
    "Decision",
    "IncidentLifecycle",
    "IncidentNotFound",
    "IncidentService",
    "LifecycleError",
    "NoiseFilter",
    "TransitionRefused",
    "Verdict",
    "deadline_warnings",
    "incident_deadlines",
    "incident_severity",
    "preview_suppression",
]
