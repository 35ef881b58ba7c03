"""The rule set as people manage it: list, enable/disable, exceptions, upload; engines reloaded.

Stage: beside loading, behind the API's rules routes (`app.state.rules`) and the CLI. In: the
configured rule directories (plus `upload_dir`, where uploaded rules are kept), a
`SqliteRuleStateStore` and the tenant tree. Out: the loaded `RuleSet` with its `RuleError`s, and a
call of `on_reload(ruleset, state)` after every change, which the process uses to reload its
engines (`SigmaEngine.reload`: no restart, correlation windows kept for unchanged rules).

Invariants:
- Every change is audited (the store audits state changes; uploads are audited here).
- An upload is validated exactly as loading does (size, YAML, aliases, modifiers, RE2 regexes,
  log source) in a private staging directory; only a file that loads completely, with ids no
  loaded rule has, is moved into `upload_dir`. A refusal carries every reason.
- Exceptions are compiled against each compiled form of their rule before they are stored.
- Thread-safe for the API: changes are serialised by a lock; readers see whole rule sets.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.tenants import TenantScope, TenantTree
from detections.sigma.compile import RuleInfo
from detections.sigma.errors import RuleError
from detections.sigma.load import MAX_RULE_FILE_BYTES, RuleSet, load_rules
from detections.sigma.state import (
    Audit,
    RuleException,
    RuleState,
    SqliteRuleStateStore,
    compile_exception,
    exception_id,
)
from pipeline.records import utc_now

Reload = Callable[[RuleSet, RuleState], None]


class UnknownRule(KeyError):
    """No loaded rule has this id."""


class UploadRefused(ValueError):
    """An uploaded rule file that does not load; `reasons` has one line per problem."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = list(reasons)


@dataclass(frozen=True, slots=True)
class RuleSummary:
    info: RuleInfo
    is_correlation: bool
    enabled: bool
    exceptions: int


class RuleService:
    """The rules of one deployment: what `app.state.rules` holds."""

    def __init__(self, rule_dirs: Sequence[Path], upload_dir: Path, store: SqliteRuleStateStore, tree: TenantTree,
                 audit: Audit, on_reload: Reload = lambda ruleset, state: None) -> None:
        self.rule_dirs = tuple(rule_dirs)
        self.upload_dir = upload_dir
        self.store = store
        self.tree = tree
        self._audit = audit
        self._on_reload = on_reload
        self._lock = threading.Lock()
        self.ruleset: RuleSet = RuleSet()
        self.errors: list[RuleError] = []
        self.reload()

    def reload(self) -> None:
        """Load every rule directory again and hand the rules and their state to `on_reload`."""
        with self._lock:
            self._reload()

    def _reload(self) -> None:
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        ruleset, errors = load_rules([*self.rule_dirs, self.upload_dir])
        self.ruleset, self.errors = ruleset, errors
        self._on_reload(ruleset, self.store.state())

    def summaries(self) -> list[RuleSummary]:
        """Every loaded rule once (a rule compiled per kind of event counts once), in load order."""
        state = self.store.state()
        seen: dict[str, RuleSummary] = {}
        infos = [(rule.info, False) for rule in self.ruleset.rules]
        infos += [(spec.info, True) for spec in self.ruleset.correlations]
        for info, is_correlation in infos:
            if info.rule_id not in seen:
                seen[info.rule_id] = RuleSummary(info, is_correlation, info.rule_id not in state.disabled,
                                                 len(state.exceptions_for(info.rule_id)))
        return list(seen.values())

    def _require(self, rule_id: str) -> None:
        if rule_id not in self.ruleset.rule_ids:
            raise UnknownRule(rule_id)

    def set_enabled(self, rule_id: str, enabled: bool, *, actor: str, tenant: str) -> bool:
        """Enable or disable a loaded rule; engines reload when that changed something."""
        with self._lock:
            self._require(rule_id)
            changed = self.store.set_enabled(rule_id, enabled, actor=actor, tenant=tenant)
            if changed:
                self._on_reload(self.ruleset, self.store.state())
            return changed

    def exceptions(self, rule_id: str, scope: TenantScope) -> list[RuleException]:
        """The rule's exceptions for tenants in `scope`."""
        self._require(rule_id)
        return [exception for exception in self.store.state().exceptions_for(rule_id) if exception.tenant in scope]

    def add_exception(self, rule_id: str, tenant: str, detection: Mapping[str, Any], reason: str, *,
                      actor: str, actor_tenant: str) -> RuleException:
        """Validate, store, audit and apply an exception; `RuleError` says why one is refused."""
        with self._lock:
            self._require(rule_id)
            if tenant not in self.tree:
                raise RuleError(f"unknown tenant {tenant!r}")
            for rule in self.ruleset.rules:
                if rule.info.rule_id == rule_id:
                    compile_exception(detection, rule.fields)
            if not any(rule.info.rule_id == rule_id for rule in self.ruleset.rules):
                raise RuleError("exceptions apply to single-event rules, not correlations")
            exception = RuleException(exception_id(rule_id, tenant, detection), rule_id, tenant, dict(detection),
                                      reason, utc_now(), actor)
            if self.store.add_exception(exception, actor_tenant=actor_tenant):
                self._on_reload(self.ruleset, self.store.state())
            return exception

    def upload(self, text: str, *, actor: str, tenant: str) -> list[RuleInfo]:
        """Add a rule file (YAML text) to `upload_dir` if it loads completely; `UploadRefused` else."""
        data = text.encode("utf-8", "surrogatepass")
        if len(data) > MAX_RULE_FILE_BYTES:
            raise UploadRefused([f"larger than {MAX_RULE_FILE_BYTES} bytes (1 MiB)"])
        with self._lock:
            staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.upload_dir))
            try:
                staged = staging / "upload.yml"
                staged.write_bytes(data)
                loaded, errors = load_rules([staged])
                reasons = [f"{error.location}: {error.reason}" if error.location else error.reason for error in errors]
                reasons = [reason.replace(str(staged), "upload.yml") for reason in reasons]
                clash = sorted(loaded.rule_ids & self.ruleset.rule_ids)
                reasons += [f"a loaded rule already has the id {rule_id!r}" for rule_id in clash]
                if not loaded.rule_ids and not reasons:
                    reasons = ["the file holds no rule"]
                if reasons:
                    raise UploadRefused(reasons)
                name = sorted(loaded.rule_ids)[0]
                target = self.upload_dir / (_safe_name(name) + ".yml")
                os.replace(staged, target)
            finally:
                for leftover in staging.iterdir():
                    leftover.unlink()
                staging.rmdir()
            self._audit(actor=actor, tenant=tenant, action="rule.upload", object_type="sigma_rule", object_id=name,
                        details={"file": target.name, "rules": sorted(loaded.rule_ids)})
            self._reload()
            infos = {rule.info.rule_id: rule.info for rule in loaded.rules}
            infos.update((spec.info.rule_id, spec.info) for spec in loaded.correlations)
            return [dataclasses.replace(info, source=str(target)) for info in infos.values()]


def _safe_name(rule_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in rule_id)[:100] or "rule"
