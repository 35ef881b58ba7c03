"""KafkaBus: the Bus of the scale-out back end (`kafka://`), on kafka-python.

In: a URL from settings, `kafka://host:port[,host:port...][?param=value&...]`. Out: a `Bus` whose
topics are Kafka topics and whose consumer groups are Kafka consumer groups, so workers in many
processes share a stream by partition.

The ack/commit contract (pipeline/bus/base.py, checked by tests/pipeline/contracts/test_bus.py):

- `publish` sends every (key, value) with `acks='all'` from an idempotent producer, then waits for
  every send: when it returns, the brokers have acknowledged each message; when a send fails it
  raises `BusError` with the reason, and the caller still owns the batch (a retry may duplicate
  part of it: at-least-once, which deterministic event ids absorb). If the broker refuses
  idempotent producers (older than 0.11, or no IdempotentWrite permission) the bus falls back to a
  plain `acks='all'` producer and logs `kafka_idempotence_off` once.
- A key is UTF-8 encoded and hashed by the producer's partitioner, so one key keeps one partition
  and its order there. `key=None` spreads messages over partitions with no order between them.
- Topics are created on first use (publish or subscribe) with `partitions` partitions and
  `replication_factor` replicas; a topic that exists is used as it is.
- A consumer never commits on its own (`enable_auto_commit=False`). `poll` hands out messages and
  remembers, per partition, the offset after the last one it returned; `commit` writes exactly
  those offsets for the group and nothing else; `close` leaves the group without committing, so
  whatever was polled but not committed is delivered again to the next member that owns its
  partition. A new group starts at the earliest offset.
- When the group rebalances, offsets not yet committed for the partitions this member loses are
  dropped: their new owner starts from the last commit and sees those messages again. A `commit`
  that the group refuses because it rebalanced in the meantime is therefore not an error: it is
  logged (`kafka_commit_lost_to_rebalance`) and those messages are delivered again. Every other
  commit failure raises `BusError` and keeps the offsets, so a later `commit` can retry.
- `poll(max_messages, timeout_s)` waits at most `timeout_s` for messages once the member belongs to
  its group. While the member joins (its first poll, and after each rebalance) poll also waits for
  the join to finish, up to `join_timeout_ms`: kafka-python 3.0 drops a join that completes while
  no poll is waiting for it and starts another, so a member polling with short timeouts would
  never get partitions. A join takes ~0.4 s on an idle group (3 s on a new Kafka group, about half
  of `session_timeout_ms` on Tansu) and, in a rebalance, until every member has rejoined: members
  of one group must poll from different threads or processes.
- A reply kafka-python cannot decode while the member joins (noida-db, right after a restart, can
  answer a SyncGroup with an empty assignment; kafka-python then fails with `struct.error` and
  leaves the member believing it is in the group, with no partitions) makes that `poll` raise
  `BusError`, and the member is replaced by a new one (logged `kafka_consumer_rejoin`) on the next
  `poll`, without committing: the worker's retry loop carries on instead of the process dying.

URL parameters (all optional):

- `partitions` (6), `replication_factor` (-1: the cluster's default): for topics this bus creates.
- `session_timeout_ms`, `heartbeat_interval_ms`, `max_poll_interval_ms`: consumer group timing;
  unset means kafka-python's defaults (45 s session, 3 s heartbeat, 300 s between polls).
- `request_timeout_ms` (30000), `bootstrap_timeout_ms` (30000: how long to wait for the cluster
  when a client starts), `delivery_timeout_ms` (120000: how long `publish` may take per batch),
  `join_timeout_ms` (30000: how long one `poll` may wait for its member to join the group).
- `fetch_max_bytes`, `max_partition_fetch_bytes`, `receive_message_max_bytes`: consumer fetch
  sizes (kafka-python's defaults: 50 MB, 1 MB, 100 MB). A broker that ignores the first two
  (noida-db answers a lagging consumer with everything up to the end of the log) needs the third
  raised, or polls fail with "Invalid frame length".
- `client_id` (`govsoc`).
- `security_protocol` (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`), `sasl_mechanism`
  (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`), `ssl_cafile`, `ssl_certfile`, `ssl_keyfile`,
  `ssl_check_hostname` (`true`). SASL credentials go in the URL's user part,
  `kafka://user:password@host:9093?security_protocol=SASL_SSL&sasl_mechanism=SCRAM-SHA-512`,
  percent-encoded; they never appear in errors or logs.

An unknown parameter, or a value of the wrong type, raises `BusError` naming it, so a typo fails
at start instead of being ignored. Clients connect lazily: building the bus does no network I/O.
"""

