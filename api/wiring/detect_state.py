"""Detection state per partition, checkpointed before each commit, so a takeover is seamless.

In: batches of `topics.EVENTS` messages from any of the partitions a detect worker owns. Out:
the alerts, as `DetectStep` publishes them; and per partition, a checkpoint of the correlation
state (`pipeline.bus.checkpoints`) saved before the worker commits.

Why: correlation windows are in memory. Events are keyed tenant/entity (`pipeline.bus.keys`), so
every group of a correlation lives in exactly one partition; each partition gets an engine of
its own, whose state therefore depends only on that partition's messages, in order. A new owner
of a partition (the old one died, or the group rebalanced) loads the partition's last checkpoint
and skips the messages below its offset: it continues exactly where the state was saved, so no
alert is missed and none is raised twice with another first event.

Ack/commit contract, per batch: (1) each partition's new messages go through its engine and the
alerts are published (acknowledged); (2) each touched partition's state is saved, durably;
(3) the step returns, and only then does the worker commit. A crash before (2) replays the batch
from the previous checkpoint: its alerts are published again with the same ids (the incident
store keeps one of each). A crash between (2) and (3) skips, on the new owner, what the
checkpoint already holds. A step that raises forgets the partitions it was working on, so a
retry starts again from their checkpoints and never from a half-advanced engine.

The state is the engine's correlation groups, pickled. The engine offers no snapshot API yet,
so `_dump`/`_restore` reach into `SigmaEngine._correlator`; `STATE_VERSION` guards the format.
A pickle is never read from untrusted input: every checkpoint carries an HMAC-SHA256 under the
deployment's state key (`state_key`, a file only govsoc's workers read), checked before anything
is unpickled, so a record someone else wrote to the state topic is refused, never loaded.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from config.errors import GovsocError
from detections.sigma.match import SigmaEngine
from detections.stream import DetectStep
from pipeline.bus import Message
from pipeline.bus.checkpoints import CheckpointStore
from pipeline.records import Alert

log = structlog.get_logger(__name__)

STATE_VERSION = 1
PartitionKey = tuple[str, int]
_MAC_BYTES = 32


def state_key(path: Path) -> bytes:
    """The key that signs detection checkpoints: read from `path`, made there (mode 0600) when absent.

    Every detect worker of one deployment must read the same key (copy the file to each machine,
    as docs/deploy.md says); a worker with another key refuses the others' checkpoints.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(key)
        return key


class DetectStateError(GovsocError):
    """A checkpoint that cannot be written or read back."""


@dataclass
class _Partition:
    engine: SigmaEngine
    step: DetectStep
    next_offset: int


class PartitionedDetect:
    """A detect step that keeps one engine per (topic, partition) and checkpoints each."""

    def __init__(self, make_engine: Callable[[], SigmaEngine], make_step: Callable[[SigmaEngine], DetectStep],
                 checkpoints: CheckpointStore, group: str, key: bytes) -> None:
        self._key = key
        self._make_engine = make_engine
        self._make_step = make_step
        self._checkpoints = checkpoints
        self._group = group
        self._parts: dict[PartitionKey, _Partition] = {}
        self.restored = 0  # partitions taken over from a checkpoint (a metric, and for tests)

    def __call__(self, messages: Sequence[Message]) -> list[Alert]:
        batches: dict[PartitionKey, list[Message]] = {}
        for message in messages:
            batches.setdefault((message.topic, message.partition), []).append(message)
        alerts: list[Alert] = []
        for key, batch in batches.items():
            try:
                alerts.extend(self._process(key, batch))
            except BaseException:
                self._forget(batches)
                raise
        for key in batches:
            part = self._parts[key]
            self._checkpoints.save(self._group, key[0], key[1], part.next_offset, _dump(part.engine, self._key))
        return alerts

    def _process(self, key: PartitionKey, batch: list[Message]) -> list[Alert]:
        part = self._partition(key, batch[0].offset)
        fresh = [m for m in batch if m.offset >= part.next_offset]  # older: already in the state
        if not fresh:
            return []
        alerts = part.step(fresh)
        part.next_offset = fresh[-1].offset + 1
        return alerts

    def _partition(self, key: PartitionKey, first_offset: int) -> _Partition:
        """The partition's engine: ours if the batch continues where we stopped, else rebuilt
        from the last checkpoint (a takeover, or a redelivery after a failure)."""
        part = self._parts.get(key)
        if part is not None and part.next_offset == first_offset:
            return part
        engine = self._make_engine()
        next_offset = first_offset
        saved = self._checkpoints.load(self._group, key[0], key[1])
        if saved is not None:
            next_offset, state = saved
            _restore(engine, state, self._key)
            self.restored += 1
            if next_offset < first_offset:
                log.warning("detect_checkpoint_behind", topic=key[0], partition=key[1], checkpoint=next_offset,
                            delivered=first_offset)
            log.info("detect_state_restored", topic=key[0], partition=key[1], offset=next_offset)
        part = self._parts[key] = _Partition(engine, self._make_step(engine), next_offset)
        return part

    def _forget(self, keys: dict[PartitionKey, list[Message]]) -> None:
        for key in keys:
            self._parts.pop(key, None)

    def close(self) -> None:
        self._parts.clear()
        self._checkpoints.close()


def _dump(engine: SigmaEngine, key: bytes) -> bytes:
    correlator = engine._correlator
    try:
        body = pickle.dumps((STATE_VERSION, correlator._groups, correlator.evicted), protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        raise DetectStateError(f"detection state cannot be checkpointed: {e}") from e
    return hmac.new(key, body, hashlib.sha256).digest() + body


def _restore(engine: SigmaEngine, signed: bytes, key: bytes) -> None:
    mac, state = signed[:_MAC_BYTES], signed[_MAC_BYTES:]
    if not hmac.compare_digest(mac, hmac.new(key, state, hashlib.sha256).digest()):
        raise DetectStateError("detection checkpoint not signed with this deployment's state key: refused unread")
    try:
        version, groups, evicted = pickle.loads(state)  # authenticated above: written by our own workers
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError) as e:
        raise DetectStateError(f"detection checkpoint unreadable: {e}") from e
    if version != STATE_VERSION:
        raise DetectStateError(f"detection checkpoint has format {version}, this govsoc reads {STATE_VERSION}")
    engine._correlator._groups = groups
    engine._correlator.evicted = evicted
