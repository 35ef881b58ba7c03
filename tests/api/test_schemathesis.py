"""schemathesis against the whole API: every operation, a bounded number of generated requests each.

Called as the national admin (who may reach every route) and as a Hà Nội analyst; the checks are
the acceptance's: no 5xx answer, and every answer's body matches the schema it documents (the
content type included). Hypothesis keeps the examples bounded so the suite stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from config.settings import Role
from tests.api.door import Door, open_door

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]

# the ingest endpoint takes raw NDJSON bytes: generated as binary, sent as they are
schemathesis.serializer.alias("application/x-ndjson", "application/octet-stream")


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    with open_door(tmp_path_factory.mktemp("schemathesis")) as door:
        yield door


def test_no_5xx_and_every_answer_matches_its_schema(door: Door) -> None:
    # schemathesis' pytest plugin (`from_fixture`) does not run under pytest 9, so the operations
    # are walked here, each with its own bounded Hypothesis run
    api_schema = schemathesis.openapi.from_asgi("/openapi.json", door.client.app)
    walked = []
    for result in api_schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err raises here, naming the schema fault

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: Any) -> None:
            for tenant, role in (("national", Role.ADMIN), ("hanoi", Role.ANALYST)):
                case.call_and_validate(headers=door.headers(tenant, role), checks=CHECKS)

        call()
        walked.append(operation.label)
    assert len(walked) >= 20, walked


def test_the_schema_documents_every_route(tmp_path: Path) -> None:
    with open_door(tmp_path) as door:
        paths = door.client.app.openapi()["paths"]  # type: ignore[attr-defined]
        assert "/api/v1/ingest" in paths and "/api/v1/auth/login" in paths