from __future__ import annotations

import contextlib
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import kafka
import kafka.errors
import structlog
from kafka.structs import MemberState, OffsetAndMetadata, TopicPartition

from pipeline.bus.base import Message
from pipeline.errors import BusError

log = structlog.get_logger(__name__)

DEFAULT_PORT = 9092
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")

_INT_PARAMS = (
    "partitions", "replication_factor", "session_timeout_ms", "heartbeat_interval_ms",
    "max_poll_interval_ms", "request_timeout_ms", "bootstrap_timeout_ms", "delivery_timeout_ms",
    "join_timeout_ms", "fetch_max_bytes", "max_partition_fetch_bytes", "receive_message_max_bytes",
)
_STR_PARAMS = ("client_id", "security_protocol", "sasl_mechanism", "ssl_cafile", "ssl_certfile", "ssl_keyfile")
_BOOL_PARAMS = ("ssl_check_hostname",)
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
# Back-to-back polls of this length while a member joins (see `KafkaBusConsumer._finish_join`).
_JOIN_SLICE_S = 0.25
# Errors by which a group refuses a commit because it rebalanced since the poll (see docstring).
_REBALANCED = (kafka.errors.CommitFailedError, kafka.errors.RebalanceInProgressError)
# Errors by which a broker says it no longer knows this idempotent producer's sequence (a broker
# restarted without its producer state, as the test brokers do; a producer id expired): the send
# was refused, nothing of it written, and kafka-python's producer is unusable afterwards.
_PRODUCER_STATE_LOST: tuple[type[Exception], ...] = tuple(
    error for error in (getattr(kafka.errors, name, None)
                        for name in ("OutOfOrderSequenceNumberError", "UnknownProducerIdError"))
    if isinstance(error, type)
)
# What kafka-python raises, besides KafkaError, when a broker's reply does not decode: noida-db's
# SyncGroup answer right after a restart can carry an empty assignment, which kafka-python 3.0's
# `ConsumerProtocolAssignment.decode` fails on (struct.error) after it marked the member STABLE.
_UNDECODABLE = (struct.error, ValueError, EOFError)


