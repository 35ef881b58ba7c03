"""Errors of the data plane: a record that does not parse, a store or a bus that fails."""

from config.errors import GovsocError


class ParseError(GovsocError):
    """Input that is not a valid record; callers turn it into a dead letter, never a crash."""


class StoreError(GovsocError):
    """A store could not read or write (bad URL, corrupt file, refused query)."""


class BusError(GovsocError):
    """A bus could not publish or deliver."""
