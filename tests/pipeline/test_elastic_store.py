"""What is particular to ElasticEventStore: URLs, index layout, templates, partial writes, moves, paging.

The EventStore contract itself runs in tests/pipeline/contracts/ (the `opensearch` parameter);
these tests use the same session osmem-server (tests/servers/search.py), each with its own prefix.
"""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from elasticsearch import Elasticsearch, UnsupportedProductError

from config.settings import TenantConfig, TenantKind
from config.tenants import TenantScope, TenantTree
from pipeline.bus import topics
from pipeline.bus.base import Message
from pipeline.bus.memory import MemoryBus
from pipeline.enrich import Enricher
from pipeline.errors import StoreError
from pipeline.ingest import IngestStep
from pipeline.records import Event, set_path
from pipeline.store import elastic_bulk
from pipeline.store.base import EventQuery
from pipeline.store.elastic import RESULT_WINDOW, ElasticEventStore, UnindexableEvents
from pipeline.store.elastic_bulk import BulkOp, RetryPolicy
from pipeline.store.elastic_client import ElasticConfig, make_client
from pipeline.store.elastic_mapping import TEMPLATE_VERSION, IndexNames, events_template
from pipeline.store.elastic_query import event_query, text_filters
from pipeline.store.registry import open_event_store, open_incident_store
from tests.servers import search
from tests.servers.search import SearchServer

search_server = search.search_server  # the session fixture (one server, shared by every module)

T0 = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
EVERYTHING = TenantScope.everything()


def make_event(n: int, *, tenant: str = "province-a", at: datetime | None = None, message: str = "login ok",
               fields: Mapping[str, Any] | None = None) -> Event:
    doc: dict[str, Any] = {"@timestamp": at or T0 + timedelta(minutes=n), "organization": {"id": tenant},
                           "message": message, "event": {"dataset": "test.auth"}, "labels": {"n": str(n)}}
    for name, value in (fields or {}).items():
        set_path(doc, name, value)
    return Event.create(doc, id_parts=["elastic-test", n])


@pytest.fixture
def prefix(search_server: SearchServer) -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:16]}"
    yield name
    search_server.drop(name)


@pytest.fixture
def url(search_server: SearchServer, prefix: str) -> str:
    return search_server.store_url(prefix=prefix, refresh="wait_for")


@pytest.fixture
def store(url: str) -> Iterator[ElasticEventStore]:
    opened = ElasticEventStore.from_url(url)
    yield opened
    opened.close()


@pytest.fixture
def client(url: str) -> Iterator[Elasticsearch]:
    raw = make_client(ElasticConfig.from_url(url))
    yield raw
    raw.close()


# --- URLs and the registry ----------------------------------------------------------------------

def test_url_options() -> None:
    config = ElasticConfig.from_url("opensearch://soc:p%40ss%3Aw@es1:9201,[::1],es3?tls=1&ca=/etc/ca.pem"
                                    "&prefix=govsoc_b&refresh=wait_for&timeout=2.5")
    assert config.flavour == "opensearch"
    assert config.hosts == ("https://es1:9201", "https://[::1]:9200", "https://es3:9200")
    assert (config.username, config.password) == ("soc", "p@ss:w")
    assert (config.ca_certs, config.prefix, config.refresh, config.timeout) == ("/etc/ca.pem", "govsoc_b",
                                                                              "wait_for", 2.5)
    assert "p@ss" not in repr(config) and "p%40ss" not in config.url
    plain = ElasticConfig.from_url("elasticsearch://localhost")
    assert (plain.flavour, plain.hosts, plain.prefix, plain.refresh) == ("elasticsearch", ("http://localhost:9200",),
                                                                         "govsoc", "false")


