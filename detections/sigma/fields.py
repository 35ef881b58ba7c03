"""Sigma field names -> where they are in our ECS events.

Stage: between loading and compiling. In: a field name as a Sigma rule writes it (`Image`,
`EventID`, `source.ip`) and the `FieldMap` of the log source the rule runs on. Out: the dotted paths
to read, in order (`FieldMap.resolve`); the first path present in an event is the field's value.

Maps, data-driven:
- `ECS_FIELDS` (Linux and every non-Windows log source): the name as written.
- `windows_fields(category, service)`: `winlog.event_data.<Name>`, then `winlog.user_data.<Name>`,
  then the ECS name pySigma's Elastic Windows pipeline (`sigma.pipelines.elasticsearch.windows`:
  `ecs_windows`'s fixed mapping, plus `ecs_windows_variable_mappings` for that category or
  service, e.g. `CommandLine` -> `process.command_line` for process_creation) gives the Sigma
  name. That covers the System fields (`EventID` -> `event.code`, `Channel`, `Provider_Name`,
  `ComputerName`) and Winlogbeat documents whose EventData Elastic's ingest pipelines moved.
  For `service: security` the renames SigmaHQ's pySigma-pipeline-windows applies come first
  (`windows_audit_pipeline`, not installed here, so copied in `AUDIT_RENAMES`): `Image` is
  `NewProcessName` in a 4688 event, and so on. `WINDOWS_FIELDS` and `WINDOWS_AUDIT_FIELDS` are
  the maps for no category (service rules).

`Data` on a Windows event is, as SigmaHQ's rules say, "the container for the event data as a
whole": a named `Data` item if the event has one, else the text of every EventData item (the
unnamed `param1`, `param2`, ... of classic events included) joined by newlines, in item order.

Invariants:
- A name holding a dot is already an event path and is used as written (the Elastic pipeline's own
  rule: `\\w+\\.` means already mapped).
- Earlier paths win even when a later one also exists: EventData is what Sigma rules are written
  against; the ECS copies are for events that no longer carry it.
- Pure values: resolution is memoised per `FieldMap`, never per event.
- Readers read an event's `flat_view` (one dict of every dotted name, built once per event by the
  engine), not the nested document.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sigma.pipelines.elasticsearch.windows import ecs_windows, ecs_windows_variable_mappings
from sigma.processing.transformations import FieldMappingTransformation

from pipeline import ecs
from pipeline.records import MISSING, lookup

Reader = Callable[[Mapping[str, Any]], Any]  # an event's flat view (`flat_view`) -> one field's value, or MISSING

KEYWORD_FIELDS = (ecs.MESSAGE, ecs.EVENT_ORIGINAL)  # where keywords (values without a field) are searched
EVENT_DATA = "winlog.event_data"
WHOLE_EVENT_DATA = "Data"
USER_DATA = "winlog.user_data"
_ES_ONLY_SUFFIX = ".caseless"  # an Elasticsearch sub-field (keyword with a lower-case normaliser)
_ECS_MAPPING_ITEM = "ecs_windows_field_mapping"  # the item of `ecs_windows()` with the plain renames

# The System fields, where sensors/parsers/windows.py writes them. The Elastic pipeline has no
# `Computer` or `EventRecordID`; the others agree with it and are repeated so that nothing
# log-source specific can override them.
_OWN_ECS_NAMES = {
    "Computer": "winlog.computer_name",
    "EventRecordID": "winlog.record_id",
    "EventID": "event.code",
    "Channel": "winlog.channel",
    "Provider_Name": "winlog.provider_name",
    "ComputerName": "winlog.computer_name",
}

# pySigma-pipeline-windows, sigma/pipelines/windows/windows.py, `windows_audit_pipeline`: the field
# mapping for `service: security` (SigmaHQ/pySigma-pipeline-windows @ 13555a7).
AUDIT_RENAMES: Mapping[str, str] = MappingProxyType({
    "Image": "NewProcessName",
    "ParentImage": "ParentProcessName",
    "Details": "NewValue",
    "LogonId": "SubjectLogonId",
})
AUDIT_SERVICES = frozenset({"security"})  # the audit pipeline's `rule_conditions=[logsource_windows("security")]`


def _elastic_windows_names() -> dict[str, str]:
    """Sigma name -> ECS name from pySigma's ECS Windows pipeline, `.caseless` sub-fields dropped."""
    names: dict[str, str] = {}
    for item in ecs_windows().items:
        transformation = item.transformation
        if item.identifier == _ECS_MAPPING_ITEM and isinstance(transformation, FieldMappingTransformation):
            for sigma_name, target in transformation.mapping.items():
                if isinstance(sigma_name, str) and isinstance(target, str):
                    names[sigma_name] = target.removesuffix(_ES_ONLY_SUFFIX)
    return names


