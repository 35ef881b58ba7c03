"""Sigma rule files -> a `RuleSet` ready to run, and every problem found on the way.

Stage: the first of detections/sigma. In: files and directories (searched recursively for `*.yml`
and `*.yaml`). Out: `(RuleSet, [RuleError])`.

Steps: read (at most 1 MiB of UTF-8) -> YAML documents (safe loader; duplicate keys and aliases
refused at their line) -> one pySigma rule per document -> unique ids and names -> per rule and
per kind of event its log source covers (logsources.py), a `CompiledRule`: that kind's scope and
the predicate compiled with its field map (fields.py) -> correlation references resolved across
all files by pySigma (`SigmaCollection`, `resolve_rule_references`) -> compiled correlations.

Invariants:
- Nothing raises for bad input. A bad file, document or rule becomes one `RuleError` naming the
  file, the line when known (from the YAML node marks: pySigma's own locations carry no line) and
  the reason; the rest still load. A correlation whose referenced rule failed fails too.
- Deterministic: files are read in sorted path order and rules keep their order in the file.
- A rule whose log source covers several kinds of event (process_creation: Sysmon 1 and Security
  4688) is several `CompiledRule`s with one `RuleInfo`; their scopes are disjoint, so it still
  fires at most once per event. `RuleSet.rule_ids` counts rules, not compiled forms.
- Sigma's `generate`: a rule referenced by correlations raises alerts of its own only when one of
  them says `generate: true`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sigma.exceptions as sigma_exceptions
import structlog
import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaModifierError, SigmaRuleLocation
from sigma.rule import SigmaRule

from config.errors import SourceLocation
from detections.sigma.compile import CompiledRule, RuleInfo, compile_test, rule_key, sigma_reason
from detections.sigma.correlate import CorrelationSpec, compile_correlation
from detections.sigma.errors import RuleError
from detections.sigma.logsources import sources_for
from detections.sigma.prefilter import required_literals

log = structlog.get_logger(__name__)

MAX_RULE_FILE_BYTES = 1024 * 1024
RULE_SUFFIXES = (".yml", ".yaml")
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules an engine runs: single-event rules and correlations, in load order."""

    rules: tuple[CompiledRule, ...] = ()
    correlations: tuple[CorrelationSpec, ...] = ()

    def __len__(self) -> int:
        return len(self.rules) + len(self.correlations)

    @property
    def rule_ids(self) -> frozenset[str]:
        """The ids of the rules and correlations loaded (a rule compiled per event kind counts once)."""
        return frozenset(r.info.rule_id for r in self.rules) | {c.info.rule_id for c in self.correlations}


def builtin_rules_dir() -> Path:
    """The rules govsoc ships (package data `detections/rules`)."""
    return Path(__file__).resolve().parent.parent / "rules"


