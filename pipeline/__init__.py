"""The data plane: records, bus, stores, normalisation and enrichment, dead letters.

Modules, in flow order:
- ecs: ECS field names, defined once.
- ids: deterministic ids (`stable_id`).
- records: `Event`, `DeadLetter`, `Alert`, `Incident`, `AuditRecord` and their enums.
- errors: `ParseError`, `StoreError`, `BusError`.
- bus/: the `Bus` interface (`base`), `MemoryBus` (`memory`), `KafkaBus` (`kafka`); picked by URL
  (`open_bus`).
- enrich: tenant and asset enrichment of events.
- store/: `EventStore` and `IncidentStore` interfaces (`base`) and SQLite implementations.
- ingest: the ingest worker step (bus messages -> enriched events -> store, bad ones -> dead letters).
"""
