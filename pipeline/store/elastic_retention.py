"""Retention for the Elasticsearch / OpenSearch event store: expired daily indices are deleted.

In: an open `ElasticEventStore`, how many days to keep, and the current time. Out: the names of
the indices deleted.

Events live in one index per tenant per UTC day (`<prefix>-events-<tenant>-YYYY.MM.DD`,
`elastic_mapping`), so retention is whole-index deletion by the day in the name. This works on
every cluster alike: Elasticsearch (where ILM exists), OpenSearch (ISM) and test servers that
have neither (osmem-server). It runs from `govsoc setup --retention-days N` and from the daily
timer in deploy/ (idempotent: a second run the same day deletes nothing). ILM/ISM policies are
not installed: deleting by the name's day needs no rollover and no per-cluster dialect.

Contract: an index is deleted only when its whole day ended more than `keep_days` days before
`now`; names that do not parse (another tool's indices under the same prefix) are left alone.
The dead-letter index is never deleted. Failures raise `StoreError` naming the URL and index.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from config.errors import SourceLocation
from pipeline.errors import StoreError
from pipeline.store.elastic import ElasticEventStore

_DAY = re.compile(r"-(\d{4})\.(\d{2})\.(\d{2})$")


def expired_indices(names: list[str], keep_days: int, now: datetime) -> list[str]:
    """The names among `names` whose day ended more than `keep_days` days before `now`."""
    cutoff = now.astimezone(UTC) - timedelta(days=keep_days)
    out: list[str] = []
    for name in names:
        found = _DAY.search(name)
        if found is None:
            continue
        try:
            year, month, day = (int(part) for part in found.groups())
            day_end = datetime(year, month, day, tzinfo=UTC) + timedelta(days=1)
        except ValueError:
            continue
        if day_end <= cutoff:
            out.append(name)
    return sorted(out)


def delete_expired(store: ElasticEventStore, keep_days: int, now: datetime,
                   on_progress: Callable[[int], None]) -> list[str]:
    """Delete the store's expired event indices; `on_progress(1)` after each one."""
    if keep_days < 1:
        raise StoreError(f"retention of {keep_days} days: keep at least 1 day", SourceLocation(path=store.config.url))
    expired = expired_indices(store.event_indices(), keep_days, now)
    for name in expired:
        store.delete_index(name)
        on_progress(1)
    return expired