@pytest.mark.parametrize("url, complaint", [
    ("opensearch://h:9200?tsl=1", "unknown option(s) tsl"),
    ("opensearch://h:9200?tls=maybe", "tls='maybe'"),
    ("opensearch://h:9200?prefix=Govsoc", "prefix 'Govsoc'"),
    ("opensearch://h:9200?prefix=-x", "prefix '-x'"),
    ("opensearch://h:9200?refresh=yes", "refresh='yes'"),
    ("opensearch://h:9200?timeout=0", "timeout='0'"),
    ("opensearch://h:port", "'h:port' is not host[:port]"),
    ("opensearch://h:9200/index", "no path"),
    ("opensearch://u:s3cret@h:99999", "'h:99999' is not host[:port]"),
])
def test_bad_urls_are_refused(url: str, complaint: str) -> None:
    with pytest.raises(StoreError) as caught:
        open_event_store(url)
    assert complaint in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_no_incident_store_on_the_search_cluster() -> None:
    with pytest.raises(StoreError) as caught:
        open_incident_store("opensearch://soc:s3cret@localhost:9200")
    assert "holds events only" in str(caught.value) and "sqlite://" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_elasticsearch_scheme_on_an_opensearch_server_says_which_to_use(search_server: SearchServer,
                                                                        prefix: str) -> None:
    # osmem, like OpenSearch, answers the client's vendor media type with 406.
    with pytest.raises(StoreError, match="406.*open it as opensearch://"):
        open_event_store(f"elasticsearch://127.0.0.1:{search_server.port}?prefix={prefix}")


def test_unreachable_cluster_is_a_store_error_naming_the_url() -> None:
    with pytest.raises(StoreError) as caught:
        open_event_store("opensearch://soc:s3cret@127.0.0.1:1?timeout=1")
    assert "opensearch://soc:***@127.0.0.1:1" in str(caught.value)


class PlainServer(http.server.BaseHTTPRequestHandler):
    """Answers like OpenSearch: plain JSON, no `X-Elastic-Product`; remembers the media types it got."""

    seen: list[tuple[str | None, str | None]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append((self.headers.get("Content-Type"), self.headers.get("Accept")))
        body = b'{"count": 0}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_opensearch_flavour_speaks_plain_json_to_a_server_without_the_product_header() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), PlainServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"127.0.0.1:{server.server_address[1]}"
        opensearch = make_client(ElasticConfig.from_url(f"opensearch://{url}"))
        assert opensearch.count(index="x", query={"match_all": {}})["count"] == 0
        assert PlainServer.seen[-1] == ("application/json", "application/json")
        stock = make_client(ElasticConfig.from_url(f"elasticsearch://{url}"))
        with pytest.raises(UnsupportedProductError):
            stock.count(index="x", query={"match_all": {}})
        assert "compatible-with" in (PlainServer.seen[-1][0] or "")
        opensearch.close()
        stock.close()
    finally:
        server.shutdown()
        server.server_close()


# --- layout and templates -----------------------------------------------------------------------

def test_one_index_per_tenant_per_day(store: ElasticEventStore, client: Elasticsearch, prefix: str) -> None:
    store.write([make_event(1), make_event(2, at=T0 + timedelta(days=1)), make_event(3, tenant="commune-a1")])
    assert sorted(client.indices.get(index=f"{prefix}-events-*").body) == [
        f"{prefix}-events-commune-a1-2025.07.01", f"{prefix}-events-province-a-2025.07.01",
        f"{prefix}-events-province-a-2025.07.02"]


def test_day_of_the_index_is_the_utc_day(store: ElasticEventStore, client: Elasticsearch, prefix: str) -> None:
    hanoi_morning = datetime(2025, 7, 2, 5, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))  # 2025-07-01 22:00 UTC
    store.write([make_event(1, at=hanoi_morning)])
    assert list(client.indices.get(index=f"{prefix}-events-*").body) == [f"{prefix}-events-province-a-2025.07.01"]


