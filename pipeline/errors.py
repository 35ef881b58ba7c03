"""Errors of the data plane: a record that does not parse, a store or a bus that fails."""

from config.errors import GovsocError


class ParseError(GovsocError):
    """Input that is not a valid record; callers turn it into a dead letter, never a crash."""


class StoreError(GovsocError):
    """A store could not read or write (bad URL, corrupt file, refused query)."""


class BusError(GovsocError):
    """A bus could not publish or deliver."""


class RefusedEvents(StoreError):
    """A store refused some events of a batch for their content (never for being unavailable).

    `reasons` maps each refused event id to why. When `written` is true the rest of the batch was
    stored and `new` counts the new ids among it; otherwise nothing of the batch was stored.
    Callers dead-letter the refused events and keep the rest; any other `StoreError` means the
    store could not take the batch at all, and the batch must be retried, not dead-lettered.
    """

    def __init__(self, reasons: dict[str, str], *, new: int = 0, written: bool = False,
                 message: str | None = None) -> None:
        self.reasons = dict(reasons)
        self.event_ids = tuple(self.reasons)
        self.new = new
        self.written = written
        shown = "; ".join(f"{event_id}: {reason}" for event_id, reason in list(self.reasons.items())[:20])
        super().__init__(message or f"{len(self.reasons)} event(s) refused: {shown}")
