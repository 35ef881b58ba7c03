"""The error root every stage raises, and where in a source an error points.

`str()` of an error reads `path:line:column field: reason`, the form a person can jump to.
Stages subclass `GovsocError` once each (`ConfigError`, `ParseError`, `RuleError`, ...), never per
field: the location and the reason say the rest.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """A place in a file (or another named source such as an environment variable).

    Any part may be unknown; `str()` renders only the known parts, in the usual
    `path:line:column field` order. Lines and columns count from 1.
    """

    path: str | None = None
    line: int | None = None
    column: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        head = self.path or ""
        if self.path and self.line is not None:
            head += f":{self.line}"
            if self.column is not None:
                head += f":{self.column}"
        if self.field:
            return f"{head} {self.field}" if head else self.field
        return head


class GovsocError(Exception):
    """Root of every error govsoc raises on purpose; carries an optional location."""

    def __init__(self, reason: str, location: SourceLocation | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.location = location

    def __str__(self) -> str:
        where = str(self.location) if self.location else ""
        return f"{where}: {self.reason}" if where else self.reason


class ConfigError(GovsocError):
    """A configuration file or value is wrong; raised at start, before any work."""


class ConfigErrors(ConfigError):
    """Several configuration problems found in one pass, reported together."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.reason, first.location)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)
