"""The network probes of one check: DNS resolution, TCP connect, HTTP GET.

Each probe measures one thing, with a timeout, and returns a frozen result; a failure is a result
too (`error` set), never an exception, except for programming errors. TLS is in tls.py.

- DNS asks one resolver directly (dnspython's `udp_with_fallback`), so the response code
  (NOERROR, NXDOMAIN, SERVFAIL) is the resolver's own, not a library's interpretation.
- HTTP uses one shared `httpx.AsyncClient` per run without keep-alive: every check opens its own
  connection, so availability is measured, not a pooled connection's. The body is read up to
  `content.MAX_BYTES`; time to first byte is the time until the response headers arrived.
  Certificates are not verified here (tls.py judges trust), so a bad certificate is not an outage.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver
import httpx

from sensors.watch.content import MAX_BYTES


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    type: str
    data: str
    ttl: int


@dataclass(frozen=True, slots=True)
class DnsResult:
    name: str
    response_code: str  # NOERROR, NXDOMAIN, SERVFAIL, ... or "" when no response came
    answers: tuple[DnsAnswer, ...]
    ms: float
    error: str = ""

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(a.data for a in self.answers if a.type in ("A", "AAAA"))


@dataclass(frozen=True, slots=True)
class TcpResult:
    ms: float
    error: str = ""


@dataclass(frozen=True, slots=True)
class HttpResult:
    status: int
    ttfb_ms: float
    ms: float
    body: bytes
    content_type: str
    error: str = ""


def system_resolver() -> tuple[str, int]:
    """The first nameserver of the system's configuration (resolv.conf), port 53."""
    try:
        servers = dns.resolver.Resolver().nameservers
    except dns.exception.DNSException:
        servers = []
    return (str(servers[0]), 53) if servers else ("127.0.0.1", 53)


async def resolve(name: str, types: tuple[str, ...], resolver: tuple[str, int], timeout_s: float) -> DnsResult:
    """Ask `resolver` for each record type; the worst response code wins (NXDOMAIN over NOERROR)."""
    start = time.perf_counter()
    answers: list[DnsAnswer] = []
    code = ""
    for rdtype in types:
        try:
            query = dns.message.make_query(name, rdtype)  # a malformed name raises here too
            response, _ = await dns.asyncquery.udp_with_fallback(query, resolver[0], timeout=timeout_s,
                                                                 port=resolver[1])
        except (dns.exception.DNSException, OSError) as e:
            return DnsResult(name, "", tuple(answers), _ms(start), f"dns: {type(e).__name__}: {e}")
        this = dns.rcode.to_text(response.rcode())
        code = this if code in ("", "NOERROR") else code
        for rrset in response.answer:
            for item in rrset:
                answers.append(DnsAnswer(dns.rdatatype.to_text(rrset.rdtype), item.to_text().rstrip("."),
                                         int(rrset.ttl)))
    return DnsResult(name, code, tuple(answers), _ms(start))


async def connect(host: str, port: int, timeout_s: float) -> TcpResult:
    start = time.perf_counter()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError) as e:
        return TcpResult(_ms(start), _reason(e, "connect"))
    ms = _ms(start)
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    except (OSError, TimeoutError):
        pass
    return TcpResult(ms)


def http_client(concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    return httpx.AsyncClient(verify=False, limits=limits, follow_redirects=False, trust_env=False)


async def fetch(client: httpx.AsyncClient, url: str, connect_host: str, port: int, timeout_s: float) -> HttpResult:
    """GET `url` from `connect_host:port`, keeping the URL's name for the Host header and SNI."""
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    netloc = f"[{connect_host}]:{port}" if ":" in connect_host else f"{connect_host}:{port}"
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = hostname if parts.port is None else f"{hostname}:{parts.port}"
    request = client.build_request("GET", target, headers={"Host": host_header, "User-Agent": "govsoc-watch/0.1"},
                                   timeout=timeout_s, extensions={"sni_hostname": hostname})
    start = time.perf_counter()
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as e:
        return HttpResult(0, 0.0, _ms(start), b"", "", _reason(e, "http"))
    ttfb = _ms(start)
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            body.extend(chunk[: MAX_BYTES - len(body)])
            if len(body) >= MAX_BYTES:
                break
    except httpx.HTTPError as e:
        return HttpResult(response.status_code, ttfb, _ms(start), bytes(body), "", _reason(e, "http body"))
    finally:
        await response.aclose()
    return HttpResult(response.status_code, ttfb, _ms(start), bytes(body), response.headers.get("content-type", ""))


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def _reason(error: BaseException, what: str) -> str:
    text = str(error) or type(error).__name__
    return f"{what}: {text}"
