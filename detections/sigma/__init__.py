"""The Sigma engine: rule files in, alerts out, evaluated as events stream by.

Modules, in flow order:
- errors: `RuleError`, the one error of this stage (a rule is skipped, never the rule set).
- load: rule files -> `RuleSet` plus every `RuleError`, via pySigma (`load_rules`).
- logsources: a rule's Sigma log source -> the events it looks at (`LogSource`, `EventScope`), the
  prefilter; Windows categories to Sysmon and Security event ids.
- fields: a Sigma field name -> where it is in our events (`FieldMap`; `winlog.event_data.<Name>`
  for Windows, ECS names otherwise).
- compile: a rule's detection -> a predicate over one event (`compile_detection`).
- prefilter: literals every match of a rule must contain, found in one RE2 pass per field, so an
  event is checked only against rules that could match it.
- match: `SigmaEngine`, every rule on every event, feeding correlations, returning alerts.
- correlate: streaming correlations (event_count, value_count, temporal, temporal_ordered).
"""

from detections.sigma.compile import CompiledRule, Predicate, RuleInfo, compile_detection
from detections.sigma.correlate import CorrelationKind, CorrelationSpec, Correlator, Hit
from detections.sigma.errors import RuleError
from detections.sigma.fields import FieldMap, windows_fields
from detections.sigma.load import RuleSet, builtin_rules_dir, load_rules
from detections.sigma.logsources import LOG_SOURCES, EventScope, LogSource, scope_for, sources_for
from detections.sigma.match import SigmaEngine

__all__ = [
    "LOG_SOURCES",
    "CompiledRule",
    "CorrelationKind",
    "CorrelationSpec",
    "Correlator",
    "EventScope",
    "FieldMap",
    "Hit",
    "LogSource",
    "Predicate",
    "RuleError",
    "RuleInfo",
    "RuleSet",
    "SigmaEngine",
    "builtin_rules_dir",
    "compile_detection",
    "load_rules",
    "scope_for",
    "sources_for",
    "windows_fields",
]
