"""Intelligence files -> indicators: the format of each file is recognised from its content.

In: paths of JSON files: a STIX 2.1 bundle (`"type": "bundle"`), a MISP event export, or a MISP
feed's `manifest.json` (then every `<uuid>.json` event it names, from the same directory, is
read). Out: one `ImportResult` for all of them; a file that is not JSON, or none of these, is one
issue naming the file; a bad object inside a file is one issue naming the file and the object.
Never raises for bad content (only `OSError` escapes for a file that cannot be read at all, so a
caller can say which path was wrong).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path

import orjson

from detections.intel.misp import event_of, import_misp, is_manifest
from detections.intel.model import ImportOptions, ImportResult, issue
from detections.intel.stix import import_stix


class IntelFormat(StrEnum):
    STIX = "stix"
    MISP_EVENT = "misp-event"
    MISP_MANIFEST = "misp-manifest"


def detect_format(doc: object) -> IntelFormat | None:
    if isinstance(doc, dict) and doc.get("type") == "bundle":
        return IntelFormat.STIX
    if event_of(doc) is not None:
        return IntelFormat.MISP_EVENT
    if is_manifest(doc):
        return IntelFormat.MISP_MANIFEST
    return None


def import_document(doc: object, options: ImportOptions) -> ImportResult:
    """The indicators of one parsed document of any supported format (a manifest gives none here)."""
    found = detect_format(doc)
    if found is IntelFormat.STIX:
        return import_stix(doc, options)
    if found is IntelFormat.MISP_EVENT:
        return import_misp(doc, options)
    result = ImportResult()
    reason = ("a MISP feed manifest: import the file, so that its events can be read beside it"
              if found is IntelFormat.MISP_MANIFEST else "neither a STIX 2.1 bundle nor a MISP event")
    result.issues.append(issue(options, "", reason))
    return result


def import_file(path: Path, options: ImportOptions) -> ImportResult:
    """The indicators of one file; a manifest brings in the events it lists."""
    located = dataclasses.replace(options, path=str(path))
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        result = ImportResult()
        result.issues.append(issue(located, "", f"not JSON: {e}"))
        return result
    if not isinstance(doc, dict) or detect_format(doc) is not IntelFormat.MISP_MANIFEST:
        return import_document(doc, located)
    result = ImportResult()
    for event_uuid in doc:
        event_path = path.parent / f"{event_uuid}.json"
        if not event_path.is_file():
            result.issues.append(issue(located, event_uuid, f"the manifest names {event_path.name}, which is missing"))
            continue
        result.extend(import_file(event_path, options))
    return result


def import_paths(paths: Sequence[Path], options: ImportOptions,
                 on_progress: Callable[[int], None] = lambda n: None) -> ImportResult:
    """All files, in order; `on_progress(1)` after each one."""
    result = ImportResult()
    for path in paths:
        result.extend(import_file(path, options))
        on_progress(1)
    return result
