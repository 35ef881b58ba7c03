"""ElasticEventStore: the scale-out EventStore on Elasticsearch or OpenSearch (`elasticsearch://`, `opensearch://`).

In: batches of validated `Event`s and `DeadLetter`s from the ingest step. Out: pages of them for
search, hunts and the console, always limited to the caller's `TenantScope`.

Contract (as `pipeline.store.base`; the same contract suite runs against this store and SQLite):
- `write` upserts by `event.id` (`_id` of a bulk `index`) and returns how many ids were new,
  counted exactly from the cluster's per-item `created`/`updated` answers. Within one batch the
  last copy of an id wins. An event whose day changed (a re-parse with a corrected time) is
  moved: the copies under its id in other day indices of its tenant are deleted in the same call
  (copies written less than a refresh interval earlier are not yet visible to that sweep).
- A batch is not one transaction: events the cluster refuses for their content (mapping errors,
  a tenant id that cannot name an index, a document that is not JSON) raise `UnindexableEvents`
  naming them, after every other event of the batch was written, so the caller can dead-letter
  exactly those. Items refused for load (429, 5xx) are retried with back-off (`elastic_bulk`);
  if they still fail, `StoreError` says so and the batch may be written again.
- Reads see what was refreshed: with `refresh=false` (the default) a write becomes searchable
  within the index's refresh interval; `refresh=wait_for` makes `write` return only then.
- Tenant isolation is in every query (`elastic_query`), and every event read back is checked
  against the scope once more: a hit outside it raises instead of leaking.
- Layout, mappings and templates: `elastic_mapping`. URL, client and OpenSearch: `elastic_client`.
- Dead letters are kept by id, first copy wins (a bulk `create`; 409 means it existed).
- Every client failure leaves as `StoreError` naming the URL (password hidden) and the operation.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import structlog
from elasticsearch import ApiError, Elasticsearch, TransportError

from config.errors import SourceLocation
from config.tenants import TenantScope
from pipeline.errors import ParseError, RefusedEvents, StoreError
from pipeline.records import DeadLetter, Event, parse_iso
from pipeline.store import elastic_bulk
from pipeline.store.base import EventQuery
from pipeline.store.elastic_bulk import BulkOp, ItemResult, RetryPolicy
from pipeline.store.elastic_client import ElasticConfig, make_client
from pipeline.store.elastic_mapping import (
    TEMPLATE_VERSION,
    IndexNames,
    dead_letters_template,
    events_template,
)
from pipeline.store.elastic_query import (
    DEAD_LETTER_SORT,
    dead_letter_query,
    event_query,
    event_sort,
    iso_time,
    page,
)

log = structlog.get_logger(__name__)

_NO_HANDLER = (400, 404, 405, 501)  # how clusters (and test servers) answer an API they lack
_TEMPLATE_KEYS = frozenset({"index_patterns", "template", "composed_of", "priority", "version", "_meta"})
_JSON_HEADERS = {"accept": "application/json", "content-type": "application/json"}
RESULT_WINDOW = 10_000  # index.max_result_window's default: from + size may not pass it
_SHOWN_IDS = 20


class UnindexableEvents(RefusedEvents):
    """Events of a batch the cluster refused for their content; the rest of the batch was written.

    `reasons` maps each refused event id to why; `new` counts the new ids among those written.
    """

    def __init__(self, reasons: Mapping[str, str], new: int, location: SourceLocation | None = None) -> None:
        shown = "; ".join(f"{event_id}: {reason}" for event_id, reason in list(reasons.items())[:_SHOWN_IDS])
        more = f"; and {len(reasons) - _SHOWN_IDS} more" if len(reasons) > _SHOWN_IDS else ""
        super().__init__(dict(reasons), new=new, written=True,
                         message=f"{len(reasons)} event(s) not indexable, to dead-letter: {shown}{more}")
        self.location = location


class ElasticEventStore:
    """Events and dead letters in an Elasticsearch or OpenSearch cluster; safe to share between threads."""

    def __init__(self, config: ElasticConfig, retry: RetryPolicy | None = None) -> None:
        self.config = config
        self.names = IndexNames(config.prefix)
        self._retry = retry or RetryPolicy()
        self._where = SourceLocation(path=config.url)
        self._refresh = None if config.refresh == "false" else config.refresh
        self._client: Elasticsearch = make_client(config)
        self._closed = False
        try:
            self._install_templates()
        except BaseException:
            self._client.close()
            raise

    @classmethod
    def from_url(cls, url: str) -> ElasticEventStore:
        return cls(ElasticConfig.from_url(url))

    # --- events -----------------------------------------------------------------------------

    def write(self, events: Sequence[Event]) -> int:
        """Upsert the batch; returns how many ids were not stored before (see the module docstring)."""
        latest = {event.id: event for event in events}  # the last copy of an id wins, as in SQLite
        refused: dict[str, str] = {}
        ops: list[BulkOp] = []
        tenants: dict[str, str] = {}
        for event in latest.values():
            op = self._index_op(event, refused)
            if op is not None:
                ops.append(op)
                tenants[event.id] = event.tenant
        results = self._send("write events", ops)
        self._raise_if_busy("events", results)
        refused.update((item.op.id, item.error) for item in results if not item.is_ok)
        written = [item for item in results if item.is_ok]
        moved = self._delete_other_copies(written, tenants)
        new = sum(1 for item in written if item.result == "created" and item.op.id not in moved)
        if refused:
            log.warning("events_unindexable", count=len(refused), written=len(written))
            raise UnindexableEvents(refused, new, self._where)
        return new

    def search(self, scope: TenantScope, query: EventQuery) -> list[Event]:
        limit, offset = page(query.limit, query.offset)
        body: dict[str, Any] = {"query": event_query(scope, query), "sort": event_sort(query.oldest_first)}
        if limit == 0:
            return []
        if offset + limit <= RESULT_WINDOW:
            hits = self._hits("search events", size=limit, from_=offset, **body)
        else:
            after = self._skip(body, offset)
            hits = [] if after is None else self._hits("search events", size=limit, search_after=after, **body)
        return [self._event(hit, scope) for hit in hits]

    def count(self, scope: TenantScope, query: EventQuery) -> int:
        with self._calling("count events"):
            response = self._client.count(index=self.names.events_pattern, query=event_query(scope, query))
        return int(response["count"])

    # --- dead letters -----------------------------------------------------------------------

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        """Store letters not stored before (by id); returns how many were new."""
        ops = [BulkOp("create", self.names.dead_letters, letter.id, _dead_letter_source(letter))
               for letter in letters]
        results = self._send("write dead letters", ops)
        self._raise_if_busy("dead letters", results)
        failed = [item for item in results if not item.is_ok]
        if failed:
            raise StoreError(f"{len(failed)} dead letter(s) refused: "
                             + "; ".join(f"{item.op.id}: {item.error}" for item in failed[:_SHOWN_IDS]), self._where)
        return sum(1 for item in results if item.status == 201)

    def dead_letters(self, scope: TenantScope, limit: int = 100) -> list[DeadLetter]:
        """Newest received first. Letters with no tenant are seen only by an all-tenant scope."""
        limit, _ = page(limit, 0)
        if limit == 0:
            return []
        hits = self._hits("read dead letters", index=self.names.dead_letters, ignore_unavailable=True, size=limit,
                          query=dead_letter_query(scope), sort=DEAD_LETTER_SORT)
        return [_dead_letter(hit["_source"]) for hit in hits]

    def count_dead_letters(self, scope: TenantScope) -> int:
        with self._calling("count dead letters"):
            response = self._client.count(index=self.names.dead_letters, ignore_unavailable=True,
                                          query=dead_letter_query(scope))
        return int(response["count"])

    def close(self) -> None:
        """Close the client's connections; idempotent. Reads or writes after this raise `StoreError`."""
        if not self._closed:
            self._closed = True
            self._client.close()

    # --- administration (govsoc setup, retention) ---------------------------------------------

    def event_indices(self) -> list[str]:
        """The names of this deployment's event indices (`<prefix>-events-*`), sorted."""
        with self._calling(f"list indices {self.names.events_pattern}"):
            found = self._client.indices.get(index=self.names.events_pattern, expand_wildcards="all")
        return sorted(found)

    def delete_index(self, name: str) -> None:
        """Delete one event index by its exact name (never a pattern)."""
        if not name.startswith(f"{self.names.prefix}-events-") or "*" in name:
            raise StoreError(f"refusing to delete {name!r}: not one of this store's event indices", self._where)
        with self._calling(f"delete index {name}"):
            self._client.indices.delete(index=name)

    def has_api(self, path: str) -> bool:
        """Whether the cluster answers `GET path` (asked, never guessed from a version or a name):
        200 yes; 400, 404, 405 or 501 ("no handler found") no; anything else raises `StoreError`."""
        with self._calling(f"ask for GET {path}"):
            response = self._client.options(ignore_status=_NO_HANDLER).perform_request(
                "GET", path, headers=_JSON_HEADERS)
        return response.meta.status == 200

    def cluster_request(self, what: str, method: str, path: str, body: Mapping[str, Any] | None = None,
                        *, missing_ok: bool = False) -> Mapping[str, Any] | None:
        """A cluster API the typed client lacks (ILM and ISM policies); the JSON answer, or None
        for a 404 when `missing_ok`. Failures raise `StoreError` naming `what`."""
        client = self._client.options(ignore_status=404) if missing_ok else self._client
        with self._calling(what):
            response = client.perform_request(method, path, headers=_JSON_HEADERS, body=body)
        if response.meta.status == 404:
            return None
        answer: Mapping[str, Any] = response.body if isinstance(response.body, Mapping) else {}
        return answer

    def set_event_index_settings(self, settings: Mapping[str, Any]) -> None:
        """Add `settings` to the events index template (new indices) and to every existing event
        index. The template keeps its version: a newer govsoc's template replaces it, and then
        `govsoc setup --retention-days` must run again (docs/deploy.md runs it after upgrades)."""
        name = self.names.events_template
        with self._calling(f"read index template {name}"):
            found = self._client.indices.get_index_template(name=name)
        template = {key: value for key, value in found["index_templates"][0]["index_template"].items()
                    if key in _TEMPLATE_KEYS}  # not what a cluster adds (dates, ...)
        inner = dict(template.get("template") or {})
        inner["settings"] = {**(inner.get("settings") or {}), **settings}
        template["template"] = inner
        with self._calling(f"update index template {name}"):
            self._client.indices.put_index_template(name=name, **template)
        if self.event_indices():
            with self._calling(f"update the settings of {self.names.events_pattern}"):
                self._client.indices.put_settings(index=self.names.events_pattern, settings=dict(settings))

    # --- internals --------------------------------------------------------------------------

    def _install_templates(self) -> None:
        """Put each index template that is missing or older; refuse one a newer govsoc wrote."""
        for name, body in ((self.names.events_template, events_template(self.names)),
                           (self.names.dead_letters_template, dead_letters_template(self.names))):
            with self._calling(f"read index template {name}"):
                found = self._client.options(ignore_status=404).indices.get_index_template(name=name)
            versions = [entry["index_template"].get("version") or 0 for entry in found.get("index_templates", [])]
            if versions and versions[0] > TEMPLATE_VERSION:
                raise StoreError(f"index template {name} is at version {versions[0]}, this govsoc writes "
                                 f"version {TEMPLATE_VERSION} (written by a newer govsoc?)", self._where)
            if not versions or versions[0] < TEMPLATE_VERSION:
                with self._calling(f"install index template {name}"):
                    self._client.indices.put_index_template(name=name, **body)
                log.info("index_template_installed", template=name, version=TEMPLATE_VERSION)

    def _index_op(self, event: Event, refused: dict[str, str]) -> BulkOp | None:
        index = self.names.events(event.tenant, event.timestamp)
        if index is None:
            refused[event.id] = f"tenant {event.tenant!r} cannot name an index (a-z, 0-9, _ and - only)"
            return None
        try:
            return BulkOp("index", index, event.id, event.to_json())
        except TypeError as e:  # orjson.JSONEncodeError is a TypeError
            refused[event.id] = f"the document is not storable as JSON: {e}"
            return None

    def _send(self, what: str, ops: Sequence[BulkOp]) -> list[ItemResult]:
        if not ops:
            return []

        def post(lines: list[bytes]) -> Mapping[str, Any]:
            # Pre-serialised NDJSON lines: the client's NdjsonSerializer passes bytes through, but the
            # annotation of `operations` names only mappings, hence the ignore.
            response = self._client.bulk(operations=lines, refresh=self._refresh,  # type: ignore[arg-type]
                                         filter_path=elastic_bulk.FILTER_PATH)
            body: Mapping[str, Any] = response.body
            return body

        with self._calling(what):
            return elastic_bulk.send(post, ops, self._retry)

    def _raise_if_busy(self, what: str, results: Sequence[ItemResult]) -> None:
        busy = [item for item in results if item.is_retryable]
        if busy:
            statuses = sorted({item.status for item in busy})
            raise StoreError(f"the cluster did not take {len(busy)} of {len(results)} {what} after "
                             f"{self._retry.attempts} attempts (status {statuses}); the batch may be written again",
                             self._where)

    def _delete_other_copies(self, written: Sequence[ItemResult], tenants: Mapping[str, str]) -> set[str]:
        """Delete copies of the written ids in other indices of the same tenant; returns their ids."""
        if not written:
            return set()
        by_index: dict[str, list[str]] = {}
        by_tenant: dict[str, list[str]] = {}
        for item in written:
            by_index.setdefault(item.op.index, []).append(item.op.id)
            by_tenant.setdefault(tenants[item.op.id], []).append(item.op.id)
        query = {"bool": {
            "should": [_ids_where("organization.id", tenant, ids) for tenant, ids in by_tenant.items()],
            "minimum_should_match": 1,
            "must_not": [_ids_where("_index", index, ids) for index, ids in by_index.items()],
        }}
        hits = self._hits("find moved events", size=RESULT_WINDOW, source=False, query=query,
                          filter_path="hits.hits._index,hits.hits._id")
        if not hits:
            return set()
        results = self._send("delete moved events", [BulkOp("delete", hit["_index"], hit["_id"]) for hit in hits])
        self._raise_if_busy("moved events", results)
        log.info("events_moved", count=len(hits))
        return {hit["_id"] for hit in hits}

    def _skip(self, body: Mapping[str, Any], offset: int) -> list[Any] | None:
        """The sort values of hit number `offset` (from 1), walked with `search_after`; None if fewer."""
        after: list[Any] | None = None
        while offset > 0:
            size = min(offset, RESULT_WINDOW)
            extra = {} if after is None else {"search_after": after}
            hits = self._hits("page through events", size=size, source=False, **extra, **body)
            if len(hits) < size:
                return None
            after = hits[-1]["sort"]
            offset -= size
        return after

    def _hits(self, what: str, **request: Any) -> list[dict[str, Any]]:
        request.setdefault("index", self.names.events_pattern)
        with self._calling(what):
            response = self._client.search(track_total_hits=False, **request)
        hits: list[dict[str, Any]] = response.body.get("hits", {}).get("hits", [])
        return hits

    def _event(self, hit: Mapping[str, Any], scope: TenantScope) -> Event:
        try:
            event = Event.from_document(hit["_source"])
        except (ParseError, KeyError, TypeError) as e:
            raise StoreError(f"{hit.get('_index')}/{hit.get('_id')}: not an event: {e}", self._where) from e
        if event.tenant not in scope:  # the query filters on the tenant; this only guards the mapping
            raise StoreError(f"{hit.get('_index')}/{event.id}: tenant {event.tenant!r} outside the scope "
                             f"of {scope.root!r} was returned; is organization.id mapped as keyword?", self._where)
        return event

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        if self._closed:
            raise StoreError("the store is closed", self._where)
        try:
            yield
        except ApiError as e:
            raise StoreError(f"{what}: {_api_reason(e)}", self._where) from e
        except TransportError as e:
            raise StoreError(f"{what}: {e}", self._where) from e


def _ids_where(field: str, value: str, ids: list[str]) -> dict[str, Any]:
    return {"bool": {"filter": [{"term": {field: value}}, {"ids": {"values": ids}}]}}


def _api_reason(e: ApiError) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    error = body.get("error")
    reason = f"{error.get('type')}: {error.get('reason')}" if isinstance(error, dict) else str(error or e.message)
    hint = " (an OpenSearch server? open it as opensearch://)" if e.meta.status == 406 else ""
    return f"HTTP {e.meta.status} {reason}{hint}"


def _dead_letter_source(letter: DeadLetter) -> bytes:
    return orjson.dumps({
        "id": letter.id, "received": iso_time(letter.received, f"dead letter {letter.id}"), "tenant": letter.tenant,
        "source": letter.source, "reason": letter.reason, "raw": base64.b64encode(letter.raw).decode("ascii"),
    })


def _dead_letter(source: Mapping[str, Any]) -> DeadLetter:
    return DeadLetter(id=source["id"], received=parse_iso(source["received"], "received"), tenant=source["tenant"],
                      source=source["source"], reason=source["reason"], raw=base64.b64decode(source["raw"]))
