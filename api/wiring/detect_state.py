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

The state (format 2) is `{"sigma": SigmaEngine.snapshot(), "ml": MlFeed.snapshot()}`
(detections/sigma/snapshot.py: event ids, times, group values; no event documents, expired windows
dropped; detections/ml/feed.py: each open window's running sums and distinct values, no events);
each partition has its ML feed as it has its engine (the models they score with are loaded once
per process, `SharedRegistry`). A checkpoint without "ml" (an older build) restores the Sigma
state and starts the ML windows empty; so does one whose ML part the feed refuses (the window
width changed), logged as `detect_checkpoint_ml_refused`. With the checkpoint's group,
topic, partition and offset, as JSON, zlib-compressed, behind the magic `GDS2`, and signed: an
HMAC-SHA256 under the deployment's state key (`state_key`, a file only govsoc's workers read) over
all of it. Nothing in a checkpoint is ever unpickled (format 1 was a pickle: it is refused now,
as is a format-2 record holding a version-1 Sigma snapshot, whose expiry on event time alone
made redelivered events count twice, issue 11). The snapshot drops only groups old in event time
and in arrival, so a restored engine raises exactly what an uninterrupted one does, also when
the events topic holds ingest batches twice or receives some hours late
(tests/detections/test_sigma_snapshot_replay.py, and the takeover tests beside this module's).

A checkpoint that is refused (unsigned, signed with another key, altered, for another partition,
or of another format) is logged as an error and counted (`refused`); the partition then starts
from an empty state at the delivered (committed) offset, the newest state that can be trusted:
the windows open at the checkpoint are lost, which the error says, and nothing else is.

Size: a checkpoint is at most `max_checkpoint_bytes` (default 900 kB, below Kafka's default 1 MB
`message.max.bytes`). A bigger one is neither split nor allowed to stop the partition (a spray
from many addresses must not halt detection): the checkpoint keeps the most recently used
groups that fit, counts the others as evicted in it, and the worker logs
`detect_checkpoint_too_big` as an error and counts it (`oversized`). The live engine keeps every
group; only a takeover would lose the partial windows left out. A person must act (more
partitions, or a lower `correlation_max_groups`): ~105 bytes per open group, so 900 kB holds
~8,500 groups (docs/scaling.md).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import zlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import structlog

from config.errors import GovsocError
from detections.ml import MlFeed, MlStateError
from detections.sigma.match import SigmaEngine
from detections.sigma.snapshot import SnapshotError
from detections.stream import DetectStep
from pipeline.bus import Message
from pipeline.bus.checkpoints import CheckpointStore
from pipeline.records import Alert

log = structlog.get_logger(__name__)

STATE_FORMAT = 2
MAGIC = b"GDS2"  # format 2; format 1 bodies were pickles (they start with b"\x80")
MAX_CHECKPOINT_BYTES = 900_000
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


@dataclass(frozen=True, slots=True)
class Where:
    """Whose checkpoint: signed with it, so one partition's state is never loaded into another."""

    group: str
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition} (group {self.group!r})"


@dataclass
class _Partition:
    engine: SigmaEngine
    step: DetectStep
    next_offset: int
    ml: MlFeed | None = None


