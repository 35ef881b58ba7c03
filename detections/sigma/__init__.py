"""The Sigma engine: rule files in, alerts out, evaluated as events stream by.

Modules, in flow order:
- errors: `RuleError`, the one error of this stage (a rule is skipped, never the rule set).
- load: rule files -> `RuleSet` plus every `RuleError`, via pySigma (`load_rules`).
- logsources: a rule's Sigma log source -> the events it looks at (`LogSource`, `EventScope`), the
  prefilter; Windows categories to Sysmon and Security event ids.
- fields: a Sigma field name -> where it is in our events (`FieldMap`; `winlog.event_data.<Name>`
  for Windows, ECS names otherwise).
- rematch: RE2 searches and literal sets called on UTF-8 bytes (the hot loop's regex calls).
- values: a field's Sigma values -> one test on a field value (shapes grouped: sets, tuples, RE2).
- compile: a rule's detection -> a test over an event's flat view (`compile_test`), or a
  predicate over an event (`compile_detection`).
- prefilter: literals every match of a rule must contain, found in one RE2 pass per field, so an
  event is checked only against rules that could match it.
- dispatch: `RuleIndex`, an event's candidate rules: by log source (one dict lookup), then literal.
- state: enabled/disabled rules and per-tenant exceptions, stored and audited (`RuleState`).
- match: `SigmaEngine`, every rule on every event, feeding correlations, returning alerts;
  `reload` swaps rules and state without a restart.
- correlate: streaming correlations (event_count, value_count, temporal, temporal_ordered).
- hunt (+ hunt_elastic): retro-hunts, rules compiled by pySigma's backend for the event store and
  checked by the engine (`hunt_rules`).
- manage: `RuleService`, the rule set as the API and CLI manage it (list, enable, exceptions, upload).
"""

from detections.sigma.compile import CompiledRule, FlatTest, Predicate, RuleInfo, compile_detection, compile_test
from detections.sigma.correlate import CorrelationKind, CorrelationSpec, Correlator, Hit
from detections.sigma.errors import RuleError
from detections.sigma.fields import FieldMap, flat_view, windows_fields
from detections.sigma.hunt import HuntStats, HuntWindow, hunt_rules, hunt_ruleset
from detections.sigma.load import RuleSet, builtin_rules_dir, load_rules
from detections.sigma.logsources import LOG_SOURCES, EventScope, LogSource, scope_for, sources_for
from detections.sigma.match import SigmaEngine
from detections.sigma.state import RuleException, RuleState, apply_state

__all__ = [
    "LOG_SOURCES",
    "CompiledRule",
    "CorrelationKind",
    "CorrelationSpec",
    "Correlator",
    "EventScope",
    "FieldMap",
    "FlatTest",
    "Hit",
    "HuntStats",
    "HuntWindow",
    "LogSource",
    "Predicate",
    "RuleError",
    "RuleException",
    "RuleInfo",
    "RuleSet",
    "RuleState",
    "SigmaEngine",
    "apply_state",
    "builtin_rules_dir",
    "compile_detection",
    "compile_test",
    "flat_view",
    "hunt_rules",
    "hunt_ruleset",
    "load_rules",
    "scope_for",
    "sources_for",
    "windows_fields",
]
