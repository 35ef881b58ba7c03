"""HTTP/1.x: one direction of a TCP stream -> request heads (method, host, URI, user agent) or
response heads (status), message after message.

Stage: sensors, packet sensor, application layer. In: in-order stream bytes in pieces
(`HttpReader.feed`), so a head split across segments is put back together. Out: `HttpRequest` /
`HttpResponse` for each complete head, in stream order.

Invariants: bodies are skipped by their `Content-Length` or chunked framing, never buffered; a head
may be up to `MAX_HEAD_BYTES`; anything that does not look like HTTP, a body that runs to the end
of the connection or a CONNECT tunnel stops the reader (`stopped` says why). Never raises.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

MAX_HEAD_BYTES = 32 * 1024
METHODS = (b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE",
           b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"SEARCH")
_REQUEST_LINE = re.compile(rb"^([A-Z-]{1,20}) (\S+)(?: (HTTP/\d\.\d))?$")
_STATUS_LINE = re.compile(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$")


def looks_like_request(data: bytes | bytearray) -> bool:
    return any(data.startswith(method + b" ") for method in METHODS)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    uri: str
    version: str
    host: str | None
    user_agent: str | None
    offset: int  # of the head in the stream


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    version: str
    offset: int


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _host_only(host: str) -> str:
    """The Host header without its port; an IPv6 literal keeps its brackets, as ECS `url.domain` asks."""
    if host.startswith("["):
        return host[:host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class HttpReader:
    """Parses one direction; the response side is told each request's method, to know HEAD bodies."""

    def __init__(self, *, is_response: bool) -> None:
        self.is_response = is_response
        self.methods: deque[str] = deque()  # requests still to be answered (response side only)
        self.stopped: str | None = None
        self._buf = bytearray()
        self._skip = 0  # body bytes still to pass over
        self._chunked = False
        self._offset = 0  # stream offset of _buf[0]

    def feed(self, data: bytes) -> list[HttpRequest | HttpResponse]:
        out: list[HttpRequest | HttpResponse] = []
        if self.stopped:
            return out
        self._buf += data
        while self._buf and not self.stopped:
            if self._skip:
                taken = min(self._skip, len(self._buf))
                self._consume(taken)
                self._skip -= taken
            elif self._chunked:
                if not self._next_chunk():
                    break
            else:
                head = self._next_head()
                if head is None:
                    break
                out.append(head)
        return out

    def finish(self) -> HttpRequest | None:
        """At the end of the stream: a request whose head never completed, if its request line did
        (Suricata logs such a request too; its host and user agent are then unknown)."""
        if self.is_response or self.stopped or self._skip or self._chunked or not looks_like_request(self._buf):
            return None
        line = bytes(self._buf).split(b"\r\n", 1)[0].split(b" ")
        if len(line) < 2 or not line[1]:
            return None
        version = line[2] if len(line) > 2 else b"HTTP/0.9"
        return HttpRequest(_text(line[0]), _text(line[1]), _text(version), None, None, self._offset)

    def gap(self, lost: int) -> None:
        """`lost` bytes of the stream were never captured: inside a body that is only less to skip;
        anywhere else the reader no longer knows where a head starts and stops."""
        if self.stopped or not lost:
            return
        if self._skip >= lost and not self._buf:
            self._skip -= lost
            self._offset += lost
        else:
            self.stopped = f"{lost} bytes missing from the capture outside a body"

    def _consume(self, n: int) -> None:
        del self._buf[:n]
        self._offset += n

    def _next_head(self) -> HttpRequest | HttpResponse | None:
        while self._buf[:2] == b"\r\n":  # stray line endings between messages
            self._consume(2)
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD_BYTES:
                self.stopped = f"no end of HTTP head within {MAX_HEAD_BYTES} bytes"
            return None
        lines = bytes(self._buf[:end]).split(b"\r\n")
        offset = self._offset
        self._consume(end + 4)
        headers = _headers(lines[1:])
        if self.is_response:
            return self._response(lines[0], headers, offset)
        return self._request(lines[0], headers, offset)

    def _request(self, line: bytes, headers: dict[str, bytes], offset: int) -> HttpRequest | None:
        match = _REQUEST_LINE.match(line)
        if match is None:
            self.stopped = "not an HTTP request line"
            return None
        method = _text(match.group(1))
        if method == "CONNECT":
            self.stopped = "CONNECT: a tunnel follows"
        self._body(headers, has_body=True)
        host = headers.get("host")
        agent = headers.get("user-agent")
        return HttpRequest(method, _text(match.group(2)), _text(match.group(3) or b"HTTP/0.9"),
                           _host_only(_text(host)) if host is not None else None,
                           _text(agent) if agent is not None else None, offset)

    def _response(self, line: bytes, headers: dict[str, bytes], offset: int) -> HttpResponse | None:
        match = _STATUS_LINE.match(line)
        if match is None:
            self.stopped = "not an HTTP status line"
            return None
        status = int(match.group(2))
        method = self.methods.popleft() if self.methods and status >= 200 else None
        has_body = not (status < 200 or status in (204, 304) or method == "HEAD")
        if method == "CONNECT" and 200 <= status < 300:
            self.stopped = "CONNECT: a tunnel follows"
        elif has_body and "content-length" not in headers and b"chunked" not in headers.get(
                "transfer-encoding", b"").lower():
            self.stopped = "response body runs to the end of the connection"
        self._body(headers, has_body=has_body)
        return HttpResponse(status, _text(match.group(1)), offset)

    def _body(self, headers: dict[str, bytes], *, has_body: bool) -> None:
        if not has_body:
            return
        if b"chunked" in headers.get("transfer-encoding", b"").lower():
            self._chunked = True
            return
        length = headers.get("content-length", b"0").strip()
        if not length.isdigit():
            self.stopped = f"Content-Length is not a number: {length[:20]!r}"
            return
        self._skip = int(length)

    def _next_chunk(self) -> bool:
        """Pass one chunk (size line, data, CRLF); False when more bytes are needed."""
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > 1024:
                self.stopped = "chunk size line too long"
            return False
        size_text = bytes(self._buf[:end]).split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            self.stopped = f"bad chunk size {size_text[:20]!r}"
            return False
        if size == 0:  # last chunk: trailers end with an empty line
            trailer_end = self._buf.find(b"\r\n\r\n", end)
            if trailer_end < 0:
                return False
            self._consume(trailer_end + 4)
            self._chunked = False
            return True
        self._consume(end + 2)
        self._skip = size + 2
        return True


def _headers(lines: list[bytes]) -> dict[str, bytes]:
    """Header names lower-cased; the first occurrence of a name wins."""
    headers: dict[str, bytes] = {}
    for line in lines:
        name, sep, value = line.partition(b":")
        if sep:
            headers.setdefault(_text(name.strip()).lower(), value.strip())
    return headers
