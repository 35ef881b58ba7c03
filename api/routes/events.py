"""Event search within the caller's tenant subtree: time range, field equality, full text.

Field filters are `field=<ecs.name>:<value>` query parameters (repeatable), e.g.
`?field=source.ip:203.0.113.77&field=event.outcome:failure`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from api.auth import READERS, CurrentPrincipal, require_roles
from api.schemas import EventsPublic, event_public
from config.errors import GovsocError
from pipeline.store.base import MAX_LIMIT, EventQuery, EventStore

router = APIRouter(prefix="/api/v1", tags=["events"], dependencies=[Depends(require_roles(*READERS))])


def _fields(pairs: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name:
            raise HTTPException(422, f"field filter {pair!r}: expected <ecs.name>:<value>")
        fields[name] = value
    return fields


@router.get("/events", response_model=EventsPublic)
def search_events(
    request: Request, principal: CurrentPrincipal,
    q: Annotated[str | None, Query(max_length=500)] = None,
    start: datetime | None = None, end: datetime | None = None,
    field: Annotated[list[str] | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_LIMIT * 100)] = 0,
) -> EventsPublic:
    store: EventStore = request.app.state.events
    for bound, name in ((start, "start"), (end, "end")):
        if bound is not None and bound.tzinfo is None:
            raise HTTPException(422, f"{name}: give a time zone (e.g. 2026-11-23T10:00:00+07:00)")
    query = EventQuery(start=start, end=end, fields=_fields(field or []), text=q, limit=limit, offset=offset)
    try:
        events = store.search(principal.scope, query)
        total = store.count(principal.scope, query)
    except GovsocError as e:
        raise HTTPException(422, str(e)) from e
    return EventsPublic(events=[event_public(e) for e in events], total=total)
