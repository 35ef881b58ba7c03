"""Retro-hunt candidates from Elasticsearch / OpenSearch (the scale-out event store).

Stage: a driver of hunt.py. In: a compiled rule as a `StoreQuery` and a `HuntWindow`. Out: the
stored events the Lucene query selects, oldest first; hunt.py checks each with the engine.

The rule is converted by pySigma's Lucene backend (pysigma-backend-elasticsearch,
`query_string`) with a field mapping from each Sigma field to the event paths the rule's field
map reads (`winlog.event_data.<Name>`, `winlog.user_data.<Name>`, then the ECS name pySigma's
Elastic Windows pipeline gives: the same pipeline fields.py is built from), OR-ed by the backend.
The query runs inside the store's own tenant and time filters (`elastic_query.event_query`) plus
the rule's log source, paged with `search_after` on (`@timestamp`, `event.id`).

Limit: keyword fields compare case-sensitively in Elasticsearch unless mapped with a normaliser,
so a match that differs from the rule in case only can be missed here (never a false alert: every
candidate is checked by the engine).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from elasticsearch import ApiError, TransportError
from sigma.backends.elasticsearch.elasticsearch_lucene import LuceneBackend
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import FieldMappingTransformation
from sigma.rule import SigmaRule

from detections.sigma.fields import FieldMap
from detections.sigma.hunt import HuntWindow, StoreQuery, field_names
from detections.sigma.logsources import EVENT_CODE, EventScope
from pipeline.errors import StoreError
from pipeline.records import Event
from pipeline.store.base import EventQuery
from pipeline.store.elastic_client import ElasticConfig, make_client
from pipeline.store.elastic_mapping import IndexNames
from pipeline.store.elastic_query import event_query, event_sort

PAGE = 1000


def lucene_query(rule: SigmaRule, fields: FieldMap) -> str:
    """The Lucene `query_string` for `rule`, its fields mapped to the paths `fields` reads."""
    mapping = {name: list(fields.resolve(name)) for name in field_names(rule)}
    pipeline = ProcessingPipeline(items=[ProcessingItem(FieldMappingTransformation(mapping))])  # type: ignore[arg-type]
    (query,) = LuceneBackend(pipeline).convert_rule(rule)
    return str(query)


def search_body(query: StoreQuery, window: HuntWindow) -> dict[str, Any]:
    """The search request: tenant, window and log source as filters, the rule's query as `must`."""
    body = event_query(window.scope, EventQuery(start=window.start, end=window.end))
    filters: list[Any] = list(body["bool"]["filter"])
    filters.extend(_scope_filters(query.rule.scope))
    must = [{"query_string": {"query": query.text}}] if query.text is not None else []
    return {"query": {"bool": {"filter": filters, "must": must}}, "sort": event_sort(True)}


def _scope_filters(scope: EventScope) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [{"prefix" if scope.is_prefix else "term": {scope.field: scope.value}}]
    if scope.codes:
        found.append({"terms": {EVENT_CODE: sorted(scope.codes)}})
    return found


class ElasticCandidates:
    """Candidate events from the cluster of an `elasticsearch://` or `opensearch://` URL."""

    def __init__(self, url: str) -> None:
        self.config = ElasticConfig.from_url(url)
        self.index = IndexNames(self.config.prefix).events_pattern

    def __call__(self, query: StoreQuery, window: HuntWindow) -> Iterator[Event]:
        client = make_client(self.config)
        body = search_body(query, window)
        after: list[Any] | None = None
        try:
            while True:
                response = client.search(index=self.index, size=PAGE, track_total_hits=False, query=body["query"],
                                         sort=body["sort"], search_after=after)
                hits = response["hits"]["hits"]
                for hit in hits:
                    yield Event.from_document(hit["_source"])
                if len(hits) < PAGE:
                    return
                after = hits[-1]["sort"]
        except (ApiError, TransportError) as e:
            raise StoreError(f"{self.config.url}: hunting rule {query.rule.info.rule_id}: {e}") from e
        finally:
            client.close()
