"""Which playbooks an incident triggers.

In: an incident, the loaded playbooks and the tenant tree. Out: the playbooks whose trigger
matches, in the order given. A playbook without a trigger is started by hand only and never
matches. Every criterion a trigger gives must hold; within one criterion any value may match.
"""

from __future__ import annotations

from collections.abc import Sequence

from config.tenants import TenantTree
from pipeline.records import Incident, Severity
from playbooks.model import Playbook, Trigger


def triggered_playbooks(incident: Incident, playbooks: Sequence[Playbook], tree: TenantTree) -> list[Playbook]:
    return [p for p in playbooks if p.trigger is not None and matches(p.trigger, incident, tree)]


def matches(trigger: Trigger, incident: Incident, tree: TenantTree) -> bool:
    if trigger.rules and incident.rule_id not in trigger.rules:
        return False
    if trigger.tags and not any(_tag_matches(want, tag) for want in trigger.tags for tag in incident.tags):
        return False
    if trigger.min_severity is not None and incident.severity < Severity.from_label(trigger.min_severity):
        return False
    if trigger.tenants:
        lineage = {incident.tenant, *(tree.ancestors(incident.tenant) if incident.tenant in tree else [])}
        if not lineage.intersection(trigger.tenants):
            return False
    return not trigger.entity_fields or any(f in incident.entity for f in trigger.entity_fields)


def _tag_matches(wanted: str, tag: str) -> bool:
    """`attack.t1110` matches itself and `attack.t1110.001`, not `attack.t11100`."""
    wanted, tag = wanted.lower(), tag.lower()
    return tag == wanted or tag.startswith(wanted + ".")
