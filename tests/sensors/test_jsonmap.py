"""Generic JSON lines through a declarative mapping, and the default "json" format."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from config.errors import ConfigError
from pipeline.errors import ParseError
from sensors.parsers import JsonMapping, LineContext, json_parser, parse_json_line

ICT = ZoneInfo("Asia/Ho_Chi_Minh")
CTX = LineContext(tz=ICT, reference=datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
T = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
APP_LINE = orjson.dumps({"ts": 1795402800.25, "client": {"ip": "203.0.113.7", "port": 5050}, "login": "alice",
                         "ok": False, "tags": ["a", "b"], "detail": {"reason": "bad password"}}).decode()


def test_default_keeps_an_ecs_document_as_given() -> None:
    doc = parse_json_line('{"@timestamp": "2026-11-23T10:00:00+07:00", "source": {"ip": "10.0.0.1"}, '
                          '"event": {"dataset": "app.log"}, "message": "hi"}', CTX)
    assert doc == {"@timestamp": T, "source": {"ip": "10.0.0.1"}, "message": "hi",
                   "event": {"dataset": "app.log", "kind": "event"}}


def test_default_drops_the_tenant_and_id_the_line_claims() -> None:
    doc = parse_json_line('{"@timestamp": "2026-11-23T03:00:00Z", "organization": {"id": "other"}, '
                          '"organization.id": "x", "event": {"id": "forged"}, "event.id": "forged"}', CTX)
    assert doc == {"@timestamp": T, "event": {"kind": "event", "dataset": "json.log"}}


def test_mapping_with_epoch_and_labels() -> None:
    parse = json_parser(JsonMapping(
        fields={"source.ip": "client.ip", "source.port": "client.port", "user.name": "login",
                "related.user": "login"},
        timestamp_field="ts", timestamp_format="epoch_s", rest="labels", dataset="app.auth"))
    doc = parse(APP_LINE, CTX)
    assert doc == {
        "@timestamp": datetime(2026, 11, 23, 3, 0, 0, 250000, tzinfo=UTC),
        "labels": {"ok": "false", "tags": '["a","b"]', "detail_reason": "bad password"},
        "source": {"ip": "203.0.113.7", "port": 5050},
        "user": {"name": "alice"},
        "related": {"user": "alice"},
        "event": {"kind": "event", "dataset": "app.auth"},
    }


def test_mapping_keep_moves_mapped_keys_and_drop_keeps_only_them() -> None:
    keep = json_parser(JsonMapping(fields={"user.name": "login"}, timestamp_field="ts", timestamp_format="epoch_s"))
    doc = keep(APP_LINE, CTX)
    assert "login" not in doc and "ts" not in doc and doc["client"] == {"ip": "203.0.113.7", "port": 5050}
    drop = json_parser(JsonMapping(fields={"user.name": "login"}, timestamp_field="ts", timestamp_format="epoch_s",
                                   rest="drop"))
    assert set(drop(APP_LINE, CTX)) == {"@timestamp", "user", "event"}


@pytest.mark.parametrize("fmt, value, expected", [
    ("iso8601", "2026-11-23T10:00:00", T),  # no zone: the configured one
    ("epoch_ms", 1795402800000, T), ("epoch_ms", "1795402800000", T), ("epoch_ns", 1795402800000000000, T),
    ("epoch_ns", 1795402800123456789, T.replace(microsecond=123456)),
    ("epoch_s", "1795402800.5", T.replace(microsecond=500000)),
    ("%d/%m/%Y %H:%M:%S", "23/11/2026 10:00:00", T), ("%d/%m/%Y %H:%M:%S %z", "23/11/2026 03:00:00 +0000", T),
])
def test_time_formats(fmt: str, value: object, expected: datetime) -> None:
    parse = json_parser(JsonMapping(timestamp_field="when", timestamp_format=fmt))
    assert parse(orjson.dumps({"when": value}).decode(), CTX)["@timestamp"] == expected


def test_dotted_literal_time_key() -> None:
    parse = json_parser(JsonMapping(timestamp_field="meta.time"))
    assert parse('{"meta.time": "2026-11-23T03:00:00Z"}', CTX)["@timestamp"] == T
    assert parse('{"meta": {"time": "2026-11-23T03:00:00Z"}}', CTX)["@timestamp"] == T


@pytest.mark.parametrize("kwargs, reason", [
    ({"timestamp_format": "rfc822"}, "timestamp_format"),
    ({"rest": "flatten"}, "rest"),
    ({"timestamp_field": ""}, "timestamp_field"),
    ({"fields": {"organization.id": "tenant"}}, "cannot map"),
    ({"fields": {"@timestamp": "t"}}, "cannot map"),
])
def test_bad_mappings_are_config_errors(kwargs: dict[str, object], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        JsonMapping(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("text, reason", [
    ("not a log line", "not JSON"), ("[]", "JSON object"), ("{}", "@timestamp: missing"),
    ('{"@timestamp": null}', "missing"), ('{"@timestamp": 5}', "not a time"),
    ('{"@timestamp": "soon"}', "not a time"),
])
def test_not_json_events(text: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_json_line(text, CTX)


EPOCH = json_parser(JsonMapping(timestamp_field="t", timestamp_format="epoch_ms", rest="labels",
                                fields={"source.ip": "a.b", "user.name": "a"}))
json_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                           max_leaves=12)


@given(st.one_of(st.text(), json_values.map(lambda v: orjson.dumps(v).decode() if v == v else "null"),
                 st.dictionaries(st.sampled_from(["@timestamp", "t", "a", "a.b", "event", "organization", "tags"]),
                                  json_values).map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode())))
@example('{"t": 1e300}')
@example('{"t": "-1e999"}')
@example('{"@timestamp": "0001-01-01T00:00:00+01:00"}')
@example('{"@timestamp": "2026-11-23T03:00:00Z", "event": 5}')
@example('{"@timestamp": "2026-11-23T03:00:00Z", "tags": 5}')
def test_any_text_gives_a_document_or_parse_error(text: str) -> None:
    for parse in (parse_json_line, EPOCH):
        try:
            doc = parse(text, CTX)
        except ParseError as e:
            assert e.reason
            continue
        assert doc["@timestamp"].tzinfo is not None
        assert "organization" not in doc and "id" not in doc["event"]
        assert isinstance(doc.get("tags", []), list)
