"""Triage and response playbooks: declared in YAML, triggered by incidents, run step by step.

Modules, in flow order:
- errors: `PlaybookError`, located at the file, line and field.
- model: the playbook schema (steps as a union by `type`) and the structural checks.
- load: a directory of YAML playbooks to `(playbooks, errors)`; `library/` holds the shipped ones.
- triggers: which playbooks an incident triggers.
- connectors: the `Connector` interface, `HttpConnector`, and the registry by name.
- smtp: `SmtpConnector`, mail through a relay (STARTTLS or implicit TLS, credentials from a file).
- runs: the SQLite record of runs, steps, approvals and side effects.
- query: what the read-only steps read (retro-hunts, indicator lookups, the cross-tenant hunt).
- coordinate: linked incidents opened where the national hunt found an incident's indicators.
- runner: `PlaybookRunner` - start, resume, approve, reject; idempotent side effects, dry run.
"""

from playbooks.connectors import (
    CONNECTOR_KINDS,
    Connector,
    ConnectorError,
    ConnectorRegistry,
    ConnectorRequest,
    ConnectorResult,
    HttpConnector,
)
from playbooks.errors import PlaybookError
from playbooks.load import LIBRARY, load_playbook_text, load_playbooks
from playbooks.model import Playbook, Step, Trigger
from playbooks.query import PlaybookSources
from playbooks.runner import PlaybookRunner
from playbooks.runs import (
    Run,
    RunMode,
    RunState,
    RunStore,
    SqliteRunStore,
    StepRecord,
    StepState,
    open_run_store,
    runs_db_path,
)
from playbooks.triggers import matches, triggered_playbooks

__all__ = [
    "CONNECTOR_KINDS",
    "LIBRARY",
    "Connector",
    "ConnectorError",
    "ConnectorRegistry",
    "ConnectorRequest",
    "ConnectorResult",
    "HttpConnector",
    "Playbook",
    "PlaybookError",
    "PlaybookRunner",
    "PlaybookSources",
    "Run",
    "RunMode",
    "RunState",
    "RunStore",
    "SqliteRunStore",
    "Step",
    "StepRecord",
    "StepState",
    "Trigger",
    "load_playbook_text",
    "load_playbooks",
    "open_run_store",
    "matches",
    "runs_db_path",
    "triggered_playbooks",
]