@dataclass(frozen=True)
class FieldMap:
    """How the Sigma field names of rules for one kind of event resolve to event paths.

    `renames` are applied first (a Sigma name -> the event's own name for it); then, when
    `is_windows`, EventData, UserData and `ecs_names` are tried in that order.
    """

    name: str
    is_windows: bool = False
    renames: Mapping[str, str] = field(default_factory=dict)
    ecs_names: Mapping[str, str] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash(self.name)

    def resolve(self, sigma_field: str) -> tuple[str, ...]:
        """The event paths to read for `sigma_field`, first present wins; never empty."""
        return _resolve(self, sigma_field)

    def reader(self, sigma_field: str) -> Reader:
        """How to read `sigma_field` from an event's `flat_view` (MISSING when the event lacks it)."""
        paths = self.resolve(sigma_field)
        if self.is_windows and sigma_field == WHOLE_EVENT_DATA:
            return _whole_event_data(path_reader(paths))
        return path_reader(paths)


_LEAVES = frozenset({str, int, float, bool, type(None), list})


def flat_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Every node of `doc` by its dotted name: what `records.lookup(doc, name)` finds, for each name
    it finds anything at (objects included, lists not descended into); absent names are absent.

    Built once per event so that each field read is one dict lookup: bench/sigma_engine.py, the
    general `lookup` walk per read (~4 reads of ~3 paths per candidate rule) was a third of the
    engine's time. A name reachable two ways (a key holding dots beside nested objects) is
    resolved by `lookup` itself, so the view never disagrees with it.
    """
    flat: dict[str, Any] = {}
    clashes: list[str] = []
    stack: list[tuple[str, Mapping[str, Any]]] = [("", doc)]
    while stack:
        prefix, node = stack.pop()
        for key, value in node.items():
            if type(key) is not str:  # JSON keys are text; `lookup` cannot reach another key either
                continue
            name = prefix + key
            if name in flat:
                clashes.append(name)
            flat[name] = value
            # The ABC check only for what is neither a dict nor a JSON scalar: 32 -> 19 us an event.
            kind = type(value)
            if kind is dict or (kind not in _LEAVES and isinstance(value, Mapping)):
                stack.append((name + ".", value))
    for name in clashes:
        flat[name] = lookup(doc, name)
    return flat


def path_reader(paths: tuple[str, ...]) -> Reader:
    """The value at the first of `paths` present in a flat view (MISSING if none is)."""
    if len(paths) == 1:
        path = paths[0]
        return lambda flat: flat.get(path, MISSING)

    def read(flat: Mapping[str, Any]) -> Any:
        for path in paths:
            found = flat.get(path, MISSING)
            if found is not MISSING:
                return found
        return MISSING

    return read


def _whole_event_data(named: Reader) -> Reader:
    """A `Data` item when there is one, else every EventData text joined (see the docstring)."""
    def read(flat: Mapping[str, Any]) -> Any:
        found = named(flat)
        if found is not MISSING:
            return found
        items = flat.get(EVENT_DATA, MISSING)
        if not isinstance(items, Mapping):
            return MISSING
        return "\n".join(value for value in items.values() if isinstance(value, str))

    return read


@functools.lru_cache(maxsize=65536)
def _resolve(fields: FieldMap, sigma_field: str) -> tuple[str, ...]:
    if not fields.is_windows or "." in sigma_field:
        return (sigma_field,)
    name = fields.renames.get(sigma_field, sigma_field)
    paths = [f"{EVENT_DATA}.{name}", f"{USER_DATA}.{name}"]
    ecs_name = fields.ecs_names.get(name) or fields.ecs_names.get(sigma_field)
    if ecs_name is not None:
        paths.append(ecs_name)
    return tuple(paths)


def _variable_names(category: str | None, service: str | None) -> dict[str, str]:
    """The Elastic pipeline's mappings that depend on the log source, for this one."""
    wanted = {("category", category), ("service", service)}
    return {sigma_name: target.removesuffix(_ES_ONLY_SUFFIX)
            for sigma_name, mappings in ecs_windows_variable_mappings.items()
            for kind, value, target in mappings if (kind, value) in wanted}


_ELASTIC_NAMES = MappingProxyType({**_elastic_windows_names(), **_OWN_ECS_NAMES})


@functools.lru_cache(maxsize=256)
def windows_fields(category: str | None, service: str | None) -> FieldMap:
    """The field map of Windows rules with this category and service (one object per pair)."""
    names = MappingProxyType({**_ELASTIC_NAMES, **_variable_names(category, service), **_OWN_ECS_NAMES})
    renames = AUDIT_RENAMES if service in AUDIT_SERVICES else {}
    return FieldMap(f"windows:{category or '-'}:{service or '-'}", is_windows=True, renames=renames,
                    ecs_names=names)


ECS_FIELDS = FieldMap("ecs")
WINDOWS_FIELDS = windows_fields(None, None)
WINDOWS_AUDIT_FIELDS = windows_fields(None, "security")


def field_map_named(name: str) -> FieldMap:
    """The field map whose `name` this is (`ecs`, `windows:<category>:<service>`): how state that
    must pickle (correlation hits) refers to a map without holding its read-only mappings."""
    if name == ECS_FIELDS.name:
        return ECS_FIELDS
    kind, category, service = name.split(":")
    if kind != "windows":
        raise ValueError(f"unknown field map {name!r}")
    return windows_fields(None if category == "-" else category, None if service == "-" else service)
