"""Firewall logs for the demo, generated from a seed: FortiGate at Bộ Tài chính, a key=value firewall at Đà Nẵng.

A day of traffic through each agency's edge firewall: workstations browsing out (HTTPS, DNS),
mail, the internet reaching the public portal, and the implicit deny of whatever else knocks.
Into that, the story's events as a firewall sees them:
- Bộ Tài chính (FortiOS traffic logs): the phished workstation's download cradle and its
  sessions to the command-and-control address 203.0.113.99 (DEMO.md step 2) are let through;
  the brute-force source 203.0.113.77 is denied on RDP and SSH.
- Đà Nẵng (a generic `key=value` firewall, as pfSense/OPNsense-style filter logs read): a port
  sweep from 198.51.100.66 against the portal, blocked port after port.

Lines are what the sensor's `fortigate` and `kv_firewall` parsers read (FortiOS 6.2+ fields,
`date= time= tz=`; for the generic one a syslog header, then `action= src= dst= spt= dpt=
proto=`). Addresses from documentation ranges and the agencies' 10.x networks. Deterministic:
the same spec always yields the same lines.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from api.demo.authlog import ICT

C2 = "203.0.113.99"  # api.demo.windows.C2: where the cradle downloads from
ATTACKER = "203.0.113.77"
SCANNER = "198.51.100.66"
# (service, destination port, protocol number) of ordinary outbound sessions
SERVICES = (("HTTPS", 443, 6), ("HTTP", 80, 6), ("DNS", 53, 17), ("SMTPS", 465, 6), ("NTP", 123, 17))


@dataclass(frozen=True, slots=True)
class FirewallSpec:
    start: datetime
    lines: int = 600
    seed: int = 51
    duration: timedelta = timedelta(hours=24)
    lan: str = "10.10"  # first two octets of the agency's workstations
    portal: str = "192.0.2.20"
    victim: str = "10.10.20.15"  # the phished workstation (api.demo.windows' ws-ketoan-01)
    attack_at_hours: float = 9.5  # as api.demo.windows: the cradle runs then
    device: str = "FGT-BTC-01"


def _fortigate(ts: datetime, device: str, fields: str) -> str:
    local = ts.astimezone(ICT)
    return (f'date={local:%Y-%m-%d} time={local:%H:%M:%S} devname="{device}" devid="FGT60F0000000042" '
            f'tz="+0700" logid="0000000013" type="traffic" subtype="forward" vd="root" {fields}')


def _allowed(rng: random.Random, source: str, destination: str, service: tuple[str, int, int], session: int) -> str:
    name, port, proto = service
    sent, received = rng.randrange(300, 9000), rng.randrange(500, 90_000)
    return (f'level="notice" srcip={source} srcport={rng.randrange(49152, 65535)} srcintf="port2" '
            f'dstip={destination} dstport={port} dstintf="wan1" sessionid={session} proto={proto} action="close" '
            f'policyid=3 service="{name}" duration={rng.randrange(1, 120)} sentbyte={sent} rcvdbyte={received} '
            f'sentpkt={sent // 500 + 1} rcvdpkt={received // 1200 + 1}')


def _denied(rng: random.Random, source: str, destination: str, port: int, proto: int) -> str:
    return (f'level="warning" srcip={source} srcport={rng.randrange(1024, 65535)} srcintf="wan1" dstip={destination} '
            f'dstport={port} dstintf="port2" proto={proto} action="deny" policyid=0 policyname="implicit deny" '
            f'msg="Denied by forward policy check (policy 0)"')


def generate_fortigate_log(spec: FirewallSpec) -> list[str]:
    """FortiOS traffic logs of a day at Bộ Tài chính, with the C2 sessions and denied brute force."""
    rng = random.Random(spec.seed)
    out: list[tuple[datetime, str]] = []
    seconds, session = spec.duration.total_seconds(), 100_000
    for _ in range(spec.lines):
        ts, session = spec.start + timedelta(seconds=rng.uniform(0, seconds)), session + 1
        if rng.random() < 0.15:  # the internet knocking on whatever is not the portal
            fields = _denied(rng, f"198.51.100.{rng.randrange(1, 60)}", spec.portal, rng.choice((23, 445, 3389)), 6)
        else:
            source = f"{spec.lan}.{rng.randrange(20, 22)}.{rng.randrange(2, 250)}"
            fields = _allowed(rng, source, f"192.0.2.{rng.randrange(100, 200)}", rng.choice(SERVICES), session)
        out.append((ts, _fortigate(ts, spec.device, fields)))
    at = spec.start + timedelta(hours=spec.attack_at_hours)
    for n in range(6):  # the download cradle, then beacons to the C2 every few minutes
        ts, session = at + timedelta(seconds=20 + 240 * n), session + 1
        fields = _allowed(rng, spec.victim, C2, ("HTTPS", 443, 6), session)
        out.append((ts, _fortigate(ts, spec.device, fields.replace('level="notice"', 'level="notice" app="HTTPS"'))))
    for n in range(12):  # the brute-force source tries RDP and SSH on the portal
        ts = at + timedelta(hours=4, seconds=3 * n)
        out.append((ts, _fortigate(ts, spec.device, _denied(rng, ATTACKER, spec.portal, (3389, 22)[n % 2], 6))))
    out.sort(key=lambda item: item[0])
    return [line for _ts, line in out]


def generate_kv_firewall_log(spec: FirewallSpec, host: str = "fw-danang", portal: str = "203.0.113.10",
                             lan: str = "10.30") -> list[str]:
    """A generic key=value filter log of a day at Đà Nẵng, with a port sweep against the portal."""
    rng = random.Random(spec.seed)
    out: list[tuple[datetime, str]] = []
    seconds = spec.duration.total_seconds()
    for _ in range(spec.lines):
        ts = spec.start + timedelta(seconds=rng.uniform(0, seconds))
        name, port, proto = rng.choice(SERVICES)
        if rng.random() < 0.2:
            fields = (f"action=block src=198.51.100.{rng.randrange(1, 60)} dst={portal} "
                      f"spt={rng.randrange(1024, 65535)} dpt={rng.choice((23, 445, 3389, 8080))} proto=TCP "
                      f"rule=default-deny")
        else:
            fields = (f"action=pass src={lan}.{rng.randrange(0, 255)}.{rng.randrange(2, 250)} "
                      f"dst=192.0.2.{rng.randrange(100, 200)} spt={rng.randrange(49152, 65535)} dpt={port} "
                      f"proto={'TCP' if proto == 6 else 'UDP'} rule=lan-out service={name}")
        out.append((ts, _kv_line(ts, host, fields)))
    at = spec.start + timedelta(hours=spec.attack_at_hours + 6)
    for n, port in enumerate((21, 22, 23, 25, 80, 110, 135, 139, 143, 443, 445, 1433, 3306, 3389, 5432, 5900, 8080)):
        ts = at + timedelta(seconds=n * 0.4)
        fields = f"action=block src={SCANNER} dst={portal} spt={40000 + n} dpt={port} proto=TCP rule=default-deny"
        out.append((ts, _kv_line(ts, host, fields)))
    out.sort(key=lambda item: item[0])
    return [line for _ts, line in out]


def _kv_line(ts: datetime, host: str, fields: str) -> str:
    local = ts.astimezone(ICT)
    return f"{local:%b} {local.day:>2} {local:%H:%M:%S} {host} filterlog: {fields}"
