"""DEMO.md step 4: the shipped playbooks start on the demo's incidents and wait for an analyst.

Each incident that a playbook's trigger matches gets a live run: it enriches, comments, moves the
incident to triage and stops at the approval step before any containment, which is what an analyst
sees first. The containment connector points at a loopback address: nothing leaves the machine.
`govsoc up --demo` merges it with the deployment's connectors (`playbooks.connectors`), replacing
a configured connector of the same name; the playbooks are the deployment's (`playbook_paths`).

One run is taken to its end, so the console shows a finished run beside the waiting ones: at Bộ Tài
chính, its analyst and then the national centre's (the step's tenant-and-parent chain) approve
isolating the workstation where malware ran, and the request goes to a stand-in for the endpoint
tool's API, a loopback HTTP receiver that lives only for that step
(`finish_demo_run`). Written here with http.server because it is a throwaway test double of a
third party's API, not part of govsoc.
"""

from __future__ import annotations

import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog

from api.wiring import Runtime, build_playbook_runner
from api.wiring.runtime import playbook_paths
from config.tenants import TenantScope
from pipeline.store.base import IncidentQuery
from playbooks.load import load_playbooks
from playbooks.runner import PlaybookRunner
from playbooks.runs import RunState
from playbooks.triggers import triggered_playbooks

log = structlog.get_logger(__name__)

DEMO_CONNECTORS = {"http": {"kind": "http", "url": "http://127.0.0.1:9/govsoc-demo-containment"}}


def start_demo_playbooks(runtime: Runtime, runner: PlaybookRunner) -> int:
    """Start every triggered playbook on the stored incidents; returns how many runs started.

    Each starts at the incident's first sighting, as the playbook worker starts it
    (`api.wiring.PlaybookStep`): where `govsoc up`'s worker already started a run, this finds it."""
    playbooks, errors = load_playbooks(playbook_paths(runtime.settings))
    for error in errors:
        log.warning("playbook_skipped", error=str(error))
    started = 0
    for incident in runtime.incidents.incidents(TenantScope.everything(), IncidentQuery(limit=1000)):
        for playbook in triggered_playbooks(incident, playbooks, runtime.tree):
            runner.start(incident, playbook, incident.first_seen)
            started += 1
    return started


class _EndpointTool(BaseHTTPRequestHandler):
    """Accepts every request, as an endpoint tool's API would; remembers nothing."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"accepted": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's name)
        pass


def finish_demo_run(runtime: Runtime, now: datetime, playbook_id: str = "malware-execution") -> str | None:
    """Approve the first waiting run of `playbook_id` (its tenant's analyst, then the national one's)
    and let it finish.

    Returns the run's id when it ended `done`, else None (no such run, or it failed: logged)."""
    with ThreadingHTTPServer(("127.0.0.1", 0), _EndpointTool) as server:
        thread = threading.Thread(target=server.serve_forever, name="demo-endpoint-tool", daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/isolate"
            runner = build_playbook_runner(runtime, {"http": {"kind": "http", "url": url}})
            for run in runner.runs.runs(RunState.WAITING_APPROVAL, limit=1000):
                if run.playbook_id != playbook_id or not run.cursor:
                    continue
                approvers = [(f"analyst-{run.tenant}", run.tenant), (f"analyst-{runtime.tree.root}", runtime.tree.root)]
                done = run
                for user, tenant in approvers:
                    if done.state is not RunState.WAITING_APPROVAL or not done.cursor:
                        break
                    done = runner.approve(run.id, done.cursor, user, "analyst", now, tenant=tenant)
                if done.state is RunState.DONE:
                    return done.id
                log.warning("demo_run_not_finished", run=done.id, state=str(done.state))
                return None
            return None
        finally:
            server.shutdown()
            thread.join(5)
