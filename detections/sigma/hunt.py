"""Retro-hunts: Sigma rules over stored events, raising the alerts the stream would have raised.

Stage: beside matching, over history instead of the stream. In: rule files (or a `RuleSet`), the
event store's URL, a tenant scope and a time window (`HuntWindow`). Out: single-event alerts,
oldest event first, built exactly as the stream builds them (`match.single_event_alert`: the same
deterministic ids, so hunting a window the stream already saw adds nothing downstream).

How, per compiled rule (one per kind of event its log source covers):
1. pySigma's backend for the store converts the rule into the store's own query language, so the
   store reads only candidate events:
   - `sqlite:///` (the embedded `SqliteEventStore`): pysigma-backend-sqlite's WHERE clause, run
     over a view of the `events` table in which each Sigma field is a `TEXT COLLATE NOCASE`
     column read from the JSON document at the paths the rule's field map gives (as Zircolite's
     tables hold them), limited in SQL to the scope's tenants, the window and the log source.
   - `elasticsearch://` / `opensearch://`: the Lucene backend (`query_string`) with a field
     mapping to the same paths, inside the store's own tenant and time filters
     (`elastic_query.event_query`), paged with `search_after`.
2. Each candidate is checked with the engine's own test (`CompiledRule.matches`), so a hunt never
   raises an alert the stream would not have: the backend's query only narrows the read.
   A rule the backend does not convert (keywords, CIDR, `Data`, ...) reads every event of its
   log source in the window and is checked the same way (`HuntStats.full_scans` counts them).

Limits (stated, not hidden): the backend's query must not miss what the engine matches, and that
holds where SQL and Sigma agree (tests/detections/test_sigma_differential.py); SQLite's NOCASE
folds ASCII case only, so a match that differs from the rule in non-ASCII case alone is missed.
Correlations are not hunted yet (counted in `HuntStats.correlations_skipped`).

Invariants: every read carries the caller's `TenantScope` and is checked again on the events read
back; the SQLite file is opened read-only; nothing here writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import re2
import structlog
from sigma.backends.sqlite.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import SigmaFieldReference

from config.tenants import TenantScope
from detections.sigma.compile import CompiledRule, rule_key
from detections.sigma.errors import RuleError
from detections.sigma.fields import WHOLE_EVENT_DATA, FieldMap
from detections.sigma.load import RuleSet, load_rules
from detections.sigma.logsources import EVENT_CODE, EventScope, sources_for
from detections.sigma.match import single_event_alert
from pipeline.errors import StoreError
from pipeline.records import Alert, Event
from pipeline.store.sqlite_db import SQLITE_URL_PREFIX, from_us, json_list, scoped, sqlite_path, to_us

log = structlog.get_logger(__name__)

_SQL_PREFIX = "SELECT * FROM logs WHERE "


@dataclass(frozen=True, slots=True)
class HuntWindow:
    """Events of `scope` with `start <= @timestamp < end` (no end: up to now)."""

    scope: TenantScope
    start: datetime
    end: datetime | None = None


@dataclass
class HuntStats:
    """What a hunt did: rules run, those read without a pushed-down query, candidates checked."""

    rules: int = 0
    full_scans: list[str] = field(default_factory=list)
    correlations_skipped: int = 0
    candidates: int = 0


@dataclass(frozen=True, slots=True)
class StoreQuery:
    """One compiled rule as a store query: the backend's text (None: not converted) and the field
    paths of each Sigma field it names."""

    rule: CompiledRule
    text: str | None
    columns: tuple[tuple[str, tuple[str, ...]], ...]


Candidates = Callable[[StoreQuery, HuntWindow], Iterator[Event]]


def hunt_rules(events_url: str, rule_paths: Sequence[Path], window: HuntWindow,
               stats: HuntStats | None = None) -> list[Alert]:
    """The alerts the rules under `rule_paths` raise over the window's stored events.

    Rules that do not load are skipped (logged; `govsoc rules check` lists them). Raises
    `StoreError` for a store that cannot be read or a URL of no supported kind.
    """
    ruleset, errors = load_rules(rule_paths)
    for error in errors:
        log.warning("hunt_rule_skipped", error=str(error))
    return hunt_ruleset(events_url, ruleset, window, stats)


def hunt_ruleset(events_url: str, ruleset: RuleSet, window: HuntWindow, stats: HuntStats | None = None) -> list[Alert]:
    """`hunt_rules` for rules already loaded."""
    stats = stats if stats is not None else HuntStats()
    stats.correlations_skipped += len(ruleset.correlations)
    kind, convert, candidates = _store_kind(events_url)
    alerts: list[Alert] = []
    for query in store_queries(ruleset, convert):
        stats.rules += 1
        if query.text is None:
            stats.full_scans.append(query.rule.info.rule_id)
        for event in candidates(query, window):
            stats.candidates += 1
            if event.tenant in window.scope and query.rule.matches(event):
                alerts.append(single_event_alert(query.rule, event))
    alerts.sort(key=lambda alert: (alert.timestamp, alert.id))
    log.info("hunt_done", store=kind, rules=stats.rules, alerts=len(alerts), candidates=stats.candidates,
             full_scans=len(stats.full_scans))
    return alerts


Converter = Callable[[SigmaRule, FieldMap], str]


def _store_kind(url: str) -> tuple[str, Converter, Candidates]:
    if url.startswith(SQLITE_URL_PREFIX):
        return "sqlite", sqlite_where, SqliteCandidates(sqlite_path(url))
    if url.startswith(("elasticsearch://", "opensearch://", "elasticsearchs://", "opensearchs://")):
        from detections.sigma.hunt_elastic import ElasticCandidates, lucene_query

        return "elastic", lucene_query, ElasticCandidates(url)
    raise StoreError(f"{url.split(':', 1)[0]!r}: no retro-hunt for this kind of event store "
                     "(sqlite:///, elasticsearch://, opensearch://)")


# --- rules -> store queries -----------------------------------------------------------------------

def store_queries(ruleset: RuleSet, convert: Converter) -> Iterator[StoreQuery]:
    """A `StoreQuery` per compiled rule that raises alerts, in load order."""
    sigma_rules: dict[str, dict[str, SigmaRule]] = {}
    for compiled in ruleset.rules:
        if not compiled.emits_alerts:
            continue
        source = compiled.info.source
        if source not in sigma_rules:
            sigma_rules[source] = _sigma_rules(Path(source))
        rule = sigma_rules[source].get(compiled.info.rule_id)
        fields = _field_map(rule, compiled) if rule is not None else None
        if rule is None or fields is None:
            yield StoreQuery(compiled, None, ())
            continue
        names = sorted(field_names(rule))
        columns = tuple((name, fields.resolve(name)) for name in names)
        try:
            text = None if WHOLE_EVENT_DATA in names and fields.is_windows else convert(rule, fields)
        except Exception as e:  # the backends refuse features with exceptions of several classes
            log.debug("hunt_not_converted", rule=compiled.info.rule_id, reason=str(e))
            text = None
        yield StoreQuery(compiled, text, columns)


def _sigma_rules(path: Path) -> dict[str, SigmaRule]:
    try:
        collection = SigmaCollection.from_yaml(path.read_text(encoding="utf-8"), collect_errors=True)
    except Exception as e:  # the file changed since it was loaded: hunt the rule with a full scan
        log.warning("hunt_rule_reread_failed", path=str(path), reason=str(e))
        return {}
    return {rule_key(rule): rule for rule in collection.rules if isinstance(rule, SigmaRule)}


def _field_map(rule: SigmaRule, compiled: CompiledRule) -> FieldMap | None:
    logsource = rule.logsource
    for source in sources_for(logsource.category, logsource.product, logsource.service):
        if source.scope == compiled.scope:
            return source.fields
    return None


def field_names(rule: SigmaRule) -> set[str]:
    """Every field the rule's detection names, field references included."""
    names: set[str] = set()
    stack: list[Any] = list(rule.detection.detections.values())
    while stack:
        node = stack.pop()
        if isinstance(node, SigmaDetection):
            stack.extend(node.detection_items)
        elif isinstance(node, SigmaDetectionItem):
            names.update([node.field] if node.field else [])
            names.update(value.field for value in node.value if isinstance(value, SigmaFieldReference))
    return names