class PartitionedDetect:
    """A detect step that keeps one engine per (topic, partition) and checkpoints each."""

    def __init__(self, make_engine: Callable[[], SigmaEngine],
                 make_step: Callable[[SigmaEngine, MlFeed | None], DetectStep],
                 checkpoints: CheckpointStore, group: str, key: bytes,
                 max_checkpoint_bytes: int = MAX_CHECKPOINT_BYTES,
                 make_ml: Callable[[], MlFeed] | None = None) -> None:
        self._key = key
        self._make_engine = make_engine
        self._make_step = make_step
        self._make_ml = make_ml
        self._checkpoints = checkpoints
        self._group = group
        self._max_bytes = max_checkpoint_bytes
        self._parts: dict[PartitionKey, _Partition] = {}
        # metrics (and for tests)
        self.restored = 0  # partitions taken over from a checkpoint
        self.refused = 0  # checkpoints refused (unsigned, altered, foreign, old format)
        self.ml_refused = 0  # ML windows of a checkpoint not restored (another window width, say)
        self.oversized = 0  # checkpoints too big to save
        self.checkpoint_bytes: dict[PartitionKey, int] = {}  # the last size saved, per partition

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
            self._save(key)
        return alerts

    def _save(self, key: PartitionKey) -> None:
        part, where = self._parts[key], Where(self._group, *key)
        state = partition_state(part.engine, part.ml)
        record = dump_state(state, where, part.next_offset, self._key)
        if len(record) > self._max_bytes:
            record = self._shrunk(state, where, part.next_offset, len(record))
        self._checkpoints.save(self._group, key[0], key[1], part.next_offset, record)
        self.checkpoint_bytes[key] = len(record)

    def _shrunk(self, state: dict[str, Any], where: Where, offset: int, size: int) -> bytes:
        """A record under the limit that keeps the most recently used groups (see the module docstring)."""
        self.oversized += 1
        sigma = state["sigma"]
        groups: list[Any] = sigma["groups"]
        low, high, best = 0, len(groups), b""
        while low <= high:  # the most groups (the newest) whose record fits
            keep = (low + high) // 2
            record = dump_state({**state, "sigma": _keeping(sigma, keep)}, where, offset, self._key)
            if len(record) <= self._max_bytes:
                low, best = keep + 1, record
            else:
                high = keep - 1
        if not best and "ml" in state:  # the ML windows are bounded, but their bound is a setting
            log.error("detect_checkpoint_without_ml", topic=where.topic, partition=where.partition, size=size,
                      limit=self._max_bytes, consequence="a takeover of this partition loses its open ML windows",
                      action="lower ml.max_held_events or add partitions")
            return self._shrunk({"sigma": sigma}, where, offset, size)
        if not best:
            raise DetectStateError(f"the detection checkpoint of {where} is over the {self._max_bytes}-byte limit "
                                   "even without correlation groups")
        log.error("detect_checkpoint_too_big", topic=where.topic, partition=where.partition, size=size,
                  limit=self._max_bytes, groups=len(groups), groups_saved=high,
                  consequence="a takeover of this partition loses the partial windows of the groups not saved",
                  action="add partitions or lower detections.correlation_max_groups")
        return best

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
        ml = self._make_ml() if self._make_ml is not None else None
        next_offset = first_offset
        saved = self._checkpoints.load(self._group, key[0], key[1])
        if saved is not None:
            next_offset = self._restore(engine, ml, Where(self._group, *key), saved, first_offset)
        part = self._parts[key] = _Partition(engine, self._make_step(engine, ml), next_offset, ml)
        return part

    def _restore(self, engine: SigmaEngine, ml: MlFeed | None, where: Where, saved: tuple[int, bytes],
                 first_offset: int) -> int:
        """Load `saved` into `engine` and `ml`; its offset, or `first_offset` (and an empty engine
        and feed) if refused. ML windows that cannot be restored are logged and start empty: the
        Sigma state stays (a changed `ml.window` must not cost the correlations their windows)."""
        offset, record = saved
        try:
            state = load_state(record, where, offset, self._key)
            restore_partition_state(engine, state)
        except DetectStateError as e:
            self.refused += 1
            log.error("detect_checkpoint_refused", topic=where.topic, partition=where.partition, reason=str(e),
                      starting_at=first_offset, lost="the correlation windows open at the checkpoint")
            return first_offset
        self.restored += 1
        if ml is not None:
            self._restore_ml(ml, state, where)
        if offset < first_offset:
            log.warning("detect_checkpoint_behind", topic=where.topic, partition=where.partition, checkpoint=offset,
                        delivered=first_offset)
        log.info("detect_state_restored", topic=where.topic, partition=where.partition, offset=offset,
                 size=len(record), groups=engine.correlation_groups)
        return offset

    def _restore_ml(self, ml: MlFeed, state: dict[str, Any], where: Where) -> None:
        saved = state.get("ml")
        if saved is None:  # saved without ML (a build before it, or ML off): windows start empty
            log.info("detect_state_without_ml", topic=where.topic, partition=where.partition)
            return
        try:
            ml.restore(saved)
        except MlStateError as e:
            self.ml_refused += 1
            log.warning("detect_checkpoint_ml_refused", topic=where.topic, partition=where.partition, reason=str(e),
                        lost="the ML windows open at the checkpoint")

    def tick(self, now: datetime, owned: Collection[PartitionKey] | None = None) -> list[Alert]:
        """ML alerts of windows closed on the clock, for each partition this worker holds (see
        `DetectStep.tick`). With `owned` (the consumer's assignment), partitions it no longer owns
        are dropped first: their new owner ticks them. Call between batches, from the polling
        thread; the next batch of a partition checkpoints what the tick changed."""
        if owned is not None:
            for key in set(self._parts) - set(owned):
                del self._parts[key]
        alerts: list[Alert] = []
        for part in self._parts.values():
            alerts.extend(part.step.tick(now))
        return alerts

    def _forget(self, keys: dict[PartitionKey, list[Message]]) -> None:
        for key in keys:
            self._parts.pop(key, None)

    def close(self) -> None:
        self._parts.clear()
        self._checkpoints.close()


