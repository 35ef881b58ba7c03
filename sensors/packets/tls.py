"""TLS: the start of a TLS stream -> its ClientHello (SNI, versions, JA3, JA4) or ServerHello (JA3S).

Stage: sensors, packet sensor, application layer. In: one direction of a TCP stream, in order,
in pieces as they arrive (`HelloReader.feed`). Out: the first hello of that direction, once.

Invariants:
- Handshake messages are reassembled across records and segments; at most `MAX_HELLO_BYTES` are
  buffered, after which the reader gives up (`failed` says why). Never raises.
- JA3 is Salesforce's definition: `version,ciphers,extensions,groups,point formats` in wire order,
  GREASE values left out, and its MD5. JA4 (FoxIO, `ja4` of the JA4+ suite) is `t<version><d|i>
  <ciphers:02><extensions:02><alpn>_<sha256/12 of sorted ciphers>_<sha256/12 of sorted extensions
  without SNI and ALPN, then _ and the signature algorithms in wire order>` (the _ is there even
  when there are none, as Suricata writes it).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

MAX_HELLO_BYTES = 64 * 1024
_VERSIONS = {0x0304: "1.3", 0x0303: "1.2", 0x0302: "1.1", 0x0301: "1.0", 0x0300: "3.0", 0x0002: "2.0"}
_JA4_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0002: "s2",
                 0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3"}
EXT_SNI, EXT_GROUPS, EXT_POINT_FORMATS, EXT_SIGALGS, EXT_ALPN, EXT_VERSIONS = 0, 10, 11, 13, 16, 43


def is_grease(value: int) -> bool:
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def version_name(code: int) -> str | None:
    return _VERSIONS.get(code)


@dataclass(frozen=True, slots=True)
class ClientHello:
    legacy_version: int
    ciphers: tuple[int, ...]
    extensions: tuple[int, ...]
    server_name: str | None
    groups: tuple[int, ...]
    point_formats: tuple[int, ...]
    signature_algorithms: tuple[int, ...]
    alpn: tuple[str, ...]
    supported_versions: tuple[int, ...]

    @property
    def max_version(self) -> int:
        offered = [v for v in self.supported_versions if not is_grease(v)]
        return max(offered) if offered else self.legacy_version

    @property
    def ja3(self) -> str:
        def join(values: tuple[int, ...]) -> str:
            return "-".join(str(v) for v in values if not is_grease(v))
        return ",".join((str(self.legacy_version), join(self.ciphers), join(self.extensions), join(self.groups),
                         join(self.point_formats)))

    @property
    def ja3_hash(self) -> str:
        return hashlib.md5(self.ja3.encode(), usedforsecurity=False).hexdigest()

    @property
    def ja4(self) -> str:
        ciphers = [c for c in self.ciphers if not is_grease(c)]
        extensions = [e for e in self.extensions if not is_grease(e)]
        head = (f"t{_JA4_VERSIONS.get(self.max_version, '00')}{'d' if self.server_name is not None else 'i'}"
                f"{min(len(ciphers), 99):02d}{min(len(extensions), 99):02d}{_ja4_alpn(self.alpn)}")
        cipher_part = _sha12(",".join(f"{c:04x}" for c in sorted(ciphers))) if ciphers else "0" * 12
        kept = sorted(e for e in extensions if e not in (EXT_SNI, EXT_ALPN))
        ext_text = ",".join(f"{e:04x}" for e in kept)
        # Suricata and FoxIO's Rust ja4 write the "_" even with no signature algorithms (the spec's
        # prose says otherwise); we agree with them, so fingerprints match across sensors.
        ext_text += "_" + ",".join(f"{s:04x}" for s in self.signature_algorithms)
        ext_part = _sha12(ext_text) if kept else "0" * 12
        return f"{head}_{cipher_part}_{ext_part}"


@dataclass(frozen=True, slots=True)
class ServerHello:
    legacy_version: int
    cipher: int
    selected_version: int | None
    extensions: tuple[int, ...] = ()

    @property
    def version(self) -> int:
        return self.selected_version or self.legacy_version

    @property
    def ja3s(self) -> str:
        """Salesforce's JA3S string: `version,cipher,extensions` in wire order."""
        return f"{self.legacy_version},{self.cipher},{'-'.join(str(e) for e in self.extensions)}"

    @property
    def ja3s_hash(self) -> str:
        return hashlib.md5(self.ja3s.encode(), usedforsecurity=False).hexdigest()


def _ja4_alpn(alpn: tuple[str, ...]) -> str:
    if not alpn or not alpn[0]:
        return "00"
    first = alpn[0]
    if first[0].isascii() and first[0].isalnum() and first[-1].isascii() and first[-1].isalnum():
        return first[0] + first[-1]
    raw = first.encode("latin-1", errors="replace").hex()
    return raw[0] + raw[-1]


