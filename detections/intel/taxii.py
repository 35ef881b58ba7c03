"""TAXII 2.1 collections -> indicators, read with taxii2-client.

In: the URL of one collection (`https://host/api-root/collections/<id>/`), optional basic-auth
credentials and `added_after`. Every page of the collection's objects is fetched (the client's
`as_pages`, `limit`/`next`), then all objects are imported as one STIX bundle (stix.py), so
relationships on one page can name objects on another. The import's source is the collection URL
unless the options name one.

Errors: a server that cannot be reached, refuses the credentials, or answers something that is
not TAXII becomes one `IntelError` naming the collection URL and the reason; nothing is imported
then. Bad objects inside good pages are issues of the result, as for files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taxii2client import exceptions as taxii_errors  # type: ignore[import-untyped]
from taxii2client.v21 import Collection, as_pages  # type: ignore[import-untyped]

from config.errors import SourceLocation
from detections.intel.model import ImportOptions, ImportResult, IntelError
from detections.intel.stix import import_stix

PAGE_SIZE = 500
MAX_OBJECTS = 1_000_000  # one import's bound; a larger collection is read with added_after windows


@dataclass(frozen=True, slots=True)
class TaxiiSource:
    """One collection to read: its URL, basic-auth credentials, and how."""

    url: str
    user: str | None = None
    password: str | None = None
    added_after: datetime | None = None
    verify: bool = True  # TLS certificate check
    page_size: int = PAGE_SIZE


def fetch_collection(source: TaxiiSource, options: ImportOptions) -> ImportResult:
    """The indicators of every object in the collection (added after `added_after`, when given)."""
    url = source.url
    where = SourceLocation(path=url)
    filters: dict[str, Any] = {"added_after": source.added_after} if source.added_after is not None else {}
    objects: list[Any] = []
    try:
        collection = Collection(url, user=source.user, password=source.password, verify=source.verify)
        for envelope in as_pages(collection.get_objects, per_request=source.page_size, **filters):
            page = envelope.get("objects", []) if isinstance(envelope, dict) else []
            objects.extend(page if isinstance(page, list) else [])
            if len(objects) > MAX_OBJECTS:
                raise IntelError(f"more than {MAX_OBJECTS} objects: read it in windows of added_after", where)
    except (taxii_errors.TAXIIServiceException, OSError, ValueError) as e:  # requests' errors are OSErrors
        raise IntelError(f"TAXII collection could not be read: {e}", where) from e
    sourced = dataclasses.replace(options, source=options.source or url, path=options.path or url)
    return import_stix({"type": "bundle", "objects": objects}, sourced)
