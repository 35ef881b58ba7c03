"""The packet sensor beside tshark on the same captures: flow counts, DNS names, TLS SNI and JA3, HTTP hosts.

Skipped when tshark is not installed (Debian package `tshark`). A few suricata-verify captures
covering DNS, TLS, HTTP, VLAN, IPv6 and fragments; on the whole suite 152 of 178 captures agree
on all four, and the rest differ where tshark decodes more (DNS over HTTPS, NSH) or counts otherwise
(TCP port reuse within one flow, Host headers with their port, `<Root>` for the empty name).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.sensors.packets.test_suricata_verify import SUITE, events_of

TSHARK = shutil.which("tshark")
CAPTURES = ["community-id-ipv4", "ja4-rules", "ja4-sv-handshake", "dns-eve-v2-udp-nxdomain-soa",
            "cond-log-http-testmyids", "eve-flow-vlan", "eve-flow-vlan-02", "eve-ip-version-6",
            "http-gap-simple", "tls-alpn-client-log-01", "tls-duplicate-hello", "nfs3-01",
            "exception-policy-defrag-01", "compress_ipv6-01", "smb2-07"]
FIELDS = ["tcp.stream", "udp.stream", "dns.qry.name", "tls.handshake.extensions_server_name", "http.host",
          "http.request", "tls.handshake.ja3"]

pytestmark = [pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)"),
              pytest.mark.skipif(not SUITE.is_dir(), reason="../shared/data/suricata-verify is not present")]


def tshark_view(capture: Path) -> dict[str, object]:
    command = [str(TSHARK), "-r", str(capture), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
               "-E", "aggregator=,"]
    for name in FIELDS:
        command += ["-e", name]
    lines = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout.splitlines()
    tcp: set[str] = set()
    udp: set[str] = set()
    dns: set[str] = set()
    sni: set[str] = set()
    hosts: set[str] = set()
    ja3: set[str] = set()
    for line in lines:
        tcp_stream, udp_stream, names, server_names, host, request, ja3_hash = (line.split("\t") + [""] * 7)[:7]
        ja3.update(h for h in ja3_hash.split(",") if h)
        tcp.update(tcp_stream.split(",")[-1:] if tcp_stream else [])  # the innermost, as a tunnel nests
        udp.update(udp_stream.split(",")[-1:] if udp_stream else [])
        dns.update(n for n in names.split(",") if n)
        sni.update(n for n in server_names.split(",") if n)
        if host and request:
            hosts.add(host.rsplit(":", 1)[0] if host.count(":") == 1 else host)
    return {"tcp": len(tcp), "udp": len(udp), "dns": dns, "sni": sni, "hosts": hosts, "ja3": ja3}


def govsoc_view(folder: Path) -> dict[str, object]:
    events = events_of(folder)
    flows = [e for e in events if e.get("event.dataset") == "flow"]
    return {"tcp": sum(e.get("network.transport") == "tcp" for e in flows),
            "udp": sum(e.get("network.transport") == "udp" for e in flows),
            "dns": {e.get("dns.question.name") for e in events if e.get("dns.question.name")},
            "sni": {e.get("tls.client.server_name") for e in events if e.get("tls.client.server_name")},
            "hosts": {e.get("url.domain") for e in events if e.get("url.domain")},
            "ja3": {e.get("tls.client.ja3") for e in events if e.get("tls.client.ja3")}}


@pytest.mark.parametrize("name", CAPTURES)
def test_same_flows_dns_sni_and_hosts_as_tshark(name: str) -> None:
    folder = SUITE / name
    capture = next(p for p in folder.iterdir() if p.suffix in (".pcap", ".pcapng"))
    ours, theirs = govsoc_view(folder), tshark_view(capture)
    # tshark fingerprints every ClientHello (after a HelloRetryRequest the client sends a second);
    # govsoc, as Suricata, reports the first of each flow
    ours_ja3, theirs_ja3 = ours.pop("ja3"), theirs.pop("ja3")
    assert isinstance(ours_ja3, set) and isinstance(theirs_ja3, set) and ours_ja3 <= theirs_ja3
    assert ours == theirs