def test_mappings_follow_ecs(store: ElasticEventStore, client: Elasticsearch, prefix: str) -> None:
    store.write([make_event(1, fields={"source.ip": "10.0.0.1", "source.port": 22, "related.ip": ["10.0.0.1"],
                                       "winlog.event_data.IpAddress.ip": "10.0.0.2", "custom.when": "2025-07-01",
                                       "custom.ratio": 0.5, "process.pid": 4})])
    index = f"{prefix}-events-province-a-2025.07.01"
    fields = client.indices.get_field_mapping(index=index, fields="*").body[index]["mappings"]

    def type_of(name: str) -> str:
        leaf = name.rpartition(".")[2]
        return str(fields[name]["mapping"][leaf]["type"])

    assert type_of("@timestamp") == "date_nanos"
    assert type_of("message") == "text" and type_of("message.keyword") == "keyword"
    assert {type_of(n) for n in ("event.id", "organization.id", "event.dataset", "labels.n")} == {"keyword"}
    assert {type_of(n) for n in ("source.ip", "related.ip", "winlog.event_data.IpAddress.ip")} == {"ip"}
    assert {type_of(n) for n in ("source.port", "process.pid")} == {"long"}
    assert type_of("custom.when") == "keyword"  # no date detection
    assert type_of("custom.ratio") == "double"


def test_templates_are_installed_once_and_upgraded(url: str, client: Elasticsearch, prefix: str) -> None:
    ElasticEventStore.from_url(url).close()
    names = IndexNames(prefix)
    found = client.indices.get_index_template(name=names.events_template).body["index_templates"]
    assert found[0]["index_template"]["version"] == TEMPLATE_VERSION
    older = events_template(names) | {"version": TEMPLATE_VERSION - 1}
    client.indices.put_index_template(name=names.events_template, **older)
    ElasticEventStore.from_url(url).close()  # reopening replaces an older template
    found = client.indices.get_index_template(name=names.events_template).body["index_templates"]
    assert found[0]["index_template"]["version"] == TEMPLATE_VERSION


def test_a_newer_template_is_refused(url: str, client: Elasticsearch, prefix: str) -> None:
    names = IndexNames(prefix)
    client.indices.put_index_template(name=names.events_template,
                                       **events_template(names) | {"version": TEMPLATE_VERSION + 1})
    with pytest.raises(StoreError, match="newer govsoc"):
        ElasticEventStore.from_url(url)


# --- writes ---------------------------------------------------------------------------------------

def test_documents_are_stored_as_written(store: ElasticEventStore, client: Elasticsearch, prefix: str) -> None:
    event = make_event(1, message="Đăng nhập thất bại", fields={"tls.established": True, "source.port": 22})
    store.write([event])
    [hit] = client.search(index=f"{prefix}-events-*")["hits"]["hits"]
    assert hit["_id"] == event.id
    assert Event.from_document(hit["_source"]) == event


def test_last_copy_in_a_batch_wins(store: ElasticEventStore) -> None:
    assert store.write([make_event(1, message="first"), make_event(1, message="second")]) == 1
    assert [e.message for e in store.search(EVERYTHING, EventQuery())] == ["second"]


def test_unindexable_events_are_named_and_the_rest_written(store: ElasticEventStore) -> None:
    good = [make_event(n) for n in range(3)]
    bad_ip = make_event(10, fields={"source.ip": "not-an-ip"})
    bad_tenant = make_event(11, tenant="Bad Tenant")
    with pytest.raises(UnindexableEvents) as caught:
        store.write([good[0], bad_ip, good[1], bad_tenant, good[2]])
    assert set(caught.value.event_ids) == {bad_ip.id, bad_tenant.id}
    assert "source.ip" in caught.value.reasons[bad_ip.id]
    assert "cannot name an index" in caught.value.reasons[bad_tenant.id]
    assert caught.value.new == 3
    assert bad_ip.id in str(caught.value)
    assert store.count(EVERYTHING, EventQuery()) == 3


def test_ingest_dead_letters_what_the_cluster_refuses(store: ElasticEventStore) -> None:
    tree = TenantTree.from_config([TenantConfig(id="national", name="N", kind=TenantKind.NATIONAL),
                                   TenantConfig(id="province-a", name="A", parent="national")])
    step = IngestStep(Enricher(tree), store, MemoryBus())
    events = [make_event(1), make_event(2, fields={"source.ip": "999.1.1.1"}), make_event(3)]
    batch = [Message(topic=topics.RAW, partition=0, offset=n, key=None, value=e.to_json())
             for n, e in enumerate(events)]
    result = step(batch)
    assert (result.events, result.dead_letters) == (2, 1)
    assert store.count(EVERYTHING, EventQuery()) == 2
    [letter] = store.dead_letters(EVERYTHING)
    assert events[1].id in letter.reason and "source.ip" in letter.reason


