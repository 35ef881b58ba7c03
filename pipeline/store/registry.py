"""Opening a store from its URL: the scheme picks the back end, the rest is the back end's to read.

In: a URL from settings (`sqlite:///data/govsoc.db`). Out: an `EventStore` or `IncidentStore`.

- `BACKENDS` is the one table of back ends, scheme -> lazy `"module:Class"` strings, so a back end's
  client library is imported only when a URL asks for it.
- Every store class opens itself with `from_url(url)`; the registry reads only the scheme.
- A back end need not have every store: `elasticsearch://` and `opensearch://` hold events and
  dead letters only; `postgresql://` (or `postgres://`, the same back end) holds incidents, alerts
  and the audit trail only, while events stay on `sqlite:///` or a search cluster and sensor
  heartbeats on `sqlite:///`. Each interface has its own URL in settings, so a deployment mixes
  them. Opening a store a back end lacks raises `StoreError` naming the schemes that have one.
- An unknown scheme raises `StoreError` naming the URL (password hidden) and the known schemes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from pipeline.errors import StoreError
from pipeline.store.base import EventStore, IncidentStore, SensorStore


@dataclass(frozen=True, slots=True)
class StoreBackend:
    """Where one back end's stores live, as `"module:Class"`; None where it has no such store."""

    events: str | None = None
    incidents: str | None = None
    sensors: str | None = None


BACKENDS: dict[str, StoreBackend] = {
    "sqlite": StoreBackend(
        events="pipeline.store.sqlite_events:SqliteEventStore",
        incidents="pipeline.store.sqlite_incidents:SqliteIncidentStore",
        sensors="pipeline.store.sqlite_sensors:SqliteSensorStore",
    ),
    # One class for both: the scheme says which media types and product check the client uses
    # (pipeline/store/elastic_client.py).
    "elasticsearch": StoreBackend(events="pipeline.store.elastic:ElasticEventStore"),
    "opensearch": StoreBackend(events="pipeline.store.elastic:ElasticEventStore"),
    # libpq takes both spellings of the scheme; incidents only (events need full text and volume).
    "postgresql": StoreBackend(incidents="pipeline.store.postgres_incidents:PostgresIncidentStore"),
    "postgres": StoreBackend(incidents="pipeline.store.postgres_incidents:PostgresIncidentStore"),
}


def open_event_store(url: str) -> EventStore:
    target = _backend(url).events
    if target is None:
        having = ", ".join(f"{name}://" for name, backend in sorted(BACKENDS.items()) if backend.events)
        raise StoreError(f"store URL {redacted(url)!r} holds no events: events need one of {having}")
    return cast(EventStore, _store_class(target).from_url(url))


def open_incident_store(url: str) -> IncidentStore:
    target = _backend(url).incidents
    if target is None:
        having = ", ".join(f"{name}://" for name, backend in sorted(BACKENDS.items()) if backend.incidents)
        raise StoreError(f"store URL {redacted(url)!r} holds events only: incidents need one of {having}")
    return cast(IncidentStore, _store_class(target).from_url(url))


def open_sensor_store(url: str) -> SensorStore:
    target = _backend(url).sensors
    if target is None:
        having = ", ".join(f"{name}://" for name, backend in sorted(BACKENDS.items()) if backend.sensors)
        raise StoreError(f"store URL {redacted(url)!r} keeps no sensor heartbeats: use one of {having}")
    return cast(SensorStore, _store_class(target).from_url(url))


def _backend(url: str) -> StoreBackend:
    scheme, sep, _ = url.partition("://")
    backend = BACKENDS.get(scheme) if sep else None
    if backend is None:
        known = ", ".join(f"{name}://" for name in sorted(BACKENDS))
        raise StoreError(f"unknown store URL {redacted(url)!r}: known schemes are {known}")
    return backend


def _store_class(target: str) -> Any:
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def redacted(url: str) -> str:
    """`url` with any password replaced by `***`, fit for an error message or a log."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))
    except ValueError:
        return "<unparseable URL>"
