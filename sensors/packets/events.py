"""Events: flows and application records -> nested ECS documents (`event.dataset` flow, dns, http, tls).

Stage: sensors, packet sensor, the last step before `Event.create`. In: a `Flow` and, for
application events, the parsed message and the packet time. Out: a document with `@timestamp` and
the network fields of its flow; no tenant, observer or id (the reader adds them).

Invariants: addresses are text (`inet_ntop`), times aware UTC datetimes; a field is left out
rather than set to None. Field names below that are not yet in `pipeline.ecs` are ECS names too
(`network.community_id`, `dns.*`, `tls.*`, ...) except `govsoc.flow.*`, our own for what ECS has no
field (TCP history, end reason); they move to `pipeline/ecs.py` with the lead's review.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

from pipeline import ecs
from pipeline.records import set_path
from sensors.packets.capture import (
    PROTO_GRE,
    PROTO_ICMP,
    PROTO_ICMP6,
    PROTO_IPIP,
    PROTO_IPV6_IN_IP,
    PROTO_SCTP,
    PROTO_TCP,
    PROTO_UDP,
)
from sensors.packets.dns import DnsMessage
from sensors.packets.flows import Flow
from sensors.packets.http import HttpRequest, HttpResponse
from sensors.packets.tls import ClientHello, ServerHello, version_name

NETWORK_COMMUNITY_ID = "network.community_id"
NETWORK_TRANSPORT = "network.transport"
NETWORK_TYPE = "network.type"
NETWORK_PROTOCOL = "network.protocol"
NETWORK_BYTES = "network.bytes"
NETWORK_PACKETS = "network.packets"
NETWORK_VLAN_ID = "network.vlan.id"
SOURCE_BYTES = "source.bytes"
SOURCE_PACKETS = "source.packets"
DESTINATION_BYTES = "destination.bytes"
DESTINATION_PACKETS = "destination.packets"
EVENT_START = "event.start"
EVENT_END = "event.end"
EVENT_DURATION = "event.duration"
DNS_ID = "dns.id"
DNS_TYPE = "dns.type"
DNS_OP_CODE = "dns.op_code"
DNS_QUESTION_NAME = "dns.question.name"
DNS_QUESTION_TYPE = "dns.question.type"
DNS_RESPONSE_CODE = "dns.response_code"
DNS_HEADER_FLAGS = "dns.header_flags"
DNS_ANSWERS = "dns.answers"
URL_DOMAIN = "url.domain"
URL_ORIGINAL = "url.original"
HTTP_REQUEST_METHOD = "http.request.method"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
HTTP_VERSION = "http.version"
USER_AGENT_ORIGINAL = "user_agent.original"
TLS_CLIENT_SERVER_NAME = "tls.client.server_name"
TLS_CLIENT_JA3 = "tls.client.ja3"
TLS_CLIENT_JA4 = "tls.client.ja4"
TLS_CLIENT_SUPPORTED_CIPHERS = "tls.client.supported_ciphers"
TLS_VERSION = "tls.version"
TLS_VERSION_PROTOCOL = "tls.version_protocol"
TLS_NEXT_PROTOCOL = "tls.next_protocol"
TLS_CIPHER = "tls.cipher"
TLS_SERVER_JA3S = "tls.server.ja3s"
FLOW_STATE = "govsoc.flow.state"
FLOW_HISTORY = "govsoc.flow.history"
FLOW_END_REASON = "govsoc.flow.end_reason"

DATASET_FLOW, DATASET_DNS, DATASET_HTTP, DATASET_TLS = "flow", "dns", "http", "tls"
# IANA protocol keywords, lower case, as ECS asks for network.transport
TRANSPORTS = {PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_ICMP: "icmp", PROTO_ICMP6: "ipv6-icmp",
              PROTO_SCTP: "sctp", PROTO_IPIP: "ipv4", PROTO_IPV6_IN_IP: "ipv6", PROTO_GRE: "gre", 50: "esp",
              51: "ah"}


def address(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(packed) == 16 else socket.AF_INET, packed)


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _base(flow: Flow, ts: float, dataset: str, categories: list[str], types: list[str]) -> dict[str, Any]:
    # Nested dicts written out rather than ~15 set_path calls: bench/packets.py measured set_path at
    # a fifth of the sensor's time. The keys are the ECS names of the constants above.
    network: dict[str, Any] = {"transport": TRANSPORTS.get(flow.proto, str(flow.proto)),
                               "type": f"ipv{flow.version}", "community_id": flow.community_id}
    if flow.vlan is not None:
        network["vlan"] = {"id": str(flow.vlan)}
    source: dict[str, Any] = {"ip": address(flow.src)}
    destination: dict[str, Any] = {"ip": address(flow.dst)}
    if flow.proto in (PROTO_TCP, PROTO_UDP, PROTO_SCTP):
        source["port"], destination["port"] = flow.sport, flow.dport
    return {ecs.TIMESTAMP: utc(ts),
            "event": {"kind": "event", "category": categories, "type": types, "dataset": dataset,
                      "module": "packets"},
            "source": source, "destination": destination, "network": network}


def flow_document(flow: Flow) -> dict[str, Any]:
    doc = _base(flow, flow.start, DATASET_FLOW, ["network"], ["connection", "end"])
    event, network = doc["event"], doc["network"]
    event["start"], event["end"] = utc(flow.start), utc(flow.end)
    event["duration"] = round((flow.end - flow.start) * 1e9)
    doc["source"]["bytes"], doc["source"]["packets"] = flow.bytes_to_server, flow.packets_to_server
    doc["destination"]["bytes"], doc["destination"]["packets"] = flow.bytes_to_client, flow.packets_to_client
    network["bytes"] = flow.bytes_to_server + flow.bytes_to_client
    network["packets"] = flow.packets_to_server + flow.packets_to_client
    govsoc: dict[str, Any] = {"end_reason": flow.end_reason}
    if flow.proto == PROTO_TCP:
        govsoc["state"], govsoc["history"] = flow.state, flow.history
    doc["govsoc"] = {"flow": govsoc}
    return doc


def dns_document(flow: Flow, ts: float, message: DnsMessage) -> dict[str, Any]:
    doc = _base(flow, ts, DATASET_DNS, ["network"], ["protocol"])
    set_path(doc, NETWORK_PROTOCOL, "dns")
    set_path(doc, DNS_ID, str(message.id))
    set_path(doc, DNS_TYPE, "answer" if message.is_response else "query")
    set_path(doc, DNS_OP_CODE, str(message.opcode))
    set_path(doc, DNS_HEADER_FLAGS, list(message.header_flags))
    if message.question_name is not None:
        set_path(doc, DNS_QUESTION_NAME, message.question_name)
        set_path(doc, DNS_QUESTION_TYPE, message.question_type)
    if message.is_response:
        set_path(doc, DNS_RESPONSE_CODE, message.response_code)
        if message.answers:
            set_path(doc, DNS_ANSWERS, [{"name": a.name, "type": a.type, "ttl": a.ttl, "data": a.data}
                                        for a in message.answers])
    return doc


def http_document(flow: Flow, ts: float, request: HttpRequest | None,
                  response: HttpResponse | None) -> dict[str, Any]:
    """One HTTP transaction: a request, its response when seen (either may be missing)."""
    doc = _base(flow, ts, DATASET_HTTP, ["network", "web"], ["protocol"])
    set_path(doc, NETWORK_PROTOCOL, "http")
    if request is not None:
        set_path(doc, HTTP_REQUEST_METHOD, request.method)
        set_path(doc, URL_ORIGINAL, request.uri)
        set_path(doc, HTTP_VERSION, request.version.removeprefix("HTTP/"))
        if request.host is not None:
            set_path(doc, URL_DOMAIN, request.host)
        if request.user_agent is not None:
            set_path(doc, USER_AGENT_ORIGINAL, request.user_agent)
    if response is not None:
        set_path(doc, HTTP_RESPONSE_STATUS_CODE, response.status)
    return doc


def tls_document(flow: Flow, ts: float, client: ClientHello | None, server: ServerHello | None) -> dict[str, Any]:
    """One TLS handshake: the ClientHello's fingerprints and the version.

    `tls.version` is the ServerHello's choice; without a ServerHello, the highest the client offered
    (as Suricata reports it), so a handshake cut short still says which TLS it was.
    """
    doc = _base(flow, ts, DATASET_TLS, ["network"], ["protocol"])
    set_path(doc, NETWORK_PROTOCOL, "tls")
    if client is not None:
        if client.server_name is not None:
            set_path(doc, TLS_CLIENT_SERVER_NAME, client.server_name)
        set_path(doc, TLS_CLIENT_JA3, client.ja3_hash)
        set_path(doc, TLS_CLIENT_JA4, client.ja4)
        set_path(doc, TLS_CLIENT_SUPPORTED_CIPHERS, [f"0x{c:04x}" for c in client.ciphers])
        if client.alpn:
            set_path(doc, TLS_NEXT_PROTOCOL, client.alpn[0])
    version = server.version if server is not None else client.max_version if client is not None else None
    name = version_name(version) if version is not None else None
    if name is not None:
        set_path(doc, TLS_VERSION, name)
        set_path(doc, TLS_VERSION_PROTOCOL, "ssl" if name in ("2.0", "3.0") else "tls")
    if server is not None:
        set_path(doc, TLS_CIPHER, f"0x{server.cipher:04x}")
        set_path(doc, TLS_SERVER_JA3S, server.ja3s_hash)
    return doc
