"""`GET /api/v1/sensors`: the fleet within the caller's tenant subtree, with each sensor's health;
`GET /api/v1/sensors/{sensor}/dead-letters`: what one sensor could not turn into events.

Every configured sensor is listed, with `ok`, `silent` (no heartbeat for the configured time) or
`never` (no heartbeat yet), and what its last heartbeat said: version, inputs, lag, spool, drops,
and how many dead letters it has counted since it started (`counts.dead_letters`, from sensors
that ship to a bus; the HTTP heartbeat carries no counts).

Dead letters: a sensor's reach the SOC on the dead-letter topic and the ingest step keeps them in
the event store (`EventStore.dead_letters`), under the sensor's tenant and with their source (a
file path, or `syslog+udp://host:port from sender`). A dead letter does not name its sensor, so
the route attributes to a sensor the letters of its tenant whose source one of its heartbeat's
inputs produces (a file a `file:` glob matches, a syslog listener), among the newest
`MAX_SCANNED` of that tenant; `is_scan_truncated` says when older ones were not searched.
A sensor is found by its name among the configured sensors and the heartbeats in the caller's
scope (404 otherwise, a sibling's included); a name two tenants in scope use needs `?tenant=`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict

from api.auth import READERS, CurrentPrincipal, Principal, require_roles
from config.settings import SensorWatchSettings
from config.tenants import TenantScope, TenantTree
from detections.sensor_watch import sensor_statuses
from pipeline.records import DeadLetter, SensorHeartbeat, utc_now
from pipeline.store.base import EventStore, SensorStore

router = APIRouter(prefix="/api/v1", tags=["sensors"], dependencies=[Depends(require_roles(*READERS))])

MAX_SCANNED = 10_000  # newest dead letters of the sensor's tenant searched for the sensor's (the store's page cap)
DEAD_LETTERS_COUNT = "dead_letters"  # the heartbeat count a log sensor reports (sensors.agent)


class SensorPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str
    sensor: str
    kind: str
    state: str
    last_seen: datetime | None
    version: str | None
    inputs: list[str]
    lag_s: float | None
    spool_pending: int | None
    dropped: dict[str, int]
    dead_letters: int | None = None  # counted by the sensor since it started, when its heartbeat says


class SensorsPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sensors: list[SensorPublic]


class DeadLetterPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    received: datetime
    source: str
    reason: str
    raw: str  # the raw input as text; bytes that are not UTF-8 as \\xNN escapes


class DeadLettersPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str
    sensor: str
    total: int  # the sensor's dead letters among those searched
    offset: int
    limit: int
    is_scan_truncated: bool  # the tenant has more dead letters than were searched (older ones)
    reported: int | None  # what the sensor's last heartbeat counted (since it started)
    dead_letters: list[DeadLetterPublic]


@router.get("/sensors", response_model=SensorsPublic)
def list_sensors(request: Request, principal: CurrentPrincipal) -> SensorsPublic:
    tree: TenantTree = request.app.state.tree
    store: SensorStore = request.app.state.sensors
    watch: SensorWatchSettings = request.app.state.sensor_watch
    tenants = [t.id for t in tree if t.id in principal.scope]
    statuses = sensor_statuses(tree, tenants, store.latest_heartbeats(principal.scope), utc_now(),
                               timedelta(seconds=watch.silent_after_s))
    return SensorsPublic(sensors=[
        SensorPublic(
            tenant=s.tenant, sensor=s.sensor, kind=s.kind, state=s.state, last_seen=s.last_seen,
            version=s.heartbeat.version if s.heartbeat else None,
            inputs=list(s.heartbeat.inputs) if s.heartbeat else [],
            lag_s=s.heartbeat.lag_s if s.heartbeat else None,
            spool_pending=s.heartbeat.spool_pending if s.heartbeat else None,
            dropped=dict(s.heartbeat.dropped) if s.heartbeat else {},
            dead_letters=s.heartbeat.counts.get(DEAD_LETTERS_COUNT) if s.heartbeat else None,
        )
        for s in statuses
    ])


@dataclass(frozen=True, slots=True)
class _Found:
    tenant: str
    heartbeat: SensorHeartbeat | None


@router.get("/sensors/{sensor}/dead-letters", response_model=DeadLettersPublic, responses={404: {}, 409: {}})
def sensor_dead_letters(
    sensor: str, request: Request, principal: CurrentPrincipal,
    tenant: Annotated[str | None, Query(max_length=128, description="the sensor's tenant, when two use its name")]
    = None,
    offset: Annotated[int, Query(ge=0, le=MAX_SCANNED)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeadLettersPublic:
    """The sensor's dead letters, newest first: reason, raw line, source and when received."""
    found = _find_sensor(request, principal, sensor, tenant)
    events: EventStore = request.app.state.events
    scope = TenantScope(root=found.tenant, tenant_ids=frozenset({found.tenant}))
    scanned = events.dead_letters(scope, limit=MAX_SCANNED)
    inputs = found.heartbeat.inputs if found.heartbeat else ()
    mine = [letter for letter in scanned if letter.tenant == found.tenant and is_from_inputs(letter, inputs)]
    return DeadLettersPublic(
        tenant=found.tenant, sensor=sensor, total=len(mine), offset=offset, limit=limit,
        is_scan_truncated=len(scanned) >= MAX_SCANNED,
        reported=found.heartbeat.counts.get(DEAD_LETTERS_COUNT) if found.heartbeat else None,
        dead_letters=[DeadLetterPublic(id=d.id, received=d.received, source=d.source, reason=d.reason,
                                       raw=d.raw.decode("utf-8", "backslashreplace"))
                      for d in mine[offset:offset + limit]],
    )


def _find_sensor(request: Request, principal: Principal, sensor: str, tenant: str | None) -> _Found:
    """The sensor of that name (and tenant) in the caller's scope: configured, or known by a heartbeat."""
    tree: TenantTree = request.app.state.tree
    store: SensorStore | None = request.app.state.sensors
    beats = {(b.tenant, b.sensor): b for b in (store.latest_heartbeats(principal.scope) if store else [])}
    configured = {(t.id, s.id) for t in tree if t.id in principal.scope for s in t.sensors}
    matches = sorted(key for key in configured | beats.keys() if key[1] == sensor and key[0] in principal.scope
                     and (tenant is None or key[0] == tenant))
    if not matches:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no sensor {sensor!r} in your scope")
    if len(matches) > 1:
        raise HTTPException(status.HTTP_409_CONFLICT, f"sensor {sensor!r} is in {len(matches)} tenants "
                            f"({', '.join(t for t, _ in matches)}): name one with ?tenant=")
    return _Found(matches[0][0], beats.get(matches[0]))


def is_from_inputs(letter: DeadLetter, inputs: tuple[str, ...]) -> bool:
    """True when one of a sensor's inputs (as its heartbeat names them) made `letter`: a file a
    `file:<glob>` matches (the tailer names files by their resolved path), or a syslog listener."""
    for spec in inputs:
        if spec.startswith("file:"):
            if fnmatch.fnmatchcase(letter.source, spec.removeprefix("file:")):
                return True
        elif spec.startswith("syslog+") and letter.source.startswith(spec + " from "):
            return True
    return False
