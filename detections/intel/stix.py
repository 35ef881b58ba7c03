"""STIX 2.1 bundles in and out: indicators with STIX patterns; everything else kept as context.

In: a bundle (a JSON object with `objects`), as parsed JSON. Each object is validated with the
`stix2` library (`stix2.parse`, custom properties allowed); an object it refuses is one issue
located at `objects[i]` and the id, never the end of the import. Indicator patterns are parsed by
the `stix2` pattern visitor (the stix2-patterns ANTLR grammar), not by regular expressions.

Supported patterns: observation expressions joined by OR whose comparisons are `=` (or ISSUBSET
for an address range) on one of the paths in `PATHS`, joined by OR; each comparison becomes one
`Indicator` (all sharing the STIX id). AND, FOLLOWEDBY, qualifiers (WITHIN, REPEATS), negation,
MATCHES/LIKE and other paths cannot be matched one value at a time and are reported as issues.
JA3/JA4 have no STIX object: `x-ja3:value` / `x-ja4:value` (custom objects) carry them, as the
export writes them.

Context: malware, threat actors, intrusion sets, campaigns, tools and attack patterns an
indicator `indicates` (relationships) become its `context` lines; `created_by_ref` names the
source; `object_marking_refs` give the TLP (TLP 1.0 and 2.0 marking definitions, by id or by the
`TLP:...` name of a marking definition in the bundle); observables are counted as context.

Out: `export_stix(indicators)` -> a bundle dict (stix2 objects serialised), with TLP markings.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import stix2  # type: ignore[import-untyped]
import stix2.exceptions  # type: ignore[import-untyped]
from stix2 import patterns as sp
from stix2.pattern_visitor import create_pattern_object  # type: ignore[import-untyped]

from detections.intel.model import (
    ImportOptions,
    ImportResult,
    Indicator,
    IndicatorType,
    IntelError,
    Tlp,
    issue,
    make_indicator,
)

I = IndicatorType  # noqa: E741 - the table below reads better short
PATHS: Mapping[tuple[str, str], IndicatorType] = {
    ("ipv4-addr", "value"): I.IPV4, ("ipv6-addr", "value"): I.IPV6,
    ("domain-name", "value"): I.DOMAIN, ("url", "value"): I.URL, ("email-addr", "value"): I.EMAIL,
    ("file", "hashes.md5"): I.MD5, ("file", "hashes.sha-1"): I.SHA1, ("file", "hashes.sha1"): I.SHA1,
    ("file", "hashes.sha-256"): I.SHA256, ("file", "hashes.sha256"): I.SHA256,
    ("email-message", "from_ref.value"): I.EMAIL, ("email-message", "sender_ref.value"): I.EMAIL,
    ("email-message", "to_refs.value"): I.EMAIL,
    ("network-traffic", "src_ref.value"): I.IPV4, ("network-traffic", "dst_ref.value"): I.IPV4,
    ("network-traffic", "extensions.http-request-ext.request_header.user-agent"): I.USER_AGENT,
    ("x-ja3", "value"): I.JA3, ("x-ja4", "value"): I.JA4,
}
EXPORT_PATTERNS: Mapping[IndicatorType, str] = {
    I.IPV4: "ipv4-addr:value", I.IPV6: "ipv6-addr:value", I.DOMAIN: "domain-name:value", I.URL: "url:value",
    I.EMAIL: "email-addr:value", I.MD5: "file:hashes.MD5", I.SHA1: "file:hashes.'SHA-1'",
    I.SHA256: "file:hashes.'SHA-256'", I.JA3: "x-ja3:value", I.JA4: "x-ja4:value",
    I.USER_AGENT: "network-traffic:extensions.'http-request-ext'.request_header.'User-Agent'",
}
TLP_MARKINGS: Mapping[str, Tlp] = {
    stix2.TLP_WHITE.id: Tlp.CLEAR, stix2.TLP_GREEN.id: Tlp.GREEN, stix2.TLP_AMBER.id: Tlp.AMBER,
    stix2.TLP_RED.id: Tlp.RED,
    # TLP 2.0 marking definitions (STIX 2.1 extension-definition of the TLP 2.0 markings)
    "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487": Tlp.CLEAR,
    "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb": Tlp.GREEN,
    "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421": Tlp.AMBER,
    "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003": Tlp.AMBER_STRICT,
    "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1": Tlp.RED,
}
CONTEXT_TYPES = frozenset({"malware", "threat-actor", "intrusion-set", "campaign", "tool", "attack-pattern",
                           "vulnerability", "infrastructure"})
UUID_NAMESPACE = uuid.UUID("5b0f1c2e-6f1d-4c43-9d52-9c4a0e3e8a11")  # govsoc's, as misp.py
_ESCAPE = re.compile(r"\\(.)")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # valid_from is required in STIX; unknown means "always"
# What stix2 raises for an object it refuses (its own errors, and plain ones from property checks).
# UnboundLocalError: stix2patterns' bracket check fails so on an empty pattern (found by test_fuzz.py).
STIX_ERRORS = (stix2.exceptions.STIXError, ValueError, TypeError, KeyError, AttributeError, IndexError,
               UnboundLocalError)


def _path_key(path: sp.ObjectPath) -> tuple[str, str]:
    parts = [str(getattr(p, "property_name", "")).strip("'").lower() for p in path.property_path]
    return str(path.object_type_name).lower(), ".".join(parts)


def _comparisons(node: object) -> Iterator[sp._ComparisonExpression]:
    """The comparisons of an OR-only pattern; raises `IntelError` for any other structure."""
    if isinstance(node, (sp.ObservationExpression, sp.ParentheticalExpression)):
        yield from _comparisons(getattr(node, "operand", None) or getattr(node, "expression", None))
    elif isinstance(node, (sp.OrObservationExpression, sp.OrBooleanExpression)):
        for operand in node.operands:
            yield from _comparisons(operand)
    elif isinstance(node, (sp.EqualityComparisonExpression, sp.IsSubsetComparisonExpression)):
        if node.negated:
            raise IntelError("a negated comparison cannot be matched one value at a time")
        yield node
    else:
        raise IntelError(f"{type(node).__name__} cannot be matched one value at a time")


def _unescape(text: str) -> str:
    """The stix2 visitor keeps a string constant's escapes (`\\'`, `\\\\`); the value has none."""
    return _ESCAPE.sub(r"\1", text)


def pattern_values(pattern: str) -> list[tuple[IndicatorType, str]]:
    """The (type, raw value) pairs of a STIX 2.1 pattern; raises `IntelError` naming what is unsupported."""
    try:
        tree = create_pattern_object(pattern, version="2.1")
    except Exception as e:  # noqa: BLE001 - the ANTLR visitor raises bare Exception/ValueError on bad input
        raise IntelError(f"pattern {pattern!r}: not a valid STIX 2.1 pattern ({e})") from e
    pairs: list[tuple[IndicatorType, str]] = []
    for comparison in _comparisons(tree.pattern if hasattr(tree, "pattern") else tree):
        key = _path_key(comparison.lhs)
        kind = PATHS.get(key)
        value = getattr(comparison.rhs, "value", None)
        if kind is None:
            raise IntelError(f"pattern path {key[0]}:{key[1]} is not one govsoc matches")
        if not isinstance(value, str):
            raise IntelError(f"pattern {key[0]}:{key[1]}: the value is not a string")
        if isinstance(comparison, sp.IsSubsetComparisonExpression):
            kind = I.CIDR
        elif key[0] == "network-traffic" and ":" in value and kind is I.IPV4:
            kind = I.IPV6
        pairs.append((kind, _unescape(value)))
    return pairs


class _Bundle:
    """The parsed objects of one bundle, by id, and who `indicates` what."""

    def __init__(self, objects: list[Any], options: ImportOptions, result: ImportResult) -> None:
        self.by_id: dict[str, Any] = {}
        self.indicators: list[tuple[int, Any]] = []
        self.targets: dict[str, list[str]] = {}
        for index, raw in enumerate(objects):
            where = f"objects[{index}]" + (f" {raw.get('id')}" if isinstance(raw, dict) and raw.get("id") else "")
            try:
                obj = stix2.parse(raw, allow_custom=True)
            except STIX_ERRORS as e:
                result.issues.append(issue(options, where, f"not a valid STIX object: {e}"))
                continue
            kind = obj.get("type") if hasattr(obj, "get") else None
            self.by_id[str(obj.get("id"))] = obj
            if kind == "indicator":
                self.indicators.append((index, obj))
            else:
                result.context_objects += 1
            if kind == "relationship":
                self.targets.setdefault(str(obj["source_ref"]), []).append(str(obj["target_ref"]))

    def tlp(self, obj: Any) -> Tlp | None:
        for ref in obj.get("object_marking_refs", ()) or ():
            if str(ref) in TLP_MARKINGS:
                return TLP_MARKINGS[str(ref)]
            marking = self.by_id.get(str(ref))
            name = str(marking.get("name", "")) if marking is not None else ""
            if name.upper().startswith("TLP:"):
                return Tlp.from_text(name)
        return None

    def context(self, obj: Any) -> tuple[str, ...]:
        lines = []
        for target in self.targets.get(str(obj["id"]), ()):
            found = self.by_id.get(target)
            if found is not None and found.get("type") in CONTEXT_TYPES:
                lines.append(f"{found['type']}: {found.get('name', target)}")
        return tuple(lines)

    def source(self, obj: Any, options: ImportOptions) -> str:
        author = self.by_id.get(str(obj.get("created_by_ref", "")))
        return options.source or (str(author["name"]) if author is not None else "") or options.path or "stix"


def _time(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _indicators_of(bundle: _Bundle, obj: Any, options: ImportOptions) -> list[Indicator]:
    if obj.get("pattern_type", "stix") != "stix":
        raise IntelError(f"pattern_type {obj['pattern_type']!r} is not stix")
    pairs = pattern_values(str(obj["pattern"]))
    sourced = dataclasses.replace(options, source=bundle.source(obj, options))
    fields: dict[str, Any] = {
        "tlp": bundle.tlp(obj) or options.default_tlp,
        "confidence": int(obj.get("confidence", options.default_confidence)),
        "valid_from": _time(obj.get("valid_from")), "valid_until": _time(obj.get("valid_until")),
        "name": str(obj.get("name", "")), "description": str(obj.get("description", "")),
        "kill_chain": tuple(f"{p['kill_chain_name']}:{p['phase_name']}" for p in obj.get("kill_chain_phases", ())),
        "labels": tuple(str(x) for x in (*obj.get("indicator_types", ()), *obj.get("labels", ()))),
        "context": bundle.context(obj), "stix_id": str(obj["id"]),
    }
    return [make_indicator(sourced, kind, value, **fields) for kind, value in pairs]


def import_stix(doc: object, options: ImportOptions) -> ImportResult:
    """Indicators of a STIX bundle (or a single STIX object); every skipped object is an issue."""
    result = ImportResult()
    if isinstance(doc, dict) and doc.get("type") != "bundle" and "type" in doc:
        doc = {"type": "bundle", "objects": [doc]}
    objects = doc.get("objects") if isinstance(doc, dict) else None
    if not isinstance(objects, list):
        result.issues.append(issue(options, "objects", "a STIX bundle is an object with an `objects` list"))
        return result
    bundle = _Bundle(objects, options, result)
    for index, obj in bundle.indicators:
        try:
            result.indicators.extend(_indicators_of(bundle, obj, options))
        except (IntelError, *STIX_ERRORS) as e:
            reason = e.reason if isinstance(e, IntelError) else f"{type(e).__name__}: {e}"
            result.issues.append(issue(options, f"objects[{index}] {obj['id']}", reason))
    return result


def _marking(tlp: Tlp) -> Any:
    if tlp is Tlp.AMBER_STRICT:
        return stix2.MarkingDefinition(id=f"marking-definition--{uuid.uuid5(UUID_NAMESPACE, 'amber+strict')}",
                                       created=EPOCH, name="TLP:AMBER+STRICT", definition_type="statement",
                                       definition=stix2.StatementMarking("TLP:AMBER+STRICT"))
    return {Tlp.CLEAR: stix2.TLP_WHITE, Tlp.GREEN: stix2.TLP_GREEN, Tlp.AMBER: stix2.TLP_AMBER,
            Tlp.RED: stix2.TLP_RED}[tlp]


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def export_stix(indicators: Sequence[Indicator]) -> dict[str, Any]:
    """A STIX 2.1 bundle of `indicators` (one STIX indicator each) and their TLP markings.

    Deterministic: ids are uuid5 of the indicator ids, `created` is `valid_from` (or the epoch).
    """
    objects: list[Any] = []
    markings: dict[Tlp, Any] = {}
    for ind in indicators:
        marking = markings.setdefault(ind.tlp, _marking(ind.tlp))
        if ind.type is I.CIDR:
            kind = "ipv6-addr" if ":" in ind.value else "ipv4-addr"
            pattern = f"[{kind}:value ISSUBSET {_quoted(ind.value)}]"
        else:
            pattern = f"[{EXPORT_PATTERNS[ind.type]} = {_quoted(ind.value)}]"
        phases = [stix2.KillChainPhase(kill_chain_name=k, phase_name=p)
                  for k, _, p in (phase.partition(":") for phase in ind.kill_chain) if p]
        when = ind.valid_from or EPOCH
        objects.append(stix2.Indicator(
            id=f"indicator--{uuid.uuid5(UUID_NAMESPACE, ind.id)}", created=when, modified=when,
            name=ind.name or f"{ind.type.value} {ind.value}", description=ind.description or None,
            pattern=pattern, pattern_type="stix", valid_from=ind.valid_from or EPOCH,
            valid_until=ind.valid_until, confidence=ind.confidence, kill_chain_phases=phases or None,
            labels=list(ind.labels) or None, object_marking_refs=[marking.id], allow_custom=True,
            custom_properties={"x_govsoc_source": ind.source, "x_govsoc_publisher": ind.publisher},
        ))
    custom = [m for m in markings.values() if m.id not in TLP_MARKINGS]
    bundle_id = f"bundle--{uuid.uuid5(UUID_NAMESPACE, '|'.join(sorted(i.id for i in indicators)))}"
    bundle = stix2.Bundle(objects=[*custom, *objects], id=bundle_id, allow_custom=True)
    loaded: dict[str, Any] = json.loads(bundle.serialize())
    return loaded
