"""`govsoc detect PATH... [--rules DIR]... [--out FILE]`: Sigma rules over files, offline.

Joins sensors and detections (which never import each other): files and directories are parsed
by `sensors.formats.read_any` (each file's format detected), the events run through the same
`SigmaEngine` as the stream, and each alert becomes one JSON line, on stdout or in `--out`.

Output contract (others rely on it), one JSON object per line, in the order alerts were raised:
`@timestamp` (the alert's time, ISO 8601 UTC), `rule` {`id`, `name`, `level`}, `tags` (the rule's,
ATT&CK included), `organization` {`id`}, and `events`: the matched events in full, as parsed,
each with its `log.file.path`.

Invariants:
- Nothing is stored and no configuration is read: the command is a pure function of its files
  and rules (same input, same lines).
- Memory is bounded: events are read a batch at a time and only the last `HELD_EVENTS` are kept
  to fill in the events of correlation alerts (a correlation whose earlier events fell out of
  that window lists the ones still held).
- A rule file that does not load is reported on stderr (count; `govsoc rules check` lists them)
  and skipped; the others still run. Exit 1 when alerts were found, 0 when none, 2 for usage
  errors (a missing path, no rule loaded), 3 when a file cannot be read.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from api.cli.common import ExitCode, QuietOption, err_console, fail
from api.cli.progress import byte_progress
from config.errors import GovsocError
from detections.sigma import RuleError, RuleSet, SigmaEngine, builtin_rules_dir, load_rules
from pipeline import ecs
from pipeline.records import Alert, Event, dumps, to_iso
from sensors.formats import files_under, read_any

HELD_EVENTS = 10_000
DEFAULT_TENANT = "local"
DETECT_SENSOR = "detect"


@dataclass
class DetectStats:
    """What one run read and raised."""

    files: int = 0
    events: int = 0
    dead_letters: int = 0
    alerts: int = 0
    rules: int = 0
    rules_refused: int = 0
    alerts_by_rule: dict[str, int] = field(default_factory=dict)


def alert_record(alert: Alert, events: Iterable[Event]) -> dict[str, Any]:
    """The JSON line of one alert (see the module docstring for the contract)."""
    return {
        ecs.TIMESTAMP: to_iso(alert.timestamp),
        "rule": {"id": alert.rule_id, "name": alert.rule_title, "level": alert.severity.label},
        "tags": list(alert.tags),
        "organization": {"id": alert.tenant},
        "events": [event.doc for event in events],
    }


def detect_events(batches: Iterable[list[Event]], engine: SigmaEngine,
                  held: int = HELD_EVENTS) -> Iterator[tuple[Alert, list[Event]]]:
    """Each alert the engine raises over `batches`, with the events it names that are still held."""
    recent: OrderedDict[str, Event] = OrderedDict()
    for events in batches:
        for event in events:
            recent[event.id] = event
            if len(recent) > held:
                recent.popitem(last=False)
        for alert in engine.process(events):
            yield alert, [recent[i] for i in alert.event_ids if i in recent]


def run_detect(paths: Iterable[Path], ruleset: RuleSet, tenant: str, write: Callable[[bytes], object],
               on_progress: Callable[[int], None] = lambda n: None) -> DetectStats:
    """Parse `paths`, run `ruleset` over them and `write` one JSON line (with newline) per alert.

    Raises OSError when a file cannot be read (lines for earlier alerts are already written).
    """
    stats = DetectStats(rules=len(ruleset.rule_ids))

    def batches() -> Iterator[list[Event]]:
        for file in (file for path in paths for file in files_under(path)):
            stats.files += 1
            for batch in read_any(file, tenant, DETECT_SENSOR, on_progress=on_progress):
                stats.events += len(batch.events)
                stats.dead_letters += len(batch.dead_letters)
                yield batch.events

    for alert, events in detect_events(batches(), SigmaEngine(ruleset)):
        write(dumps(alert_record(alert, events)) + b"\n")
        stats.alerts += 1
        stats.alerts_by_rule[alert.rule_id] = stats.alerts_by_rule.get(alert.rule_id, 0) + 1
    return stats


def _load(rule_dirs: list[Path]) -> tuple[RuleSet, list[RuleError]]:
    for directory in rule_dirs:
        if not directory.exists():
            fail(f"--rules: {directory}: no such file or directory", ExitCode.USAGE)
    ruleset, errors = load_rules(rule_dirs)
    if not ruleset.rule_ids:
        fail(f"--rules: no rule could be loaded from {', '.join(map(str, rule_dirs))} "
             f"({len(errors)} refused; see govsoc rules check)", ExitCode.USAGE)
    return ruleset, errors


def _summary(stats: DetectStats) -> str:
    return (f"{stats.files} files, {stats.events} events, {stats.dead_letters} dead letters; "
            f"{stats.rules} rules loaded, {stats.rules_refused} refused (govsoc rules check lists them); "
            f"{stats.alerts} alerts from {len(stats.alerts_by_rule)} rules")


def detect(
    paths: Annotated[list[Path], typer.Argument(help="Files and directories (searched recursively): "
                                                     ".evtx, Windows event JSON, text logs.")],
    rules: Annotated[list[Path] | None, typer.Option(
        "--rules", help="Sigma rule file or directory (repeatable; default: the built-in rules).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the alerts here instead of stdout.")] = None,
    tenant: Annotated[str, typer.Option(help="Tenant recorded as organization.id.")] = DEFAULT_TENANT,
    quiet: QuietOption = False,
) -> None:
    """Run Sigma rules over files; one JSON line per alert.

    Exit codes: 0 no alert, 1 alerts found, 2 usage error, 3 a file could not be read.
    """
    for path in paths:
        if not path.exists():
            fail(f"{path}: no such file or directory", ExitCode.USAGE)
    ruleset, errors = _load(list(rules) if rules else [builtin_rules_dir()])
    total = sum(f.stat().st_size for p in paths for f in files_under(p))
    try:
        with ExitStack() as stack:
            sink: IO[bytes] = stack.enter_context(out.open("wb")) if out else sys.stdout.buffer
            advance = stack.enter_context(byte_progress("detect", total, quiet))
            stats = run_detect(paths, ruleset, tenant, sink.write, on_progress=advance)
            sink.flush()
    except OSError as e:
        fail(f"{getattr(e, 'filename', None) or ''}: cannot read or write: {e.strerror or e}", ExitCode.RUNTIME)
    except GovsocError as e:
        fail(e, ExitCode.USAGE)
    stats.rules_refused = len(errors)
    if not quiet:
        err_console.print(_summary(stats), markup=False, highlight=False, soft_wrap=True)
    if stats.alerts:
        raise typer.Exit(int(ExitCode.FINDINGS))
