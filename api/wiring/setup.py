"""`govsoc setup`: create what the back ends need before any worker starts, idempotently.

In: `Settings` (bus and store URLs). Out: a `SetupReport` of what exists now.

- Bus: on `kafka://`, every topic of `pipeline.bus.topics.ALL` with the URL's `partitions` and
  `replication_factor`; an existing topic keeps its partition count (Kafka cannot shrink one, and
  growing one would move keys between partitions under running detect workers: do that by hand,
  with the workers stopped). The in-process bus needs nothing.
- Stores: opening each store creates what it lacks: the search cluster's index templates
  (refusing a newer template version), SQLite and PostgreSQL tables, the playbook-run, report,
  threat-intelligence and identity stores beside them. Opening twice changes nothing.
- Playbook connectors (`playbooks.connectors`) are built once and dropped: a bad one, or a secret
  file that is missing, is a `ConfigError` now, before any worker starts. Nothing is sent.
- Retention (optional): on a search store, an ILM or ISM policy of `retention_days` where the
  cluster answers that API, else event indices older than that are deleted now
  (`pipeline.store.elastic_retention`); on SQLite, retention is not this command's.

Nothing is deleted but expired indices; every failure raises `GovsocError` naming the URL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from api.reports import open_report_store
from api.wiring.runtime import build_identity, build_playbook_runner, build_runtime
from config.settings import Settings
from pipeline.bus import topics
from pipeline.bus.keys import KeyedBus
from pipeline.records import utc_now
from pipeline.store.registry import redacted

SETUP_STEPS = 3  # bus, stores, retention: the total of `on_progress` calls


@dataclass
class SetupReport:
    bus: str
    topics: dict[str, int] = field(default_factory=dict)  # topic -> partitions (Kafka only)
    stores: list[str] = field(default_factory=list)  # redacted URLs opened (and so created)
    templates: list[str] = field(default_factory=list)
    expired_indices: list[str] = field(default_factory=list)
    retention: str | None = None  # "ilm", "ism" (a policy) or "delete" (by name, each run)


def setup_backends(settings: Settings, retention_days: int | None,
                   on_progress: Callable[[int], None]) -> SetupReport:
    """Create topics, templates and tables; delete expired indices when `retention_days` is set."""
    report = SetupReport(bus=redacted(settings.pipeline.bus_url))
    runtime = build_runtime(settings)
    try:
        bus = runtime.bus.inner if isinstance(runtime.bus, KeyedBus) else runtime.bus
        # the scale-out clients are imported only when the URLs ask for them: a plain install
        # (no `govsoc[scale]`) runs every command on the embedded back end
        if settings.pipeline.bus_url.startswith("kafka://"):
            from pipeline.bus.kafka import KafkaBus

            if isinstance(bus, KafkaBus):
                bus.ensure_topics(topics.ALL)
                report.topics = bus.partition_counts(topics.ALL)
        on_progress(1)
        build_playbook_runner(runtime)  # creates the run tables beside the incidents; checks the connectors
        open_report_store(settings.incidents_url, settings.data_dir).close()
        build_identity(settings, runtime.incidents)
        report.stores = sorted({redacted(url) for url in (settings.events_url, settings.incidents_url,
                                                          settings.sensors_url)})
        on_progress(1)
        if settings.events_url.startswith(("elasticsearch://", "opensearch://")):
            from pipeline.store.elastic import ElasticEventStore
            from pipeline.store.elastic_retention import apply_retention

            if isinstance(runtime.events, ElasticEventStore):
                names = runtime.events.names
                report.templates = [names.events_template, names.dead_letters_template]
                if retention_days is not None:
                    retention = apply_retention(runtime.events, retention_days, utc_now(), on_progress=lambda n: None)
                    report.retention, report.expired_indices = retention.mode.value, retention.deleted
        on_progress(1)
    finally:
        runtime.close()
    return report
