"""The TAXII 2.1 client against a small TAXII 2.1 server started here on loopback: pages are followed
(limit/next), objects are imported as one bundle, and server errors name the collection."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from detections.intel import ImportOptions, IntelError
from detections.intel.taxii import TaxiiSource, fetch_collection

DATA = Path(__file__).parents[2] / "data" / "intel"
MEDIA = "application/taxii+json;version=2.1"
COLLECTION = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
OBJECTS: list[dict[str, Any]] = json.loads((DATA / "stix-poisonivy-excerpt.json").read_text())["objects"]


class TaxiiHandler(BaseHTTPRequestHandler):
    """Discovery, one API root, one readable collection; objects paged by `limit` and `next`."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", MEDIA)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlparse(self.path)
        if self.headers.get("Authorization") != "Basic dGF4aWk6c2VjcmV0":  # taxii:secret
            self._send(401, {"title": "unauthorised"})
        elif url.path == f"/api1/collections/{COLLECTION}/":
            self._send(200, {"id": COLLECTION, "title": "national", "can_read": True, "can_write": False,
                             "media_types": [MEDIA]})
        elif url.path == f"/api1/collections/{COLLECTION}/objects/":
            query = parse_qs(url.query)
            limit, start = int(query.get("limit", ["5"])[0]), int(query.get("next", ["0"])[0])
            page = OBJECTS[start:start + limit]
            more = start + limit < len(OBJECTS)
            self._send(200, {"more": more, "objects": page, **({"next": str(start + limit)} if more else {})})
        else:
            self._send(404, {"title": "not found"})


@pytest.fixture(scope="module")
def taxii_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TaxiiHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api1/collections/{COLLECTION}/"
    server.shutdown()
    server.server_close()


def test_every_page_of_a_collection_is_imported(taxii_url: str) -> None:
    source = TaxiiSource(taxii_url, user="taxii", password="secret", page_size=7)  # several pages
    result = fetch_collection(source, ImportOptions(publisher="national"))
    assert len(result.indicators) == 37 and result.issues == []
    assert all(i.source == taxii_url for i in result.indicators)
    assert any("campaign: admin@338" in i.context for i in result.indicators)  # relationships across pages


def test_a_refused_login_names_the_collection(taxii_url: str) -> None:
    with pytest.raises(IntelError, match="TAXII collection could not be read") as raised:
        fetch_collection(TaxiiSource(taxii_url, user="taxii", password="wrong"), ImportOptions(publisher="national"))
    assert taxii_url in str(raised.value)
