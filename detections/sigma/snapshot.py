"""Correlation state as plain JSON: what a restarted or new engine needs to fire the same alerts.

Stage: beside correlate. In: a `Correlator`'s groups (via `SigmaEngine.snapshot`). Out: a dict of
plain str/int/list/dict/None (`orjson`-ready); `restore_correlator` reads one back into an engine
of the same rule set. Used by the scale-out detect workers' checkpoints (api/wiring/detect_state.py).

What is kept, per group (correlation rule id, tenant, group-by values) and nothing else:
- the window's newest hit time and its `seen` list (event-id keys and times, for redeliveries);
- per counted hit, its time and event ids only. An alert of a correlation is built from exactly
  these (`correlate._fire`: the ids, the first hit's first id, the newest time, the number of
  hits) plus the rule and the group values; a stored hit's `values` and `source` are never read
  again (only the arriving hit's are), so no event document is kept. value_count windows keep
  the counted value beside each hit; temporal windows the step; temporal_ordered its chains.
- times are integer microseconds since the epoch, UTC (events' times are UTC: `Event.create`).

Expiry: before it is taken, the snapshot drops, in the live engine too, the groups that are old
in event time and in arrival (`Correlator.expire`): newest hit more than timespan + lateness
behind its tenant's watermark (the tenant's newest hit time, or the `now` passed) AND no hit for
`recent_hits` hits fed (10,000 by default); and windows that never admitted a hit. Each group
keeps its arrival age, and the snapshot the tenants' watermarks and the hit clock, so a restored
engine expires exactly as the live one. The engine, one restored from the snapshot and one that
never took a snapshot then raise the same alerts, redeliveries and out-of-order events included,
unless a hit arrives both more than `lateness` behind its tenant's newest event and more than
`recent_hits` hits after its group's last hit (a sensor that ships a day late into a busy
partition): that one may count in a fresh window.

Why both (issue 11): version 1 expired on event time alone. At 10,000 events a day an ingest
batch of 1,000 spans 2.4 hours, and after a broker restart the ingest worker publishes the
batches it had not committed again: their events arrived hours behind the partition's newest,
found their groups expired, and where a checkpoint fell inside a redelivered burst the rest of
the burst counted in yet another fresh window: extra alerts with other first events. Ignoring
hits more than `lateness` behind is wrong too: in one e2e run a whole burst first reached its
partition after events 8 hours newer, and an engine that never expires counts it
(tests/detections/test_sigma_snapshot_replay.py has both cases). Redeliveries arrive within a
few batches, far below `recent_hits`. A `lateness` passed below the correlator's own is raised
to it.

Versioned: `FORMAT`, `VERSION` (a version 1 snapshot is refused). A group whose correlation is
gone or changed (its fingerprint: kind, sources, group-by fields, timespan, threshold, value
field) is dropped on restore, as `Correlator.adopt` does on a reload. Malformed input raises
`SnapshotError` naming the path of the bad field (`groups[3].window.hits[0]`) and changes nothing.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from config.errors import GovsocError, SourceLocation
from detections.sigma.correlate import DEFAULT_LATENESS as DEFAULT_LATENESS  # SigmaEngine.snapshot's default
from detections.sigma.correlate import (
    CorrelationSpec,
    Correlator,
    GroupKey,
    Hit,
    _CountWindow,
    _DistinctWindow,
    _new_window,
    _OrderedWindow,
    _TemporalWindow,
    _Window,
)

FORMAT = "govsoc.sigma.correlations"
VERSION = 2
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SnapshotError(GovsocError):
    """A correlation snapshot that cannot be read back (wrong format, version or shape)."""


def fingerprint(spec: CorrelationSpec) -> str:
    """What must not change for a group's window to stay meaningful, hashed."""
    fields = [spec.kind.value, list(spec.sources), list(spec.group_by),
              {source: list(names) for source, names in sorted(spec.group_fields.items())},
              spec.window.total_seconds(), spec.threshold, spec.value_field]
    return hashlib.sha256(orjson.dumps(fields)).hexdigest()[:16]