def test_an_event_whose_day_changed_is_moved(store: ElasticEventStore, client: Elasticsearch, prefix: str) -> None:
    assert store.write([make_event(1), make_event(2)]) == 2
    assert store.write([make_event(1, at=T0 + timedelta(days=1, hours=7))]) == 0  # a re-parse: not a new id
    assert store.count(EVERYTHING, EventQuery()) == 2
    [moved] = store.search(EVERYTHING, EventQuery(ids=[make_event(1).id]))
    assert moved.timestamp == T0 + timedelta(days=1, hours=7)
    old_day = f"{prefix}-events-province-a-2025.07.01"
    assert client.count(index=old_day)["count"] == 1  # event 2 stays


def test_moves_never_touch_another_tenant(store: ElasticEventStore, client: Elasticsearch, prefix: str) -> None:
    victim = make_event(1, tenant="province-b")
    store.write([victim])
    # A document of another tenant that claims the victim's id, on another day.
    forged = Event.from_document({**make_event(1, at=T0 + timedelta(days=3)).doc, "event": {"id": victim.id}})
    assert store.write([forged]) == 1
    assert {e.tenant for e in store.search(EVERYTHING, EventQuery(ids=[victim.id]))} == {"province-a", "province-b"}


def test_timestamps_keep_microseconds(store: ElasticEventStore) -> None:
    early, late = make_event(1, at=T0 + timedelta(microseconds=100)), make_event(2, at=T0 + timedelta(microseconds=600))
    store.write([late, early])
    assert store.search(EVERYTHING, EventQuery()) == [late, early]
    assert store.search(EVERYTHING, EventQuery(end=T0 + timedelta(microseconds=500))) == [early]
    assert store.search(EVERYTHING, EventQuery(start=T0 + timedelta(microseconds=600))) == [late]


# --- reads ----------------------------------------------------------------------------------------

def test_isolation_is_in_the_query_not_the_index_name(store: ElasticEventStore, prefix: str) -> None:
    # `<prefix>-events-province-a-*` also matches the indices of a tenant named province-a-x.
    store.write([make_event(1, tenant="province-a"), make_event(2, tenant="province-a-x")])
    scope = TenantScope(root="province-a", tenant_ids=frozenset({"province-a"}))
    assert [e.tenant for e in store.search(scope, EventQuery())] == ["province-a"]
    assert store.count(scope, EventQuery()) == 1


def test_empty_cluster_reads_nothing(store: ElasticEventStore) -> None:
    assert store.search(EVERYTHING, EventQuery()) == []
    assert store.count(EVERYTHING, EventQuery(text="x")) == 0
    assert store.dead_letters(EVERYTHING) == [] and store.count_dead_letters(EVERYTHING) == 0


