"""Live capture between two network namespaces joined by a veth pair (the issue's acceptance test).

A server namespace runs small TCP (HTTP on 80, TLS on 443, plain on 7000) and UDP (DNS on 53) servers
and the sensor on its veth end; the client namespace sends one UDP datagram, a DNS query, an HTTP
request, a TLS ClientHello and a plain TCP exchange. The sensor must find exactly those five flows and
the DNS, HTTP and TLS events. Only 10.213.0.0/30, inside the namespaces, is used. Needs root (`ip
netns`); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from tests.sensors.packets.test_tls import client_hello

CLIENT_IP, SERVER_IP = "10.213.0.1", "10.213.0.2"

SERVER = textwrap.dedent("""
    import socket, threading
    def tcp(port, reply):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("10.213.0.2", port)); s.listen()
        while True:
            c, _ = s.accept(); c.recv(65536); c.sendall(reply); c.close()
    for port, reply in ((80, b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok"), (443, b""), (7000, b"bye")):
        threading.Thread(target=tcp, args=(port, reply), daemon=True).start()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sink.bind(("10.213.0.2", 9999))  # no ICMP unreachable
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("10.213.0.2", 53))
    print("ready", flush=True)
    while True:
        data, peer = u.recvfrom(2048)
        u.sendto(data[:2] + b"\\x81\\x80" + data[4:], peer)
""")

SENSOR = textwrap.dedent("""
    import sys
    from sensors.packets import CaptureSource, read_interface
    source = CaptureSource(tenant="lab", sensor="veth")
    print("ready", file=sys.stderr, flush=True)  # imports done: the capture starts at once
    for batch in read_interface(sys.argv[1], source, bpf_filter="ip", timeout=8.0):
        for event in batch.events:
            sys.stdout.buffer.write(event.to_json() + b"\\n")
""")

CLIENT = textwrap.dedent("""
    import socket, sys
    hello = bytes.fromhex(sys.argv[1])
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
    u.sendto(b"noise", ("10.213.0.2", 9999))
    query = bytes.fromhex("abcd01000001000000000000") + b"\\x03www\\x03lab\\x02vn\\x00\\x00\\x01\\x00\\x01"
    u.sendto(query, ("10.213.0.2", 53)); u.recvfrom(2048)
    for port, data in ((80, b"GET /probe HTTP/1.1\\r\\nHost: lab.gov.vn\\r\\nUser-Agent: veth-test\\r\\n\\r\\n"),
                       (443, hello), (7000, b"hello")):
        c = socket.create_connection(("10.213.0.2", port), timeout=2); c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        while c.recv(4096):
            pass
        c.close()
""")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    suffix = str(os.getpid())
    client, server = f"gsoc-c{suffix}", f"gsoc-s{suffix}"
    try:
        _ip("netns", "add", client)
        _ip("netns", "add", server)
        _ip("link", "add", f"gc{suffix}", "type", "veth", "peer", "name", f"gs{suffix}")
        _ip("link", "set", f"gc{suffix}", "netns", client)
        _ip("link", "set", f"gs{suffix}", "netns", server)
        for ns, dev, addr in ((client, f"gc{suffix}", CLIENT_IP), (server, f"gs{suffix}", SERVER_IP)):
            _ip("-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield client, server
    finally:
        for ns in (client, server):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _can_make_namespaces() -> bool:
    if shutil.which("ip") is None or os.geteuid() != 0:
        return False
    probe = f"gsoc-probe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return made


@pytest.mark.skipif(not _can_make_namespaces(), reason="needs root and `ip netns` for two network namespaces")
def test_sensor_on_a_veth_finds_exactly_the_traffic_sent(namespaces: tuple[str, str]) -> None:
    client, server = namespaces
    device = f"gs{os.getpid()}"
    in_server = ["ip", "netns", "exec", server, sys.executable, "-c"]
    servers = subprocess.Popen([*in_server, SERVER], stdout=subprocess.PIPE)
    sensor = subprocess.Popen([*in_server, SENSOR, device], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Wait for both to say so rather than sleep: on a loaded machine the imports alone take seconds.
        assert servers.stdout is not None and sensor.stderr is not None
        assert servers.stdout.readline().strip() == b"ready"
        while (line := sensor.stderr.readline()) and line.strip() != b"ready":
            pass
        time.sleep(0.5)  # the sniffing socket opens right after the marker
        subprocess.run(["ip", "netns", "exec", client, sys.executable, "-c", CLIENT, client_hello("veth.lab.vn").hex()],
                       check=True, timeout=30)
        output, _ = sensor.communicate(timeout=30)
    finally:
        servers.kill()
        sensor.kill()
    events = [json.loads(line) for line in output.splitlines() if line.startswith(b"{")]  # not log lines
    flows = sorted((e["network"]["transport"], e["destination"].get("port")) for e in events
                   if e["event"]["dataset"] == "flow")
    assert flows == [("tcp", 80), ("tcp", 443), ("tcp", 7000), ("udp", 53), ("udp", 9999)]
    assert all(e["source"]["ip"] == CLIENT_IP and e["destination"]["ip"] == SERVER_IP for e in events)
    by_dataset = {e["event"]["dataset"]: e for e in events if e["event"]["dataset"] != "flow"}
    assert [e["event"]["dataset"] for e in events].count("dns") == 2  # query and answer
    assert by_dataset["dns"]["dns"]["question"]["name"] == "www.lab.vn"
    http = by_dataset["http"]
    assert (http["url"]["domain"], http["url"]["original"], http["http"]["response"]["status_code"]) == (
        "lab.gov.vn", "/probe", 200)
    assert by_dataset["tls"]["tls"]["client"]["server_name"] == "veth.lab.vn"
