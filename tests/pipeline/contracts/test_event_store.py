"""The EventStore contract (pipeline/store/base.py), run against every implementation in conftest."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from config.tenants import TenantScope
from pipeline.errors import StoreError
from pipeline.records import DeadLetter, Event, set_path
from pipeline.store.base import MAX_LIMIT, EventQuery, EventStore

T0 = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)

# national -> province-a -> commune-a1, national -> province-b
EVERYTHING = TenantScope.everything()
PROVINCE_A = TenantScope(root="province-a", tenant_ids=frozenset({"province-a", "commune-a1"}))
COMMUNE_A1 = TenantScope(root="commune-a1", tenant_ids=frozenset({"commune-a1"}))
PROVINCE_B = TenantScope(root="province-b", tenant_ids=frozenset({"province-b"}))


def make_event(n: int, *, tenant: str = "province-a", message: str = "user login ok",
               minute: float | None = None, fields: Mapping[str, Any] | None = None) -> Event:
    """Event number `n` (kept in `labels.n`) of `tenant`, at T0 + `minute` (default: n) minutes."""
    doc: dict[str, Any] = {
        "@timestamp": T0 + timedelta(minutes=n if minute is None else minute),
        "organization": {"id": tenant},
        "message": message,
        "event": {"dataset": "test.auth"},
        "labels": {"n": str(n)},
    }
    for name, value in (fields or {}).items():
        set_path(doc, name, value)
    return Event.create(doc, id_parts=["test", n])


def numbers(events: list[Event]) -> list[int]:
    """The `n` of each event, in result order."""
    return [int(event.doc["labels"]["n"]) for event in events]


def search_numbers(store: EventStore, query: EventQuery, scope: TenantScope = EVERYTHING) -> set[int]:
    found = store.search(scope, query)
    assert store.count(scope, query) == len(found)
    return set(numbers(found))


# --- writes -----------------------------------------------------------------------------------

def test_write_counts_new_ids_and_is_idempotent(event_store: EventStore) -> None:
    batch = [make_event(n) for n in range(3)]
    assert event_store.write(batch) == 3
    assert event_store.write(batch) == 0
    assert event_store.count(EVERYTHING, EventQuery()) == 3
    assert event_store.write([make_event(1), make_event(2), make_event(3)]) == 1
    assert event_store.write([make_event(4), make_event(4)]) == 1
    assert event_store.write([]) == 0
    assert event_store.count(EVERYTHING, EventQuery()) == 5


def test_events_round_trip(event_store: EventStore) -> None:
    fields = {"source.ip": "203.0.113.7", "source.port": 22, "related.ip": ["203.0.113.7"],
              "tls.established": True}
    event = make_event(1, message="Đăng nhập thất bại", fields=fields)
    event_store.write([event])
    assert event_store.search(EVERYTHING, EventQuery()) == [event]


def test_rewrite_replaces_document_and_text(event_store: EventStore) -> None:
    event_store.write([make_event(1, message="alpha original")])
    event_store.write([make_event(1, message="bravo replacement")])
    [stored] = event_store.search(EVERYTHING, EventQuery())
    assert stored.message == "bravo replacement"
    assert event_store.count(EVERYTHING, EventQuery(text="bravo")) == 1
    assert event_store.count(EVERYTHING, EventQuery(text="alpha")) == 0


# --- order, time and paging -------------------------------------------------------------------

def test_newest_first_unless_oldest_first(event_store: EventStore) -> None:
    event_store.write([make_event(n) for n in (3, 1, 4, 2)])
    assert numbers(event_store.search(EVERYTHING, EventQuery())) == [4, 3, 2, 1]
    assert numbers(event_store.search(EVERYTHING, EventQuery(oldest_first=True))) == [1, 2, 3, 4]


def test_time_range_includes_start_and_excludes_end(event_store: EventStore) -> None:
    event_store.write([make_event(n) for n in range(6)])
    query = EventQuery(start=T0 + timedelta(minutes=2), end=T0 + timedelta(minutes=4))
    assert search_numbers(event_store, query) == {2, 3}
    assert search_numbers(event_store, EventQuery(start=T0 + timedelta(minutes=4))) == {4, 5}
    assert search_numbers(event_store, EventQuery(end=T0 + timedelta(minutes=1))) == {0}


def test_time_range_accepts_any_zone(event_store: EventStore) -> None:
    event_store.write([make_event(n) for n in range(3)])
    hanoi = timezone(timedelta(hours=7))
    start = (T0 + timedelta(minutes=1)).astimezone(hanoi)
    assert search_numbers(event_store, EventQuery(start=start)) == {1, 2}


def test_paging_returns_every_event_once(event_store: EventStore) -> None:
    # Several events share a timestamp: the order must still be total for offsets to work.
    event_store.write([make_event(n, minute=n // 3) for n in range(25)])
    seen: list[int] = []
    for offset in range(0, 30, 7):
        seen += numbers(event_store.search(EVERYTHING, EventQuery(limit=7, offset=offset)))
    assert sorted(seen) == list(range(25))
    timestamps = [e.timestamp for e in event_store.search(EVERYTHING, EventQuery(limit=25))]
    assert timestamps == sorted(timestamps, reverse=True)


def test_limit_is_capped(event_store: EventStore) -> None:
    event_store.write([make_event(n, minute=0) for n in range(MAX_LIMIT + 5)])
    assert len(event_store.search(EVERYTHING, EventQuery(limit=MAX_LIMIT + 100))) == MAX_LIMIT
    assert event_store.count(EVERYTHING, EventQuery()) == MAX_LIMIT + 5


@pytest.mark.parametrize("limit, offset", [(-1, 0), (10, -1)])
def test_negative_paging_is_refused(event_store: EventStore, limit: int, offset: int) -> None:
    with pytest.raises(StoreError, match="negative"):
        event_store.search(EVERYTHING, EventQuery(limit=limit, offset=offset))


def test_ids_filter(event_store: EventStore) -> None:
    events = [make_event(n) for n in range(4)]
    event_store.write(events)
    assert search_numbers(event_store, EventQuery(ids=[events[1].id, events[3].id, "no-such-id"])) == {1, 3}
    assert search_numbers(event_store, EventQuery(ids=[])) == set()


# --- fields ---------------------------------------------------------------------------------

FIELD_EVENTS = {
    1: {"source.ip": "10.0.0.1", "source.port": 22, "related.ip": ["10.0.0.1", "10.0.0.9"],
        "user.name": "alice", "event.outcome": "failure", "tls.established": True,
        "winlog.event_data.TargetUserName": "quantri"},
    2: {"source.ip": "10.0.0.2", "source.port": 443, "related.ip": ["10.0.0.2"], "user.name": "bob",
        "event.outcome": "success", "tls.established": False},
    3: {"source.ip": "10.0.0.9", "source.port": 22, "related.ip": ["10.0.0.9"], "user.name": "Alice",
        "event.outcome": "failure"},
}


@pytest.mark.parametrize("fields, expected", [
    ({"source.ip": "10.0.0.1"}, {1}),
    ({"related.ip": "10.0.0.9"}, {1, 3}),  # any element of an array
    ({"source.port": 22}, {1, 3}),
    ({"user.name": "alice"}, {1}),  # exact, case included
    ({"user.name": "alice", "event.outcome": "failure"}, {1}),  # AND-ed
    ({"user.name": "alice", "event.outcome": "success"}, set()),
    ({"tls.established": True}, {1}),
    ({"tls.established": False}, {2}),
    ({"winlog.event_data.TargetUserName": "quantri"}, {1}),  # deeply nested
    ({"event.dataset": "test.auth"}, {1, 2, 3}),
    ({"host.name": "absent"}, set()),
    ({"source": "10.0.0.1"}, set()),  # an object never equals a value
    ({"source.ip": "10.0.0.1' OR '1'='1"}, set()),
])
def test_field_equality(event_store: EventStore, fields: dict[str, Any], expected: set[int]) -> None:
    event_store.write([make_event(n, fields=f) for n, f in FIELD_EVENTS.items()])
    assert search_numbers(event_store, EventQuery(fields=fields)) == expected


def test_fields_combine_with_time_and_text(event_store: EventStore) -> None:
    alice = {"user.name": "alice"}
    event_store.write([make_event(n, message="login failed" if n % 2 else "login ok", fields=alice)
                       for n in range(6)])
    query = EventQuery(fields={"user.name": "alice"}, text="failed", start=T0 + timedelta(minutes=2))
    assert search_numbers(event_store, query) == {3, 5}


@pytest.mark.parametrize("name", ["source.ip'", "a b", 'x"]', "$.source", "", "user.name\n", "a;b", "ü.name"])
def test_bad_field_name_is_refused_by_name(event_store: EventStore, name: str) -> None:
    with pytest.raises(StoreError) as caught:
        event_store.search(EVERYTHING, EventQuery(fields={name: "x"}))
    assert repr(name) in str(caught.value)


# --- full text ------------------------------------------------------------------------------

TEXT_EVENTS = {
    1: "Failed password for admin from 203.0.113.7 port 52144 ssh2",
    2: "Accepted password for alice from 10.0.0.2",
    3: "Đăng nhập thất bại cho tài khoản quantri",
    4: "connection closed OR reset by peer NEAR gateway",
}


@pytest.mark.parametrize("text, expected", [
    ("password", {1, 2}),
    ("failed password", {1}),  # words are AND-ed
    ("FAILED", {1}),  # case does not matter
    ("password admin", {1}),
    ("admin alice", set()),
    ("203.0.113.7", {1}),
    ("Đăng nhập thất bại", {3}),
    ("thất bại", {3}),
    ("đăng", {3}),
    ("OR", {4}),  # a word, not an operator
    ("NEAR(", {4}),
    ('"password', {1, 2}),
    ("", {1, 2, 3, 4}),  # blank: no condition
    ("   ", {1, 2, 3, 4}),
    ("*", set()),  # no word that can match
])
def test_full_text(event_store: EventStore, text: str, expected: set[int]) -> None:
    event_store.write([make_event(n, message=m) for n, m in TEXT_EVENTS.items()])
    assert search_numbers(event_store, EventQuery(text=text)) == expected


HOSTILE_TEXT = [
    '"', '""', "*", "NEAR(", "NEAR(password admin, 2)", "OR", "AND", "NOT", "password*", "^password",
    "message:password", "(password", "password)", "-password", "+", "{message}: x", "\x00", "pass\x00word",
    "'; DROP TABLE events; --", 'Đăng" OR "x', "\\", "%", "_", "\u200b", "🙂",
]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_hostile_text_is_only_words(event_store: EventStore, text: str) -> None:
    event_store.write([make_event(n, message=m) for n, m in TEXT_EVENTS.items()])
    assert search_numbers(event_store, EventQuery(text=text)) <= set(TEXT_EVENTS)
    assert event_store.count(EVERYTHING, EventQuery()) == len(TEXT_EVENTS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=40))
@example(text='"NEAR(a b)" OR x*')
@example(text="\x00\x01\x1f")
def test_any_text_searches_without_error(event_store: EventStore, text: str) -> None:
    if event_store.count(EVERYTHING, EventQuery()) == 0:
        event_store.write([make_event(n, message=m) for n, m in TEXT_EVENTS.items()])
    assert search_numbers(event_store, EventQuery(text=text)) <= set(TEXT_EVENTS)


# --- tenants --------------------------------------------------------------------------------

def write_tenant_events(store: EventStore) -> dict[str, Event]:
    events = {tenant: make_event(i, tenant=tenant, message="shared word")
              for i, tenant in enumerate(["national", "province-a", "commune-a1", "province-b"])}
    store.write(list(events.values()))
    return events


@pytest.mark.parametrize("scope, visible", [
    (EVERYTHING, {"national", "province-a", "commune-a1", "province-b"}),
    (PROVINCE_A, {"province-a", "commune-a1"}),  # a parent sees its descendants
    (COMMUNE_A1, {"commune-a1"}),  # a child does not see its parent
    (PROVINCE_B, {"province-b"}),  # nor a sibling
    (TenantScope(root="nobody", tenant_ids=frozenset()), set()),
])
def test_reads_stay_in_scope(event_store: EventStore, scope: TenantScope, visible: set[str]) -> None:
    events = write_tenant_events(event_store)
    for query in [EventQuery(), EventQuery(text="shared"), EventQuery(fields={"message": "shared word"}),
                  EventQuery(ids=[e.id for e in events.values()])]:
        assert {e.tenant for e in event_store.search(scope, query)} == visible
        assert event_store.count(scope, query) == len(visible)


def test_scope_of_thousands_of_tenants(event_store: EventStore) -> None:
    write_tenant_events(event_store)
    many = frozenset({f"commune-{i}" for i in range(5000)} | {"province-b"})
    scope = TenantScope(root="big", tenant_ids=many)
    assert [e.tenant for e in event_store.search(scope, EventQuery())] == ["province-b"]


# --- dead letters ---------------------------------------------------------------------------

def make_letter(n: int, tenant: str | None = "province-a", raw: bytes = b"\xff\x00not json") -> DeadLetter:
    return DeadLetter.create(source="/var/log/auth.log", reason=f"line {n}: not JSON", raw=raw, tenant=tenant,
                             position=n, received=T0 + timedelta(minutes=n))


def test_dead_letters_are_idempotent_and_round_trip(event_store: EventStore) -> None:
    letters = [make_letter(1), make_letter(2, tenant=None), make_letter(3, tenant="province-b")]
    assert event_store.write_dead_letters(letters) == 3
    assert event_store.write_dead_letters(letters + [make_letter(4)]) == 1
    assert event_store.write_dead_letters([]) == 0
    assert event_store.dead_letters(EVERYTHING) == [make_letter(4), *reversed(letters)]  # newest first
    assert event_store.count_dead_letters(EVERYTHING) == 4
    assert len(event_store.dead_letters(EVERYTHING, limit=2)) == 2


@pytest.mark.parametrize("scope, visible", [
    (EVERYTHING, {None, "province-a", "commune-a1", "province-b"}),  # only here: letters with no tenant
    (PROVINCE_A, {"province-a", "commune-a1"}),
    (PROVINCE_B, {"province-b"}),
])
def test_dead_letters_stay_in_scope(event_store: EventStore, scope: TenantScope,
                                    visible: set[str | None]) -> None:
    event_store.write_dead_letters([make_letter(i, tenant=t)
                                    for i, t in enumerate([None, "province-a", "commune-a1", "province-b"])])
    assert {letter.tenant for letter in event_store.dead_letters(scope)} == visible
    assert event_store.count_dead_letters(scope) == len(visible)
