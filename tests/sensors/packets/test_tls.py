"""tls: ClientHello fields, JA3 and JA4 strings, hellos split over records and segments."""

from __future__ import annotations

import hashlib
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from sensors.packets.tls import ClientHello, HelloReader, ServerHello, parse_client_hello

GREASE = 0x0A0A


def ext(code: int, body: bytes) -> bytes:
    return struct.pack(">HH", code, len(body)) + body


def client_hello(sni: str | None = "mail.gov.vn") -> bytes:
    """A TLS 1.3 ClientHello record: GREASE cipher and extension, SNI, ALPN h2, groups, sig algs."""
    ciphers = struct.pack(">4H", GREASE, 0x1301, 0x1302, 0xC02F)
    exts = ext(GREASE, b"")
    if sni is not None:
        name = sni.encode()
        exts += ext(0, struct.pack(">HBH", len(name) + 3, 0, len(name)) + name)
    exts += ext(10, struct.pack(">HHH", 4, 0x001D, 0x0017))
    exts += ext(11, b"\x01\x00")
    exts += ext(13, struct.pack(">HHH", 4, 0x0403, 0x0804))
    exts += ext(16, b"\x00\x03\x02h2")
    exts += ext(43, b"\x04\x03\x04\x03\x03")
    body = (b"\x03\x03" + bytes(32) + b"\x00" + struct.pack(">H", len(ciphers)) + ciphers + b"\x01\x00"
            + struct.pack(">H", len(exts)) + exts)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(handshake)) + handshake


def test_client_hello_fields_and_ja3() -> None:
    hello = HelloReader().feed(client_hello())
    assert isinstance(hello, ClientHello)
    assert hello.server_name == "mail.gov.vn" and hello.alpn == ("h2",) and hello.max_version == 0x0304
    assert hello.ja3 == "771,4865-4866-49199,0-10-11-13-16-43,29-23,0"
    assert hello.ja3_hash == hashlib.md5(hello.ja3.encode()).hexdigest()


def test_ja4_follows_the_definition() -> None:
    hello = HelloReader().feed(client_hello())
    assert isinstance(hello, ClientHello)
    ciphers = hashlib.sha256(b"1301,1302,c02f").hexdigest()[:12]
    extensions = hashlib.sha256(b"000a,000b,000d,002b_0403,0804").hexdigest()[:12]
    assert hello.ja4 == f"t13d0306h2_{ciphers}_{extensions}"


def test_no_sni_is_i_in_ja4() -> None:
    hello = HelloReader().feed(client_hello(sni=None))
    assert isinstance(hello, ClientHello) and hello.ja4.startswith("t13i0305h2_")


def test_a_hello_split_over_records_and_segments() -> None:
    record = client_hello()
    handshake = record[5:]
    two_records = (b"\x16\x03\x01" + struct.pack(">H", 40) + handshake[:40]
                   + b"\x16\x03\x01" + struct.pack(">H", len(handshake) - 40) + handshake[40:])
    reader = HelloReader()
    assert reader.feed(two_records[:3]) is None and reader.feed(two_records[3:50]) is None
    hello = reader.feed(two_records[50:])
    assert isinstance(hello, ClientHello) and hello.server_name == "mail.gov.vn"


def test_server_hello_selected_version() -> None:
    exts = ext(43, b"\x03\x04")
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x13\x01" + b"\x00" + struct.pack(">H", len(exts)) + exts
    handshake = b"\x02" + len(body).to_bytes(3, "big") + body
    hello = HelloReader().feed(b"\x16\x03\x03" + struct.pack(">H", len(handshake)) + handshake)
    assert isinstance(hello, ServerHello) and hello.version == 0x0304 and hello.cipher == 0x1301
    assert hello.ja3s == "771,4865,43" and hello.ja3s_hash == hashlib.md5(b"771,4865,43").hexdigest()


@given(st.lists(st.binary(max_size=300), max_size=6))
def test_arbitrary_bytes_never_raise(pieces: list[bytes]) -> None:
    reader = HelloReader()
    for piece in pieces:
        reader.feed(b"\x16\x03\x01" + piece)


_HELLO_BODY = client_hello()[9:]  # the handshake message's body, after the record and handshake headers


def _cursor_client_hello(body: bytes) -> ClientHello:
    """The ClientHello parser as it was with `_Cursor` (before the offsets by hand), as a reference."""
    from sensors.packets.tls import _alpn, _Cursor, _server_name, _u16s

    cur = _Cursor(body)
    version = cur.u16()
    cur.take(32)
    cur.vector(1)
    ciphers = _u16s(cur.vector(2))
    cur.vector(1)
    fields: dict[int, tuple[int, ...]] = {}
    extensions: list[int] = []
    server_name: str | None = None
    alpn: tuple[str, ...] = ()
    if cur.remaining >= 2:
        ext = _Cursor(cur.vector(2))
        while ext.remaining >= 4:
            code, data = ext.u16(), ext.vector(2)
            extensions.append(code)
            if code == 0:
                server_name = _server_name(data)
            elif code == 16:
                alpn = _alpn(data)
            elif code in (10, 13):
                fields[code] = _u16s(data[2:])
            elif code == 11 and data:
                fields[11] = tuple(data[1:1 + data[0]])
            elif code == 43 and data:
                fields[43] = _u16s(data[1:1 + data[0]])
    return ClientHello(version, ciphers, tuple(extensions), server_name, fields.get(10, ()), fields.get(11, ()),
                       fields.get(13, ()), alpn, fields.get(43, ()))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.lists(st.tuples(st.integers(0, 199), st.integers(0, 255)), max_size=6),
       st.integers(0, 300))
def test_the_client_hello_parser_agrees_with_the_cursor_one(noise: bytes, flips: list[tuple[int, int]],
                                                           cut: int) -> None:
    body = bytearray(_HELLO_BODY + noise)
    for position, value in flips:
        if position < len(body):
            body[position] = value
    data = bytes(body[:cut])
    try:
        expected: ClientHello | str = _cursor_client_hello(data)
    except (ValueError, IndexError, struct.error):
        expected = "error"
    try:
        got: ClientHello | str = parse_client_hello(data)
    except (ValueError, IndexError, struct.error):
        got = "error"
    assert got == expected