@dataclass(frozen=True, slots=True)
class KafkaOptions:
    """Everything a `kafka://` URL says, typed; `None` leaves kafka-python's default."""

    bootstrap_servers: tuple[str, ...]
    partitions: int = 6
    replication_factor: int = -1
    session_timeout_ms: int | None = None
    heartbeat_interval_ms: int | None = None
    max_poll_interval_ms: int | None = None
    request_timeout_ms: int = 30_000
    bootstrap_timeout_ms: int = 30_000
    delivery_timeout_ms: int = 120_000
    join_timeout_ms: int = 30_000
    fetch_max_bytes: int | None = None
    max_partition_fetch_bytes: int | None = None
    receive_message_max_bytes: int | None = None
    client_id: str = "govsoc"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    @classmethod
    def from_url(cls, url: str) -> KafkaOptions:
        scheme, sep, rest = url.partition("://")
        if scheme != "kafka" or not sep:
            raise BusError(f"not a kafka:// URL: {url.split('@')[-1]!r}")
        location, _, query = rest.partition("?")
        userinfo, _, netloc = location.rpartition("@")
        netloc = netloc.rstrip("/")
        if not netloc or "/" in netloc:
            raise BusError(f"bus URL kafka://{netloc}: expected kafka://host:port[,host:port...]")
        values: dict[str, Any] = {"bootstrap_servers": tuple(_server(s) for s in netloc.split(","))}
        if userinfo:
            user, _, password = userinfo.partition(":")
            values["sasl_plain_username"] = unquote(user)
            values["sasl_plain_password"] = unquote(password)
        for name, raw in _query_pairs(query):
            values[name] = _typed(name, raw)
        return cls(**values)._checked()

    def _checked(self) -> KafkaOptions:
        if self.partitions < 1:
            raise BusError(f"bus URL parameter partitions={self.partitions}: must be at least 1")
        if self.replication_factor == 0 or self.replication_factor < -1:
            raise BusError(f"bus URL parameter replication_factor={self.replication_factor}: "
                           "must be -1 (the cluster's default) or at least 1")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise BusError(f"bus URL parameter security_protocol={self.security_protocol!r}: "
                           f"expected one of {', '.join(SECURITY_PROTOCOLS)}")
        is_sasl = self.security_protocol.startswith("SASL_")
        if is_sasl and not self.sasl_mechanism:
            raise BusError(f"bus URL: security_protocol={self.security_protocol} needs sasl_mechanism")
        if self.sasl_plain_username is not None and not is_sasl:
            raise BusError("bus URL: a user name needs security_protocol=SASL_SSL or SASL_PLAINTEXT")
        return self

    def client_config(self) -> dict[str, Any]:
        """Settings every kafka-python client takes (producer, consumer, admin)."""
        config: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
            "bootstrap_timeout_ms": self.bootstrap_timeout_ms,
            "security_protocol": self.security_protocol,
            "ssl_check_hostname": self.ssl_check_hostname,
        }
        optional = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_plain_username,
            "sasl_plain_password": self.sasl_plain_password,
            "ssl_cafile": self.ssl_cafile,
            "ssl_certfile": self.ssl_certfile,
            "ssl_keyfile": self.ssl_keyfile,
        }
        config.update({k: v for k, v in optional.items() if v is not None})
        return config

    def consumer_config(self, group: str) -> dict[str, Any]:
        config = self.client_config()
        config.update(
            group_id=group,
            enable_auto_commit=False,  # offsets are committed by `commit()` only: at-least-once
            auto_offset_reset="earliest",
            allow_auto_create_topics=False,  # the bus creates topics with its partition count
        )
        timing = {
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "max_poll_interval_ms": self.max_poll_interval_ms,
            "fetch_max_bytes": self.fetch_max_bytes,
            "max_partition_fetch_bytes": self.max_partition_fetch_bytes,
            "receive_message_max_bytes": self.receive_message_max_bytes,
        }
        # Only what the URL set: kafka-python picks defaults by broker version for the rest.
        config.update({k: v for k, v in timing.items() if v is not None})
        return config

    def producer_config(self) -> dict[str, Any]:
        config = self.client_config()
        config.update(acks="all", delivery_timeout_ms=self.delivery_timeout_ms)
        return config


def _server(item: str) -> str:
    host, sep, port = item.rpartition(":")
    if not sep or host.endswith(":") or (item.startswith("[") and item.endswith("]")):
        host, port = item, str(DEFAULT_PORT)  # no port given (or a bare [IPv6] address)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BusError(f"bus URL: bad server {item!r}; expected host:port")
    return f"{host}:{int(port)}"


def _query_pairs(query: str) -> list[tuple[str, str]]:
    pairs = parse_qsl(query, keep_blank_values=True)
    known = (*_INT_PARAMS, *_STR_PARAMS, *_BOOL_PARAMS)
    seen: set[str] = set()
    for name, _ in pairs:
        if name not in known:
            raise BusError(f"bus URL: unknown parameter {name!r}; known: {', '.join(sorted(known))}")
        if name in seen:
            raise BusError(f"bus URL: parameter {name!r} given twice")
        seen.add(name)
    return pairs


def _typed(name: str, raw: str) -> int | str | bool:
    if name in _INT_PARAMS:
        try:
            return int(raw)
        except ValueError:
            raise BusError(f"bus URL parameter {name}={raw!r}: expected an integer") from None
    if name in _BOOL_PARAMS:
        if raw.lower() not in _BOOLS:
            raise BusError(f"bus URL parameter {name}={raw!r}: expected true or false")
        return _BOOLS[raw.lower()]
    return raw