# --- the state of one partition, and its signed record ---------------------------------------------

def _keeping(sigma: dict[str, Any], keep: int) -> dict[str, Any]:
    """`sigma` with only its `keep` most recently used groups; the others counted as evicted."""
    groups = sigma["groups"]
    dropped = len(groups) - keep
    return {**sigma, "groups": groups[dropped:], "evicted": int(sigma["evicted"]) + dropped}


def partition_state(engine: SigmaEngine, ml: MlFeed | None = None) -> dict[str, Any]:
    """Everything a partition's next owner needs, by component: the Sigma engine's correlation
    windows and, with a feed, the ML feed's open windows (`MlFeed.snapshot()`)."""
    state = {"sigma": engine.snapshot()}
    if ml is not None:
        state["ml"] = ml.snapshot()
    return state


def restore_partition_state(engine: SigmaEngine, state: dict[str, Any]) -> None:
    """The Sigma half of `partition_state`'s inverse (PartitionedDetect restores the "ml" entry)."""
    sigma = state.get("sigma")
    if not isinstance(sigma, dict):
        raise DetectStateError("detection checkpoint holds no Sigma state")
    try:
        dropped = engine.restore(sigma)
    except SnapshotError as e:
        raise DetectStateError(f"detection checkpoint unreadable: {e}") from e
    if dropped:
        log.info("detect_state_rules_changed", groups_dropped=dropped)


def dump_state(state: dict[str, Any], where: Where, offset: int, key: bytes) -> bytes:
    """The signed record: MAC || MAGIC || zlib(JSON of who, offset and `state`)."""
    document = {"format": STATE_FORMAT, "group": where.group, "topic": where.topic, "partition": where.partition,
                "offset": offset, "state": state}
    try:
        body = MAGIC + zlib.compress(orjson.dumps(document), 6)
    except TypeError as e:
        raise DetectStateError(f"the detection state of {where} is not JSON: {e}") from e
    return hmac.new(key, body, hashlib.sha256).digest() + body


def load_state(record: bytes, where: Where, offset: int, key: bytes) -> dict[str, Any]:
    """The state in `record`, checked: signed with `key`, format 2, for `where` at `offset`.

    Raises `DetectStateError`; nothing is decompressed or parsed before the signature checks out."""
    mac, body = record[:_MAC_BYTES], record[_MAC_BYTES:]
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise DetectStateError(f"detection checkpoint of {where} not signed with this deployment's state key: "
                               "refused unread")
    if not body.startswith(MAGIC):
        raise DetectStateError(f"detection checkpoint of {where} is of an older format (1, a pickle): refused "
                               f"unread; this govsoc reads format {STATE_FORMAT}")
    try:
        document = orjson.loads(zlib.decompress(body[len(MAGIC):]))
    except (zlib.error, orjson.JSONDecodeError) as e:
        raise DetectStateError(f"detection checkpoint of {where} unreadable: {e}") from e
    if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
        raise DetectStateError(f"detection checkpoint of {where} has format "
                               f"{document.get('format') if isinstance(document, dict) else '?'}, "
                               f"this govsoc reads {STATE_FORMAT}")
    signed_for = (document.get("group"), document.get("topic"), document.get("partition"), document.get("offset"))
    if signed_for != (where.group, where.topic, where.partition, offset):
        raise DetectStateError(f"detection checkpoint of {where} at offset {offset} was signed for "
                               f"{signed_for[1]}/{signed_for[2]} (group {signed_for[0]!r}) at offset {signed_for[3]}")
    state = document.get("state")
    if not isinstance(state, dict):
        raise DetectStateError(f"detection checkpoint of {where} holds no state")
    return state
