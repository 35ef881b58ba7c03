"""Live capture on the loopback interface with a BPF filter on a port this test uses.

Needs CAP_NET_RAW (skipped without). A quick check of `read_interface` end to end (kernel filter,
scapy socket, loopback's doubled packets, flow and DNS events); test_live_netns is the full one.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from scapy.layers.dns import DNS, DNSQR

from pipeline.records import Event
from sensors.packets import CaptureSource, read_interface


def can_capture() -> bool:
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
    except (PermissionError, AttributeError, OSError):
        return False
    return True


@pytest.mark.skipif(not can_capture(), reason="needs CAP_NET_RAW for a packet socket")
def test_read_interface_sees_udp_and_dns_on_loopback() -> None:
    # port 5353 so that the sensor reads the payload as DNS; the filter keeps other traffic out
    port, found = 5353, list[Event]()

    def sensor() -> None:
        source = CaptureSource(tenant="lab", sensor="lo")
        for batch in read_interface("lo", source, bpf_filter=f"udp and dst port {port}", count=3, timeout=5.0):
            found.extend(batch.events)

    thread = threading.Thread(target=sensor)
    thread.start()
    time.sleep(1.0)  # the socket is opened when the thread starts reading
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.bind(("127.0.0.1", 0))
        for name in ("a.lab.gov.vn", "b.lab.gov.vn", "c.lab.gov.vn"):
            sender.sendto(bytes(DNS(id=1, rd=1, qd=DNSQR(qname=name))), ("127.0.0.1", port))
    thread.join(timeout=10)
    assert not thread.is_alive()
    names = sorted(e.get("dns.question.name") for e in found if e.get("event.dataset") == "dns")
    assert names == ["a.lab.gov.vn", "b.lab.gov.vn", "c.lab.gov.vn"]
    (flow,) = [e for e in found if e.get("event.dataset") == "flow"]
    assert flow.get("source.packets") == 3 and flow.get("destination.port") == port
