"""`govsoc hunt --rule FILE... [--since 7d] [--tenant T] [--send]`: Sigma rules over stored history.

The body of the `--rule` hunt, free of typer so that the `hunt` command (api/cli/hunt.py) parses
its flags and calls `run_rule_hunt`, and tests call it directly. The rules (files or directories)
are loaded with the engine's loader; each is compiled by pySigma's backend for the configured
event store and run over the events of `--tenant`'s scope (all tenants by default) of the last
`--since`, each candidate checked by the engine itself (`detections.sigma.hunt`). The alerts are
the stream's (same ids); with `send` they also go through the incident service, grouped into
incidents like the stream's, so hunting the same window again sends nothing new.

Errors: `RuleHuntUsageError` for what the caller got wrong (a bad `--since`, an unknown tenant, no
rule that loads: exit 2); `GovsocError` (a store that cannot be read) for exit 3; rule files that
do not load are reported in the result and skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from api.cli.ml import parse_duration
from config.settings import Settings
from config.tenants import TenantScope, TenantTree
from detections.incidents import IncidentService
from detections.sigma import load_rules
from detections.sigma.hunt import HuntStats, HuntWindow, hunt_ruleset, load_error_reasons
from pipeline.records import Alert
from pipeline.store.registry import open_incident_store


class RuleHuntUsageError(ValueError):
    """A `--rule` hunt the caller asked for wrongly (exit 2); the message names the option."""


@dataclass
class RuleHuntResult:
    """The alerts (oldest first), the rule files refused (one line each) and what the hunt did."""

    alerts: list[Alert]
    refused: list[str] = field(default_factory=list)
    stats: HuntStats = field(default_factory=HuntStats)
    sent: int = 0


def rule_hunt_scope(settings: Settings, tenant: str | None) -> tuple[TenantTree, TenantScope]:
    tree = TenantTree.from_config(settings.tenants)
    if tenant is None:
        return tree, TenantScope.everything()
    if tenant not in tree:
        raise RuleHuntUsageError(f"--tenant: unknown tenant {tenant!r}")
    return tree, tree.scope(tenant)


def run_rule_hunt(settings: Settings, rules: Sequence[Path], since: str = "7d", tenant: str | None = None, *,
                  send: bool = False, now: datetime | None = None) -> RuleHuntResult:
    """Hunt the configured event store with `rules` over the last `since` in `tenant`'s scope."""
    try:
        start = (now or datetime.now(UTC)) - parse_duration(since)
    except ValueError as e:
        raise RuleHuntUsageError(f"--since: {e}") from e
    tree, scope = rule_hunt_scope(settings, tenant)
    missing = [str(path) for path in rules if not path.exists()]
    if missing:
        raise RuleHuntUsageError(f"--rule: no such file or directory: {', '.join(missing)}")
    ruleset, errors = load_rules(rules)
    if not ruleset.rules:
        raise RuleHuntUsageError("--rule: no rule loaded" + "".join(f"\n{line}" for line in load_error_reasons(errors)))
    result = RuleHuntResult(alerts=[], refused=load_error_reasons(errors))
    result.alerts = hunt_ruleset(settings.events_url, ruleset, HuntWindow(scope, start), result.stats)
    if send and result.alerts:
        incidents = open_incident_store(settings.incidents_url)
        try:
            IncidentService(incidents, tree, settings.incidents).ingest(result.alerts)
        finally:
            incidents.close()
        result.sent = len(result.alerts)
    return result
