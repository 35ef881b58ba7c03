"""DNS: one DNS message (UDP payload, or one message of a TCP stream) -> a `DnsMessage`.

Stage: sensors, packet sensor, application layer. In: the bytes of one message. Out: the header,
the first question, the answers. Raises `DnsError` (with the reason) for anything that is not a
well-formed message; never another exception.

Invariants: names are bounded (255 bytes, compression pointers followed at most `MAX_POINTERS`
times, so a pointer loop ends); at most `MAX_RECORDS` answers are decoded; label bytes outside
printable ASCII are written `\\DDD` (as dig and Zeek do), so a name is always text.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

MAX_POINTERS = 32
MAX_RECORDS = 64
_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
          35: "NAPTR", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS",
          99: "SPF", 251: "IXFR", 252: "AXFR", 255: "ANY", 257: "CAA"}
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
           7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE"}
_FLAGS = ((0x0400, "AA"), (0x0200, "TC"), (0x0100, "RD"), (0x0080, "RA"), (0x0020, "AD"), (0x0010, "CD"))


class DnsError(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    name: str
    type: str
    ttl: int
    data: str


@dataclass(frozen=True, slots=True)
class DnsMessage:
    id: int
    is_response: bool
    opcode: int
    response_code: str
    header_flags: tuple[str, ...]
    question_name: str | None
    question_type: str | None
    answers: tuple[DnsAnswer, ...]


def type_name(code: int) -> str:
    return _TYPES.get(code, f"TYPE{code}")


def parse_dns(data: bytes) -> DnsMessage:
    """The message in `data`; raises `DnsError` when it is not one."""
    if len(data) < 12:
        raise DnsError(f"DNS header truncated ({len(data)} bytes)")
    ident, flags, qdcount, ancount, _ns, _ar = struct.unpack(">HHHHHH", data[:12])
    if qdcount > 16:
        raise DnsError(f"DNS message claims {qdcount} questions")
    pos, question_name, question_type = 12, None, None
    for number in range(qdcount):
        name, pos = read_name(data, pos)
        if pos + 4 > len(data):
            raise DnsError("DNS question truncated")
        if number == 0:
            question_name, question_type = name, type_name(struct.unpack(">H", data[pos:pos + 2])[0])
        pos += 4
    answers = []
    for _ in range(min(ancount, MAX_RECORDS)):
        answer, pos = _read_answer(data, pos)
        answers.append(answer)
    return DnsMessage(
        id=ident, is_response=bool(flags & 0x8000), opcode=(flags >> 11) & 0x0F,
        response_code=_RCODES.get(flags & 0x0F, str(flags & 0x0F)),
        header_flags=tuple(label for bit, label in _FLAGS if flags & bit),
        question_name=question_name, question_type=question_type, answers=tuple(answers))


def _read_answer(data: bytes, pos: int) -> tuple[DnsAnswer, int]:
    name, pos = read_name(data, pos)
    if pos + 10 > len(data):
        raise DnsError("DNS answer truncated")
    rtype, _rclass, ttl, rdlength = struct.unpack(">HHIH", data[pos:pos + 10])
    pos += 10
    if pos + rdlength > len(data):
        raise DnsError("DNS answer data truncated")
    return DnsAnswer(name, type_name(rtype), ttl, _rdata(data, pos, rtype, rdlength)), pos + rdlength


def _rdata(data: bytes, pos: int, rtype: int, length: int) -> str:
    rdata = data[pos:pos + length]
    if rtype == 1 and length == 4:
        return socket.inet_ntop(socket.AF_INET, rdata)
    if rtype == 28 and length == 16:
        return socket.inet_ntop(socket.AF_INET6, rdata)
    if rtype in (2, 5, 12):
        return read_name(data, pos)[0]
    if rtype == 15 and length > 2:
        return read_name(data, pos + 2)[0]
    if rtype == 16:
        return _escape(rdata[1:1 + rdata[0]]) if rdata else ""
    return rdata.hex()


def read_name(data: bytes, pos: int) -> tuple[str, int]:
    """A (possibly compressed) name at `pos`, and the position after it in the message."""
    labels: list[str] = []
    end, pointers, size = -1, 0, 0
    while True:
        if pos >= len(data):
            raise DnsError("DNS name runs past the message")
        length = data[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(data):
                raise DnsError("DNS compression pointer truncated")
            pointers += 1
            if pointers > MAX_POINTERS:
                raise DnsError("DNS compression pointers loop")
            if end < 0:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | data[pos + 1]
            continue
        if length & 0xC0:
            raise DnsError(f"DNS label type {length >> 6} is not supported")
        if length == 0:
            return ".".join(labels), (end if end >= 0 else pos + 1)
        size += length + 1
        if size > 255 or pos + 1 + length > len(data):
            raise DnsError("DNS name too long or truncated")
        labels.append(_escape(data[pos + 1:pos + 1 + length]))
        pos += 1 + length


def _escape(raw: bytes) -> str:
    if all(33 <= b < 127 and b not in (0x2E, 0x5C) for b in raw):
        return raw.decode("ascii")
    return "".join(chr(b) if 33 <= b < 127 and b not in (0x2E, 0x5C) else f"\\{b:03d}" for b in raw)
