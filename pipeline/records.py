"""The records every stage shares: Event, DeadLetter, Alert, Incident, AuditRecord.

- `Event` wraps one nested ECS document. It is built by `Event.create` (sensors) or
  `Event.from_json` (anything that received bytes); both validate the fields every event must have
  (`@timestamp` timezone-aware, `organization.id`, `event.id`) and raise `ParseError` otherwise.
  `Event.trusted` is `create` for a document the sensor itself built and vouches for (the log
  sensor's fast path): the same event, id and JSON, without the generic lookups.
- Ids are deterministic wherever a record can arrive twice (events, dead letters, alerts), so
  storing it again overwrites instead of duplicating.
- Times are timezone-aware UTC `datetime`s; on the wire they are ISO 8601 with `Z`.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

import orjson

from pipeline import ecs
from pipeline.errors import ParseError
from pipeline.ids import stable_id


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_iso(ts: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a `Z`, sortable as text (years padded to four digits:
    `strftime("%Y")` is not, for years before 1000)."""
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str, field_name: str = ecs.TIMESTAMP) -> datetime:
    try:
        ts = datetime.fromisoformat(text)
    except (TypeError, ValueError) as e:
        raise ParseError(f"{field_name}: not an ISO 8601 time: {text!r}") from e
    if ts.tzinfo is None:
        raise ParseError(f"{field_name}: time has no zone: {text!r}")
    return ts.astimezone(UTC)


class _Missing:
    """The type of `MISSING`: a field that is absent, as opposed to present with a null value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


def lookup(doc: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted ECS name in a nested document, or `MISSING` when it is absent.

    Walks nested objects first; a key that itself contains dots (as some log sources send) is
    found too, so `winlog.event_data.Image` and `{"winlog.event_data": {"Image": ...}}` both work.
    A field present with a null value returns None (Sigma's `|exists` needs the difference).
    """
    if dotted in doc:
        return doc[dotted]
    head, sep, rest = dotted.partition(".")
    while sep:
        child = doc.get(head)
        if isinstance(child, Mapping):
            found = lookup(child, rest)
            if found is not MISSING:
                return found
        more_head, sep, rest = rest.partition(".")
        head = f"{head}.{more_head}"
    return MISSING


