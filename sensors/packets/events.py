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
    source: dict[str, Any] = {"ip": flow.src_text or address(flow.src)}
    destination: dict[str, Any] = {"ip": flow.dst_text or address(flow.dst)}
    flow.src_text, flow.dst_text = source["ip"], destination["ip"]  # a flow's later events reuse them
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
    # The application documents are nested dicts written out, in the order the ECS names above
    # would set them: bench/packets.py measured set_path at ~4 % of the sensor's time.
    doc = _base(flow, ts, DATASET_DNS, ["network"], ["protocol"])
    doc["network"]["protocol"] = "dns"  # NETWORK_PROTOCOL
    dns: dict[str, Any] = {"id": str(message.id), "type": "answer" if message.is_response else "query",
                           "op_code": str(message.opcode), "header_flags": list(message.header_flags)}
    if message.question_name is not None:
        dns["question"] = {"name": message.question_name, "type": message.question_type}
    if message.is_response:
        dns["response_code"] = message.response_code
        if message.answers:
            dns["answers"] = [{"name": a.name, "type": a.type, "ttl": a.ttl, "data": a.data} for a in message.answers]
    doc["dns"] = dns  # DNS_ID, DNS_TYPE, DNS_OP_CODE, DNS_HEADER_FLAGS, DNS_QUESTION_*, DNS_RESPONSE_CODE, DNS_ANSWERS
    return doc


def http_document(flow: Flow, ts: float, request: HttpRequest | None,
                  response: HttpResponse | None) -> dict[str, Any]:
    """One HTTP transaction: a request, its response when seen (either may be missing)."""
    doc = _base(flow, ts, DATASET_HTTP, ["network", "web"], ["protocol"])
    doc["network"]["protocol"] = "http"  # NETWORK_PROTOCOL
    http: dict[str, Any] = {}
    if request is not None:
        http["request"] = {"method": request.method}  # HTTP_REQUEST_METHOD
        doc["http"] = http
        url = doc["url"] = {"original": request.uri}  # URL_ORIGINAL
        http["version"] = request.version.removeprefix("HTTP/")  # HTTP_VERSION
        if request.host is not None:
            url["domain"] = request.host  # URL_DOMAIN
        if request.user_agent is not None:
            doc["user_agent"] = {"original": request.user_agent}  # USER_AGENT_ORIGINAL
    if response is not None:
        http["response"] = {"status_code": response.status}  # HTTP_RESPONSE_STATUS_CODE
        doc["http"] = http
    return doc


_FINGERPRINTS: dict[tuple[object, ...], tuple[str, str]] = {}
MAX_FINGERPRINTS = 4096


def _fingerprints(client: ClientHello) -> tuple[str, str]:
    """(JA3 hash, JA4) of `client`, remembered: they describe the client software, so a site sees
    few distinct ones (bench/packets.py: computing them was ~4 % of the sensor's time)."""
    key = (client.legacy_version, client.ciphers, client.extensions, client.groups, client.point_formats,
           client.signature_algorithms, client.alpn, client.supported_versions, client.server_name is None)
    found = _FINGERPRINTS.get(key)
    if found is None:
        if len(_FINGERPRINTS) >= MAX_FINGERPRINTS:
            _FINGERPRINTS.clear()
        found = _FINGERPRINTS[key] = (client.ja3_hash, client.ja4)
    return found


def tls_document(flow: Flow, ts: float, client: ClientHello | None, server: ServerHello | None) -> dict[str, Any]:
    """One TLS handshake: the ClientHello's fingerprints and the version.

    `tls.version` is the ServerHello's choice; without a ServerHello, the highest the client offered
    (as Suricata reports it), so a handshake cut short still says which TLS it was.
    """
    doc = _base(flow, ts, DATASET_TLS, ["network"], ["protocol"])
    doc["network"]["protocol"] = "tls"  # NETWORK_PROTOCOL
    tls: dict[str, Any] = {}
    if client is not None:
        hello: dict[str, Any] = {}
        if client.server_name is not None:
            hello["server_name"] = client.server_name  # TLS_CLIENT_SERVER_NAME
        hello["ja3"], hello["ja4"] = _fingerprints(client)  # TLS_CLIENT_JA3, TLS_CLIENT_JA4
        hello["supported_ciphers"] = [f"0x{c:04x}" for c in client.ciphers]  # TLS_CLIENT_SUPPORTED_CIPHERS
        tls["client"] = hello
        if client.alpn:
            tls["next_protocol"] = client.alpn[0]  # TLS_NEXT_PROTOCOL
    version = server.version if server is not None else client.max_version if client is not None else None
    name = version_name(version) if version is not None else None
    if name is not None:
        tls["version"] = name  # TLS_VERSION
        tls["version_protocol"] = "ssl" if name in ("2.0", "3.0") else "tls"  # TLS_VERSION_PROTOCOL
    if server is not None:
        tls["cipher"] = f"0x{server.cipher:04x}"  # TLS_CIPHER
        tls["server"] = {"ja3s": server.ja3s_hash}  # TLS_SERVER_JA3S
    if tls:
        doc["tls"] = tls
    return doc
