"""MISP events in and out: attributes with a matchable type and `to_ids` become indicators.

In: a MISP event as exported by MISP or a feed (`{"Event": {...}}`, the bare event, or an API
answer `{"response": [{"Event": ...}]}`), as parsed JSON. A feed's `manifest.json` names its
events; `is_manifest` recognises one and sources.py reads the `<uuid>.json` files next to it.
MISP has no library in our dependencies for this (PyMISP pulls in a client we do not need), and
the event format is plain JSON, so this module reads it by hand, defensively: any field may be
missing or of the wrong type, and each attribute that cannot be read is one issue naming
`Attribute[i]` (or `Object[j].Attribute[i]`) and its uuid.

Mapping: `TYPES` below; composite types (`domain|ip`, `filename|sha256`, `ip-dst|port`) give the
parts that can be matched. Attributes with `to_ids: false` (references, text, file names) and
deleted ones are context, not indicators. TLP comes from `tlp:*` tags, the attribute's own over
the event's; confidence from an `osint:certainty="NN"` tag (else the default); `misp-galaxy:*`
tags (threat actors, tools, malware) become context lines; `kill-chain:*` tags kill-chain phases.

Out: `export_misp(indicators, info)` -> a MISP event dict with one attribute per indicator. JA4
has no MISP type: such indicators are written as `text` attributes, `to_ids` false, for people.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

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

I = IndicatorType  # noqa: E741 - the table reads better short
IP = I.IPV4  # normalise() turns it into ipv6 or cidr as the value says
TYPES: Mapping[str, tuple[IndicatorType | None, ...]] = {
    "ip-src": (IP,), "ip-dst": (IP,), "ip-src|port": (IP, None), "ip-dst|port": (IP, None),
    "domain": (I.DOMAIN,), "hostname": (I.DOMAIN,), "domain|ip": (I.DOMAIN, IP), "hostname|port": (I.DOMAIN, None),
    "url": (I.URL,), "md5": (I.MD5,), "sha1": (I.SHA1,), "sha256": (I.SHA256,),
    "filename|md5": (None, I.MD5), "filename|sha1": (None, I.SHA1), "filename|sha256": (None, I.SHA256),
    "email": (I.EMAIL,), "email-src": (I.EMAIL,), "email-dst": (I.EMAIL,), "email-reply-to": (I.EMAIL,),
    "ja3-fingerprint-md5": (I.JA3,), "user-agent": (I.USER_AGENT,),
}
EXPORT_TYPES: Mapping[IndicatorType, tuple[str, str]] = {
    I.IPV4: ("ip-dst", "Network activity"), I.IPV6: ("ip-dst", "Network activity"),
    I.CIDR: ("ip-dst", "Network activity"), I.DOMAIN: ("domain", "Network activity"),
    I.URL: ("url", "Network activity"), I.MD5: ("md5", "Payload delivery"), I.SHA1: ("sha1", "Payload delivery"),
    I.SHA256: ("sha256", "Payload delivery"), I.EMAIL: ("email", "Social network"),
    I.JA3: ("ja3-fingerprint-md5", "Network activity"), I.JA4: ("text", "Network activity"),
    I.USER_AGENT: ("user-agent", "Network activity"),
}
UUID_NAMESPACE = uuid.UUID("5b0f1c2e-6f1d-4c43-9d52-9c4a0e3e8a11")  # govsoc's, for deterministic uuids


def event_of(doc: object) -> dict[str, Any] | None:
    """The event dict of an export, a bare event or a one-event API answer; None if it is none of them."""
    if isinstance(doc, dict) and isinstance(doc.get("response"), list) and len(doc["response"]) == 1:
        doc = doc["response"][0]
    if isinstance(doc, dict) and isinstance(doc.get("Event"), dict):
        doc = doc["Event"]
    if isinstance(doc, dict) and ("Attribute" in doc or "Object" in doc) and "info" in doc:
        return doc
    return None


def is_manifest(doc: object) -> bool:
    """A MISP feed manifest: event uuid -> {"info": ..., ...}."""
    return (isinstance(doc, dict) and bool(doc)
            and all(isinstance(v, dict) and "info" in v and len(k) == 36 for k, v in doc.items()))


def _tag_names(holder: Mapping[str, Any]) -> list[str]:
    tags = holder.get("Tag")
    return [str(t["name"]) for t in tags if isinstance(t, dict) and "name" in t] if isinstance(tags, list) else []


def _from_tags(tags: list[str]) -> dict[str, Any]:
    """TLP, confidence, context and kill-chain phases read from MISP tag names."""
    found: dict[str, Any] = {"context": [], "kill_chain": []}
    for name in tags:
        lowered = name.lower()
        if lowered.startswith("tlp:"):
            try:
                found["tlp"] = Tlp.from_text(lowered)
            except IntelError:
                continue  # e.g. tlp:ex:chr, a local extension: no marking of ours
        elif lowered.startswith("osint:certainty="):
            digits = lowered.partition("=")[2].strip('"')
            if digits.isdigit():
                found["confidence"] = min(int(digits), 100)
        elif lowered.startswith("misp-galaxy:"):
            kind, _, value = name[len("misp-galaxy:"):].partition("=")
            found["context"].append(f"{kind}: {value.strip(chr(34))}")
        elif lowered.startswith("kill-chain:"):
            found["kill_chain"].append(name[len("kill-chain:"):].strip('"'))
    return found


def _attributes(event: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    attributes = event.get("Attribute")
    for i, attribute in enumerate(attributes if isinstance(attributes, list) else []):
        yield f"Attribute[{i}]", attribute
    objects = event.get("Object")
    for j, obj in enumerate(objects if isinstance(objects, list) else []):
        inner = obj.get("Attribute") if isinstance(obj, dict) else None
        for i, attribute in enumerate(inner if isinstance(inner, list) else []):
            yield f"Object[{j}].Attribute[{i}]", attribute


def _attribute_indicators(attribute: Mapping[str, Any], base: dict[str, Any],
                          options: ImportOptions) -> list[Indicator]:
    kinds = TYPES[str(attribute["type"])]
    value = attribute.get("value")
    if not isinstance(value, str):
        raise IntelError("value is not text")
    parts = value.split("|") if len(kinds) > 1 else [value]
    if len(parts) != len(kinds):
        raise IntelError(f"value {value!r} is not {len(kinds)} parts separated by |")
    own = _from_tags(_tag_names(attribute))
    fields = {**base, **{k: v for k, v in own.items() if k in ("tlp", "confidence")},
              "context": tuple([*base["context"], *own["context"]]),
              "kill_chain": tuple([*base["kill_chain"], *own["kill_chain"]]),
              "description": str(attribute.get("comment") or "")}
    return [make_indicator(options, kind, part, **fields) for kind, part in zip(kinds, parts, strict=True)
            if kind is not None]


def import_misp(doc: object, options: ImportOptions) -> ImportResult:
    """Indicators of one MISP event; every attribute that cannot be read is an issue."""
    result = ImportResult()
    event = event_of(doc)
    if event is None:
        result.issues.append(issue(options, "Event", "not a MISP event (an object with `info` and `Attribute`)"))
        return result
    org = event.get("Orgc")
    org_name = org.get("name") if isinstance(org, dict) else None
    sourced = dataclasses.replace(options, source=options.source or (f"MISP {org_name}" if org_name else "misp"))
    tags = _from_tags(_tag_names(event))
    base = {"tlp": tags.get("tlp", options.default_tlp),
            "confidence": tags.get("confidence", options.default_confidence),
            "context": tuple(tags["context"]), "kill_chain": tuple(tags["kill_chain"]),
            "name": str(event.get("info") or "")[:500], "labels": ("misp",)}
    for where, attribute in _attributes(event):
        if not isinstance(attribute, dict) or attribute.get("deleted") in (True, "1", 1):
            continue
        if attribute.get("to_ids") not in (True, "1", 1) or attribute.get("type") not in TYPES:
            result.context_objects += 1
            continue
        try:
            result.indicators.extend(_attribute_indicators(attribute, base, sourced))
        except IntelError as e:
            uid = attribute.get("uuid")
            result.issues.append(issue(options, f"{where}" + (f" {uid}" if isinstance(uid, str) else ""), e.reason))
    return result


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(UUID_NAMESPACE, "|".join(parts)))


def export_misp(indicators: Sequence[Indicator], info: str, *, now: datetime | None = None) -> dict[str, Any]:
    """A MISP event (`{"Event": ...}`) holding `indicators`; uuids are derived from the indicator ids."""
    stamp = now or datetime.now(UTC)
    narrowest = max((i.tlp for i in indicators), key=list(Tlp).index, default=Tlp.CLEAR)
    attributes = []
    for ind in indicators:
        kind, category = EXPORT_TYPES[ind.type]
        attributes.append({
            "type": kind, "category": category, "value": ind.value, "to_ids": kind != "text",
            "uuid": _uuid(ind.id), "comment": "JA4 fingerprint" if ind.type is I.JA4 else ind.description[:1000],
            "timestamp": str(int(stamp.timestamp())), "Tag": [{"name": f"tlp:{ind.tlp.value}"}],
        })
    return {"Event": {
        "uuid": _uuid("event", *sorted(i.id for i in indicators)), "info": info,
        "date": stamp.date().isoformat(), "timestamp": str(int(stamp.timestamp())), "published": False,
        "threat_level_id": "2", "analysis": "1", "distribution": "0",
        "Tag": [{"name": f"tlp:{narrowest.value}"}], "Attribute": attributes,
    }}
