"""`GET /api/v1/sensors`: the fleet within the caller's tenant subtree, with each sensor's health.

Every configured sensor is listed, with `ok`, `silent` (no heartbeat for the configured time) or
`never` (no heartbeat yet), and what its last heartbeat said: version, inputs, lag, spool, drops.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from api.auth import READERS, CurrentPrincipal, require_roles
from config.settings import SensorWatchSettings
from config.tenants import TenantTree
from detections.sensor_watch import sensor_statuses
from pipeline.records import utc_now
from pipeline.store.base import SensorStore

router = APIRouter(prefix="/api/v1", tags=["sensors"], dependencies=[Depends(require_roles(*READERS))])


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


class SensorsPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sensors: list[SensorPublic]


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
        )
        for s in statuses
    ])