def load_rules(paths: Sequence[Path]) -> tuple[RuleSet, list[RuleError]]:
    """Every rule under `paths` that can run, and one `RuleError` per one that cannot."""
    errors: list[RuleError] = []
    broken: set[str] = set()  # ids and names of documents that failed, for clearer reference errors
    parsed: list[_Parsed] = []
    for path in _rule_files(paths, errors):
        parsed.extend(_parse_file(path, errors, broken))
    parsed = _unique(parsed, errors)
    rules = _compile_rules(parsed, errors)
    correlations = _compile_correlations(parsed, rules, errors, broken)
    ruleset = _assemble(rules, correlations)
    log.info("sigma_rules_loaded", rules=len(ruleset.rules), correlations=len(ruleset.correlations),
             skipped=len(errors))
    return ruleset, errors


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A rule pySigma accepted, with the YAML node it came from (for the lines of later errors)."""

    rule: SigmaRule | SigmaCorrelationRule
    path: Path
    node: yaml.Node


# --- files and YAML -------------------------------------------------------------------------------

def _rule_files(paths: Sequence[Path], errors: list[RuleError]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(_walk(path))
        elif path.is_file():
            files.append(path)
        else:
            errors.append(RuleError("no such file or directory", SourceLocation(str(path))))
    return files


def _walk(directory: Path) -> Iterator[Path]:
    """Rule files under `directory`, sorted; symlinked directories are not followed (no loops)."""
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in sorted(names):
            if name.endswith(RULE_SUFFIXES):
                yield Path(root) / name


def _read_text(path: Path) -> str:
    where = SourceLocation(str(path))
    try:
        with path.open("rb") as file:
            data = file.read(MAX_RULE_FILE_BYTES + 1)
    except OSError as e:
        raise RuleError(f"cannot read: {e.strerror or e}", where) from e
    if len(data) > MAX_RULE_FILE_BYTES:
        raise RuleError(f"larger than {MAX_RULE_FILE_BYTES} bytes (1 MiB)", where)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RuleError(f"not UTF-8 text (byte {e.start})", where) from e


def _yaml_documents(path: Path, text: str) -> list[tuple[yaml.Node, Any]]:
    """(node, data) per document; the node keeps the marks that give lines to later errors."""
    loader = _SafeLoader(text)
    try:
        documents = []
        while loader.check_node():
            node = loader.get_node()
            _check_node(path, node)
            documents.append((node, loader.construct_document(node)))
        return documents
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        where = SourceLocation(str(path), line, column)
        raise RuleError(f"not valid YAML: {e.problem or e.context or 'syntax error'}", where) from e
    except yaml.YAMLError as e:
        raise RuleError(f"not valid YAML: {e}", SourceLocation(str(path))) from e
    except RecursionError as e:
        raise RuleError("YAML nested too deeply", SourceLocation(str(path))) from e
    finally:
        loader.dispose()


def _parse_file(path: Path, errors: list[RuleError], broken: set[str]) -> list[_Parsed]:
    try:
        documents = _yaml_documents(path, _read_text(path))
    except RuleError as e:
        errors.append(e)
        return []
    parsed = []
    for node, data in documents:
        if data is None:  # an empty document, e.g. after a trailing '---'
            continue
        try:
            parsed.append(_Parsed(_parse_document(path, node, data), path, node))
        except RuleError as e:
            errors.append(e)
            if isinstance(data, dict):
                broken.update(str(data[key]) for key in ("id", "name") if data.get(key) is not None)
    return parsed


def _parse_document(path: Path, node: yaml.Node, data: Any) -> SigmaRule | SigmaCorrelationRule:
    if not isinstance(data, dict):
        raise RuleError("a rule is a YAML mapping", _at(path, node, ()))
    for key, reason in (("action", "collection actions (action: global/repeat/reset) are not supported"),
                        ("filter", "Sigma filters are not supported yet")):
        if key in data:
            raise RuleError(reason, _at(path, node, (key,)))
    source = SigmaRuleLocation(path)
    try:
        if "correlation" in data:
            rule: SigmaRule | SigmaCorrelationRule = SigmaCorrelationRule.from_dict(data, True, source)
        else:
            rule = SigmaRule.from_dict(data, True, source)
    except SigmaError as e:
        raise RuleError(sigma_reason(e), _sigma_location(path, node, e)) from e
    except Exception as e:  # pySigma is not hardened against every shape of input; report, don't crash
        raise RuleError(f"pySigma could not read the rule: {type(e).__name__}: {e}",
                        _at(path, node, ())) from e
    if rule.errors:
        reasons = list(dict.fromkeys(sigma_reason(error) for error in rule.errors))
        raise RuleError("; ".join(reasons), _sigma_location(path, node, rule.errors[0]))
    return rule


def _sigma_location(path: Path, node: yaml.Node, error: SigmaError) -> SourceLocation:
    """Where in the YAML a pySigma error points: the modifier's key, else the key its class names."""
    if isinstance(error, SigmaModifierError):
        named = re.findall(r"'([^']+)'", sigma_reason(error))
        if named:
            found = _detection_key(path, node, lambda key: named[0] in key.split("|")[1:])
            if found is not None:
                return found
    return _at(path, node, _keys_for_error(error))


# --- rules ----------------------------------------------------------------------------------------

def _unique(parsed: list[_Parsed], errors: list[RuleError]) -> list[_Parsed]:
    """Drop a rule whose id or name an earlier rule already has: references would be ambiguous."""
    first: dict[tuple[str, str], Path] = {}
    kept = []
    for item in parsed:
        claims = [("id", rule_key(item.rule))] + ([("name", item.rule.name)] if item.rule.name else [])
        clash = next((claim for claim in claims if claim in first), None)
        if clash is not None:
            errors.append(RuleError(f"duplicate rule {clash[0]} {clash[1]!r} (first in {first[clash]})",
                                    _at(item.path, item.node, (clash[0],))))
            continue
        first.update((claim, item.path) for claim in claims)
        kept.append(item)
    return kept


