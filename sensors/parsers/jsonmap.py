"""Generic JSON lines -> ECS documents through a declarative field mapping from configuration.

Stage: sensors, parse step. In: one line holding one JSON object, and a `JsonMapping` (from
configuration): `fields` {ECS name: JSON path}, the time's path and format, and what to do with
the keys no mapping names. Out: a nested ECS document with `@timestamp` (aware UTC) and no
tenant or `event.id`; `ParseError` for a line that is not a JSON object or has no readable time.

`json_parser(mapping)` makes a registry-shaped parser (a factory: one per configured source);
`parse_json_line` is the registered default, "json": the line is (nearly) ECS already, `@timestamp`
in ISO 8601, every other key kept as given.

Invariants:
- JSON paths are dotted and found nested or as literal dotted keys (`pipeline.records.lookup`).
- The tenant is the sensor's, never the line's: `organization` and `event.id` in the input are
  dropped (a line must not choose where it lands or overwrite another event).
- `rest`: "keep" leaves unmapped keys where they are (mapped keys and the time are moved, not
  copied; a nested mapped key found under a literal dotted parent stays);
  "labels" puts unmapped scalars at `labels.<key>` as text (ECS labels are keyword; nested keys
  joined with `_`, lists and objects as their JSON text); "drop" keeps only what is mapped.
- `event` is an object and `tags` a list (a scalar is wrapped), as the readers expect them.
- A time without a zone is read in `LineContext.tz`. Total: any `str` gives a document or
  `ParseError` (Hypothesis-tested); a bad mapping is a `ConfigError` when it is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal, get_args

import orjson

from config.errors import ConfigError
from pipeline import ecs
from pipeline.errors import ParseError
from pipeline.records import MISSING, flatten, lookup, set_path
from sensors.parsers.syslog import LineContext

Rest = Literal["keep", "labels", "drop"]
EPOCH_DIVISORS = {"epoch_s": 1, "epoch_ms": 1_000, "epoch_us": 1_000_000, "epoch_ns": 1_000_000_000}


@dataclass(frozen=True, slots=True)
class JsonMapping:
    """How one JSON source becomes ECS. `timestamp_format` is "iso8601", "epoch_s", "epoch_ms",
    "epoch_us", "epoch_ns" or a `strptime` pattern (containing `%`). Raises `ConfigError`."""

    fields: Mapping[str, str] = field(default_factory=dict)
    timestamp_field: str = "@timestamp"
    timestamp_format: str = "iso8601"
    rest: Rest = "keep"
    dataset: str = "json.log"

    def __post_init__(self) -> None:
        fmt = self.timestamp_format
        if fmt != "iso8601" and fmt not in EPOCH_DIVISORS and "%" not in fmt:
            raise ConfigError(f"timestamp_format: expected iso8601, {', '.join(EPOCH_DIVISORS)} or a strptime "
                              f"pattern, got {fmt!r}")
        if self.rest not in get_args(Rest):
            raise ConfigError(f"rest: expected one of {', '.join(get_args(Rest))}, got {self.rest!r}")
        if not self.timestamp_field:
            raise ConfigError("timestamp_field: empty")
        for name, path in self.fields.items():
            if not name or not path or name == ecs.TIMESTAMP or name.startswith(("organization", "event.id")):
                raise ConfigError(f"fields.{name}: cannot map {path!r} there")


class JsonLineParser:
    """A line parser for one `JsonMapping` (the registry's shape: `(line, ctx) -> document`)."""

    def __init__(self, mapping: JsonMapping) -> None:
        self.mapping = mapping

    def __call__(self, line: str, ctx: LineContext) -> dict[str, Any]:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise ParseError(f"not JSON: {e}") from e
        if not isinstance(record, dict):
            raise ParseError(f"expected a JSON object, got {type(record).__name__}")
        mapping = self.mapping
        raw_time = lookup(record, mapping.timestamp_field)
        if raw_time is MISSING or raw_time is None:
            raise ParseError(f"{mapping.timestamp_field}: missing")
        timestamp = read_time(raw_time, mapping.timestamp_format, ctx.tz, mapping.timestamp_field)
        mapped = {name: value for name, path in mapping.fields.items()
                  if (value := lookup(record, path)) is not MISSING}
        for path in (mapping.timestamp_field, *mapping.fields.values()):
            _remove(record, path)
        doc = _rest(record, mapping.rest)
        for name, value in mapped.items():
            set_path(doc, name, value)
        doc[ecs.TIMESTAMP] = timestamp
        event = doc.get("event")
        if not isinstance(event, dict):
            event = doc["event"] = {}
        event.pop("id", None)
        event.setdefault("kind", "event")
        event.setdefault("dataset", mapping.dataset)
        tags = doc.get(ecs.TAGS)
        if tags is not None and not isinstance(tags, list):  # readers append to it: keep ECS's shape
            doc[ecs.TAGS] = [tags if isinstance(tags, str) else orjson.dumps(tags).decode()]
        return doc


def json_parser(mapping: JsonMapping) -> JsonLineParser:
    """A parser for one configured JSON source."""
    return JsonLineParser(mapping)


_DEFAULT = JsonLineParser(JsonMapping())


def parse_json_line(line: str, ctx: LineContext) -> dict[str, Any]:
    """The "json" format: an (ECS-shaped) JSON object per line with an ISO 8601 `@timestamp`."""
    return _DEFAULT(line, ctx)


def _remove(record: dict[str, Any], path: str) -> None:
    """Remove the value at `path` (a literal dotted key, else nested) so it is not kept twice."""
    if path in record:
        del record[path]
        return
    parent: Any = record
    parts = path.split(".")
    for part in parts[:-1]:
        parent = parent.get(part) if isinstance(parent, dict) else None
    if isinstance(parent, dict):
        parent.pop(parts[-1], None)


def _rest(record: dict[str, Any], rest: Rest) -> dict[str, Any]:
    """The document the unmapped keys make, without any tenant the line claims."""
    record.pop("organization", None)
    record.pop("organization.id", None)
    record.pop("event.id", None)
    if rest == "keep":
        return record
    if rest == "drop":
        return {}
    labels: dict[str, str] = {}
    try:
        for name, value in flatten(record):
            key = name.replace(".", "_")
            labels[key] = value if isinstance(value, str) else orjson.dumps(value).decode()
    except RecursionError as e:
        raise ParseError("nested too deeply") from e
    return {"labels": labels} if labels else {}


def read_time(value: Any, fmt: str, tz: tzinfo, name: str) -> datetime:
    """`value` read as `fmt` (see `JsonMapping`) -> aware UTC; `ParseError` names the field."""
    try:
        if fmt in EPOCH_DIVISORS:
            return _epoch(value, EPOCH_DIVISORS[fmt])
        if not isinstance(value, str):
            raise ValueError("not text")
        parsed = datetime.fromisoformat(value) if fmt == "iso8601" else datetime.strptime(value, fmt)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(UTC)
    except (ValueError, OverflowError, OSError) as e:
        raise ParseError(f"{name}: not a time in format {fmt}: {str(value)[:40]!r}") from e


def _epoch(value: Any, divisor: int) -> datetime:
    """Seconds (or ms, µs, ns) since 1970: integers exactly (no float rounding of nanoseconds)."""
    if isinstance(value, str):
        text = value.strip()
        value = int(text) if text.lstrip("-").isdigit() and text.isascii() else float(text)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not a number")
    if isinstance(value, float):
        return datetime.fromtimestamp(value / divisor, UTC)
    seconds, rest = divmod(value, divisor)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest * 1_000_000 // divisor)
