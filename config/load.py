"""Build `Settings` from a YAML file, `GOVSOC_*` environment variables and overrides.

In: a path (or the file named by `GOVSOC_CONFIG`, or the packaged `config/default.yaml`), the process
environment, and overrides from the command line. Out: a validated, frozen `Settings`, or a raised
`ConfigErrors` listing every problem found in one pass.

Contract:
- Sources, highest first: `overrides`, then `GOVSOC_*` variables (nested with `__`, e.g.
  `GOVSOC_API__PORT`), then the file, then the model's defaults. Four short aliases name the back
  ends (`ENV_ALIASES`): `GOVSOC_BUS`, `GOVSOC_EVENTS`, `GOVSOC_INCIDENTS` and `GOVSOC_SENSORS` set
  `pipeline.bus_url`, `.events_url`, `.incidents_url` and `.sensors_url`; an alias and its long
  form set to different values is an error naming both. `GOVSOC_INCIDENTS` whose value starts
  with `{` still sets the `incidents` section (JSON), as before the alias existed. Mappings merge deeply, so
  `{"api": {"port": 9000}}` keeps the file's `api.host`; any other value (a list included) replaces.
- This is the only module that reads the environment. `Settings` itself reads no source but its
  keyword arguments (see `Settings.settings_customise_sources`); the sources are merged here
  instead, so that each error can say where its value came from. Variables are parsed by
  pydantic-settings' own `EnvSettingsSource` (case-insensitive, JSON for lists and mappings), and
  a `GOVSOC_*` variable that names no setting is an error, like an unknown key in the file.
- The file is read with `yaml.SafeLoader` only; duplicate keys are rejected, and anything YAML
  cannot read (syntax, a bad `!!int`, a date like 2024-02-30, nesting too deep) is a `ConfigError`.
- Every error names its source: a file error reads `govsoc.yaml:31:13 tenants[2].parent: reason`
  (the line of the key, or of the nearest enclosing key when the key is missing); an error in a
  value from the environment names the variable (`GOVSOC_API__PORT: reason`); one from
  `overrides` names the field and says so. Keys that come in through YAML merge keys (`<<`) are
  located at the mapping that merges them.
- Raises only `ConfigError` (usually its subclass `ConfigErrors`), chained to the underlying
  exception with `raise ... from`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_settings import EnvSettingsSource, SettingsError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from config.errors import ConfigError, ConfigErrors, SourceLocation
from config.settings import Settings, TreeError

__all__ = ["CONFIG_VARIABLE", "ENV_ALIASES", "load_settings"]

CONFIG_VARIABLE = "GOVSOC_CONFIG"  # names the file when no path is given; not a setting itself
# Short names for the back-end URLs (issue 11): what an operator sets in a systemd unit.
ENV_ALIASES: dict[str, tuple[str, str]] = {
    "GOVSOC_BUS": ("pipeline", "bus_url"),
    "GOVSOC_EVENTS": ("pipeline", "events_url"),
    "GOVSOC_INCIDENTS": ("pipeline", "incidents_url"),
    "GOVSOC_SENSORS": ("pipeline", "sensors_url"),
}
_PREFIX = (Settings.model_config.get("env_prefix") or "").upper()
_DELIMITER = Settings.model_config.get("env_nested_delimiter") or "__"
_MERGE_TAG = "tag:yaml.org,2002:merge"

Loc = tuple[object, ...]
"""A key path into the settings as pydantic spells it: keys, and list indices as ints."""


def load_settings(path: Path | None = None, *, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read, merge and validate the configuration; raise `ConfigError` naming every problem."""
    name, text = _read_config(path)
    document = _parse_yaml(text, name)
    environment = _read_environment()
    data = _merge(_merge(document.data, environment.values), overrides or {})
    sources = _Sources(document, environment, overrides or {})
    return _validate(data, sources)


# --- reading the file -------------------------------------------------------------------------


def _read_config(path: Path | None) -> tuple[str, str]:
    """Pick the file (argument, `GOVSOC_CONFIG`, packaged default) and return its name and text."""
    via = ""
    if path is None and os.environ.get(CONFIG_VARIABLE):
        path, via = Path(os.environ[CONFIG_VARIABLE]), f" (named by {CONFIG_VARIABLE})"
    source: Path | Traversable = path if path is not None else resources.files("config") / "default.yaml"
    name = str(source)
    try:
        raw = source.read_bytes()
    except OSError as e:
        reason = f"cannot read the configuration file{via}: {e.strerror or e}"
        raise ConfigError(reason, SourceLocation(path=name)) from e
    try:
        return name, raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        reason = f"the configuration file is not UTF-8 text ({e.reason} at byte {e.start})"
        raise ConfigError(reason, SourceLocation(path=name)) from e