def _compile_rules(parsed: list[_Parsed], errors: list[RuleError]) -> dict[int, tuple[CompiledRule, ...]]:
    """id(SigmaRule) -> its compiled forms (one per kind of event), for every rule that can run.

    The detection is compiled before the log source is checked, so a rule with both problems is
    reported for its detection (a mapping may come later; the detection is wrong either way).
    """
    compiled: dict[int, tuple[CompiledRule, ...]] = {}
    for item in parsed:
        rule = item.rule
        if not isinstance(rule, SigmaRule):
            continue
        logsource = rule.logsource
        sources = sources_for(logsource.category, logsource.product, logsource.service)
        try:
            predicates = [compile_test(rule, source.fields) for source in sources] or [compile_test(rule)]
        except RuleError as e:
            field = e.location.field if e.location else None
            errors.append(RuleError(e.reason, _for_field(item.path, item.node, field)))
            continue
        if not sources:
            described = ", ".join(f"{k}={v}" for k, v in (("category", logsource.category),
                                                          ("product", logsource.product),
                                                          ("service", logsource.service)) if v)
            errors.append(RuleError(f"no log source mapping for {described}",
                                    _at(item.path, item.node, ("logsource",))))
            continue
        info = RuleInfo.of(rule, str(item.path))
        compiled[id(rule)] = tuple(CompiledRule(info, source.scope, predicate,
                                                required=required_literals(rule, source.fields),
                                                fields=source.fields)
                                   for source, predicate in zip(sources, predicates, strict=True))
    return compiled


# --- correlations ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Pending:
    """A correlation waiting for the rules it references (`targets`, as pySigma resolved them)."""

    item: _Parsed
    rule: SigmaCorrelationRule
    targets: list[Any]


def _compile_correlations(parsed: list[_Parsed], rules: dict[int, tuple[CompiledRule, ...]],
                          errors: list[RuleError],
                          broken: set[str]) -> list[tuple[SigmaCorrelationRule, CorrelationSpec]]:
    """Compiled correlations in dependency order (a referenced correlation comes first).

    References resolve across all files. A correlation fails if a rule it references is unknown,
    failed, or part of a reference cycle.
    """
    collection = SigmaCollection([item.rule for item in parsed], resolve_references=False)
    ok: set[int] = set(rules)  # ids of the rules that will run
    pending: dict[int, _Pending] = {}
    for item in parsed:
        if isinstance(item.rule, SigmaCorrelationRule):
            try:
                pending[id(item.rule)] = _Pending(item, item.rule, _targets(item, item.rule, collection, broken))
            except RuleError as e:
                errors.append(e)
    done: list[tuple[SigmaCorrelationRule, CorrelationSpec]] = []
    # Dependency order: a correlation is ready once none of its targets is still pending.
    while ready := [key for key, waiting in pending.items() if not _waits(waiting.targets, pending)]:
        for key in ready:
            waiting = pending.pop(key)
            try:
                done.append((waiting.rule, _compile_correlation(waiting, collection, ok)))
                ok.add(key)
            except RuleError as e:
                errors.append(e)
    for waiting in pending.values():
        errors.append(RuleError("correlation references form a cycle",
                                _at(waiting.item.path, waiting.item.node, ("correlation", "rules"))))
    return done


def _waits(targets: list[Any], pending: dict[int, _Pending]) -> bool:
    return any(id(target) in pending for target in targets)


def _targets(item: _Parsed, rule: SigmaCorrelationRule, collection: SigmaCollection,
             broken: set[str]) -> list[Any]:
    """The rules a correlation references, looked up as pySigma resolves them (id, then name)."""
    targets = []
    for ref in rule.rules or []:
        try:
            targets.append(collection[ref.reference])
        except SigmaError as e:
            why = "which was not loaded" if ref.reference in broken else "which is not among the loaded rules"
            raise RuleError(f"references rule {ref.reference!r}, {why}",
                            _at(item.path, item.node, ("correlation", "rules"))) from e
    return targets


def _compile_correlation(waiting: _Pending, collection: SigmaCollection, ok: set[int]) -> CorrelationSpec:
    path, node, rule = waiting.item.path, waiting.item.node, waiting.rule
    failed = [target for target in waiting.targets if id(target) not in ok]
    if failed:
        raise RuleError(f"references rule {rule_key(failed[0])!r}, which was not loaded",
                        _at(path, node, ("correlation", "rules")))
    try:
        rule.resolve_rule_references(collection)
        return compile_correlation(rule, RuleInfo.of(rule, str(path)))
    except SigmaError as e:
        raise RuleError(sigma_reason(e), _at(path, node, ("correlation",))) from e
    except RuleError as e:
        field = (e.location.field if e.location else None) or "correlation"
        raise RuleError(e.reason, _at(path, node, tuple(field.split(".")))) from e


def _assemble(rules: dict[int, tuple[CompiledRule, ...]],
              correlations: list[tuple[SigmaCorrelationRule, CorrelationSpec]]) -> RuleSet:
    """The rule set, each rule told whether it raises alerts of its own (Sigma's `generate`)."""
    generate: dict[str, list[bool]] = {}
    for rule, spec in correlations:
        for source in spec.sources:
            generate.setdefault(source, []).append(rule.generate)

    def emits(rule_id: str) -> bool:
        return any(generate.get(rule_id, [True]))

    return RuleSet(
        rules=tuple(dataclasses.replace(r, emits_alerts=emits(r.info.rule_id))
                    for forms in rules.values() for r in forms),
        correlations=tuple(dataclasses.replace(spec, emits_alerts=emits(spec.info.rule_id))
                           for _, spec in correlations),
    )