def _sha12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class HelloReader:
    """Reads one direction of a stream until its first ClientHello or ServerHello."""

    __slots__ = ("_records", "_handshake", "hello", "failed")

    def __init__(self) -> None:
        self._records = bytearray()
        self._handshake = bytearray()
        self.hello: ClientHello | ServerHello | None = None
        self.failed: str | None = None

    @property
    def is_done(self) -> bool:
        return self.hello is not None or self.failed is not None

    def feed(self, data: bytes) -> ClientHello | ServerHello | None:
        """The hello, the one time it becomes complete; None before and after."""
        if self.is_done:
            return None
        self._records += data
        while len(self._records) >= 5 and not self.is_done:
            ctype, length = self._records[0], struct.unpack(">H", self._records[3:5])[0]
            if ctype != 22 or self._records[1] != 3:
                self.failed = f"not a TLS handshake record (type {ctype})"
                return None
            if len(self._records) < 5 + length:
                break
            self._handshake += self._records[5:5 + length]
            del self._records[:5 + length]
            self._try_hello()
        if not self.is_done and len(self._records) + len(self._handshake) > MAX_HELLO_BYTES:
            self.failed = f"no complete hello within {MAX_HELLO_BYTES} bytes"
        return self.hello

    def _try_hello(self) -> None:
        if len(self._handshake) < 4:
            return
        htype, length = self._handshake[0], int.from_bytes(self._handshake[1:4], "big")
        if len(self._handshake) < 4 + length:
            return
        body = bytes(self._handshake[4:4 + length])
        try:
            if htype == 1:
                self.hello = parse_client_hello(body)
            elif htype == 2:
                self.hello = parse_server_hello(body)
            else:
                self.failed = f"first handshake message is type {htype}, not a hello"
        except (ValueError, IndexError, struct.error) as e:
            self.failed = f"malformed hello: {e}"


class _Cursor:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"needs {n} bytes at {self.pos}, has {len(self.data) - self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def vector(self, size_bytes: int) -> bytes:
        return self.take(int.from_bytes(self.take(size_bytes), "big"))

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos


def _u16s(raw: bytes) -> tuple[int, ...]:
    return tuple(struct.unpack(f">{len(raw) // 2}H", raw[:len(raw) // 2 * 2]))


def parse_client_hello(body: bytes) -> ClientHello:
    """Raises ValueError when `body` (the handshake message's body) is not a ClientHello.

    Offsets by hand rather than `_Cursor`: bench/packets.py measured the cursor's calls at ~5 % of
    the sensor's time; the checks are the cursor's (a length past the end raises).
    """
    size = len(body)
    if size < 35:
        raise ValueError(f"ClientHello of {size} bytes")
    version, pos = (body[0] << 8) | body[1], 35 + body[34]  # version, random, session id
    ciphers_end = pos + 2 + (((body[pos] << 8) | body[pos + 1]) if pos + 2 <= size else size)
    if ciphers_end > size:
        raise ValueError(f"cipher suites run past the ClientHello ({size} bytes)")
    ciphers = _u16s(body[pos + 2:ciphers_end])
    if ciphers_end >= size or ciphers_end + 1 + body[ciphers_end] > size:
        raise ValueError(f"compression methods run past the ClientHello ({size} bytes)")
    pos = ciphers_end + 1 + body[ciphers_end]
    fields: dict[str, tuple[int, ...]] = {"groups": (), "point_formats": (), "sigalgs": (), "versions": ()}
    extensions: list[int] = []
    server_name: str | None = None
    alpn: tuple[str, ...] = ()
    if size - pos >= 2:
        end = pos + 2 + ((body[pos] << 8) | body[pos + 1])
        if end > size:
            raise ValueError(f"extensions run past the ClientHello ({size} bytes)")
        pos += 2
        while end - pos >= 4:
            code, length = (body[pos] << 8) | body[pos + 1], (body[pos + 2] << 8) | body[pos + 3]
            if pos + 4 + length > end:
                raise ValueError(f"extension {code} runs past the extensions")
            data, pos = body[pos + 4:pos + 4 + length], pos + 4 + length
            extensions.append(code)
            if code == EXT_SNI:
                server_name = _server_name(data)
            elif code == EXT_ALPN:
                alpn = _alpn(data)
            elif code in (EXT_GROUPS, EXT_SIGALGS):
                fields["groups" if code == EXT_GROUPS else "sigalgs"] = _u16s(data[2:])
            elif code == EXT_POINT_FORMATS and data:
                fields["point_formats"] = tuple(data[1:1 + data[0]])
            elif code == EXT_VERSIONS and data:
                fields["versions"] = _u16s(data[1:1 + data[0]])
    return ClientHello(version, ciphers, tuple(extensions), server_name, fields["groups"],
                       fields["point_formats"], fields["sigalgs"], alpn, fields["versions"])


def _server_name(data: bytes) -> str | None:
    cur = _Cursor(data)
    names = _Cursor(cur.vector(2))
    while names.remaining >= 3:
        kind, name = names.u8(), names.vector(2)
        if kind == 0:
            return name.decode("utf-8", errors="replace")
    return None


def _alpn(data: bytes) -> tuple[str, ...]:
    cur = _Cursor(_Cursor(data).vector(2))
    out = []
    while cur.remaining:
        out.append(cur.vector(1).decode("latin-1"))
    return tuple(out)


def parse_server_hello(body: bytes) -> ServerHello:
    cur = _Cursor(body)
    version = cur.u16()
    cur.take(32)
    cur.vector(1)
    cipher = cur.u16()
    cur.u8()
    selected, extensions = None, []
    if cur.remaining >= 2:
        ext = _Cursor(cur.vector(2))
        while ext.remaining >= 4:
            code, data = ext.u16(), ext.vector(2)
            extensions.append(code)
            if code == EXT_VERSIONS and len(data) == 2:
                selected = struct.unpack(">H", data)[0]
    return ServerHello(version, cipher, selected, tuple(extensions))
