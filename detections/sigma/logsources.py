"""Sigma log sources -> which of our ECS events a rule looks at.

Stage: between loading and matching. In: a rule's `logsource` (category, product, service).
Out: an `EventScope`, a test on one ECS field of an event (`event.dataset` for now), or None when
govsoc has no mapping for that log source.

Invariants:
- The table is looked up by the exact (category, product, service) triple; an absent part is None.
  `(None, "linux", None)` therefore covers rules that name only the product, not every Linux rule.
- A rule whose log source has no entry is not run (the loader reports "no log source mapping"):
  guessing would either flood analysts or silently miss, so an entry is added deliberately.
- Scopes are values (frozen, hashable): the engine groups rules by scope and tests each distinct
  scope once per event, which is the prefilter.

Extension point: add entries to `LOG_SOURCES`. Windows (`product: windows`, `service: security`,
`category: process_creation`, ...) needs both entries here and a field mapping from Sigma's
Windows field names to ECS, which is a later change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline import ecs
from pipeline.records import Event


@dataclass(frozen=True, slots=True)
class EventScope:
    """Events whose `field` equals `value`, or starts with it when `is_prefix`."""

    field: str
    value: str
    is_prefix: bool = False

    def matches(self, event: Event) -> bool:
        return self.matches_value(event.get(self.field))

    def matches_value(self, found: Any) -> bool:
        if not isinstance(found, str):
            return False
        return found.startswith(self.value) if self.is_prefix else found == self.value

    def __str__(self) -> str:
        return f"{self.field} {'starts with' if self.is_prefix else '=='} {self.value!r}"


LogSourceKey = tuple[str | None, str | None, str | None]  # (category, product, service)

_SYSTEM_AUTH = EventScope(ecs.EVENT_DATASET, "system.auth")

LOG_SOURCES: dict[LogSourceKey, EventScope] = {
    # auth.log / secure: sshd, PAM and friends, as our syslog parser labels them.
    (None, "linux", "auth"): _SYSTEM_AUTH,
    (None, "linux", "sshd"): _SYSTEM_AUTH,
    (None, "linux", "syslog"): EventScope(ecs.EVENT_DATASET, "system.syslog"),
    # Product-only rules (mostly keyword searches) run on every Linux system log we parse.
    (None, "linux", None): EventScope(ecs.EVENT_DATASET, "system.", is_prefix=True),
}


def scope_for(category: str | None, product: str | None, service: str | None) -> EventScope | None:
    """The scope of a Sigma log source, or None when govsoc has no mapping for it."""
    return LOG_SOURCES.get((category, product, service))