def test_pages_past_the_result_window(store: ElasticEventStore) -> None:
    total = RESULT_WINDOW + 10
    store.write([make_event(n, at=T0 + timedelta(seconds=n // 7)) for n in range(total)])
    newest_first = store.search(EVERYTHING, EventQuery(limit=RESULT_WINDOW))
    tail = store.search(EVERYTHING, EventQuery(limit=20, offset=RESULT_WINDOW - 5))
    assert len(tail) == 15
    assert tail[:5] == newest_first[-5:]
    assert {e.id for e in newest_first} | {e.id for e in tail} == {make_event(n).id for n in range(total)}
    oldest = store.search(EVERYTHING, EventQuery(limit=3, offset=total - 3, oldest_first=True))
    assert oldest == list(reversed(newest_first[:3]))
    assert store.search(EVERYTHING, EventQuery(limit=5, offset=total)) == []


def test_closed_store_refuses(url: str) -> None:
    store = ElasticEventStore.from_url(url)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.count(EVERYTHING, EventQuery())


# --- query building (no server) -----------------------------------------------------------------

def test_text_is_only_phrases_of_words() -> None:
    assert text_filters('failed "pass OR *') == [{"match_phrase": {"message": "failed"}},
                                                 {"match_phrase": {"message": '"pass'}},
                                                 {"match_phrase": {"message": "OR"}}]
    assert text_filters("* ( ) -") == [{"match_none": {}}]


def test_message_equality_uses_the_keyword_subfield() -> None:
    query = event_query(EVERYTHING, EventQuery(fields={"message": "x", "source.ip": "10.0.0.1"}))
    assert query["bool"]["filter"] == [{"match": {"message.keyword": {"query": "x", "lenient": True}}},
                                       {"match": {"source.ip": {"query": "10.0.0.1", "lenient": True}}}]


def test_naive_times_are_refused() -> None:
    with pytest.raises(StoreError, match="without a zone"):
        event_query(EVERYTHING, EventQuery(start=datetime(2025, 7, 1)))


# --- bulk retries (no server: `post` answers as a cluster would) ---------------------------------

def answer(*items: tuple[str, int, str]) -> dict[str, Any]:
    """A `_bulk` response of (action, status, result or error type) items."""
    def item(action: str, status: int, what: str) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status}
        body.update({"result": what} if status < 300 else {"error": {"type": what, "reason": f"{what}!"}})
        return {action: body}
    return {"errors": any(status >= 300 for _, status, _ in items), "items": [item(*i) for i in items]}


def test_only_failed_items_are_retried_with_back_off() -> None:
    ops = [BulkOp("index", "i", f"id{n}", b"{}") for n in range(4)]
    answers = iter([
        answer(("index", 201, "created"), ("index", 429, "es_rejected_execution_exception"),
               ("index", 400, "mapper_parsing_exception"), ("index", 503, "unavailable")),
        answer(("index", 200, "updated"), ("index", 429, "es_rejected_execution_exception")),
        answer(("index", 201, "created")),
    ])
    sent: list[list[bytes]] = []
    slept: list[float] = []

    def post(lines: list[bytes]) -> Mapping[str, Any]:
        sent.append(lines)
        return next(answers)

    results = elastic_bulk.send(post, ops, RetryPolicy(attempts=5, first_delay=0.1, max_delay=0.15), slept.append)
    assert [len(lines) // 2 for lines in sent] == [4, 2, 1]
    assert b'"id3"' in sent[2][0]
    assert slept == [0.1, 0.15]
    assert [(r.status, r.result) for r in results] == [(201, "created"), (200, "updated"), (400, ""),
                                                       (201, "created")]
    assert results[2].error == "mapper_parsing_exception: mapper_parsing_exception!" and not results[2].is_ok


def test_retries_stop_after_the_last_attempt() -> None:
    ops = [BulkOp("create", "i", "id0", b"{}")]
    results = elastic_bulk.send(lambda lines: answer(("create", 429, "busy")), ops,
                                RetryPolicy(attempts=3, first_delay=0), lambda _: None)
    assert results[0].is_retryable and not results[0].is_ok


def test_existing_and_missing_ids_are_fine_for_create_and_delete() -> None:
    ops = [BulkOp("create", "i", "a", b"{}"), BulkOp("delete", "i", "b"), BulkOp("index", "i", "c", b"{}")]
    results = elastic_bulk.read_items(ops, answer(("create", 409, "version_conflict_engine_exception"),
                                                  ("delete", 404, "not_found"), ("index", 409, "conflict")))
    assert [r.is_ok for r in results] == [True, True, False]


def test_a_short_bulk_response_is_an_error() -> None:
    with pytest.raises(StoreError, match="1 items for 2 operations"):
        elastic_bulk.read_items([BulkOp("delete", "i", "a"), BulkOp("delete", "i", "b")],
                                answer(("delete", 200, "deleted")))


def test_requests_are_bounded() -> None:
    ops = [BulkOp("index", "i", str(n), b"{}") for n in range(elastic_bulk.MAX_ITEMS * 2 + 1)]
    assert [len(batch) for batch, _ in elastic_bulk.chunks(ops)] == [elastic_bulk.MAX_ITEMS, elastic_bulk.MAX_ITEMS, 1]
    big = [BulkOp("index", "i", str(n), b"x" * (elastic_bulk.MAX_BYTES // 3)) for n in range(4)]
    assert [len(batch) for batch, _ in elastic_bulk.chunks(big)] == [2, 2]