# --- SQLite ---------------------------------------------------------------------------------------

def sqlite_where(rule: SigmaRule, fields: FieldMap) -> str:
    """pysigma-backend-sqlite's WHERE clause for `rule` (over columns named as the rule's fields)."""
    backend: Any = sqliteBackend()  # type: ignore[no-untyped-call]  # the package has no type hints
    (query,) = backend.convert_rule(rule)
    text = str(query)
    if not text.startswith(_SQL_PREFIX):
        raise ValueError(f"unexpected query shape: {text[:60]!r}")
    return text[len(_SQL_PREFIX):]


def _json_paths(path: str) -> list[str]:
    """JSON paths for a dotted name: nested objects, and a key that itself holds the dots."""
    nested = "$." + ".".join('"' + part.replace('"', '\\"') + '"' for part in path.split("."))
    return [nested, '$."' + path.replace('"', '\\"') + '"'] if "." in path else [nested]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _regexp(pattern: str, value: Any) -> bool:
    """SQL REGEXP with RE2 (linear time); a pattern RE2 refuses selects the row (checked later)."""
    if value is None:
        return False
    try:
        return re2.search(pattern, str(value)) is not None
    except re2.error:
        return True


class SqliteCandidates:
    """Candidate events from a `SqliteEventStore` file, opened read-only for each rule."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, query: StoreQuery, window: HuntWindow) -> Iterator[Event]:
        sql, params = self.statement(query, window)
        try:
            conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True)
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot open the event store: {e}") from e
        conn.create_function("regexp", 2, _regexp, deterministic=True)
        try:
            for event_id, ts, tenant, doc in conn.execute(sql, params):
                yield Event(id=event_id, timestamp=from_us(ts), tenant=tenant, doc=orjson.loads(doc))
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: hunting rule {query.rule.info.rule_id}: {e}") from e
        finally:
            conn.close()

    @staticmethod
    def statement(query: StoreQuery, window: HuntWindow) -> tuple[str, list[Any]]:
        """The SQL and its parameters: a view of the window's events, then the backend's WHERE."""
        params: list[Any] = []
        columns = []
        for name, paths in query.columns:
            json_paths = [json_path for path in paths for json_path in _json_paths(path)]
            extract = ", ".join("json_extract(doc, ?)" for _ in json_paths)
            params.extend(json_paths)
            columns.append(f"CAST(COALESCE({extract}, NULL) AS TEXT) COLLATE NOCASE AS {_quoted(name)}")
        where = scoped(window.scope)
        where.add("ts >= ?", to_us(window.start, "start"))
        if window.end is not None:
            where.add("ts < ?", to_us(window.end, "end"))
        _add_scope(where.add, query.rule.scope)
        params.extend(where.params)
        view = ", ".join(["id", "ts", "tenant", "doc", *columns])
        sql = (f"WITH logs AS (SELECT {view} FROM events WHERE {where.sql}) "
               f"SELECT id, ts, tenant, doc FROM logs WHERE {query.text or '1'} ORDER BY ts, id")
        return sql, params


def _add_scope(add: Callable[..., None], scope: EventScope) -> None:
    (path, *_rest) = _json_paths(scope.field)
    if scope.is_prefix:
        add("substr(json_extract(doc, ?), 1, ?) = ?", path, len(scope.value), scope.value)
    else:
        add("json_extract(doc, ?) = ?", path, scope.value)
    if scope.codes:
        (code_path, *_more) = _json_paths(EVENT_CODE)
        add("json_extract(doc, ?) IN (SELECT value FROM json_each(?))", code_path, json_list(sorted(scope.codes)))


def load_error_reasons(errors: Sequence[RuleError]) -> list[str]:
    """The errors of a rule load, one line each, as `govsoc rules check` prints them."""
    return [str(error) if error.location is None else f"{error.location}: {error.reason}" for error in errors]
