"""Index layout of the Elasticsearch / OpenSearch event store: names, templates, ECS mappings.

- Events live in one index per tenant per UTC day of `@timestamp`:
  `<prefix>-events-<tenant>-YYYY.MM.DD` (prefix `govsoc` by default), so retention deletes whole
  indices and a query's time range skips the days outside it. Reads target `<prefix>-events-*`
  and filter on `organization.id`: the index name is never what isolates tenants.
- Dead letters live in one index, `<prefix>-deadletters`: a letter is kept by its id for good, and
  an id must not reappear in a later day's index.
- Indices are created by the cluster from the two index templates below on first write. The
  templates carry `version`; opening a store installs a missing or older one and refuses a newer
  one (written by a newer govsoc), as the SQLite store does with its schema version.

Mapping choices (ECS names; the reasons a reader might otherwise undo them):
- `@timestamp` is `date_nanos`, not `date`: events carry microseconds, and `date` keeps
  milliseconds, so range ends and the newest-first order would differ from the embedded store
  for events less than a millisecond apart.
- Unknown strings are `keyword` (no date detection): equality is exact, and a string that looks
  like a date today cannot make tomorrow's non-date a mapping error. `*.ip` strings are `ip`.
- Every keyword has `ignore_above: 8191`: longer values are kept in `_source` but not indexed,
  because Lucene refuses a term over 32766 bytes and would refuse the whole event.
- `message` is `text` through `govsoc_text` (standard tokenizer, lowercase, ASCII folding:
  "that bai" finds "thất bại", as in the embedded store) with a `message.keyword` subfield for
  equality.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TEMPLATE_VERSION = 1
TEMPLATE_PRIORITY = 200  # above the stack's built-in templates (100); their patterns do not overlap ours
KEYWORD_LIMIT = 8191  # characters: at most 32764 bytes of UTF-8, under Lucene's term limit
TEXT_ANALYZER = "govsoc_text"
MESSAGE_KEYWORD = "message.keyword"

_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # as config.settings.TenantId


@dataclass(frozen=True, slots=True)
class IndexNames:
    """Every index and template name of one deployment, derived from its `prefix`."""

    prefix: str

    @property
    def events_pattern(self) -> str:
        return f"{self.prefix}-events-*"

    @property
    def events_template(self) -> str:
        return f"{self.prefix}-events"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}-deadletters"

    @property
    def dead_letters_template(self) -> str:
        return f"{self.prefix}-deadletters"

    def events(self, tenant: str, timestamp: datetime) -> str | None:
        """The index of an event of `tenant` at `timestamp`; None if the tenant id cannot name an index."""
        if not _TENANT.fullmatch(tenant):
            return None
        return f"{self.prefix}-events-{tenant}-{timestamp.astimezone(UTC):%Y.%m.%d}"


def _keyword() -> dict[str, Any]:
    return {"type": "keyword", "ignore_above": KEYWORD_LIMIT}


def _object(**fields: dict[str, Any]) -> dict[str, Any]:
    return {"properties": fields}


_KEYWORD = _keyword()
_LONG = {"type": "long"}
_IP = {"type": "ip"}
_DATE = {"type": "date"}


def _endpoint() -> dict[str, Any]:
    """ECS source/destination/client/server."""
    return _object(ip=_IP, port=_LONG, address=_KEYWORD, domain=_KEYWORD, bytes=_LONG, packets=_LONG,
                   mac=_KEYWORD)


EVENT_PROPERTIES: dict[str, Any] = {
    "@timestamp": {"type": "date_nanos"},
    "message": {"type": "text", "analyzer": TEXT_ANALYZER,
                "fields": {"keyword": _KEYWORD}},
    "tags": _KEYWORD,
    "event": _object(
        id=_KEYWORD, kind=_KEYWORD, category=_KEYWORD, type=_KEYWORD, action=_KEYWORD, outcome=_KEYWORD,
        dataset=_KEYWORD, module=_KEYWORD, provider=_KEYWORD, code=_KEYWORD, original=_KEYWORD,
        severity=_LONG, sequence=_LONG, duration=_LONG,
        created=_DATE, ingested=_DATE, start=_DATE, end=_DATE,
    ),
    "organization": _object(id=_KEYWORD, name=_KEYWORD),
    "observer": _object(name=_KEYWORD, type=_KEYWORD, hostname=_KEYWORD, ip=_IP),
    "host": _object(name=_KEYWORD, hostname=_KEYWORD, id=_KEYWORD, ip=_IP),
    "source": _endpoint(),
    "destination": _endpoint(),
    "client": _endpoint(),
    "server": _endpoint(),
    "network": _object(bytes=_LONG, packets=_LONG, transport=_KEYWORD, protocol=_KEYWORD,
                       community_id=_KEYWORD, direction=_KEYWORD),
    "user": _object(name=_KEYWORD, id=_KEYWORD, domain=_KEYWORD,
                    effective=_object(name=_KEYWORD), target=_object(name=_KEYWORD)),
    "process": _object(name=_KEYWORD, pid=_LONG, executable=_KEYWORD, command_line=_KEYWORD,
                       parent=_object(name=_KEYWORD, pid=_LONG, executable=_KEYWORD)),
    "log": _object(level=_KEYWORD, offset=_LONG,
                   file=_object(path=_KEYWORD),
                   syslog=_object(appname=_KEYWORD, hostname=_KEYWORD)),
    "related": _object(ip=_IP, user=_KEYWORD, hosts=_KEYWORD, hash=_KEYWORD),
    "rule": _object(id=_KEYWORD, name=_KEYWORD),
}

# First match wins. Ports, pids and byte counts outside the ECS objects above get `long` from
# dynamic mapping already (JSON integers); only `ip` needs a rule of its own.
EVENT_DYNAMIC_TEMPLATES: list[dict[str, Any]] = [
    {"ip_addresses": {"path_match": "*.ip", "match_mapping_type": "string", "mapping": _IP}},
    {"floats": {"match_mapping_type": "double", "mapping": {"type": "double"}}},
    {"strings": {"match_mapping_type": "string", "mapping": _KEYWORD}},
]


def events_template(names: IndexNames) -> dict[str, Any]:
    """The body of `PUT _index_template/<prefix>-events`."""
    return {
        "index_patterns": [names.events_pattern],
        "priority": TEMPLATE_PRIORITY,
        "version": TEMPLATE_VERSION,
        "_meta": {"managed_by": "govsoc", "description": "govsoc events, one index per tenant per day"},
        "template": {
            "settings": {
                # Windows and Zeek events bring many fields; the default limit is 1000.
                "index": {"mapping": {"total_fields": {"limit": 5000}}},
                "analysis": {"analyzer": {TEXT_ANALYZER: {
                    "type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]}}},
            },
            "mappings": {
                "dynamic": True,
                "date_detection": False,
                "dynamic_templates": EVENT_DYNAMIC_TEMPLATES,
                "properties": EVENT_PROPERTIES,
            },
        },
    }


def dead_letters_template(names: IndexNames) -> dict[str, Any]:
    """The body of `PUT _index_template/<prefix>-deadletters`; `raw` is base64 (`binary`)."""
    return {
        "index_patterns": [names.dead_letters],
        "priority": TEMPLATE_PRIORITY,
        "version": TEMPLATE_VERSION,
        "_meta": {"managed_by": "govsoc", "description": "govsoc dead letters: input that is not an event"},
        "template": {
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "id": _KEYWORD, "received": {"type": "date_nanos"}, "tenant": _KEYWORD,
                    "source": _KEYWORD, "reason": {"type": "text", "fields": {"keyword": _KEYWORD}},
                    "raw": {"type": "binary"},
                },
            },
        },
    }