# --- locations: YAML node marks -> file:line:column key --------------------------------------------

def _check_node(path: Path, root: yaml.Node) -> None:
    """Refuse duplicate keys (YAML keeps the last silently) and aliases (a few lines of them can
    expand to gigabytes), each with its line. Iterative, so depth cannot crash it."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())]
    while stack:
        node, keys = stack.pop()
        if id(node) in seen:  # composing reuses the anchored node for each alias
            raise RuleError("YAML aliases are not allowed in rules", _mark(path, node, keys))
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            names: set[str] = set()
            for key_node, value_node in node.value:
                name = str(key_node.value)
                if name in names:
                    raise RuleError(f"duplicate key {name!r}", _mark(path, key_node, (*keys, name)))
                names.add(name)
                stack.append((value_node, (*keys, name)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*keys, str(index))) for index, item in enumerate(node.value))


def _mark(path: Path, node: yaml.Node, keys: Sequence[str]) -> SourceLocation:
    mark = node.start_mark
    return SourceLocation(str(path), mark.line + 1, mark.column + 1, ".".join(keys) or None)


def _child(node: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if str(key_node.value) == key:
                return key_node, value_node
    return None


def _at(path: Path, root: yaml.Node, keys: Sequence[str]) -> SourceLocation:
    """The deepest of `keys` (a path from the document root) that exists; the document if none."""
    node, marked, found = root, root, []
    for key in keys:
        child = _child(node, key)
        if child is None:
            break
        marked, node = child
        found.append(key)
    return _mark(path, marked, found)


def _detection_key(path: Path, root: yaml.Node, wanted: Callable[[str], bool]) -> SourceLocation | None:
    """The first key under `detection` (selections may be lists of maps) that `wanted` accepts."""
    detection = _child(root, "detection")
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(detection[1], ("detection",))] if detection else []
    while stack:
        node, keys = stack.pop(0)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                name = str(key_node.value)
                if wanted(name):
                    return _mark(path, key_node, (*keys, name))
                stack.append((value_node, (*keys, name)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, keys) for item in node.value)
    return None


def _for_field(path: Path, root: yaml.Node, key: str | None) -> SourceLocation:
    """Where a compile error points: the condition, the detection key (`field|modifiers`) itself,
    else the first key on the same field (modifier aliases such as `i`/`ignorecase` differ)."""
    if key == "condition":
        return _at(path, root, ("detection", "condition"))
    if key:
        field = key.split("|")[0]
        found = (_detection_key(path, root, lambda name: name == key)
                 or _detection_key(path, root, lambda name: name.split("|")[0] == field))
        if found is not None:
            return found
    return _at(path, root, ("detection",))


_ERROR_KEYS: dict[type, tuple[str, ...]] = {
    sigma_exceptions.SigmaTitleError: ("title",),
    sigma_exceptions.SigmaIdentifierError: ("id",),
    sigma_exceptions.SigmaNameError: ("name",),
    sigma_exceptions.SigmaStatusError: ("status",),
    sigma_exceptions.SigmaLevelError: ("level",),
    sigma_exceptions.SigmaDateError: ("date",),
    sigma_exceptions.SigmaModifiedError: ("modified",),
    sigma_exceptions.SigmaTagError: ("tags",),
    sigma_exceptions.SigmaAuthorError: ("author",),
    sigma_exceptions.SigmaDescriptionError: ("description",),
    sigma_exceptions.SigmaReferencesError: ("references",),
    sigma_exceptions.SigmaRelatedError: ("related",),
    sigma_exceptions.SigmaFalsePositivesError: ("falsepositives",),
    sigma_exceptions.SigmaFieldsError: ("fields",),
    sigma_exceptions.SigmaLogsourceError: ("logsource",),
    sigma_exceptions.SigmaConditionError: ("detection", "condition"),
    sigma_exceptions.SigmaDetectionError: ("detection",),
    sigma_exceptions.SigmaModifierError: ("detection",),
    sigma_exceptions.SigmaValueError: ("detection",),
    sigma_exceptions.SigmaTimespanError: ("correlation", "timespan"),
    sigma_exceptions.SigmaCorrelationTypeError: ("correlation", "type"),
    sigma_exceptions.SigmaCorrelationConditionError: ("correlation", "condition"),
    sigma_exceptions.SigmaCorrelationRuleError: ("correlation",),
}


def _keys_for_error(error: SigmaError) -> tuple[str, ...]:
    """The key a pySigma error class is about, by its most specific class; () for the document."""
    for cls in type(error).__mro__:
        if cls in _ERROR_KEYS:
            return _ERROR_KEYS[cls]
    return ()
