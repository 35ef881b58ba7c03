"""Opening a store from its URL: the scheme picks the back end, the rest is the back end's to read.

In: a URL from settings (`sqlite:///data/govsoc.db`). Out: an `EventStore` or `IncidentStore`.

- `BACKENDS` is the one table of back ends, scheme -> lazy `"module:Class"` strings, so a back end's
  client library is imported only when a URL asks for it.
- Every store class opens itself with `from_url(url)`; the registry reads only the scheme.
- A back end may have no incident store (`elasticsearch://`, `opensearch://` hold events and dead
  letters only); opening one there raises `StoreError` naming the schemes that have one.
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
    """Where one back end's stores live, as `"module:Class"`; `incidents` is None if it has none."""

    events: str
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
}


def open_event_store(url: str) -> EventStore:
    return cast(EventStore, _store_class(_backend(url).events).from_url(url))


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
