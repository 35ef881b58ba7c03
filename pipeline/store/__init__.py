"""Stores: where events, dead letters, alerts, incidents and the audit trail live.

- base: the `EventStore` and `IncidentStore` protocols, their queries and their contract.
- sqlite_db: what both SQLite stores share (WAL, one locked writer, per-thread readers, schema).
- sqlite_events: `SqliteEventStore` (events with FTS5 full text, dead letters).
- sqlite_incidents: `SqliteIncidentStore` (alerts, incidents, the hash-chained audit trail).
- elastic, elastic_client, elastic_mapping, elastic_query, elastic_bulk: `ElasticEventStore`, the
  scale-out event store on Elasticsearch or OpenSearch (daily indices per tenant, ECS templates).
- registry: `open_event_store(url)`, `open_incident_store(url)`, picked by URL scheme.
"""

from pipeline.store.base import AlertQuery, EventQuery, EventStore, IncidentQuery, IncidentStore
from pipeline.store.registry import open_event_store, open_incident_store

__all__ = ["AlertQuery", "EventQuery", "EventStore", "IncidentQuery", "IncidentStore",
           "open_event_store", "open_incident_store"]
