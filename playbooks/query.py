"""What the read-only steps read: retro-hunts (`query`), indicator lookups (`enrich` with `intel`)
and the cross-tenant hunt of the national playbook (`hunt_indicators`).

In: an incident, the stores a deployment gives the runner (`PlaybookSources`) and a window.
Out: plain JSON-ready values for a step's output. Nothing here writes.

Contract:
- `query` reads within the incident tenant's scope (the tenant and those below it), never wider:
  by a Sigma rule through `detections.sigma.hunt` (the same matching as the stream), or by the
  incident's entity values with the event store's equality query.
- `intel_lookup` reads the indicator store in the incident tenant's scope, so TLP decides what it
  returns exactly as it decides what the tenant's analysts see (`detections.intel.sharing`).
- `hunt_everywhere` reads every tenant's events (`TenantScope.everything()`): only the national
  playbook's step calls it, and a value that came from an indicator is reported only at tenants
  that indicator's TLP allows (the others are counted as `withheld`, never named).
- Bounded: at most `MAX_LIMIT` event ids per (field, value) query; `capped` says when reached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from config.settings import IncidentSettings
from config.tenants import TenantScope, TenantTree
from detections.intel.match import FIELDS_OF, RULE_PREFIX
from detections.intel.model import Indicator, IndicatorType, IntelError, normalise
from detections.intel.sharing import Audience
from detections.intel.store import IndicatorQuery, IntelStore
from detections.sigma.hunt import HuntWindow, hunt_ruleset
from detections.sigma.load import RuleSet
from pipeline.records import Incident
from pipeline.store.base import MAX_LIMIT, EventQuery, EventStore
from playbooks.errors import PlaybookError

FAMILY_OF_FIELD: Mapping[str, str] = {name: family for family, names in FIELDS_OF.items() for name in names}
"""The intel family (ip, domain, hash, url, email, ...) of each ECS field the matcher reads."""
_HUNTED = ("ip", "domain", "hash", "url", "email")
_HASH_TYPES = {32: IndicatorType.MD5, 40: IndicatorType.SHA1, 64: IndicatorType.SHA256}


@dataclass(frozen=True, slots=True)
class PlaybookSources:
    """The stores the read-only steps read; a step whose source is absent fails with a clear error."""

    events: EventStore | None = None
    events_url: str | None = None  # a rule hunt reads the store by URL (hunt.py pushes the rule down)
    rules: RuleSet | None = None
    intel: IntelStore | None = None
    incident_settings: IncidentSettings = field(default_factory=IncidentSettings)


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime

    def to_json(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def query_rule(sources: PlaybookSources, scope: TenantScope, rule_id: str, window: Window,
               limit: int) -> dict[str, Any]:
    """The events `rule_id` matches in the window: count and the first `limit` ids, oldest first."""
    if sources.rules is None or sources.events_url is None:
        raise PlaybookError("a query by rule needs the Sigma rules and the event store (not configured)")
    rules = tuple(r for r in sources.rules.rules if r.info.rule_id == rule_id)
    if not rules:
        raise PlaybookError(f"no Sigma rule {rule_id!r} is loaded")
    alerts = hunt_ruleset(sources.events_url, RuleSet(rules=rules), HuntWindow(scope, window.start, window.end))
    ids = list(dict.fromkeys(event_id for alert in alerts for event_id in alert.event_ids))
    return {"rule": rule_id, "count": len(ids), "found": bool(ids), "event_ids": ids[:limit],
            "window": window.to_json()}


def query_entity(sources: PlaybookSources, scope: TenantScope, incident: Incident, names: Sequence[str],
                 window: Window, limit: int) -> dict[str, Any]:
    """Events whose fields `names` (all the entity's when empty) equal the incident's values."""
    if sources.events is None:
        raise PlaybookError("a query needs the event store (not configured)")
    names = list(names) or sorted(incident.entity)
    missing = [n for n in names if n not in incident.entity]
    if missing or not names:
        raise PlaybookError(f"the incident's entity has no field {', '.join(missing) or '(none)'}"
                            f" (it has: {', '.join(sorted(incident.entity)) or 'none'})")
    fields = {name: incident.entity[name] for name in names}
    query = EventQuery(start=window.start, end=window.end, fields=fields, oldest_first=True, limit=limit)
    count = sources.events.count(scope, query)
    ids = [event.id for event in sources.events.search(scope, query)]
    return {"fields": fields, "count": count, "found": count > 0, "event_ids": ids, "window": window.to_json()}


def indicator_values(incident: Incident) -> list[tuple[str, str]]:
    """(intel family, value) of the entity's addresses, domains, hashes, URLs and e-mail addresses."""
    found: dict[tuple[str, str], None] = {}
    for name, value in sorted(incident.entity.items()):
        family = FAMILY_OF_FIELD.get(name)
        if family in _HUNTED and value:
            found[(family, value.lower() if family in ("domain", "hash", "email") else value)] = None
    return list(found)


def intel_lookup(intel: IntelStore | None, tree: TenantTree, incident: Incident, at: datetime) -> list[dict[str, Any]]:
    """The indicators the incident's tenant may see that name one of its entity's values, or that
    an intel incident is about; each once, with the entity field it matched (`rule` for the latter)."""
    if intel is None:
        raise PlaybookError("an intel lookup needs the indicator store (not configured)")
    scope = tree.scope(incident.tenant)
    found: dict[str, dict[str, Any]] = {}
    if incident.rule_id.startswith(RULE_PREFIX):
        indicator = intel.indicator(scope, incident.rule_id[len(RULE_PREFIX):])
        if indicator is not None:
            found[indicator.id] = _described(indicator, "rule")
    for name, value in sorted(incident.entity.items()):
        family = FAMILY_OF_FIELD.get(name)
        if family is None:
            continue
        for candidate in _candidates(family, value):
            for indicator in intel.indicators(scope, IndicatorQuery(value=candidate, active_at=at, limit=50)):
                found.setdefault(indicator.id, _described(indicator, name))
    return list(found.values())


def _candidates(family: str, value: str) -> list[str]:
    """The stored forms that could match `value`: a domain and its parents, a normalised hash."""
    if family == "domain":
        name, out = value.lower().rstrip("."), []
        while name:
            out.append(name)
            _, _, name = name.partition(".")
        return out
    if family == "hash":
        kind = _HASH_TYPES.get(len(value))
        if kind is None:
            return []
        try:
            return [normalise(kind, value)[1]]
        except IntelError:
            return []
    return [value.lower() if family == "email" else value]


def _described(indicator: Indicator, matched: str) -> dict[str, Any]:
    return {"id": indicator.id, "type": indicator.type.value, "value": indicator.value,
            "tlp": indicator.tlp.value, "source": indicator.source, "publisher": indicator.publisher,
            "confidence": indicator.confidence, "matched": matched}


@dataclass
class Sightings:
    """Where the hunted values were seen: tenant -> ((field, value) -> event ids, oldest first)."""

    by_tenant: dict[str, dict[tuple[str, str], list[str]]] = field(default_factory=dict)
    withheld: int = 0  # tenants with hits the indicator's TLP does not allow
    capped: bool = False


def hunt_everywhere(events: EventStore | None, values: Sequence[tuple[str, str]], window: Window,
                    restricted_to: Indicator | None, tree: TenantTree) -> Sightings:
    """Every tenant's events in the window carrying one of `values` in a field of its family.

    `restricted_to`: the indicator the values came from (an intel incident); tenants it is not
    shared with are withheld.
    """
    if events is None:
        raise PlaybookError("a hunt needs the event store (not configured)")
    sightings = Sightings()
    for family, value in values:
        for name in FIELDS_OF[family]:
            query = EventQuery(start=window.start, end=window.end, fields={name: value}, oldest_first=True,
                               limit=MAX_LIMIT)
            found = events.search(TenantScope.everything(), query)
            sightings.capped = sightings.capped or len(found) >= MAX_LIMIT
            for event in found:
                ids = sightings.by_tenant.setdefault(event.tenant, {}).setdefault((name, value), [])
                if event.id not in ids:
                    ids.append(event.id)
    if restricted_to is not None:
        audience = Audience(tree)
        allowed = {t: hits for t, hits in sightings.by_tenant.items() if audience.allows(restricted_to, t)}
        sightings.withheld = len(sightings.by_tenant) - len(allowed)
        sightings.by_tenant = allowed
    return sightings
