"""Sigma log sources -> which of our ECS events a rule looks at, and how its fields read there.

Stage: between loading and matching. In: a rule's `logsource` (category, product, service).
Out: the `LogSource`s it covers (`sources_for`): each an `EventScope`, a test on one ECS field of
an event (`event.dataset`, `winlog.channel`) and optionally its `event.code`, with the `FieldMap`
that resolves the rule's field names on those events (see fields.py). Empty when govsoc has no
mapping for that log source.

Windows, derived from pySigma's pipelines rather than written by hand:
- `service` -> channel: `sigma.pipelines.common.windows_logsource_mapping` (installed with pySigma);
  a service with several channels (powershell) gives one `LogSource` per channel.
- `category` -> service and event ids: SigmaHQ's pySigma-pipeline-sysmon
  (`sysmon_generic_logsource_eventid_mapping`) and pySigma-pipeline-windows
  (`windows_generic_category_channel_mapping`; `windows_audit_pipeline` for process_creation on
  Security 4688). Those two packages are not installed, so their tables are copied below, each
  with its source; tests compare them with the packages when they are importable.
- Not taken from `windows_audit_pipeline`: registry_* on Security 4657. That pipeline renames only
  `Details`, so rules on `TargetObject` (nearly all) could never match a 4657 event (it says
  `ObjectName`); the Sysmon events are the registry source.

Invariants:
- The table is looked up by the exact (category, product, service) triple; an absent part is None.
  `(None, "linux", None)` therefore covers rules that name only the product, not every Linux rule.
- A rule whose log source has no entry is not run (the loader reports "no log source mapping"):
  guessing would either flood analysts or silently miss, so an entry is added deliberately.
- The `LogSource`s of one triple cover disjoint events (another channel or event id), so a rule
  compiled once per `LogSource` fires at most once per event.
- Scopes are values (frozen, hashable): the engine groups rules by scope and tests each distinct
  scope once per event, which is the prefilter.
- `product: windows` alone (one SigmaHQ rule) is not mapped: such a rule would run on every
  Windows event, and tests use it as the example of an unmapped log source.
- Channels compare exactly, as Windows writes them: Sysmon events forwarded into
  `ForwardedEvents` are not matched by category rules (a known gap).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sigma.pipelines.common import windows_logsource_mapping

from detections.sigma.fields import ECS_FIELDS, FieldMap, windows_fields
from pipeline import ecs
from pipeline.records import Event

EVENT_CODE = "event.code"  # as sensors/parsers/windows.py writes it (text)
WINLOG_CHANNEL = "winlog.channel"


@dataclass(frozen=True, slots=True)
class EventScope:
    """Events whose `field` equals `value` (starts with it when `is_prefix`) and, when `codes` is
    not empty, whose `event.code` is one of `codes`."""

    field: str
    value: str
    is_prefix: bool = False
    codes: frozenset[str] = frozenset()

    def matches(self, event: Event) -> bool:
        if not self.matches_value(event.get(self.field)):
            return False
        return not self.codes or event.get(EVENT_CODE) in self.codes

    def matches_value(self, found: Any) -> bool:
        if not isinstance(found, str):
            return False
        return found.startswith(self.value) if self.is_prefix else found == self.value

    def __str__(self) -> str:
        text = f"{self.field} {'starts with' if self.is_prefix else '=='} {self.value!r}"
        return text + (f" and {EVENT_CODE} in {sorted(self.codes)}" if self.codes else "")


@dataclass(frozen=True, slots=True)
class LogSource:
    """One kind of event a Sigma log source covers, and how rule field names read on it."""

    scope: EventScope
    fields: FieldMap = field(default=ECS_FIELDS)


LogSourceKey = tuple[str | None, str | None, str | None]  # (category, product, service)

# SigmaHQ/pySigma-pipeline-sysmon 2.0.0, sigma/pipelines/sysmon/sysmon.py:
# `sysmon_generic_logsource_eventid_mapping` (category -> Sysmon event ids, service sysmon). Since
# 2.0 `file_delete` is event 23 only and 26 (FileDeleteDetected) is `file_delete_detected`.
SYSMON_CATEGORY_EVENT_IDS: dict[str, tuple[int, ...]] = {
    "process_creation": (1,), "file_change": (2,), "network_connection": (3,),
    "process_termination": (5,), "sysmon_status": (4, 16), "driver_load": (6,), "image_load": (7,),
    "create_remote_thread": (8,), "raw_access_thread": (9,), "process_access": (10,),
    "file_event": (11,), "registry_add": (12,), "registry_delete": (12,), "registry_set": (13,),
    "registry_rename": (14,), "registry_event": (12, 13, 14), "create_stream_hash": (15,),
    "pipe_created": (17, 18), "wmi_event": (19, 20, 21), "dns_query": (22,), "file_delete": (23,),
    "clipboard_capture": (24,), "process_tampering": (25,), "file_delete_detected": (26,),
    "file_block_executable": (27,), "file_block_shredding": (28,), "file_executable_detected": (29,),
    "sysmon_error": (255,),
}

# SigmaHQ/pySigma-pipeline-windows, sigma/pipelines/windows/windows.py @ 13555a7:
# `windows_generic_category_channel_mapping` (category -> service and event id).
WINDOWS_CATEGORY_EVENTS: dict[str, tuple[str, int]] = {
    "ps_module": ("powershell", 4103),
    "ps_script": ("powershell", 4104),
    "ps_classic_start": ("powershell-classic", 400),
    "ps_classic_provider_start": ("powershell-classic", 600),
    "ps_classic_script": ("powershell-classic", 800),
}

# The same file, `generic_logsource_to_windows_audit_event_mapping` (category -> Security event),
# process_creation only (see the module docstring for registry_*).
AUDIT_CATEGORY_EVENTS: dict[str, int] = {"process_creation": 4688}


def _channels(service: str) -> tuple[str, ...]:
    channels = windows_logsource_mapping[service]
    return (channels,) if isinstance(channels, str) else tuple(channels)


def _service_sources(service: str, codes: Iterable[int] = (), category: str | None = None) -> tuple[LogSource, ...]:
    fields = windows_fields(category, service)
    wanted = frozenset(str(code) for code in codes)
    return tuple(LogSource(EventScope(WINLOG_CHANNEL, channel, codes=wanted), fields)
                 for channel in _channels(service))


def windows_log_sources() -> dict[LogSourceKey, tuple[LogSource, ...]]:
    """Every Windows log source govsoc maps: services, then categories, from the tables above."""
    table: dict[LogSourceKey, tuple[LogSource, ...]] = {
        (None, "windows", service): _service_sources(service) for service in windows_logsource_mapping
    }
    categories: dict[str, list[LogSource]] = {}
    for category, ids in SYSMON_CATEGORY_EVENT_IDS.items():
        categories.setdefault(category, []).extend(_service_sources("sysmon", ids, category))
    for category, (service, code) in WINDOWS_CATEGORY_EVENTS.items():
        categories.setdefault(category, []).extend(_service_sources(service, (code,), category))
    for category, code in AUDIT_CATEGORY_EVENTS.items():
        categories.setdefault(category, []).extend(_service_sources("security", (code,), category))
    table.update({(category, "windows", None): tuple(sources) for category, sources in categories.items()})
    return table


_SYSTEM_AUTH = EventScope(ecs.EVENT_DATASET, "system.auth")

LOG_SOURCES: dict[LogSourceKey, tuple[LogSource, ...]] = {
    # auth.log / secure: sshd, PAM and friends, as our syslog parser labels them.
    (None, "linux", "auth"): (LogSource(_SYSTEM_AUTH),),
    (None, "linux", "sshd"): (LogSource(_SYSTEM_AUTH),),
    (None, "linux", "syslog"): (LogSource(EventScope(ecs.EVENT_DATASET, "system.syslog")),),
    # Product-only rules (mostly keyword searches) run on every Linux system log we parse.
    (None, "linux", None): (LogSource(EventScope(ecs.EVENT_DATASET, "system.", is_prefix=True)),),
    **windows_log_sources(),
}


def sources_for(category: str | None, product: str | None, service: str | None) -> tuple[LogSource, ...]:
    """The kinds of event a Sigma log source covers; empty when govsoc has no mapping for it."""
    return LOG_SOURCES.get((category, product, service), ())


def scope_for(category: str | None, product: str | None, service: str | None) -> EventScope | None:
    """The scope of a log source that covers one kind of event; None when it is unmapped or covers
    several (use `sources_for`)."""
    sources = sources_for(category, product, service)
    return sources[0].scope if len(sources) == 1 else None
