"""Sensors through the API: enrollment, heartbeats, and the ingest endpoint for their events.

- `POST /api/v1/sensors/enrollments` (admin): a one-time enrollment token for a named sensor of a
  tenant in the admin's scope, valid for `expires_in_hours`.
- `POST /api/v1/sensors/enroll`: the sensor presents the enrollment token as its bearer token and
  gets its own sensor token, once; a spent, expired or unknown token answers 401.
- `POST /api/v1/sensors/heartbeat` (sensor): the heartbeat, stored as from the bus; its tenant and
  sensor name are the key's, whatever the body says.
- `POST /api/v1/ingest` (sensor): a batch of events, one JSON event per line (the bus payload
  form, `Event.to_json`), optionally `Content-Encoding: gzip`. Each line is checked; an event of
  another tenant than the key's or a line that is no event is refused with its line number and
  reason, and the good ones are published on `topics.RAW` (202). Idempotent: events keep their
  deterministic ids, so a retried batch overwrites instead of duplicating. Back-pressure: over
  `ingest_max_events` lines answers 413; while more than `ingest_max_pending` raw events wait to be
  processed, 503 with Retry-After, and the sensor keeps them in its spool.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Principal, require_roles
from api.routes.identity import Identity, KeyCreated, Name, Tenant, in_scope, key_public
from config.errors import GovsocError
from config.settings import Role
from pipeline.bus import Bus, topics
from pipeline.records import Event, SensorHeartbeat, utc_now
from pipeline.store.base import SensorStore

router = APIRouter(prefix="/api/v1", tags=["sensors"])

Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
Sensor = Annotated[Principal, Depends(require_roles(Role.SENSOR))]
_enrollment_bearer = HTTPBearer(auto_error=False)
MAX_REFUSALS_SHOWN = 100


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrollmentCreate(_Strict):
    sensor: Name
    tenant: Tenant
    expires_in_hours: Annotated[int, Field(ge=1, le=24 * 30)] = 24


class HeartbeatIn(_Strict):
    version: Annotated[str, Field(max_length=64)]
    inputs: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=100)] = []
    lag_s: Annotated[float, Field(ge=0)] = 0.0
    spool_pending: Annotated[int, Field(ge=0)] = 0
    spool_bytes: Annotated[int, Field(ge=0)] = 0
    dropped: Annotated[dict[Annotated[str, Field(max_length=64)], Annotated[int, Field(ge=0)]],
                       Field(max_length=50)] = {}


class LineRefused(_Strict):
    line: int
    reason: str


class IngestResult(_Strict):
    accepted: int
    refused: int
    refusals: list[LineRefused] = Field(description=f"the first {MAX_REFUSALS_SHOWN} refused lines")


@router.post("/sensors/enrollments", response_model=KeyCreated, status_code=status.HTTP_201_CREATED)
def create_enrollment(body: EnrollmentCreate, principal: Admin, identity: Identity) -> KeyCreated:
    in_scope(principal, body.tenant)
    now = utc_now()
    token, key = identity.create_key(kind="enrollment", name=body.sensor, tenant=body.tenant, role=Role.SENSOR,
                                     actor=principal.name, now=now,
                                     expires=now + timedelta(hours=body.expires_in_hours))
    return KeyCreated(key=key_public(key), token=token)


@router.post("/sensors/enroll", response_model=KeyCreated, status_code=status.HTTP_201_CREATED,
             responses={401: {}})
def enroll(identity: Identity,
           credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_enrollment_bearer)]) -> KeyCreated:
    enrolled = identity.enroll(credentials.credentials, utc_now()) if credentials else None
    if enrolled is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing, spent or unknown enrollment token",
                            headers={"WWW-Authenticate": "Bearer"})
    token, key = enrolled
    return KeyCreated(key=key_public(key), token=token)


@router.post("/sensors/heartbeat", status_code=status.HTTP_204_NO_CONTENT)
def heartbeat(body: HeartbeatIn, request: Request, principal: Sensor) -> None:
    store: SensorStore | None = request.app.state.sensors
    if store is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this API keeps no sensor health")
    store.record_heartbeats([SensorHeartbeat(
        timestamp=utc_now(), tenant=principal.tenant, sensor=principal.name, version=body.version,
        inputs=tuple(body.inputs), lag_s=body.lag_s, spool_pending=body.spool_pending,
        spool_bytes=body.spool_bytes, dropped=dict(body.dropped),
    )])


@router.post("/ingest", response_model=IngestResult, status_code=status.HTTP_202_ACCEPTED,
             responses={413: {}, 503: {}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}}}}})
async def ingest(request: Request, principal: Sensor) -> IngestResult:
    bus: Bus | None = request.app.state.bus
    if bus is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this API takes no events")
    pending: Callable[[], int] | None = request.app.state.ingest_pending
    limits = request.app.state.ingest_limits
    if pending is not None and pending() > limits.max_pending:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the pipeline is behind: keep the batch and retry",
                            headers={"Retry-After": "5"})
    lines = _decode(await request.body(), request.headers.get("content-encoding", ""), limits.max_body)
    if len(lines) > limits.max_events:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"{len(lines)} events in one request; at most {limits.max_events}")
    accepted: list[tuple[str | None, bytes]] = []
    refusals: list[LineRefused] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        reason = _refusal(line, principal.tenant)
        if reason is None:
            accepted.append((principal.tenant, line))
        else:
            refusals.append(LineRefused(line=number, reason=reason))
    if accepted:
        bus.publish(topics.RAW, accepted)
    return IngestResult(accepted=len(accepted), refused=len(refusals), refusals=refusals[:MAX_REFUSALS_SHOWN])


def _refusal(line: bytes, tenant: str) -> str | None:
    try:
        event = Event.from_json(line)
    except GovsocError as e:
        return str(e)
    if event.tenant != tenant:
        return f"organization.id: {event.tenant!r} is not this sensor's tenant"
    return None


def _decode(body: bytes, encoding: str, max_bytes: int) -> list[bytes]:
    if encoding.strip().lower() == "gzip":
        try:  # bounded: a small bomb must not unpack past the body limit
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            body = inflater.decompress(body, max_bytes + 1)
            if len(body) > max_bytes or inflater.unconsumed_tail:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                    f"the batch unpacks to over {max_bytes} bytes")
        except (zlib.error, gzip.BadGzipFile, EOFError) as e:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"Content-Encoding gzip: {e}") from e
    elif encoding.strip() not in ("", "identity"):
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"Content-Encoding {encoding!r}: gzip or none")
    return body.split(b"\n")