def snapshot_correlator(correlator: Correlator, now: datetime | None = None,
                        lateness: timedelta = DEFAULT_LATENESS) -> dict[str, Any]:
    """The correlator's groups, hit clock and tenants' watermarks as JSON-able data, after
    expiring (in `correlator` too) the groups old in event time and in arrival (module docstring;
    `lateness`: at least the correlator's own)."""
    correlator.expire(now, lateness)
    specs = correlator.specs
    groups = [[specs[index].info.rule_id, tenant, list(values), _encode_window(window, correlator.clock)]
              for (index, tenant, values), window in correlator.groups()]
    used = sorted({specs[index].info.rule_id: index for (index, _, _), _ in correlator.groups()}.items())
    return {
        "format": FORMAT,
        "version": VERSION,
        "watermarks": {tenant: _us(at) for tenant, at in sorted(correlator.watermarks.items())},
        "clock": correlator.clock,
        "evicted": correlator.evicted,
        "rules": {rule_id: fingerprint(specs[index]) for rule_id, index in used},
        "groups": groups,
    }


def restore_correlator(correlator: Correlator, snapshot: Mapping[str, Any]) -> int:
    """Replace `correlator`'s groups with the snapshot's; returns the groups dropped because their
    correlation is gone or changed. Raises `SnapshotError` (and changes nothing) on bad input."""
    reader = _Reader(snapshot)
    if reader.get(snapshot, "format", str) != FORMAT:
        raise reader.error("format", f"not a correlation snapshot ({FORMAT!r} expected)")
    version = reader.get(snapshot, "version", int)
    if version != VERSION:
        raise reader.error("version", f"snapshot version {version}; this govsoc reads {VERSION}")
    watermarks = _decode_watermarks(reader.get(snapshot, "watermarks", dict), reader)
    clock = reader.get(snapshot, "clock", int)
    evicted = reader.get(snapshot, "evicted", int)
    prints = reader.get(snapshot, "rules", dict)
    by_rule = {spec.info.rule_id: (index, spec) for index, spec in enumerate(correlator.specs)}
    groups: list[tuple[GroupKey, _Window]] = []
    dropped = 0
    for n, item in enumerate(reader.get(snapshot, "groups", list)):
        where = f"groups[{n}]"
        if not isinstance(item, list) or len(item) != 4:
            raise reader.error(where, "a group is [rule id, tenant, group values, window]")
        rule_id, tenant, values, data = item
        if not isinstance(rule_id, str) or not isinstance(tenant, str) or not _strings(values):
            raise reader.error(where, "rule id and tenant are text, group values a list of text")
        known = by_rule.get(rule_id)
        if known is None or prints.get(rule_id) != fingerprint(known[1]):
            dropped += 1
            continue
        if tenant not in watermarks:
            raise reader.error(where, f"tenant {tenant!r} has no watermark")
        index, spec = known
        window = _decode_window(spec, data, reader, f"{where}.window")
        window.touched = clock - reader.get(data, "age", int, where=f"{where}.window")
        groups.append(((index, tenant, tuple(values)), window))
    correlator.install(groups, evicted=evicted, clock=clock, watermarks=watermarks)
    return dropped


def _decode_watermarks(data: dict[Any, Any], reader: _Reader) -> dict[str, datetime]:
    marks: dict[str, datetime] = {}
    for tenant, at in data.items():
        if not _is_int(at):
            raise reader.error(f"watermarks.{tenant}", "a watermark is a time in microseconds")
        marks[tenant] = _time(at)
    return marks


# --- windows --------------------------------------------------------------------------------------

