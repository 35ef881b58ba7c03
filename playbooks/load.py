"""Load a directory of YAML playbooks: every file validated, every problem located.

In: directories (or single files) of `*.yml` / `*.yaml`. Out: `(playbooks, errors)`; a bad file
adds its errors and no playbook, and never stops the others loading, so `govsoc playbooks check`
reports everything in one run.

Contract:
- YAML is read with `yaml.SafeLoader` only; duplicate keys are errors, and so are keys YAML does
  not read as text (`on:` is the boolean true in YAML 1.1).
- Every error is a `PlaybookError` whose location names the file, the line and column of the key
  at fault (of the nearest enclosing key or list item when the key is missing) and the field path
  (`steps[2].target`). Pydantic's discriminated-union tag (`contain` in `steps.2.contain.target`)
  is dropped from the path: it is the step's `type`, not a key the author wrote.
- Two playbooks with one id: the second is an error at its `id`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from config.errors import SourceLocation
from playbooks.errors import PlaybookError
from playbooks.model import SIDE_EFFECT_TYPES, STEP_TYPES, Playbook, structure_problems

__all__ = ["LIBRARY", "load_playbook_text", "load_playbooks"]

LIBRARY = Path(__file__).parent / "library"
SUFFIXES = (".yml", ".yaml")
Loc = tuple[Any, ...]
_STR_TAG = "tag:yaml.org,2002:str"
_SIDE_EFFECT_KEYS = frozenset({"automatic", "retries", "timeout_s"})
_SECRET_KEYS = frozenset({"password", "username", "credentials"})


@dataclass(frozen=True, slots=True)
class _Document:
    data: Any
    marks: dict[Loc, tuple[int, int]]


def load_playbooks(paths: Iterable[Path]) -> tuple[list[Playbook], list[PlaybookError]]:
    """All playbooks under `paths` (files in name order), and every error found."""
    playbooks: list[Playbook] = []
    errors: list[PlaybookError] = []
    first_file: dict[str, str] = {}
    for file in _files(paths, errors):
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            errors.append(PlaybookError(f"cannot read the playbook: {e}", SourceLocation(path=str(file))))
            continue
        playbook, found = _load(text, str(file))
        errors.extend(found)
        if playbook is None:
            continue
        if playbook.id in first_file:
            errors.append(PlaybookError(f"duplicate playbook id {playbook.id!r} (first in {first_file[playbook.id]})",
                                        _locate(str(file), _compose(text).marks, ("id",))))
            continue
        first_file[playbook.id] = str(file)
        playbooks.append(playbook)
    return playbooks, errors


def load_playbook_text(text: str, name: str = "<playbook>") -> Playbook:
    """One playbook from YAML text; raises the first `PlaybookError` found."""
    playbook, errors = _load(text, name)
    if errors or playbook is None:
        raise errors[0]
    return playbook


def _files(paths: Iterable[Path], errors: list[PlaybookError]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            errors.append(PlaybookError("no such file or directory", SourceLocation(path=str(path))))
    return files


def _load(text: str, name: str) -> tuple[Playbook | None, list[PlaybookError]]:
    try:
        document = _compose(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = SourceLocation(name, mark.line + 1, mark.column + 1) if mark else SourceLocation(name)
        return None, [PlaybookError(f"invalid YAML: {e.problem}", where)]
    except yaml.YAMLError as e:
        return None, [PlaybookError(f"invalid YAML: {e}", SourceLocation(name))]
    except _KeyProblems as e:
        return None, [PlaybookError(reason, SourceLocation(name, line, column, _dotted(loc)))
                      for loc, reason, (line, column) in e.found]
    if not isinstance(document.data, dict):
        return None, [PlaybookError("a playbook is a mapping (id, name, trigger, steps)", SourceLocation(name, 1))]
    try:
        playbook = Playbook.model_validate(document.data)
    except ValidationError as e:
        return None, [_from_pydantic(name, document, details) for details in e.errors()]
    problems = structure_problems(playbook)
    return (None if problems else playbook), [PlaybookError(reason, _locate(name, document.marks, loc))
                                              for loc, reason in problems]


class _KeyProblems(Exception):
    def __init__(self, found: list[tuple[Loc, str, tuple[int, int]]]) -> None:
        super().__init__("duplicate or non-text keys")
        self.found = found


def _compose(text: str) -> _Document:
    """Compose nodes (for marks and duplicate keys), then construct the data from the same nodes."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return _Document(None, {})
        marks: dict[Loc, tuple[int, int]] = {(): _position(root)}
        duplicates: list[tuple[Loc, str, tuple[int, int]]] = []  # and keys that are not text
        stack: list[tuple[Node, Loc]] = [(root, ())]
        seen: set[int] = set()
        while stack:  # iterative, each node once: aliases cannot loop
            node, loc = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, SequenceNode):
                for index, item in enumerate(node.value):
                    marks[(*loc, index)] = _position(item)
                    stack.append((item, (*loc, index)))
            elif isinstance(node, MappingNode):
                for key_node, value_node in node.value:
                    if not isinstance(key_node, ScalarNode):
                        continue
                    key = key_node.value
                    if key_node.tag != _STR_TAG:  # `on`, `yes`, `1`: YAML makes them bool or int
                        duplicates.append(((*loc, key), f"key {key!r} is not text to YAML (it reads as "
                                           f"{key_node.tag.rsplit(':', 1)[-1]}); quote it", _position(key_node)))
                        continue
                    if (*loc, key) in marks:
                        first = marks[(*loc, key)][0]
                        duplicates.append(((*loc, key), f"duplicate key {key!r} (first at line {first})",
                                           _position(key_node)))
                        continue
                    marks[(*loc, key)] = _position(key_node)
                    stack.append((value_node, (*loc, key)))
        if duplicates:
            raise _KeyProblems(duplicates)
        return _Document(loader.construct_document(root), marks)
    finally:
        loader.dispose()


