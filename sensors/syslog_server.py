"""The syslog receiver: UDP datagrams and TCP streams -> events and dead letters, handed to a sink.

Stage: sensors, network input. In: syslog messages on the listeners' addresses (RFC 3164 or
RFC 5424; on TCP framed by RFC 6587 octet counting, `LEN SP MSG`, or by newlines, detected frame by
frame). Out: batches of `Event | DeadLetter` given to `sink` (the agent spools and commits them).

Invariants:
- Every message received is counted (`metrics.received`) and becomes exactly one event or one dead
  letter (`metrics.parse_failures`); none vanish once read from a socket. TCP gives no
  application acknowledgement: a message counts as taken once the sink returned.
- UDP loses datagrams in the kernel when the receive buffer overflows; `udp_kernel_drops()` reads
  that count from /proc/net/udp(6) for our sockets (`SO_RCVBUF` is raised to `rcvbuf_bytes` to
  make it rare), so received + dropped accounts for what was sent.
- Each event carries its sender's address (`log.source.address`), `observer.name` (the sensor)
  and `organization.id` (the tenant). Ids are `stable_id(tenant, sensor, listener, sender,
  receive time ns, sequence, line)`: a redelivered spool record keeps its id; two identical
  messages stay two events.
- A frame longer than `MAX_LINE_BYTES`, or with NUL bytes, is dead-lettered; an octet count over
  `MAX_FRAME_BYTES` cannot be resynchronised: the connection is closed and counted as a framing error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import structlog

from pipeline import ecs
from pipeline.errors import ParseError
from pipeline.records import DeadLetter, Event, set_path
from sensors.files import MAX_LINE_BYTES, OBSERVER_TYPE_SENSOR
from sensors.parsers import PARSERS, LineContext

log = structlog.get_logger(__name__)

# ECS `log.source.address`; not yet in pipeline/ecs.py.
LOG_SOURCE_ADDRESS = "log.source.address"
MAX_FRAME_BYTES = 1024 * 1024
_OCTET_COUNT = re.compile(rb"([1-9][0-9]{0,8}) ")
_DIGITS_ONLY = re.compile(rb"[0-9]{1,9}\Z")

Record = Event | DeadLetter
Sink = Callable[[list[Record]], None]


@dataclass(frozen=True, slots=True)
class Listener:
    protocol: Literal["udp", "tcp"]
    host: str = "127.0.0.1"
    port: int = 514
    format: str = "syslog"


@dataclass
class SyslogMetrics:
    received: int = 0
    events: int = 0
    parse_failures: int = 0
    framing_errors: int = 0
    connections: int = 0


@dataclass
class _Converter:
    tenant: str
    sensor: str
    tz: ZoneInfo
    seq: itertools.count[int] = field(default_factory=itertools.count)

    def convert(self, frame: bytes, listener: Listener, sender: str) -> Record:
        where = f"syslog+{listener.protocol}://{listener.host}:{listener.port}"
        if len(frame) > MAX_LINE_BYTES or b"\x00" in frame:
            return DeadLetter.create(source=f"{where} from {sender}", reason="message too long or has NUL bytes",
                                     raw=frame[:MAX_LINE_BYTES], tenant=self.tenant, position=next(self.seq))
        text = frame.decode("utf-8", errors="replace")
        received_ns = time.time_ns()
        try:
            doc = PARSERS[listener.format](text, LineContext(tz=self.tz, reference=datetime.now(UTC)))
        except ParseError as e:
            return DeadLetter.create(source=f"{where} from {sender}", reason=e.reason, raw=frame,
                                     tenant=self.tenant, position=f"{received_ns}:{next(self.seq)}")
        set_path(doc, ecs.ORGANIZATION_ID, self.tenant)
        set_path(doc, ecs.OBSERVER_NAME, self.sensor)
        set_path(doc, ecs.OBSERVER_TYPE, OBSERVER_TYPE_SENSOR)
        set_path(doc, ecs.EVENT_ORIGINAL, text)
        set_path(doc, LOG_SOURCE_ADDRESS, sender)
        return Event.create(doc, id_parts=(self.sensor, where, sender, received_ns, next(self.seq), text))


def split_frames(buffer: bytearray, *, at_eof: bool = False) -> list[bytes]:
    """Remove and return the complete frames at the start of `buffer` (octet-counted or newline).

    Raises `ValueError` for an octet count over `MAX_FRAME_BYTES` (the stream cannot be resynced).
    At EOF an unterminated last line is a frame too.
    """
    frames: list[bytes] = []
    while buffer:
        counted = _OCTET_COUNT.match(buffer)
        if counted:
            length = int(counted.group(1))
            if length > MAX_FRAME_BYTES:
                raise ValueError(f"octet count {length} over {MAX_FRAME_BYTES}")
            start = counted.end()
            if len(buffer) < start + length:
                if at_eof:  # the sender went away mid-frame: what came is still a message
                    frames.append(bytes(buffer[start:]).rstrip(b"\r\n"))
                    buffer.clear()
                break
            frames.append(bytes(buffer[start:start + length]).rstrip(b"\r\n"))
            del buffer[:start + length]
            continue
        if _DIGITS_ONLY.match(buffer) and not at_eof:
            break  # maybe an octet count whose space has not arrived yet
        newline = buffer.find(b"\n")
        if newline == -1:
            if at_eof or len(buffer) > MAX_FRAME_BYTES:
                frames.append(bytes(buffer))
                buffer.clear()
            break
        frames.append(bytes(buffer[:newline]).rstrip(b"\r"))
        del buffer[:newline + 1]
    return [f for f in frames if f]


class SyslogServer:
    """Listens on every `Listener`; `start()` binds (port 0 picks a free port, see `bound`)."""

    def __init__(self, listeners: list[Listener], *, tenant: str, sensor: str, sink: Sink,
                 timezone: str = "Asia/Ho_Chi_Minh", rcvbuf_bytes: int = 8 * 1024 * 1024) -> None:
        for listener in listeners:
            if listener.format not in PARSERS:
                raise ValueError(f"syslog listener format {listener.format!r}: unknown")
        self.listeners = listeners
        self.sink = sink
        self.rcvbuf_bytes = rcvbuf_bytes
        self.metrics = SyslogMetrics()
        self.bound: list[Listener] = []
        self._converter = _Converter(tenant, sensor, ZoneInfo(timezone))
        self._servers: list[asyncio.Server] = []
        self._transports: list[asyncio.DatagramTransport] = []
        self._udp_sockets: list[socket.socket] = []

    async def start(self) -> None:
        for listener in self.listeners:
            bound = await (self._start_udp(listener) if listener.protocol == "udp" else self._start_tcp(listener))
            self.bound.append(bound)
            log.info("syslog_listening", protocol=bound.protocol, host=bound.host, port=bound.port)

    async def _start_udp(self, listener: Listener) -> Listener:
        sock = self._udp_socket(listener)
        bound = Listener("udp", listener.host, sock.getsockname()[1], listener.format)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Datagrams(self, bound), sock=sock)
        self._transports.append(transport)
        self._udp_sockets.append(sock)
        return bound

    async def _start_tcp(self, listener: Listener) -> Listener:
        holder: list[Listener] = []  # the port is known only once the server is bound
        server = await asyncio.start_server(lambda r, w: self._serve(r, w, holder[0]),
                                            listener.host, listener.port, limit=MAX_FRAME_BYTES)
        holder.append(Listener("tcp", listener.host, server.sockets[0].getsockname()[1], listener.format))
        self._servers.append(server)
        return holder[0]

    def _udp_socket(self, listener: Listener) -> socket.socket:
        family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        force = getattr(socket, "SO_RCVBUFFORCE", None)
        try:  # FORCE passes net.core.rmem_max, but only with CAP_NET_ADMIN
            sock.setsockopt(socket.SOL_SOCKET, force if force is not None else socket.SO_RCVBUF, self.rcvbuf_bytes)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf_bytes)
        sock.bind((listener.host, listener.port))
        sock.setblocking(False)
        return sock

    def handle(self, frames: list[bytes], listener: Listener, sender: str) -> None:
        """Convert frames from one sender and hand them to the sink in one batch."""
        if not frames:
            return
        records = [self._converter.convert(frame, listener, sender) for frame in frames]
        failures = sum(1 for r in records if isinstance(r, DeadLetter))
        self.sink(records)
        self.metrics.received += len(frames)
        self.metrics.parse_failures += failures
        self.metrics.events += len(frames) - failures

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener: Listener) -> None:
        peer = writer.get_extra_info("peername")
        sender = str(peer[0]) if peer else "unknown"
        self.metrics.connections += 1
        buffer = bytearray()
        try:
            while chunk := await reader.read(256 * 1024):
                buffer += chunk
                self.handle(split_frames(buffer), listener, sender)
            self.handle(split_frames(buffer, at_eof=True), listener, sender)
        except ValueError as e:
            self.metrics.framing_errors += 1
            log.warning("syslog_framing_error", sender=sender, error=str(e))
        except ConnectionError:
            self.handle(split_frames(buffer, at_eof=True), listener, sender)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def udp_kernel_drops(self) -> int:
        """Datagrams the kernel dropped for our UDP sockets (Linux /proc/net/udp*, else 0)."""
        inodes = {_socket_inode(s) for s in self._udp_sockets}
        return sum(_proc_udp_drops(inodes, name) for name in ("/proc/net/udp", "/proc/net/udp6"))

    async def close(self) -> None:
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
            await server.wait_closed()


class _Datagrams(asyncio.DatagramProtocol):
    """Datagrams that arrive in one loop iteration are handled as one batch."""

    def __init__(self, server: SyslogServer, listener: Listener) -> None:
        self.server = server
        self.listener = listener
        self.pending: dict[str, list[bytes]] = {}

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.pending:
            asyncio.get_running_loop().call_soon(self.flush)
        frame = data.rstrip(b"\r\n")
        self.pending.setdefault(str(addr[0]), []).append(frame)

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        for sender, frames in pending.items():
            self.server.handle(frames, self.listener, sender)  # an empty datagram becomes a dead letter


def _socket_inode(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def _proc_udp_drops(inodes: set[int], table: str) -> int:
    try:
        with open(table) as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return 0
    total = 0
    for row in rows:
        cols = row.split()
        if len(cols) >= 13 and cols[9].isdigit() and int(cols[9]) in inodes:
            total += int(cols[-1])
    return total


class SyslogThread:
    """Runs a `SyslogServer` on its own event loop in a thread (the agent's other parts are threads)."""

    def __init__(self, server: SyslogServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="syslog", daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        """Start and wait until every listener is bound; re-raises a bind error (address in use)."""
        self._thread.start()
        self._ready.wait(timeout_s)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.server.start())
        except BaseException as e:  # handed to start()'s caller
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.server.close())
        self._loop.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)
