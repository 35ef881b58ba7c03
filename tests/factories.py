"""Small builders for records in tests (real records, built the way the code builds them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.records import Alert, DetectionKind, Event, Severity, set_path

T0 = datetime(2026, 11, 23, 7, 0, 0, tzinfo=UTC)


def make_event(tenant: str = "hanoi", n: int = 0, *, at: datetime | None = None, message: str = "hello",
               **fields: Any) -> Event:
    """An event of `tenant`; `fields` are dotted ECS names (use `__` for dots: source__ip=...)."""
    doc: dict[str, Any] = {"@timestamp": at or T0 + timedelta(seconds=n), "message": message,
                           "organization": {"id": tenant}, "event": {"dataset": "test.fixture"}}
    for name, value in fields.items():
        set_path(doc, name.replace("__", "."), value)
    return Event.create(doc, id_parts=("test", n, message))


def make_alert(tenant: str = "hanoi", n: int = 0, *, rule_id: str = "rule-1", entity: dict[str, str] | None = None,
               severity: Severity = Severity.HIGH, at: datetime | None = None,
               security_level: int | None = None) -> Alert:
    entity = entity if entity is not None else {"source.address": "203.0.113.77"}
    event_id = f"event-{tenant}-{n}"
    return Alert(
        id=Alert.make_id(tenant, rule_id, entity, event_id), tenant=tenant,
        timestamp=at or T0 + timedelta(seconds=n), kind=DetectionKind.SIGMA_CORRELATION, rule_id=rule_id,
        rule_title="SSH brute force", severity=severity, event_ids=(event_id,), entity=entity,
        tags=("attack.t1110.001",), security_level=security_level,
    )
