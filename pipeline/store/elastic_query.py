"""`EventQuery` and `TenantScope` as Elasticsearch query DSL, matching the embedded store's results.

In: the caller's scope and query. Out: a `bool` query of filters (nothing is scored: results are
ordered by time), the sort, and the page. Every clause is built from values, never from text
spliced into a query language, so no user input is query syntax.

- Scope: a `terms` filter on the tenant field; an all-tenant scope adds none. An empty scope
  matches nothing. This filter, not the index name, is what keeps tenants apart.
- Time: `[start, end)` on `@timestamp`, microseconds exact (it is `date_nanos`).
- Fields: a `match` with `lenient` on the field (on `message.keyword` for `message`): on a
  `keyword` that is exact equality, an array matches when any element does, an object never
  matches, and a value that cannot be of the field's type (a quote in an `ip`, a word in a
  `long`) matches nothing instead of failing the search. Unlike the embedded store, equality
  follows the field's mapped type: `"22"` equals `22` in a `long` field, and `true` does not
  equal `1` in a `boolean` one. Names outside `[A-Za-z0-9_@.-]` raise `StoreError`.
- Text: split into words on white space (NUL counts as space); each word with a letter or digit
  is a `match_phrase` on `message`, all AND-ed, as the embedded store quotes each word as an
  FTS5 phrase. Analysis folds case and diacritics. A text of only other words finds nothing; a
  blank text is no condition.
- Order: `@timestamp`, then `event.id`, both descending unless `oldest_first`: a total order, so
  pages neither repeat nor skip (keyword order is UTF-8 byte order, as SQLite's BINARY).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from config.tenants import TenantScope
from pipeline import ecs
from pipeline.errors import StoreError
from pipeline.records import to_iso
from pipeline.store.base import MAX_LIMIT, EventQuery
from pipeline.store.elastic_mapping import MESSAGE_KEYWORD

Query = dict[str, Any]

MATCH_NONE: Query = {"match_none": {}}
_FIELD_NAME = re.compile(r"[A-Za-z0-9_@.-]+")  # the embedded store's rule


def page(limit: int, offset: int) -> tuple[int, int]:
    """(limit, offset) with `limit` capped at `MAX_LIMIT`; negative values are refused."""
    if limit < 0 or offset < 0:
        raise StoreError(f"limit and offset must not be negative (limit={limit}, offset={offset})")
    return min(limit, MAX_LIMIT), offset


def scope_filters(scope: TenantScope, field: str = ecs.ORGANIZATION_ID) -> list[Query]:
    return [] if scope.is_all else [{"terms": {field: sorted(scope.tenant_ids)}}]


def iso_time(ts: datetime, what: str) -> str:
    if ts.tzinfo is None:
        raise StoreError(f"{what}: a time without a zone is ambiguous: {ts.isoformat()}")
    return to_iso(ts)


def event_query(scope: TenantScope, query: EventQuery) -> Query:
    filters = scope_filters(scope)
    if query.start is not None or query.end is not None:
        bounds = {"format": "strict_date_optional_time_nanos"}
        if query.start is not None:
            bounds["gte"] = iso_time(query.start, "start")
        if query.end is not None:
            bounds["lt"] = iso_time(query.end, "end")
        filters.append({"range": {ecs.TIMESTAMP: bounds}})
    if query.ids is not None:
        filters.append({"ids": {"values": list(query.ids)}} if query.ids else MATCH_NONE)
    filters.extend(field_filter(name, value) for name, value in query.fields.items())
    if query.text is not None and query.text.strip():
        filters.extend(text_filters(query.text))
    return {"bool": {"filter": filters}}


def field_filter(name: str, value: object) -> Query:
    if not _FIELD_NAME.fullmatch(name):
        raise StoreError(f"field {name!r}: not an ECS field name (letters, digits, _ @ . - only)")
    if not isinstance(value, str | int | float):  # bool is an int
        raise StoreError(f"field {name!r}: compares with a string, number or boolean, "
                         f"got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        return MATCH_NONE  # equal to nothing, and not valid JSON either
    target = MESSAGE_KEYWORD if name == ecs.MESSAGE else name
    return {"match": {target: {"query": value, "lenient": True}}}


def text_filters(text: str) -> list[Query]:
    words = [word for word in text.replace("\x00", " ").split() if any(ch.isalnum() for ch in word)]
    if not words:
        return [MATCH_NONE]
    return [{"match_phrase": {ecs.MESSAGE: word}} for word in words]


def event_sort(oldest_first: bool) -> list[Query]:
    order = "asc" if oldest_first else "desc"
    return [{ecs.TIMESTAMP: {"order": order, "unmapped_type": "date_nanos"}},
            {ecs.EVENT_ID: {"order": order, "unmapped_type": "keyword"}}]


def dead_letter_query(scope: TenantScope) -> Query:
    """A letter with no tenant has no `tenant` value, so only the unfiltered all-tenant scope sees it."""
    return {"bool": {"filter": scope_filters(scope, field="tenant")}}


DEAD_LETTER_SORT: list[Query] = [{"received": {"order": "desc", "unmapped_type": "date_nanos"}},
                                 {"id": {"order": "desc", "unmapped_type": "keyword"}}]