class KafkaBus:
    """A Bus on a Kafka cluster. Thread-safe: publish from any thread; consumers are per thread."""

    def __init__(self, options: KafkaOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._admin: Any = None
        self._producer: Any = None
        self._is_idempotent = True
        self._ready_topics: set[str] = set()

    @classmethod
    def from_url(cls, url: str) -> KafkaBus:
        return cls(KafkaOptions.from_url(url))

    def publish(self, topic: str, messages: Sequence[tuple[str | None, bytes]]) -> None:
        if not messages:
            return
        self._ensure_topics([topic])
        try:
            try:
                self._send_all(topic, messages)
            except kafka.errors.ClusterAuthorizationFailedError as e:
                if not self._is_idempotent:
                    raise
                # Kafka < 2.8 refuses idempotent producers without the IdempotentWrite permission;
                # nothing of this batch was written, so sending it again cannot duplicate it.
                self._drop_idempotence(str(e))
                self._send_all(topic, messages)
        except kafka.errors.KafkaError as e:
            raise BusError(f"kafka: publishing {len(messages)} messages to {topic!r} failed: {e}") from e

    def _send_all(self, topic: str, messages: Sequence[tuple[str | None, bytes]]) -> None:
        """Send and wait for every acknowledgement. When the broker lost this producer's sequence
        state, only the refused messages are sent again, in their order, from a new producer: the
        acknowledged ones are not repeated, so a partition keeps its order (a caller retrying the
        whole batch would write its head twice and the rest after other batches)."""
        pending = list(messages)
        for attempt in range(3):
            producer = self._producer_client()
            futures = [
                producer.send(topic, key=None if key is None else key.encode("utf-8"), value=value)
                for key, value in pending
            ]
            producer.flush()  # bounded by delivery_timeout_ms: every send ends acknowledged or failed
            refused: list[tuple[str | None, bytes]] = []
            lost: Exception | None = None
            for message, future in zip(pending, futures, strict=True):
                try:
                    future.get()  # raises the error of a failed send
                except _PRODUCER_STATE_LOST as e:
                    refused.append(message)
                    lost = e
            if lost is None:
                return
            if attempt == 2:
                raise lost
            log.warning("kafka_producer_reset", topic=topic, resent=len(refused), reason=type(lost).__name__)
            self._reset_producer()
            pending = refused

    def _reset_producer(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=0)

    def consumer(self, topics: Sequence[str], group: str) -> KafkaBusConsumer:
        self._ensure_topics(topics)
        return KafkaBusConsumer(self.options, tuple(topics), group)

    def close(self) -> None:
        """Flush and close the producer and the admin client; consumers are closed by their owners."""
        with self._lock:
            producer, admin = self._producer, self._admin
            self._producer = self._admin = None
        try:
            if producer is not None:
                producer.close(timeout=self.options.delivery_timeout_ms / 1000)  # flushes first
            if admin is not None:
                admin.close()
        except kafka.errors.KafkaError as e:
            raise BusError(f"kafka: closing the bus failed: {e}") from e

    def ensure_topics(self, topics: Iterable[str], partitions: int | None = None) -> None:
        """Create each topic that does not exist with `partitions` (default: this bus's) and
        `replication_factor`; an existing topic is left as it is (idempotent: `govsoc setup`
        runs it before the workers)."""
        self._ensure_topics(topics, partitions)

    def admin(self) -> Any:
        """The bus's kafka-python admin client (topics, offsets, groups)."""
        with self._lock:
            return self._admin_client()

    def producer(self) -> Any:
        """The bus's kafka-python producer (acks=all, idempotent where the broker allows)."""
        return self._producer_client()

    def partition_counts(self, topics: Iterable[str]) -> dict[str, int]:
        """How many partitions each existing topic has, as the cluster says."""
        with self._lock:
            admin = self._admin_client()
            try:
                described = admin.describe_topics(list(topics))
            except kafka.errors.KafkaError as e:
                raise BusError(f"kafka: describing topics failed: {e}") from e
        return {item.get("name", item.get("topic")): len(item["partitions"]) for item in described
                if not item.get("error_code")}

    def _ensure_topics(self, topics: Iterable[str], partitions: int | None = None) -> None:
        """Create each topic not yet known to exist; an existing topic is left as it is."""
        with self._lock:
            missing = [t for t in dict.fromkeys(topics) if t not in self._ready_topics]
            if not missing:
                return
            admin = self._admin_client()
            wanted = {"num_partitions": partitions or self.options.partitions,
                      "replication_factor": self.options.replication_factor}
            try:
                result = admin.create_topics({t: dict(wanted) for t in missing}, raise_errors=False,
                                             wait_for_metadata=True)
            except kafka.errors.KafkaError as e:
                raise BusError(f"kafka: creating topics {', '.join(missing)} failed: {e}") from e
            for item in result["topics"]:
                error = kafka.errors.for_code(item["error_code"])
                if error is not kafka.errors.NoError and error is not kafka.errors.TopicAlreadyExistsError:
                    raise BusError(f"kafka: creating topic {item['name']!r} failed: "
                                   f"{item['error_message'] or error.__name__}")
            self._ready_topics.update(missing)
            log.info("kafka_topics_ready", topics=missing)

    def _admin_client(self) -> Any:  # called with self._lock held
        if self._admin is None:
            self._admin = _connect(kafka.KafkaAdminClient, self.options, self.options.client_config())
        return self._admin

    def _producer_client(self) -> Any:
        with self._lock:
            if self._producer is None:
                config = self.options.producer_config()
                if self._is_idempotent:
                    # Not passed explicitly: kafka-python then turns idempotence off (with a warning)
                    # on a broker older than 0.11 instead of raising; we check what it chose.
                    self._producer = _connect(kafka.KafkaProducer, self.options, config)
                    if not self._producer.config["enable_idempotence"]:
                        self._is_idempotent = False
                        log.warning("kafka_idempotence_off", reason="broker older than 0.11")
                else:
                    self._producer = _connect(kafka.KafkaProducer, self.options,
                                              {**config, "enable_idempotence": False})
            return self._producer

    def _drop_idempotence(self, reason: str) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
            self._is_idempotent = False
        log.warning("kafka_idempotence_off", reason=reason)
        if producer is not None:
            producer.close(timeout=0)


def _connect(client_class: Any, options: KafkaOptions, config: dict[str, Any]) -> Any:
    try:
        return client_class(**config)
    except kafka.errors.KafkaError as e:
        servers = ",".join(options.bootstrap_servers)
        raise BusError(f"kafka: cannot connect to {servers}: {e}") from e


class KafkaBusConsumer:
    """One member of a consumer group; not thread-safe (one thread polls, processes, commits)."""

    def __init__(self, options: KafkaOptions, topics: tuple[str, ...], group: str) -> None:
        self.topics = topics
        self.group = group
        self._pending: dict[TopicPartition, int] = {}  # next offset per partition, not yet committed
        self._lock = threading.Lock()  # rebalance callbacks run on kafka-python's I/O thread
        self._closed = False
        self._join_timeout_s = options.join_timeout_ms / 1000
        self._options = options
        self._consumer: Any = None
        self._consumer = self._member()

    def _member(self) -> Any:
        consumer = _connect(kafka.KafkaConsumer, self._options, self._options.consumer_config(self.group))
        consumer.subscribe(topics=list(self.topics), listener=_DropRevoked(self))
        return consumer

    def _rejoin(self, reason: str) -> None:
        """Replace a member that kafka-python left broken (STABLE, yet without its assignment) by
        a new one, without committing: what was polled and not committed comes again."""
        log.warning("kafka_consumer_rejoin", group=self.group, reason=reason)
        broken, self._consumer = self._consumer, None
        with self._lock:
            self._pending.clear()
        with contextlib.suppress(Exception):  # it is broken: closing it may fail in any way
            broken.close(autocommit=False)

    def poll(self, max_messages: int = 500, timeout_s: float = 0.0) -> list[Message]:
        if self._closed:
            raise BusError(f"kafka: consumer of group {self.group!r} is closed")
        if max_messages < 1:
            return []
        if self._consumer is None:  # the last member was dropped by `_rejoin`
            self._consumer = self._member()
        try:
            batches = self._consumer.poll(timeout_ms=max(0, int(timeout_s * 1000)), max_records=max_messages)
            if not batches and not self._is_stable():
                batches = self._finish_join(max_messages)
        except kafka.errors.KafkaError as e:
            raise BusError(f"kafka: polling {', '.join(self.topics)} for group {self.group!r} failed: {e}") from e
        except _UNDECODABLE as e:
            self._rejoin(f"{type(e).__name__}: {e}")
            raise BusError(f"kafka: group {self.group!r} sent a reply kafka-python could not decode "
                           f"({type(e).__name__}: {e}); this member rejoins on its next poll") from e
        out: list[Message] = []
        with self._lock:
            for tp, records in batches.items():
                out.extend(
                    Message(r.topic, r.partition, r.offset, _decoded(r.key), r.value) for r in records
                )
                if records:
                    self._pending[tp] = records[-1].offset + 1
        return out

    def _is_stable(self) -> bool:
        return bool(self._consumer.group_metadata().state == MemberState.STABLE)

    def _finish_join(self, max_messages: int) -> dict[TopicPartition, list[Any]]:
        """Keep a poll waiting until this member has joined its group, at most `join_timeout_ms`.

        kafka-python 3.0.12 (`join_group_async` in kafka/coordinator/base.py) sends a new JoinGroup
        when the previous one finished while no poll was waiting for it, dropping its result: a
        member that polls with short timeouts rejoins forever. Back-to-back polls leave it only
        the microseconds between two of them.
        """
        started = time.monotonic()
        deadline = started + self._join_timeout_s
        while not self._is_stable() and (left := deadline - time.monotonic()) > 0:
            batches: dict[TopicPartition, list[Any]] = self._consumer.poll(
                timeout_ms=int(min(left, _JOIN_SLICE_S) * 1000) or 1, max_records=max_messages)
            if batches:
                return batches
        if not self._is_stable():
            log.warning("kafka_group_join_slow", group=self.group, waited_s=round(time.monotonic() - started, 1))
        return {}

    def commit(self) -> None:
        with self._lock:
            offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in self._pending.items()}
        if not offsets or self._consumer is None:
            return
        try:
            self._consumer.commit(offsets)
        except _REBALANCED as e:
            log.warning("kafka_commit_lost_to_rebalance", group=self.group, partitions=len(offsets), reason=str(e))
            self._forget(offsets)
            return
        except kafka.errors.KafkaError as e:
            raise BusError(f"kafka: committing offsets for group {self.group!r} failed: {e}") from e
        self._forget(offsets)

    def _forget(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Drop pending offsets that `offsets` covers; later polls may have moved some on."""
        with self._lock:
            for tp, done in offsets.items():
                if self._pending.get(tp) == done.offset:
                    del self._pending[tp]

    def drop_pending(self, partitions: Iterable[TopicPartition]) -> None:
        with self._lock:
            for tp in partitions:
                self._pending.pop(tp, None)

    def lag(self) -> int | None:
        """End offsets minus this member's positions over its partitions; None while it joins or
        when the broker does not answer (a metric must not stop the worker)."""
        if self._consumer is None:
            return None
        try:
            parts = list(self._consumer.assignment())
            if not parts:
                return None
            ends = self._consumer.end_offsets(parts)
            return sum(max(0, int(ends[tp]) - int(self._consumer.position(tp, timeout_ms=1000))) for tp in parts)
        except (kafka.errors.KafkaError, KeyError, TypeError) as e:
            log.debug("kafka_lag_unknown", group=self.group, reason=str(e))
            return None

    def assignment(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs this member owns now; empty while it joins its group."""
        if self._consumer is None:
            return frozenset()
        return frozenset((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def close(self) -> None:
        """Leave the group without committing: what was polled since the last commit comes again."""
        if self._closed:
            return
        self._closed = True
        if self._consumer is None:
            return
        try:
            self._consumer.close(autocommit=False)
        except kafka.errors.KafkaError as e:
            raise BusError(f"kafka: closing the consumer of group {self.group!r} failed: {e}") from e


class _DropRevoked(kafka.ConsumerRebalanceListener):  # type: ignore[misc]
    """Forgets uncommitted offsets of partitions this member loses (their new owner re-reads them)."""

    def __init__(self, member: KafkaBusConsumer) -> None:
        self._member = member

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._member.drop_pending(revoked)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        pass


def _decoded(key: bytes | None) -> str | None:
    # Our producers write UTF-8 keys; a foreign producer's odd key must not stop the consumer.
    return None if key is None else key.decode("utf-8", errors="replace")
