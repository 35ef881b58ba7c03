"""DEMO.md step 4: the shipped playbooks start on the demo's incidents and wait for an analyst.

Each incident that a playbook's trigger matches gets a live run: it enriches, comments, moves the
incident to triage and stops at the approval step before any containment, which is what an analyst
sees first. The containment connector points at a loopback address: nothing leaves the machine.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from api.wiring import Runtime
from config.tenants import TenantScope
from pipeline.store.base import IncidentQuery
from playbooks.load import LIBRARY, load_playbooks
from playbooks.runner import PlaybookRunner
from playbooks.triggers import triggered_playbooks

log = structlog.get_logger(__name__)

DEMO_CONNECTORS = {"http": {"kind": "http", "url": "http://127.0.0.1:9/govsoc-demo-containment"}}


def start_demo_playbooks(runtime: Runtime, runner: PlaybookRunner, now: datetime) -> int:
    """Start every triggered playbook on the stored incidents; returns how many runs started."""
    playbooks, errors = load_playbooks([LIBRARY])
    for error in errors:
        log.warning("playbook_skipped", error=str(error))
    started = 0
    for incident in runtime.incidents.incidents(TenantScope.everything(), IncidentQuery(limit=1000)):
        for playbook in triggered_playbooks(incident, playbooks, runtime.tree):
            runner.start(incident, playbook, now)
            started += 1
    return started
