"""The rules routes: listing with hit counts in scope, enable/disable (admin), exceptions (admin, and
analysts within their scope), upload (admin, validated, hostile files refused with a reason); every
change audited and handed to the engines."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import token_sha256
from api.routes.rules import router as rules_router
from config.settings import ApiToken, Role
from config.tenants import TenantScope
from detections.sigma import SigmaEngine
from detections.sigma.load import RuleSet, builtin_rules_dir
from detections.sigma.manage import RuleService
from detections.sigma.state import RuleState, SqliteRuleStateStore
from pipeline.store.registry import open_event_store, open_incident_store
from tests.api.conftest import TREE
from tests.factories import make_alert

BRUTE_FORCE_ID = "5aedc90e-e0f8-4d6e-b8ce-6a49557584fe"
USERS = {"admin": ("national", Role.ADMIN), "hanoi": ("hanoi", Role.ANALYST), "danang": ("danang", Role.ANALYST),
         "auditor": ("national", Role.AUDITOR), "reporter": ("hanoi", Role.AGENCY_REPORTER)}
RULE = """title: Uploaded whoami
id: 6d3c2a1b-8e7f-4a5b-9c0d-1e2f3a4b5c6d
logsource: {category: process_creation, product: windows}
detection:
  sel: {Image|endswith: '\\\\whoami.exe'}
  condition: sel