def _position(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _from_pydantic(name: str, document: _Document, details: Any) -> PlaybookError:
    loc = _data_loc(document.data, tuple(details["loc"]))
    kind = details["type"]
    reason = str(details["msg"])
    if kind == "union_tag_invalid":
        loc = (*loc, "type")
        reason = f"unknown step type {details['input'].get('type')!r} (known: {', '.join(STEP_TYPES)})"
    elif kind == "union_tag_not_found":
        reason = f"a step needs a type (one of: {', '.join(STEP_TYPES)})"
    elif kind == "missing":
        reason = f"missing field {loc[-1]!r}"
    elif kind == "value_error":  # a step's own check (model_validator): pydantic prefixes its message
        reason = reason.removeprefix("Value error, ")
    elif kind == "extra_forbidden":
        reason = f"unknown key {loc[-1]!r}"
        if loc[-1] in _SIDE_EFFECT_KEYS:
            reason = f"{loc[-1]!r} is allowed only on side-effect steps ({', '.join(SIDE_EFFECT_TYPES)})"
        elif loc[-1] in _SECRET_KEYS:
            reason = f"{loc[-1]!r} does not belong in a playbook: credentials live in the connector's credentials_file"
    return PlaybookError(reason, _locate(name, document.marks, loc))


def _data_loc(data: Any, loc: Sequence[Any]) -> Loc:
    """Pydantic's `loc` as keys of the data: the union tag (a step's type) is dropped."""
    path: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue
        path.append(part)
        node = node.get(part) if isinstance(node, dict) else (
            node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None)
    return tuple(path)


def _locate(name: str, marks: dict[Loc, tuple[int, int]], loc: Loc) -> SourceLocation:
    """The position of `loc`, or of its nearest ancestor that is in the file."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in marks:
            line, column = marks[loc[:end]]
            return SourceLocation(name, line, column, _dotted(loc) or None)
    return SourceLocation(name, None, None, _dotted(loc) or None)


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
