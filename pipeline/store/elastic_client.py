"""Reaching an Elasticsearch or OpenSearch cluster: the store URL, and the client built from it.

In: `elasticsearch://[user:password@]host[:port][,host2[:port2]...][?option=value&...]` or the same
with `opensearch://`. Out: an `ElasticConfig` (what the URL says) and an `elasticsearch.Elasticsearch`.

Options (anything else is refused, so a typo is never silently ignored):
- `tls=1` talks https (default http); `ca=/path/ca.pem` trusts that CA instead of the system's.
- `prefix=govsoc` starts every index and template name, so two deployments (or two tests) can
  share a cluster; lowercase letters, digits, `_` and `-`.
- `refresh=false|true|wait_for`: the refresh policy of writes (default `false`: the index's
  refresh interval decides when a write becomes searchable; tests use `wait_for`).
- `timeout=30`: seconds per request.
Credentials come from the userinfo only, percent-decoded; they never appear in errors or logs.

Why two schemes. The `elasticsearch` client sends `application/vnd.elasticsearch+json;
compatible-with=N` as Content-Type and Accept, and accepts a response only from a server that
says `X-Elastic-Product: Elasticsearch`. Elasticsearch 9 wants exactly that, so
`elasticsearch://` uses the client as Elastic ships it. OpenSearch takes neither the vendor media
type (it answers 406) nor sends the product header, so `opensearch://` installs
`PlainJsonNode`, a node class (the transport's documented extension point, unlike private client
attributes, and present in the 8.x and 9.x clients alike) that rewrites the vendor media types to
`application/json` and supplies the product header a server left out. Plain JSON is what every
server accepts, Elasticsearch 8 and 9 included, so `opensearch://` also reaches an Elasticsearch
whose major version differs from the client's. `server_mode="serverless"` (client >= 9.4) fixes
only the media type and adds a serverless API-version header, so it is not used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, unquote

from elastic_transport import HttpHeaders, Urllib3HttpNode
from elastic_transport.client_utils import DEFAULT, DefaultType
from elasticsearch import Elasticsearch

from pipeline.errors import StoreError
from pipeline.store.registry import redacted

if TYPE_CHECKING:
    from elastic_transport._node import NodeApiResponse  # not re-exported at the top level

Flavour = Literal["elasticsearch", "opensearch"]
Refresh = Literal["false", "true", "wait_for"]

DEFAULT_PORT = 9200
DEFAULT_PREFIX = "govsoc"

_OPTIONS = frozenset({"tls", "ca", "prefix", "refresh", "timeout"})
_PREFIX = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_VENDOR_MEDIA_TYPE = re.compile(r"application/vnd\.elasticsearch\+([a-z-]+)(?:\s*;\s*compatible-with=\d+)?")
_PRODUCT_HEADER = "x-elastic-product"


@dataclass(frozen=True, slots=True)
class ElasticConfig:
    """What a store URL says; `url` is kept with the password hidden, for messages."""

    url: str
    flavour: Flavour
    hosts: tuple[str, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    prefix: str = DEFAULT_PREFIX
    refresh: Refresh = "false"
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str) -> ElasticConfig:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("elasticsearch", "opensearch"):
            raise StoreError(f"{redacted(url)!r}: not an elasticsearch:// or opensearch:// URL")
        netloc, _, query = rest.partition("?")
        netloc, _, path = netloc.partition("/")
        if path:
            raise StoreError(f"{redacted(url)!r}: the URL names hosts only, no path (got /{path})")
        userinfo, _, hostlist = netloc.rpartition("@")
        options = _options(url, query)
        tls = _flag(url, "tls", options.get("tls", "0"))
        username, _, password = userinfo.partition(":")
        return cls(
            url=redacted(url), flavour="opensearch" if scheme == "opensearch" else "elasticsearch",
            hosts=tuple(_host(url, part, tls) for part in hostlist.split(",")),
            username=unquote(username) if userinfo else None,
            password=unquote(password) if userinfo else None,
            ca_certs=options.get("ca"),
            prefix=_prefix(url, options.get("prefix", DEFAULT_PREFIX)),
            refresh=_refresh(url, options.get("refresh", "false")),
            timeout=_timeout(url, options.get("timeout", "30")),
        )


def _options(url: str, query: str) -> dict[str, str]:
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted({key for key, _ in pairs} - _OPTIONS)
    if unknown:
        raise StoreError(f"{redacted(url)!r}: unknown option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(_OPTIONS))}")
    return dict(pairs)


def _flag(url: str, name: str, value: str) -> bool:
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise StoreError(f"{redacted(url)!r}: option {name}={value!r} is not 1 or 0")


def _host(url: str, part: str, tls: bool) -> str:
    host, port = part, str(DEFAULT_PORT)
    if part.startswith("["):  # [::1]:9200
        bracketed, _, after = part.partition("]")
        host, port = bracketed + "]", after.removeprefix(":") or port
    elif ":" in part:
        host, _, port = part.rpartition(":")
    if not host or host == "[]" or not port.isdigit() or not 0 < int(port) < 65536:
        raise StoreError(f"{redacted(url)!r}: {part!r} is not host[:port]")
    return f"{'https' if tls else 'http'}://{host}:{port}"


def _prefix(url: str, value: str) -> str:
    if not _PREFIX.fullmatch(value):
        raise StoreError(f"{redacted(url)!r}: prefix {value!r} is not a lowercase index-name part "
                         "(letters, digits, _ and -, not starting with _ or -)")
    return value


def _refresh(url: str, value: str) -> Refresh:
    if value == "false":
        return "false"
    if value == "true":
        return "true"
    if value == "wait_for":
        return "wait_for"
    raise StoreError(f"{redacted(url)!r}: refresh={value!r} is not false, true or wait_for")


def _timeout(url: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise StoreError(f"{redacted(url)!r}: timeout={value!r} is not a positive number of seconds")
    return seconds


class PlainJsonNode(Urllib3HttpNode):
    """A node for OpenSearch-flavoured servers: plain JSON media types, the product header supplied.

    See the module docstring for why; responses are otherwise passed through untouched.
    """

    def perform_request(self, method: str, target: str, body: bytes | None = None,
                        headers: HttpHeaders | None = None,
                        request_timeout: DefaultType | float | None = DEFAULT) -> NodeApiResponse:
        if headers is not None:
            headers = HttpHeaders(headers)
            for name in ("content-type", "accept"):
                if name in headers:
                    headers[name] = _VENDOR_MEDIA_TYPE.sub(r"application/\1", headers[name])
        response = super().perform_request(method, target, body=body, headers=headers,
                                           request_timeout=request_timeout)
        if _PRODUCT_HEADER in response.meta.headers:
            return response
        response_headers = HttpHeaders(response.meta.headers)
        response_headers[_PRODUCT_HEADER] = "Elasticsearch"
        return response._replace(meta=replace(response.meta, headers=response_headers))


def make_client(config: ElasticConfig) -> Elasticsearch:
    """A client for `config`; it connects lazily, on the first request.

    Whole requests are retried by the transport (connection errors, timeouts, 429/502/503/504),
    with its default of 3 retries; items of a bulk request that fail are retried by
    `elastic_bulk`, not here.
    """
    options: dict[str, Any] = {"request_timeout": config.timeout, "retry_on_timeout": True}
    if config.flavour == "opensearch":
        options["node_class"] = PlainJsonNode
    if config.username is not None:
        options["basic_auth"] = (config.username, config.password or "")
    if config.ca_certs is not None:
        options["ca_certs"] = config.ca_certs
    return Elasticsearch(list(config.hosts), **options)