@dataclass(frozen=True, slots=True)
class _Document:
    """A parsed YAML file: its data, and the 1-based (line, column) of every key and list item."""

    name: str
    data: dict[Any, Any]
    marks: dict[Loc, tuple[int, int]]


class _MarkedLoader(yaml.SafeLoader):
    """SafeLoader whose constructors fail with a marked YAML error, never a bare ValueError.

    SafeLoader raises ValueError, KeyError or AttributeError for scalars such as `2024-02-30`,
    `!!int abc` or `!!bool maybe`; wrapping them here gives those errors a line.
    """

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, KeyError, AttributeError, TypeError) as e:
            if isinstance(e, yaml.YAMLError):
                raise
            shown = repr(node.value) if isinstance(node, ScalarNode) else f"a {_kind(node)}"
            reason = f"cannot read {shown} as {node.tag.rsplit(':', 1)[-1]}"
            raise ConstructorError(None, None, reason, node.start_mark) from e


def _parse_yaml(text: str, name: str) -> _Document:
    """Parse the file, turning every YAML failure into a `ConfigError` at its line."""
    try:
        return _compose(text, name)
    except yaml.MarkedYAMLError as e:
        raise ConfigError(_yaml_reason(e), _yaml_location(name, e)) from e
    except yaml.reader.ReaderError as e:
        line = text[: e.position].count("\n") + 1
        raise ConfigError(f"invalid YAML: {e.reason} {chr(e.character)!r}", SourceLocation(name, line)) from e
    except RecursionError as e:
        raise ConfigError("invalid YAML: nested too deeply", SourceLocation(path=name)) from e


def _compose(text: str, name: str) -> _Document:
    """Compose the file to nodes (for marks and duplicate keys), then construct its data."""
    loader = _MarkedLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return _Document(name, {}, {})
        if not isinstance(root, MappingNode):
            reason = f"the top level must be a mapping of settings, not a {_kind(root)}"
            raise ConfigError(reason, _mark_location(name, root))
        marks = _collect_marks(loader, root, name)
        return _Document(name, loader.construct_document(root), marks)
    finally:
        loader.dispose()