def get_path(doc: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted ECS name in a nested document, or None when absent or null."""
    found = lookup(doc, dotted)
    return None if found is MISSING else found


@functools.lru_cache(maxsize=4096)
def _split(dotted: str) -> tuple[str, ...]:
    return tuple(dotted.split("."))


def set_path(doc: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a dotted ECS name in a nested document, creating objects on the way."""
    parts = _split(dotted)  # cached: parsers call this ~20 times a line (bench/replay_auth.py)
    node = doc
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def object_at(doc: dict[str, Any], *parents: str) -> dict[str, Any]:
    """The object at `parents` in a nested document, made on the way where absent or not an object,
    as `set_path` makes them (parsers fill several keys of one object through it)."""
    node = doc
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    return node


def flatten(doc: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, leaf value) pairs of a nested document; lists are leaves."""
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten(value, f"{name}.")
        else:
            yield name, value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS)


def _timestamp(doc: dict[str, Any]) -> datetime:
    """The document's `@timestamp` as aware UTC; the document keeps it as ISO text from then on."""
    raw_ts = doc.get(ecs.TIMESTAMP)
    if isinstance(raw_ts, datetime):
        if raw_ts.tzinfo is None:
            raise ParseError(f"{ecs.TIMESTAMP}: time has no zone")
        timestamp = raw_ts.astimezone(UTC)
    elif isinstance(raw_ts, str):
        timestamp = parse_iso(raw_ts)
    else:
        raise ParseError(f"{ecs.TIMESTAMP}: missing")
    doc[ecs.TIMESTAMP] = to_iso(timestamp)
    return timestamp


@dataclass(frozen=True, slots=True)
class Event:
    """One ECS event. `doc` is the whole nested document and is not to be mutated."""

    id: str
    timestamp: datetime
    tenant: str
    doc: Mapping[str, Any]

    @classmethod
    def create(cls, doc: dict[str, Any], *, id_parts: Sequence[str | int | None]) -> Event:
        """Finish a document a parser built: derive `event.id` from `id_parts` plus the tenant.

        `doc` must hold `@timestamp` (an aware datetime or ISO text) and `organization.id`.
        """
        tenant = get_path(doc, ecs.ORGANIZATION_ID)
        if not isinstance(tenant, str) or not tenant:
            raise ParseError(f"{ecs.ORGANIZATION_ID}: missing")
        event_id = stable_id(tenant, *id_parts)
        set_path(doc, ecs.EVENT_ID, event_id)
        return cls._validated(doc)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Event:
        """An event from a complete document (as stored or shipped); validates, never trusts."""
        return cls._validated(doc)

    @classmethod
    def from_json(cls, data: bytes | str) -> Event:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise ParseError(f"not JSON: {e}") from e
        if not isinstance(doc, dict):
            raise ParseError(f"an event is a JSON object, got {type(doc).__name__}")
        return cls._validated(doc)

    @classmethod
    def trusted(cls, doc: dict[str, Any], *, tenant: str, event_id: str) -> Event:
        """Finish a document this process's sensor built, as `create` would, without its lookups.

        For the log sensor's hot loop (bench/sensor.py: `create`'s generic lookups were a tenth of
        the CPU). The caller vouches for what `create` would look up: `doc["organization"]["id"]`
        is `tenant` and the document has no top-level dotted `organization.id` or `event.id` key
        (`create` would read those instead); `event_id` is `stable_id(tenant, *id_parts)`, as
        `create` derives it (`pipeline.ids.IdPrefix` computes it faster). Then the event, its id
        and its JSON are the ones `create` makes, byte for byte (tests/sensors/test_fastpath.py).
        `@timestamp` is still checked: `ParseError` as in `create`.
        """
        if not tenant:
            raise ParseError(f"{ecs.ORGANIZATION_ID}: missing")
        event = doc.get("event")
        if not isinstance(event, dict):
            event = {}
            doc["event"] = event
        event["id"] = event_id
        timestamp = _timestamp(doc)
        return cls(id=event_id, timestamp=timestamp, tenant=tenant, doc=doc)

    @classmethod
    def _validated(cls, doc: dict[str, Any]) -> Event:
        timestamp = _timestamp(doc)
        tenant = get_path(doc, ecs.ORGANIZATION_ID)
        if not isinstance(tenant, str) or not tenant:
            raise ParseError(f"{ecs.ORGANIZATION_ID}: missing")
        event_id = get_path(doc, ecs.EVENT_ID)
        if not isinstance(event_id, str) or not event_id:
            raise ParseError(f"{ecs.EVENT_ID}: missing")
        return cls(id=event_id, timestamp=timestamp, tenant=tenant, doc=doc)

    def get(self, dotted: str) -> Any:
        return get_path(self.doc, dotted)

    @property
    def message(self) -> str:
        value = self.doc.get(ecs.MESSAGE)
        return value if isinstance(value, str) else ""

    def to_json(self) -> bytes:
        return dumps(self.doc)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Input that could not become an event: the raw bytes, why, and where it came from."""

    id: str
    received: datetime
    tenant: str | None
    source: str  # a file path, a sensor and listener, a topic
    reason: str
    raw: bytes

    @classmethod
    def create(cls, *, source: str, reason: str, raw: bytes, tenant: str | None,
               position: str | int | None = None, received: datetime | None = None) -> DeadLetter:
        """`position` (a file offset, a bus offset) keeps identical raw input at two places apart."""
        return cls(
            id=stable_id("dead-letter", tenant, source, position, base64.b64encode(raw).decode()),
            received=received or utc_now(),
            tenant=tenant,
            source=source,
            reason=reason,
            raw=raw,
        )

    def to_json(self) -> bytes:
        return dumps({
            "id": self.id, "received": self.received, "tenant": self.tenant,
            "source": self.source, "reason": self.reason, "raw": self.raw,
        })

    @classmethod
    def from_json(cls, data: bytes) -> DeadLetter:
        doc = orjson.loads(data)
        return cls(id=doc["id"], received=parse_iso(doc["received"], "received"), tenant=doc["tenant"],
                   source=doc["source"], reason=doc["reason"], raw=base64.b64decode(doc["raw"]))


class Severity(IntEnum):
    """Ordered so that comparisons read naturally (`severity >= Severity.HIGH`)."""

    INFORMATIONAL = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Severity:
        return cls[label.upper()]


class DetectionKind(StrEnum):
    SIGMA = "sigma"
    SIGMA_CORRELATION = "sigma_correlation"
    ML = "ml"
    INTEL = "intel"
    SENSOR_HEALTH = "sensor_health"
    SERVICE_WATCH = "service_watch"
    INCIDENT_CLOCK = "incident_clock"  # an incident's SLA or regulatory deadline due soon or missed


@dataclass(frozen=True, slots=True)
class Alert:
    """A detection fired on some events of one tenant.

    `entity` names what the alert is about as (ECS field, value) pairs, e.g.
    `{"source.address": "203.0.113.77"}`; incidents group on it.
    """

    id: str
    tenant: str
    timestamp: datetime
    kind: DetectionKind
    rule_id: str
    rule_title: str
    severity: Severity
    event_ids: tuple[str, ...]
    entity: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    description: str = ""
    asset_id: str | None = None
    security_level: int | None = None  # of the asset concerned, 1-5, when enrichment knew it

    @staticmethod
    def make_id(tenant: str, rule_id: str, entity: Mapping[str, str], first_event_id: str) -> str:
        """Same rule, tenant, entity and first event: the same alert, however often it is replayed."""
        entity_key = "|".join(f"{k}={v}" for k, v in sorted(entity.items()))
        return stable_id("alert", tenant, rule_id, entity_key, first_event_id)

    def to_json(self) -> bytes:
        return dumps({**dataclasses.asdict(self), "severity": self.severity.label, "kind": self.kind.value})

    @classmethod
    def from_json(cls, data: bytes) -> Alert:
        doc = orjson.loads(data)
        return cls(
            id=doc["id"], tenant=doc["tenant"], timestamp=parse_iso(doc["timestamp"], "timestamp"),
            kind=DetectionKind(doc["kind"]), rule_id=doc["rule_id"], rule_title=doc["rule_title"],
            severity=Severity.from_label(doc["severity"]), event_ids=tuple(doc["event_ids"]),
            entity=dict(doc["entity"]), tags=tuple(doc["tags"]), description=doc["description"],
            asset_id=doc.get("asset_id"), security_level=doc.get("security_level"),
        )


class IncidentState(StrEnum):
    NEW = "new"
    TRIAGE = "triage"
    IN_PROGRESS = "in_progress"
    CONTAINED = "contained"
    RESOLVED = "resolved"
    CLOSED = "closed"
    FALSE_POSITIVE = "false_positive"

    @property
    def is_open(self) -> bool:
        return self not in (IncidentState.RESOLVED, IncidentState.CLOSED, IncidentState.FALSE_POSITIVE)


@dataclass(frozen=True, slots=True)
class Incident:
    """Alerts of one tenant about one entity and detection, grouped for one person to work."""

    id: str
    tenant: str
    title: str
    severity: Severity
    state: IncidentState
    rule_id: str
    entity: Mapping[str, str]
    first_seen: datetime
    last_seen: datetime
    alert_count: int
    created: datetime
    updated: datetime
    tags: tuple[str, ...] = ()
    assignee: str | None = None
    asset_id: str | None = None
    responded: datetime | None = None  # the first action of a person (first-response SLA)
    resolved: datetime | None = None  # when the response ended (resolved or false positive)
    reported: datetime | None = None  # when an agency reported it (acknowledgement clock)
    clocks_met: Mapping[str, datetime] = field(default_factory=dict)  # regulatory clock id -> when met


@dataclass(frozen=True, slots=True)
class IncidentComment:
    """A note a person left on an incident (ghi chú); comments are never edited or removed."""

    id: str
    incident_id: str
    tenant: str
    author: str
    text: str
    created: datetime


@dataclass(frozen=True, slots=True)
class StateChange:
    """One step of an incident's lifecycle: who moved it from which state to which, when and why."""

    incident_id: str
    tenant: str
    from_state: IncidentState
    to_state: IncidentState
    actor: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Suppression:
    """A time-window exception: alerts it matches are kept but not grouped, until `expires`.

    Matches alerts of `rule_id` (any when None) whose entity holds every pair of `entity`, raised
    in `tenant` or below it (the tree decides "below").
    """

    id: str
    tenant: str
    reason: str
    created_by: str
    created: datetime
    expires: datetime | None = None
    rule_id: str | None = None
    entity: Mapping[str, str] = field(default_factory=dict)

    def is_active(self, now: datetime) -> bool:
        return self.expires is None or now < self.expires


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry of the append-only audit trail; `hash` chains it to the entry before it.

    `hash = sha256(prev_hash + canonical JSON of the other fields)`, so changing or removing any
    entry breaks every hash after it (see `IncidentStore.verify_audit`).
    """

    seq: int
    timestamp: datetime
    actor: str
    tenant: str
    action: str
    object_type: str
    object_id: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class SensorHeartbeat:
    """What a sensor reports every few seconds: alive, which version, how far behind, what it lost.

    Sensors publish it on `topics.HEARTBEATS`; the SOC keeps the newest per sensor and shows it
    (and raises an alert when one falls silent).
    """

    timestamp: datetime
    tenant: str
    sensor: str
    version: str
    inputs: tuple[str, ...] = ()
    lag_s: float = 0.0  # since the spool was last empty
    spool_pending: int = 0
    spool_bytes: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)  # spool_full, torn, udp_kernel
    counts: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return dumps({**dataclasses.asdict(self), "inputs": list(self.inputs)})

    @classmethod
    def from_json(cls, data: bytes) -> SensorHeartbeat:
        """Raises `ParseError` naming the field for anything that is not a heartbeat."""
        try:
            doc = orjson.loads(data)
            return cls(
                timestamp=parse_iso(doc["timestamp"], "timestamp"), tenant=str(doc["tenant"]),
                sensor=str(doc["sensor"]), version=str(doc.get("version", "")),
                inputs=tuple(str(i) for i in doc.get("inputs", ())), lag_s=float(doc.get("lag_s", 0.0)),
                spool_pending=int(doc.get("spool_pending", 0)), spool_bytes=int(doc.get("spool_bytes", 0)),
                dropped={str(k): int(v) for k, v in dict(doc.get("dropped", {})).items()},
                counts={str(k): int(v) for k, v in dict(doc.get("counts", {})).items()},
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise ParseError(f"not a sensor heartbeat: {e!r}") from e
