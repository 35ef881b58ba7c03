"""http: heads across segments, bodies skipped, pipelining, and what is not HTTP."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sensors.packets.http import HttpReader, HttpRequest, HttpResponse

REQUEST = b"GET /a?b=1 HTTP/1.1\r\nHost: intranet.gov.vn:8080\r\nUser-Agent: Mozilla/5.0\r\n\r\n"


def test_a_head_split_across_segments() -> None:
    reader = HttpReader(is_response=False)
    assert reader.feed(REQUEST[:7]) == [] and reader.feed(REQUEST[7:30]) == []
    (request,) = reader.feed(REQUEST[30:])
    assert isinstance(request, HttpRequest)
    assert (request.method, request.uri, request.host, request.user_agent) == (
        "GET", "/a?b=1", "intranet.gov.vn", "Mozilla/5.0")


def test_pipelined_requests_with_bodies() -> None:
    post = b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789"
    reader = HttpReader(is_response=False)
    found = reader.feed(post + REQUEST)
    assert [r.method for r in found if isinstance(r, HttpRequest)] == ["POST", "GET"]


def test_chunked_response_then_next_response() -> None:
    reader = HttpReader(is_response=True)
    reader.methods.extend(["GET", "HEAD", "GET"])
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"  # answer to HEAD: no body follows
    found = reader.feed(chunked + head + b"HTTP/1.1 304 Not Modified\r\n\r\n")
    assert [r.status for r in found if isinstance(r, HttpResponse)] == [200, 200, 304]


def test_ipv6_literal_host_keeps_brackets() -> None:
    (request,) = HttpReader(is_response=False).feed(b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n")
    assert isinstance(request, HttpRequest) and request.host == "[2001:db8::1]"


def test_not_http_stops_the_reader() -> None:
    reader = HttpReader(is_response=False)
    assert reader.feed(b"\x16\x03\x01 hello\r\n\r\n") == [] and reader.stopped


def test_a_request_line_without_the_rest_of_its_head_is_given_at_the_end() -> None:
    reader = HttpReader(is_response=False)
    reader.feed(b"GET /x")
    request = reader.finish()
    assert request is not None and request.uri == "/x" and request.host is None


@given(st.lists(st.binary(max_size=200), max_size=8), st.booleans())
def test_arbitrary_stream_pieces_never_raise(pieces: list[bytes], is_response: bool) -> None:
    reader = HttpReader(is_response=is_response)
    for piece in pieces:
        reader.feed(piece)
    reader.gap(3)
    reader.finish()
