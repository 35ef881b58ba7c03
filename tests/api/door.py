"""The whole API door over real parts, for the security tests: identity, bus, stores, playbooks.

`open_door(tmp)` builds the app the way `govsoc up` does (SQLite stores, the identity store, the
memory bus, the playbook runner with the shipped library) over a small tree with two sibling
provinces, and seeds each sibling with an incident (a playbook run waiting for approval), events
and a key, so tests can check that one never reaches the other's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.demo.reports import demo_report_body
from api.identity.passwords import PasswordHasher
from api.identity.service import IdentityService
from api.identity.store import SqliteIdentityStore
from api.reports import ReportService, SqliteReportStore
from config.reports import ReportSettings
from config.settings import ApiSettings, IncidentSettings, Role, TenantConfig, TenantKind
from config.tenants import TenantScope, TenantTree
from detections.incidents import IncidentService
from detections.incidents.lifecycle import IncidentLifecycle
from detections.intel import ImportOptions, IndicatorType, IntelStore, Tlp
from detections.intel.model import make_indicator
from detections.sigma.load import builtin_rules_dir
from detections.sigma.manage import RuleService
from detections.sigma.state import SqliteRuleStateStore
from pipeline.bus import topics
from pipeline.bus.memory import MemoryBus
from pipeline.records import utc_now
from pipeline.store.registry import open_event_store, open_incident_store, open_sensor_store
from playbooks.connectors import ConnectorRegistry
from playbooks.load import LIBRARY, load_playbooks
from playbooks.runner import PlaybookRunner
from playbooks.runs import SqliteRunStore, StepState
from playbooks.triggers import triggered_playbooks
from tests.factories import make_alert, make_event

TREE = TenantTree.from_config([
    TenantConfig(id="national", name="Trung tâm quốc gia", kind=TenantKind.NATIONAL),
    TenantConfig(id="hanoi", name="Hà Nội", parent="national"),
    TenantConfig(id="hanoi-bavi", name="Ba Vì", parent="hanoi"),
    TenantConfig(id="danang", name="Đà Nẵng", parent="national"),
])
SIBLINGS = ("hanoi", "danang")
PASSWORD = "correct horse battery staple"
# one API limit high enough that the walk never meets the rate limiter
API = ApiSettings(cookie_secure=False, rate_per_s=10_000, rate_burst=100_000)


@dataclass
class Door:
    client: TestClient
    identity: IdentityService
    bus: MemoryBus
    keys: dict[tuple[str, Role], str] = field(default_factory=dict)  # (tenant, role) -> token
    incidents: dict[str, str] = field(default_factory=dict)  # tenant -> incident id
    runs: dict[str, tuple[str, str]] = field(default_factory=dict)  # tenant -> (run id, pending step id)
    key_ids: dict[str, str] = field(default_factory=dict)  # tenant -> id of its analyst key
    reports: dict[str, str] = field(default_factory=dict)  # tenant -> reference of its agency report
    indicators: dict[str, str] = field(default_factory=dict)  # tenant -> id of its TLP:AMBER indicator
    stores: list[object] = field(default_factory=list)

    def headers(self, tenant: str, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[(tenant, role)]}"}


@contextmanager
def open_door(tmp: Path, api: ApiSettings = API) -> Iterator[Door]:
    url = f"sqlite:///{tmp / 'govsoc.db'}"
    events, incidents, sensors = open_event_store(url), open_incident_store(url), open_sensor_store(url)
    identity = IdentityService(SqliteIdentityStore(tmp / "identity.db"), incidents.append_audit,
                               hasher=PasswordHasher(fast=True))
    bus = MemoryBus()
    settings = IncidentSettings()
    runner = PlaybookRunner(incidents, IncidentLifecycle(incidents, settings), ConnectorRegistry.from_config(
        {"http": {"kind": "http", "url": "http://127.0.0.1:9/none"}}), TREE, SqliteRunStore(tmp / "runs.db"))
    report_store = SqliteReportStore(tmp / "reports.db")
    intel = IntelStore(tmp / "intel.db", TREE)
    rule_state = SqliteRuleStateStore(tmp / "rules.db", incidents.append_audit)
    rules = RuleService([builtin_rules_dir()], tmp / "uploaded", rule_state, TREE, incidents.append_audit)
    reports = ReportService(report_store, incidents, TREE, ReportSettings(national_coordinator="national"))
    app = create_app(tree=TREE, tokens=(), events_store=events, incidents_store=incidents, sensors_store=sensors,
                     incident_settings=settings, playbook_runner=runner, identity_service=identity, bus=bus,
                     ingest_pending=lambda: bus.lag("ingest", [topics.RAW]), api_settings=api,
                     reports_service=reports, intel_store=intel, rule_service=rules)
    door = Door(TestClient(app), identity, bus, stores=[events, incidents, sensors, report_store, intel, rule_state])
    now = utc_now()
    for tenant in ("national", *SIBLINGS):
        for role in Role:
            kind = "sensor" if role is Role.SENSOR else "api"
            token, key = identity.create_key(kind=kind, name=f"{role.value}-{tenant}", tenant=tenant, role=role,
                                             actor="test", now=now)
            door.keys[(tenant, role)] = token
            if role is Role.ANALYST:
                door.key_ids[tenant] = key.id
        identity.create_user(name=f"analyst-{tenant}", tenant=tenant, role=Role.ANALYST, password=PASSWORD,
                             actor="test", now=now)
    playbooks, _ = load_playbooks([LIBRARY])
    for n, tenant in enumerate(SIBLINGS):
        events.write([make_event(tenant, n * 100 + i, message=f"seed {tenant} {i}") for i in range(5)])
        [incident] = IncidentService(incidents, TREE, settings).ingest(
            [make_alert(tenant, n, rule_id="govsoc.linux.ssh_brute_force", security_level=4)])
        door.incidents[tenant] = incident.id
        for playbook in triggered_playbooks(incident, playbooks, TREE):
            run = runner.start(incident, playbook, now)
            pending = [s for s in run.steps if s.state is StepState.WAITING_APPROVAL]
            if pending:
                door.runs[tenant] = (run.id, pending[0].step_id)
    for n, tenant in enumerate(SIBLINGS):
        indicator = make_indicator(ImportOptions(publisher=tenant, source="door"), IndicatorType.IPV4,
                                   f"198.51.100.{90 + n}", tlp=Tlp.AMBER)
        intel.publish([indicator])
        door.indicators[tenant] = indicator.id
        filed = door.client.post("/api/v1/reports", json=demo_report_body(now),
                                 headers=door.headers(tenant, Role.AGENCY_REPORTER))
        assert filed.status_code == 201, filed.text
        door.reports[tenant] = filed.json()["reference"]
    try:
        with door.client:
            yield door
    finally:
        for store in door.stores:
            store.close()  # type: ignore[attr-defined]
        identity.store.close()


def everything() -> TenantScope:
    return TenantScope.everything()
