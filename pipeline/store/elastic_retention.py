"""Retention for the Elasticsearch / OpenSearch event store: a lifecycle policy where the cluster
has one, deletion of expired daily indices where it does not.

In: an open `ElasticEventStore`, how many days to keep, and the current time. Out: a
`RetentionReport`: which mechanism, the policy's name, and the indices deleted now.

Events live in one index per tenant per UTC day (`<prefix>-events-<tenant>-YYYY.MM.DD`,
`elastic_mapping`). `apply_retention` (run by `govsoc setup --retention-days N`) asks the cluster
which lifecycle API it answers, never guessing from its name or version:
- ILM (Elasticsearch: `GET _ilm/status` answers): the policy `<prefix>-events-retention` deletes an
  index `N + 1` days after its origination date, parsed from the day in its name
  (`index.lifecycle.parse_origination_date`), so a day's index goes when its day ended N days ago,
  as by name; the events template and every existing event index get the policy.
- ISM (OpenSearch: `GET _plugins/_ism/policies` answers): the same policy in ISM's dialect, attached
  to new indices by its `ism_template` and to existing ones by `_plugins/_ism/add`. ISM ages an
  index from its creation, so an index created late (a backfill of old events) is kept up to
  that much longer than by name, never shorter.
- Neither (osmem-server, the test server; clusters with the plugin removed): expired indices are
  deleted by the day in their name, now; the daily timer in deploy/ runs the same command again.
Every branch is idempotent: a second run the same day changes nothing.

Contract of the deletion: an index is deleted only when its whole day ended more than `keep_days`
days before `now`; names that do not parse (another tool's indices under the same prefix) are
left alone. The dead-letter index is never deleted. Failures raise `StoreError` naming the URL and
index or API.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog

from config.errors import SourceLocation
from pipeline.errors import StoreError
from pipeline.store.elastic import ElasticEventStore

log = structlog.get_logger(__name__)

_DAY = re.compile(r"-(\d{4})\.(\d{2})\.(\d{2})$")
ILM_PROBE = "/_ilm/status"
ISM_PROBE = "/_plugins/_ism/policies"


class RetentionMode(StrEnum):
    ILM = "ilm"  # Elasticsearch index lifecycle management
    ISM = "ism"  # OpenSearch index state management
    DELETE = "delete"  # neither: expired daily indices deleted by name, by each run


@dataclass
class RetentionReport:
    mode: RetentionMode
    policy: str | None = None  # the lifecycle policy's name (ILM, ISM)
    deleted: list[str] = field(default_factory=list)  # indices deleted by name (DELETE)


def policy_name(store: ElasticEventStore) -> str:
    return f"{store.names.prefix}-events-retention"


def lifecycle_api(store: ElasticEventStore) -> RetentionMode:
    """Which lifecycle API the cluster answers, asked in this order: ILM, ISM, neither."""
    if store.has_api(ILM_PROBE):
        return RetentionMode.ILM
    if store.has_api(ISM_PROBE):
        return RetentionMode.ISM
    return RetentionMode.DELETE


def apply_retention(store: ElasticEventStore, keep_days: int, now: datetime,
                    on_progress: Callable[[int], None]) -> RetentionReport:
    """Install the retention of `keep_days` days by the mechanism the cluster has (see above)."""
    _check_days(store, keep_days)
    mode = lifecycle_api(store)
    if mode is RetentionMode.DELETE:
        return RetentionReport(mode, deleted=delete_expired(store, keep_days, now, on_progress))
    name = policy_name(store)
    if mode is RetentionMode.ILM:
        store.cluster_request(f"put ILM policy {name}", "PUT", f"/_ilm/policy/{name}", ilm_policy(keep_days))
        store.set_event_index_settings({"index.lifecycle.name": name,
                                        "index.lifecycle.parse_origination_date": True})
    else:
        _put_ism_policy(store, name, ism_policy(keep_days, store.names.events_pattern))
        store.cluster_request(f"attach ISM policy {name}", "POST", f"/_plugins/_ism/add/{store.names.events_pattern}",
                              {"policy_id": name})  # indices that already have it are reported, not changed
    on_progress(1)
    log.info("retention_policy_installed", mode=mode.value, policy=name, keep_days=keep_days)
    return RetentionReport(mode, policy=name)


def ilm_policy(keep_days: int) -> dict[str, Any]:
    """`PUT _ilm/policy/<name>`: delete `keep_days + 1` days after the day in the index's name began."""
    return {"policy": {
        "_meta": {"managed_by": "govsoc", "keep_days": keep_days},
        "phases": {"hot": {"min_age": "0ms", "actions": {}},
                   "delete": {"min_age": f"{keep_days + 1}d", "actions": {"delete": {}}}},
    }}


def ism_policy(keep_days: int, pattern: str) -> dict[str, Any]:
    """`PUT _plugins/_ism/policies/<name>`: delete `keep_days + 1` days after an index's creation."""
    return {"policy": {
        "description": f"govsoc events: delete after {keep_days} days",
        "default_state": "keep",
        "states": [
            {"name": "keep", "actions": [],
             "transitions": [{"state_name": "delete", "conditions": {"min_index_age": f"{keep_days + 1}d"}}]},
            {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
        ],
        "ism_template": [{"index_patterns": [pattern], "priority": 100}],
    }}


def _put_ism_policy(store: ElasticEventStore, name: str, body: Mapping[str, Any]) -> None:
    """Create the policy, or update it (ISM wants the stored version's seq_no and primary term)."""
    path = f"/_plugins/_ism/policies/{name}"
    found = store.cluster_request(f"read ISM policy {name}", "GET", path, missing_ok=True)
    if found is None:
        store.cluster_request(f"create ISM policy {name}", "PUT", path, body)
        return
    stored = found.get("policy") or {}
    if all(stored.get(key) == value for key, value in body["policy"].items()):
        return
    store.cluster_request(f"update ISM policy {name}", "PUT",
                          f"{path}?if_seq_no={int(found['_seq_no'])}&if_primary_term={int(found['_primary_term'])}",
                          body)


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
    _check_days(store, keep_days)
    expired = expired_indices(store.event_indices(), keep_days, now)
    for name in expired:
        store.delete_index(name)
        on_progress(1)
    return expired


def _check_days(store: ElasticEventStore, keep_days: int) -> None:
    if keep_days < 1:
        raise StoreError(f"retention of {keep_days} days: keep at least 1 day", SourceLocation(path=store.config.url))