def _collect_marks(loader: _MarkedLoader, root: MappingNode, name: str) -> dict[Loc, tuple[int, int]]:
    """Map each key path to its key's position; raise `ConfigErrors` for duplicate keys.

    Walks without recursion, visiting each node once: an alias is located at its first use, and
    a self-referencing alias cannot loop.
    """
    marks: dict[Loc, tuple[int, int]] = {}
    duplicates: list[ConfigError] = []
    stack: list[tuple[Node, Loc]] = [(root, ())]
    seen: set[int] = set()
    while stack:
        node, loc = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                marks[(*loc, index)] = _position(item)
                stack.append((item, (*loc, index)))
        elif isinstance(node, MappingNode):
            first_line: dict[object, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue  # complex keys fail in construction; merged keys are found at `<<`
                key = loader.construct_object(key_node)
                if key in first_line:
                    reason = f"duplicate key {key!r} (first at line {first_line[key]})"
                    duplicates.append(ConfigError(reason, _mark_location(name, key_node, (*loc, key))))
                first_line.setdefault(key, _position(key_node)[0])
                marks[(*loc, key)] = _position(key_node)
                stack.append((value_node, (*loc, key)))
    if duplicates:
        raise ConfigErrors(sorted(duplicates, key=_line_order))
    return marks


def _kind(node: Node) -> str:
    kinds: dict[type[Node], str] = {MappingNode: "mapping", SequenceNode: "list"}
    return kinds.get(type(node), "single value")


def _position(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _mark_location(name: str, node: Node, loc: Loc = ()) -> SourceLocation:
    line, column = _position(node)
    return SourceLocation(name, line, column, _dotted(loc) or None)


def _yaml_reason(error: yaml.MarkedYAMLError) -> str:
    if error.context:
        return f"invalid YAML ({error.context}): {error.problem}"
    return f"invalid YAML: {error.problem}"


def _yaml_location(name: str, error: yaml.MarkedYAMLError) -> SourceLocation:
    mark = error.problem_mark or error.context_mark
    if mark is None:
        return SourceLocation(path=name)
    return SourceLocation(name, mark.line + 1, mark.column + 1)


# --- reading the environment ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Environment:
    """Values from `GOVSOC_*` variables, which variable set which key path, and problems found."""

    values: dict[str, Any]
    variables: dict[tuple[str, ...], str]
    problems: list[ConfigError] = field(default_factory=list)


def _read_environment() -> _Environment:
    """Parse `GOVSOC_*` variables with pydantic-settings' own rules (prefix, `__`, JSON values).

    A variable naming no setting (`GOVSOC_API_PORT`, one underscore) is a problem, not ignored:
    a typo must fail at start like an unknown key in the file.
    """
    variables: dict[tuple[str, ...], str] = {}
    problems: list[ConfigError] = []
    for variable in os.environ:
        upper = variable.upper()
        if not upper.startswith(_PREFIX) or upper == CONFIG_VARIABLE or _is_alias(upper, os.environ[variable]):
            continue
        loc = tuple(variable[len(_PREFIX) :].lower().split(_DELIMITER))
        variables[loc] = variable
        if loc[0] not in Settings.model_fields:
            known = [_PREFIX + name.upper() for name in Settings.model_fields]
            reason = f"unknown setting{_did_you_mean(upper, known)}"
            problems.append(ConfigError(reason, SourceLocation(field=variable)))
    try:
        source = EnvSettingsSource(Settings)
        # GOVSOC_INCIDENTS=<url> is the alias, not the `incidents` section: hide it from the source.
        source.env_vars = {name: value for name, value in source.env_vars.items()
                           if value is None or not _is_alias(name, value)}
        values = source()
    except SettingsError as e:
        problems.append(_env_parse_problem(e, variables))
        values = {}
    return _Environment(_with_aliases(values, variables, problems), variables, problems)


def _is_alias(variable: str, value: str) -> bool:
    """Whether `variable` is used as an alias: `GOVSOC_INCIDENTS` also names the `incidents`
    section, which takes a JSON object, so a value starting with `{` keeps that meaning."""
    return variable.upper() in ENV_ALIASES and not value.lstrip().startswith("{")


def _with_aliases(values: dict[str, Any], variables: dict[tuple[str, ...], str],
                  problems: list[ConfigError]) -> dict[str, Any]:
    """`values` with each alias variable set (`ENV_ALIASES`) put at its key path.

    The alias is recorded in `variables`, so an invalid value is reported under the alias's
    name; an alias that disagrees with the long variable of the same setting is a problem.
    """
    for variable, value in os.environ.items():
        loc = ENV_ALIASES.get(variable.upper())
        if loc is None or not _is_alias(variable, value):
            continue
        section = values.setdefault(loc[0], {})
        if not isinstance(section, dict):
            continue  # a JSON value for the whole section was given; it is validated as it is
        long_form = variables.get(loc)
        if long_form is not None and section.get(loc[1]) != value:
            reason = f"disagrees with {long_form}: set one of them"
            problems.append(ConfigError(reason, SourceLocation(field=variable)))
            continue
        section[loc[1]] = value
        variables[loc] = variable
    return values


def _env_parse_problem(error: SettingsError, variables: dict[tuple[str, ...], str]) -> ConfigError:
    """A variable whose value should be JSON (a list or mapping) and is not."""
    found = re.search(r'field "([^"]+)"', str(error))  # pydantic-settings names it only in its message
    names = sorted(v for loc, v in variables.items() if found and loc[0] == found.group(1))
    reason = f"not valid JSON: {error.__cause__ or error}"
    return ConfigError(reason, SourceLocation(field=", ".join(names) or None))


# --- merging and validating -------------------------------------------------------------------


def _merge(base: Mapping[Any, Any], top: Mapping[Any, Any]) -> dict[Any, Any]:
    """`base` updated by `top`, mapping into mapping; recurses only where `top` has mappings."""
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        if isinstance(below, Mapping) and isinstance(value, Mapping):
            merged[key] = _merge(below, value)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True, slots=True)
class _Problem:
    """One validation problem before it is located: pydantic's, or an unknown top-level key."""

    loc: Loc
    kind: str
    message: str
    value: object = None
    error: Exception | None = None


def _validate(data: dict[Any, Any], sources: _Sources) -> Settings:
    """Validate the merged data; raise one `ConfigErrors` with every located problem."""
    data, problems = _split_unknown_keys(data)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        problems += [_problem_from_pydantic(dict(details)) for details in e.errors()]
        raise _located(problems, sources) from e
    if problems or sources.environment.problems:
        raise _located(problems, sources)
    return settings


def _split_unknown_keys(data: dict[Any, Any]) -> tuple[dict[str, Any], list[_Problem]]:
    """Top-level keys that are not fields, checked here and not by pydantic.

    `Settings` takes the top level as keyword arguments, which pydantic-settings matches without
    regard to case and which must be strings; nested keys are pydantic's to check.
    """
    known = {k: v for k, v in data.items() if isinstance(k, str) and k in Settings.model_fields}
    unknown = [_Problem((k,), "extra_forbidden", "", v) for k, v in data.items() if k not in known]
    return known, unknown


def _problem_from_pydantic(details: dict[str, Any]) -> _Problem:
    """Recover a `TreeError`'s own key path, which pydantic reports at the model's root."""
    error = details.get("ctx", {}).get("error")
    loc = error.loc if isinstance(error, TreeError) else details["loc"]
    return _Problem(tuple(loc), details["type"], details["msg"], details.get("input"), error)


def _located(problems: list[_Problem], sources: _Sources) -> ConfigErrors:
    """Turn problems into errors: located, with a reason, ordered by line, noise dropped."""
    problems = [p for p in problems if not _is_follow_on(p, problems)]
    errors = [sources.error(problem.loc, _reason(problem)) for problem in problems]
    return ConfigErrors(sorted([*errors, *sources.environment.problems], key=_line_order))


def _is_follow_on(problem: _Problem, problems: list[_Problem]) -> bool:
    """A `too_short` list whose items all failed: the items' own errors say more."""
    depth = len(problem.loc)
    return problem.kind == "too_short" and any(
        len(other.loc) > depth and other.loc[:depth] == problem.loc for other in problems
    )


def _reason(problem: _Problem) -> str:
    if problem.kind == "extra_forbidden":
        key = problem.loc[-1]
        return f"unknown key {key!r}{_did_you_mean(key, _field_names_at(problem.loc[:-1]))}"
    if problem.error is not None:
        return str(problem.error)  # a validator's ValueError, without pydantic's "Value error, "
    if problem.kind != "missing" and isinstance(problem.value, str | int | float | bool):
        shown = repr(problem.value)
        return f"{problem.message} (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return problem.message


def _did_you_mean(word: object, candidates: list[str]) -> str:
    """A suggestion from `candidates`, compared without regard to case; "" when none is close."""
    by_lower = {candidate.lower(): candidate for candidate in candidates}
    close = difflib.get_close_matches(str(word).lower(), list(by_lower), n=1)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


def _field_names_at(loc: Loc) -> list[str]:
    """The field names of the model found at `loc`, for suggestions; [] when there is none."""
    model: type[BaseModel] | None = Settings
    for part in loc:
        if model is None:
            return []
        if isinstance(part, str):
            info = model.model_fields.get(part)
            model = _model_in(info.annotation) if info else None
    return list(model.model_fields) if model else []


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The model an annotation holds, unwrapping `tuple[X, ...]` and `X | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


# --- locating errors --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sources:
    """What each source provided, to tell which one a key path's value came from."""

    document: _Document
    environment: _Environment
    overrides: Mapping[str, Any]

    def error(self, loc: Loc, reason: str) -> ConfigError:
        """An error at `loc`, located in the highest source that set the value there."""
        if _provides(self.overrides, loc):
            return ConfigError(f"{reason} (from overrides)", SourceLocation(field=_dotted(loc)))
        if _provides(self.environment.values, loc):
            return self._environment_error(loc, reason)
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.document.marks:
                line, column = self.document.marks[loc[:end]]
                return ConfigError(reason, SourceLocation(self.document.name, line, column, _dotted(loc)))
        return ConfigError(reason, SourceLocation(path=self.document.name, field=_dotted(loc) or None))

    def _environment_error(self, loc: Loc, reason: str) -> ConfigError:
        """Name the variable; a key path below it (inside a JSON value) goes into the reason."""
        spelled = tuple(str(part).lower() for part in loc)
        for end in range(len(spelled), 0, -1):
            variable = self.environment.variables.get(spelled[:end])
            if variable is not None:
                inside = f"{_dotted(loc)}: " if end < len(loc) else ""
                return ConfigError(f"{inside}{reason}", SourceLocation(field=variable))
        return ConfigError(reason, SourceLocation(field=_PREFIX + _DELIMITER.join(spelled).upper()))


def _provides(source: Mapping[Any, Any], loc: Loc) -> bool:
    """Whether `source` set the value at `loc`, itself or as part of a value it replaced."""
    node: object = source
    for part in loc:
        if not isinstance(node, Mapping):
            return True  # a list or scalar set higher up replaced everything below it
        if part not in node:
            return False
        node = node[part]
    return bool(loc)


def _dotted(loc: Loc) -> str:
    """`("tenants", 2, "parent")` -> `tenants[2].parent`."""
    out = ""
    for part in loc:
        if out and isinstance(part, int) and not isinstance(part, bool):  # the top level is a mapping
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_order(error: ConfigError) -> tuple[bool, int, int]:
    """File errors first, by line and column; then those from variables and overrides."""
    where = error.location or SourceLocation()
    return where.line is None, where.line or 0, where.column or 0
