"""Packet sensor: captures (files or a live interface) -> flow, DNS, HTTP and TLS events.

Modules, in flow order:
- capture: pcap / pcapng files and live interfaces -> frames; the Frame and Packet records.
- decode: frames -> decoded IP packets (struct, not scapy), with VLAN tags, tunnels and IP fragment
  reassembly.
- fastpath: classic pcap files -> packets in one loop for the common case (Ethernet, IPv4/IPv6,
  TCP/UDP/ICMP), handing every other frame to decode.
- flows: packets -> bidirectional 5-tuple flows (timeouts, TCP state and history, Community ID,
  bounded with an eviction count) and in-order TCP streams.
- dns: one DNS message -> question, response code, answers.
- http: an HTTP/1.x stream -> request and response heads, across segments.
- tls: a TLS stream -> ClientHello (SNI, JA3, JA4) and ServerHello (version).
- events: flows and application records -> ECS documents (`event.dataset` flow, dns, http, tls).
- reader: `read_capture` / `read_interface`, the whole chain -> `LogBatch`es of events and dead letters.
"""

from sensors.packets.capture import DecodeError, Frame, FrameError, Packet, read_frames, sniff_frames
from sensors.packets.decode import Defragmenter, decode_frame
from sensors.packets.flows import Flow, FlowConfig, FlowTable, TcpStream
from sensors.packets.reader import CaptureSource, CaptureStats, read_capture, read_interface

__all__ = [
    "CaptureSource",
    "CaptureStats",
    "DecodeError",
    "Defragmenter",
    "Flow",
    "FlowConfig",
    "FlowTable",
    "Frame",
    "FrameError",
    "Packet",
    "TcpStream",
    "decode_frame",
    "read_capture",
    "read_frames",
    "read_interface",
    "sniff_frames",
]