def _us(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def _time(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _absent(_field: str) -> None:
    """A restored hit's `values`: never read (see the module docstring)."""
    return None


def _hit(hit: Hit) -> list[Any]:
    return [_us(hit.timestamp), list(hit.event_ids)]


def _encode_window(window: _Window, clock: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        "newest": None if window.newest is None else _us(window.newest),
        "age": clock - window.touched,  # hits fed since the group's last one
        "seen": [[list(key), _us(at)] for key, at in window.seen.items()],
    }
    if isinstance(window, _CountWindow):
        data["hits"] = [_hit(hit) for hit in window.hits]
    elif isinstance(window, _DistinctWindow):
        data["latest"] = [[value, *_hit(hit)] for value, hit in window.latest.items()]
    elif isinstance(window, _TemporalWindow):
        data["latest"] = [[step, *_hit(hit)] for step, hit in window.latest.items()]
    elif isinstance(window, _OrderedWindow):
        data["chains"] = [None if chain is None else [_hit(hit) for hit in chain] for chain in window.chains]
    return data


def _decode_window(spec: CorrelationSpec, data: Any, reader: _Reader, where: str) -> _Window:
    if not isinstance(data, dict):
        raise reader.error(where, "a window is an object")
    window = _new_window(spec)
    newest = reader.get(data, "newest", int, optional=True, where=where)
    window.newest = None if newest is None else _time(newest)
    seen: OrderedDict[tuple[str, ...], datetime] = OrderedDict()
    for n, entry in enumerate(reader.get(data, "seen", list, where=where)):
        if not (isinstance(entry, list) and len(entry) == 2 and _strings(entry[0]) and _is_int(entry[1])):
            raise reader.error(f"{where}.seen[{n}]", "a seen entry is [event ids, time]")
        seen[tuple(entry[0])] = _time(entry[1])
    window.seen = seen
    source = spec.info.rule_id
    if isinstance(window, _CountWindow):
        hits = reader.get(data, "hits", list, where=where)
        window.hits = deque(_decode_hit(item, source, reader, f"{where}.hits[{n}]") for n, item in enumerate(hits))
    elif isinstance(window, _DistinctWindow):
        for n, item in enumerate(reader.get(data, "latest", list, where=where)):
            at = f"{where}.latest[{n}]"
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
                raise reader.error(at, "a value_count entry is [value, time, event ids]")
            window.latest[item[0]] = _decode_hit(item[1:], source, reader, at)
    elif isinstance(window, _TemporalWindow):
        for n, item in enumerate(reader.get(data, "latest", list, where=where)):
            at = f"{where}.latest[{n}]"
            if not (isinstance(item, list) and len(item) == 3 and _is_int(item[0])
                    and 0 <= item[0] < len(spec.sources)):
                raise reader.error(at, "a temporal entry is [step, time, event ids]")
            window.latest[item[0]] = _decode_hit(item[1:], spec.sources[item[0]], reader, at)
    elif isinstance(window, _OrderedWindow):
        window.chains = _decode_chains(spec, reader.get(data, "chains", list, where=where), reader, f"{where}.chains")
    return window


def _decode_chains(spec: CorrelationSpec, chains: list[Any], reader: _Reader,
                   where: str) -> list[tuple[Hit, ...] | None]:
    if len(chains) != len(spec.sources):
        raise reader.error(where, f"{len(spec.sources)} chains expected (one per step), got {len(chains)}")
    out: list[tuple[Hit, ...] | None] = []
    for n, chain in enumerate(chains):
        if chain is None:
            out.append(None)
        elif isinstance(chain, list) and len(chain) == n + 1:
            out.append(tuple(_decode_hit(item, spec.sources[k], reader, f"{where}[{n}][{k}]")
                             for k, item in enumerate(chain)))
        else:
            raise reader.error(f"{where}[{n}]", f"the chain of step {n} is null or {n + 1} hits")
    return out


def _decode_hit(item: Any, source: str, reader: _Reader, where: str) -> Hit:
    if not (isinstance(item, list) and len(item) == 2 and _is_int(item[0]) and _strings(item[1]) and item[1]):
        raise reader.error(where, "a hit is [time in microseconds, [event ids]]")
    # source and tenant are not read from a stored hit; the tenant is the group's (set by the caller)
    return Hit(source, "", _time(item[0]), tuple(item[1]), _absent)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Reader:
    """Typed reads of snapshot fields, raising `SnapshotError` with the field's path."""

    def __init__(self, root: Any) -> None:
        if not isinstance(root, Mapping):
            raise SnapshotError("a correlation snapshot is an object", SourceLocation(field="snapshot"))

    def get(self, data: Mapping[str, Any], name: str, kind: type, *, optional: bool = False,
            where: str = "") -> Any:
        value = data.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(f"{where}.{name}" if where else name, f"{kind.__name__} expected, got {value!r:.60}")
        return value

    def error(self, where: str, reason: str) -> SnapshotError:
        return SnapshotError(reason, SourceLocation(field=f"snapshot.{where}"))