level: medium
"""


@dataclass
class Rules:
    client: TestClient
    service: RuleService
    reloads: list[tuple[RuleSet, RuleState]] = field(default_factory=list)

    def call(self, method: str, url: str, user: str, **kwargs: Any) -> Any:
        return self.client.request(method, url, headers={"Authorization": f"Bearer token-{user}"}, **kwargs)


@pytest.fixture
def rules(tmp_path: Path) -> Iterator[Rules]:
    url = f"sqlite:///{tmp_path / 'govsoc.db'}"
    events, incidents = open_event_store(url), open_incident_store(url)
    incidents.write_alerts([make_alert(tenant, n, rule_id=BRUTE_FORCE_ID)
                            for n, tenant in enumerate(("hanoi", "hanoi", "danang"))])
    tokens = tuple(ApiToken(name=f"user-{name}", tenant=tenant, role=role, sha256=token_sha256(f"token-{name}"))
                   for name, (tenant, role) in USERS.items())
    app = create_app(tree=TREE, tokens=tokens, events_store=events, incidents_store=incidents)
    reloads: list[tuple[RuleSet, RuleState]] = []
    state = SqliteRuleStateStore(tmp_path / "govsoc.db", incidents.append_audit)
    service = RuleService([builtin_rules_dir()], tmp_path / "uploaded", state, TREE, incidents.append_audit,
                          on_reload=lambda ruleset, rule_state: reloads.append((ruleset, rule_state)))
    app.state.rules = service
    if not any(getattr(route, "path", "") == "/api/v1/rules" for route in app.routes):
        app.include_router(rules_router)  # until api/app.py includes it
    with TestClient(app) as client:
        yield Rules(client, service, reloads)
    state.close()
    events.close()
    incidents.close()


def test_the_list_counts_hits_within_the_callers_scope(rules: Rules) -> None:
    def hits(user: str) -> int:
        listing = rules.call("GET", "/api/v1/rules", user).json()
        return int(next(rule["hits"] for rule in listing["rules"] if rule["id"] == BRUTE_FORCE_ID))

    assert (hits("hanoi"), hits("danang"), hits("admin")) == (2, 1, 3)
    listing = rules.call("GET", "/api/v1/rules", "auditor").json()
    assert listing["total"] == len(listing["rules"]) >= 2 and listing["refused"] == 0
    assert rules.call("GET", "/api/v1/rules", "reporter").status_code == 403
    assert rules.client.get("/api/v1/rules").status_code == 401


def test_admins_disable_and_enable_audited_and_the_engines_reload(rules: Rules) -> None:
    assert rules.call("POST", f"/api/v1/rules/{BRUTE_FORCE_ID}/disable", "hanoi").status_code == 403
    answer = rules.call("POST", f"/api/v1/rules/{BRUTE_FORCE_ID}/disable", "admin")
    assert answer.status_code == 200 and answer.json()["enabled"] is False
    assert rules.reloads[-1][1].disabled == frozenset({BRUTE_FORCE_ID})
    engine = SigmaEngine(RuleSet())
    engine.reload(*rules.reloads[-1])
    assert BRUTE_FORCE_ID not in engine.ruleset.rule_ids
    assert rules.call("POST", f"/api/v1/rules/{BRUTE_FORCE_ID}/enable", "admin").json()["enabled"] is True
    assert rules.call("POST", "/api/v1/rules/no-such-rule/disable", "admin").status_code == 404
    incidents = rules.client.app.state.incidents  # type: ignore[attr-defined]  # the audit chain
    actions = [entry.action for entry in incidents.audit_trail(TenantScope.everything(), BRUTE_FORCE_ID)]
    assert sorted(actions) == ["rule.disable", "rule.enable"]


def test_analysts_add_exceptions_for_their_own_scope_only(rules: Rules) -> None:
    failure = next(rule.info.rule_id for rule in rules.service.ruleset.rules)
    body = {"tenant": "hanoi-bavi", "detection": {"sel": {"source.address": "10.0.0.5"}, "condition": "sel"},
            "reason": "the vulnerability scanner"}
    created = rules.call("POST", f"/api/v1/rules/{failure}/exceptions", "hanoi", json=body)
    assert created.status_code == 201, created.text
    assert rules.call("POST", f"/api/v1/rules/{failure}/exceptions", "danang", json=body).status_code == 404
    assert rules.call("POST", f"/api/v1/rules/{failure}/exceptions", "auditor", json=body).status_code == 403
    broken = {**body, "detection": {"sel": {"a|nope": "b"}, "condition": "sel"}}
    refused = rules.call("POST", f"/api/v1/rules/{failure}/exceptions", "hanoi", json=broken)
    assert refused.status_code == 422 and "nope" in str(refused.json())
    seen = {user: rules.call("GET", f"/api/v1/rules/{failure}/exceptions", user).json()["exceptions"]
            for user in ("hanoi", "danang", "admin")}
    assert [len(seen[user]) for user in ("hanoi", "danang", "admin")] == [1, 0, 1]
    assert rules.reloads[-1][1].exceptions[0].tenant == "hanoi-bavi"


def test_admins_upload_rules_that_load_and_hostile_ones_are_refused_with_reasons(rules: Rules) -> None:
    assert rules.call("POST", "/api/v1/rules", "hanoi", json={"yaml": RULE}).status_code == 403
    created = rules.call("POST", "/api/v1/rules", "admin", json={"yaml": RULE})
    assert created.status_code == 201, created.text
    assert created.json()["rules"][0]["title"] == "Uploaded whoami"
    assert "6d3c2a1b-8e7f-4a5b-9c0d-1e2f3a4b5c6d" in rules.reloads[-1][0].rule_ids
    again = rules.call("POST", "/api/v1/rules", "admin", json={"yaml": RULE})
    assert again.status_code == 422 and "already has the id" in str(again.json())
    bomb = "a: &a ['x','x']\nb: &b [*a,*a]\nc: [*b,*b]\n"
    hostile = {
        "bomb": (bomb, "aliases"),
        "modifier": (RULE.replace("endswith", "endwith").replace("6d3c", "7d3c"), "endwith"),
        "regex": (RULE.replace("6d3c", "8d3c").replace("Image|endswith", "Image|re").replace(
            "'\\\\whoami.exe'", "'(a+)+\\1'"), "RE2"),
        "not yaml": ("title: [", "YAML"),
    }
    for name, (text, reason) in hostile.items():
        answer = rules.call("POST", "/api/v1/rules", "admin", json={"yaml": text})
        assert answer.status_code == 422, name
        assert reason in str(answer.json()), (name, answer.json())
    huge = rules.call("POST", "/api/v1/rules", "admin", json={"yaml": "#" * (1024 * 1024 + 1)})
    assert huge.status_code == 422
    assert sorted(path.name for path in rules.service.upload_dir.iterdir()) == [
        "6d3c2a1b-8e7f-4a5b-9c0d-1e2f3a4b5c6d.yml"]
