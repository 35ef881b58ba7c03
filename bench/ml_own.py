"""ML anomaly detection on the project's own traffic and logs, with injected attacks, through the real sensors.

A ward's network (`api.demo.ml.WardTraffic`: workstations looking up and fetching the agency
portals, now and then uploading a document) and a portal's SSH auth log (`api.demo.authlog`:
administrators, cron, internet scanners) are generated for a training week and for test days.
Attacks are injected into the test days only:

- scan: a workstation sweeps 6-60 neighbours on 1-4 ports (SYN, most answered by RST);
- exfiltration: a workstation POSTs 1-8 MB to an outside address in one connection;
- DNS tunnelling: 15-80 queries with long random labels under one domain, 0.5-20 s apart;
- brute force: 10-60 failed passwords from one internet address over a few users, some then succeed.

Captures go through the packet sensor (`read_capture`), logs through the file sensor
(`read_log_file`, auth format), then `WindowFeaturizer` -> `train_kinds` -> `MlDetector`: the
product's path. A window is an attack window when its entity is the attacker (workstation
address, or the brute force's source address or targeted user) and it overlaps the attack.

Measures, at the threshold the product picks (1 % target alert rate on the training week):
recall per attack kind (an attack is caught when any of its windows is flagged), precision per kind
(its flagged windows over those plus the false alarms of the entity kinds it shows in), and the
false-positive rate on normal windows; beside a one-feature threshold baseline, measured in the
same run: per entity kind one feature (`BASELINE_FEATURES`), threshold at the same 1 % quantile of
the training week.

Usage: .venv/bin/python bench/ml_own.py [--train-days 7] [--test-days 3] [--attacks 8] [--seed 5]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from api.cli.common import configure_logging
from api.demo.authlog import ICT, Attack, AuthLogSpec, generate_auth_log
from api.demo.ml import WardTraffic
from detections.ml.features import FEATURE_NAMES, EntityKind, FeatureRow, WindowFeaturizer
from detections.ml.models import ANCHORINGS, ModelSpec, train_kinds
from detections.ml.score import MlDetector
from pipeline.records import Event
from sensors.files import FileSource, read_log_file
from sensors.packets import CaptureSource, read_capture

console = Console(width=160)
TENANT = "danang-haichau"
START = datetime(2026, 11, 2, tzinfo=ICT)  # a Monday
WORKSTATIONS = tuple(f"10.31.0.{i}" for i in range(20, 30))
BASELINE_FEATURES = {EntityKind.FLOW_SOURCE: "flow_distinct_destinations", EntityKind.DNS_CLIENT: "dns_max_name_length",
                     EntityKind.AUTH_SOURCE: "auth_failures", EntityKind.AUTH_USER: "auth_failures"}
"""The one-feature baseline: the feature a hand-written threshold rule would use per entity kind."""
KINDS = ("scan", "exfiltration", "dns tunnelling", "brute force")
SHOWN_IN = {"scan": (EntityKind.FLOW_SOURCE,), "exfiltration": (EntityKind.FLOW_SOURCE,),
            "dns tunnelling": (EntityKind.DNS_CLIENT, EntityKind.FLOW_SOURCE),
            "brute force": (EntityKind.AUTH_SOURCE, EntityKind.AUTH_USER)}


@dataclass(frozen=True, slots=True)
class Injected:
    kind: str
    entities: frozenset[str]
    start: datetime
    end: datetime

    def covers(self, row: FeatureRow) -> bool:
        return row.entity in self.entities and row.start < self.end and row.end > self.start


def ordinary_days(ward: WardTraffic, first: datetime, days: int) -> None:
    """Office-hours sessions of every workstation; some upload a document now and then."""
    for day in range(days):
        office = first + timedelta(days=day, hours=8)
        for host in WORKSTATIONS:
            for _ in range(ward.rng.randint(3, 8)):
                at = (office + timedelta(minutes=ward.rng.uniform(0, 9 * 60))).timestamp()
                for _ in range(ward.rng.randint(5, 40)):
                    at = ward.lookup(host, at + ward.rng.uniform(0.5, 20))
                    if ward.rng.random() < 0.01:
                        at = ward.page(host, "203.0.113.12", "mail.danang.example", at + 1,
                                       upload=ward.rng.randint(20_000, 400_000))


def inject_network(ward: WardTraffic, first: datetime, days: int, count: int) -> list[Injected]:
    """`count` of each network attack at random office times of the test days."""
    rng = random.Random(ward.rng.random())
    found: list[Injected] = []
    for kind in ("scan", "exfiltration", "dns tunnelling"):
        for _ in range(count):
            host = rng.choice(WORKSTATIONS)
            start = first + timedelta(days=rng.randrange(days), hours=8, minutes=rng.uniform(0, 9 * 60))
            end = _attack(ward, rng, kind, host, start.timestamp())
            found.append(Injected(kind, frozenset({host}), start, datetime.fromtimestamp(end, ICT)))
    return found


def _attack(ward: WardTraffic, rng: random.Random, kind: str, host: str, at: float) -> float:
    if kind == "scan":
        ports = rng.sample((445, 3389, 22, 80), rng.randint(1, 4))
        for target in range(2, 2 + rng.randint(6, 60)):
            for port in ports:
                at += rng.uniform(0.001, 0.2)
                ward.probe(host, f"10.31.1.{target}", port, at, is_open=rng.random() < 0.05)
        return at
    if kind == "exfiltration":
        at = ward.lookup(host, at, name="upload.exfil.example")
        return ward.page(host, "198.51.100.80", "upload.exfil.example", at + 0.5, upload=rng.randint(1, 8) * 1_000_000)
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    for i in range(rng.randint(15, 80)):
        label = "".join(rng.choice(alphabet) for _ in range(rng.randint(40, 60)))
        at = ward.lookup(host, at + rng.uniform(0.5, 20), name=f"{label}.{i:04x}.t.exfil.example")
    return at


def auth_log(first: datetime, days: int, seed: int, attacks: Sequence[Attack]) -> list[str]:
    spec = AuthLogSpec(host="portal", start=first, lines=2500 * days, seed=seed, duration=timedelta(days=days),
                       internal_net="10.30.0.0/16", attacks=tuple(attacks))
    return generate_auth_log(spec)


def brute_forces(first: datetime, days: int, count: int, seed: int) -> tuple[list[Attack], list[Injected]]:
    rng = random.Random(seed)
    attacks, found = [], []
    for i in range(count):
        at = first + timedelta(days=rng.randrange(days), hours=rng.uniform(0, 23))
        users = tuple(rng.sample(("root", "admin", "administrator", "quantri", "oracle", "ubuntu"), rng.randint(1, 4)))
        attack = Attack(source=f"203.0.113.{100 + i}", at=at, attempts=rng.randint(10, 60),
                        seconds_between=rng.uniform(2, 8), users=users,
                        success_user="quantri" if rng.random() < 0.5 else None)
        end = at + timedelta(seconds=attack.attempts * attack.seconds_between * 1.5 + 60)
        attacks.append(attack)
        found.append(Injected("brute force", frozenset({attack.source, *users}), at, end))
    return attacks, found


def sensor_events(directory: Path, name: str, ward: WardTraffic, log_lines: list[str]) -> Iterator[list[Event]]:
    """The capture through the packet sensor and the log through the file sensor, merged by time."""
    capture = ward.pcap.write(directory / f"{name}.pcap")
    log = directory / f"{name}-auth.log"
    log.write_text("\n".join(log_lines) + "\n", encoding="utf-8")
    events = [e for b in read_capture(capture, CaptureSource(tenant=TENANT, sensor="haichau-s1")) for e in b.events]
    source = FileSource(tenant=TENANT, sensor="danang-s1", format="auth")
    events += [e for b in read_log_file(log, source) for e in b.events]
    events.sort(key=lambda e: e.timestamp)
    for i in range(0, len(events), 5000):
        yield events[i:i + 5000]


@dataclass
class Outcome:
    flagged: list[FeatureRow]
    rows: list[FeatureRow]


def evaluate(outcome: Outcome, injected: Sequence[Injected]) -> list[list[str]]:
    """Per attack kind: instances, recall, precision; and the false-positive rate on normal windows."""
    attack_rows = {id(r) for r in outcome.rows if any(a.covers(r) for a in injected)}
    false_alarms = [r for r in outcome.flagged if id(r) not in attack_rows]
    table: list[list[str]] = []
    for kind in KINDS:
        mine = [a for a in injected if a.kind == kind]
        caught = sum(any(a.covers(r) for r in outcome.flagged) for a in mine)
        hits = sum(any(a.covers(r) for a in mine) for r in outcome.flagged)
        noise = sum(r.kind in SHOWN_IN[kind] for r in false_alarms)
        table.append([kind, str(len(mine)), f"{caught / max(len(mine), 1):.2f}", f"{hits / max(hits + noise, 1):.2f}"])
    normal = len(outcome.rows) - len(attack_rows)
    table.append(["normal windows", str(normal), "", f"FP rate {len(false_alarms) / max(normal, 1):.4f}"])
    return table


def one_feature(train: Sequence[FeatureRow], test: Sequence[FeatureRow], rate: float) -> Outcome:
    flagged: list[FeatureRow] = []
    for kind, feature in BASELINE_FEATURES.items():
        column = FEATURE_NAMES[kind].index(feature)
        values = [r.values[column] for r in train if r.kind is kind]
        if not values:
            continue
        threshold = float(np.quantile(values, 1.0 - rate))
        flagged += [r for r in test if r.kind is kind and r.values[column] > threshold]
    return Outcome(flagged, list(test))


def run(args: argparse.Namespace, directory: Path) -> None:
    started = time.perf_counter()
    train_start, test_start = START, START + timedelta(days=args.train_days)
    ward = WardTraffic(args.seed)
    ordinary_days(ward, train_start, args.train_days)
    featurizer = WindowFeaturizer(timezone="Asia/Ho_Chi_Minh")
    train_rows: list[FeatureRow] = []
    for page in sensor_events(directory, "train", ward, auth_log(train_start, args.train_days, args.seed, [])):
        train_rows += featurizer.add(page)
    train_rows += featurizer.flush()
    test_ward = WardTraffic(args.seed + 1)
    ordinary_days(test_ward, test_start, args.test_days)
    injected = inject_network(test_ward, test_start, args.test_days, args.attacks)
    attacks, brute = brute_forces(test_start, args.test_days, args.attacks, args.seed)
    injected += brute
    lines = auth_log(test_start, args.test_days, args.seed + 1, attacks)
    test_rows: list[FeatureRow] = []
    for page in sensor_events(directory, "test", test_ward, lines):
        test_rows += featurizer.add(page)
    test_rows += featurizer.flush()
    prepared = time.perf_counter() - started
    ml = {anchoring: model_outcome(train_rows, test_rows, ModelSpec(target_alert_rate=args.target_rate,
                                                                    deviation_anchoring=anchoring))
          for anchoring in ANCHORINGS}
    baseline = one_feature(train_rows, test_rows, args.target_rate)
    console.print(f"Own data: {args.train_days} training days, {args.test_days} test days, {len(WORKSTATIONS)} "
                  f"workstations + a portal's auth log; {len(train_rows):,} training and {len(test_rows):,} test "
                  f"windows (5 min); sensors + features {prepared:.1f} s; seed {args.seed}")
    table = Table("attack kind", "attacks / windows", "ML recall", "ML precision", "ML (largest) recall",
                  "ML (largest) precision", "1-feature recall", "1-feature precision")
    columns = [evaluate(ml[a], injected) for a in ANCHORINGS] + [evaluate(baseline, injected)]
    for mine, largest, base in zip(*columns, strict=True):
        table.add_row(*mine, largest[2], largest[3], base[2], base[3])
    console.print(table)
    console.print("ML: the product's model (deviation guard anchored per feature); ML (largest): the same "
                  "with the guard anchored on the largest deviation as a whole (the product before 2026-11-23)")


def model_outcome(train_rows: Sequence[FeatureRow], test_rows: Sequence[FeatureRow], spec: ModelSpec) -> Outcome:
    outcomes = train_kinds(train_rows, spec, tenant=TENANT)
    detector = MlDetector([o.model for o in outcomes if o.model is not None])
    return Outcome([f.row for f in detector.score_rows(test_rows)], list(test_rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-days", type=int, default=7)
    parser.add_argument("--test-days", type=int, default=3)
    parser.add_argument("--attacks", type=int, default=8, help="of each kind")
    parser.add_argument("--target-rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    configure_logging(verbose=False)  # the sensors' per-batch logs, on stderr and only warnings
    with tempfile.TemporaryDirectory() as directory:
        run(args, Path(directory))


if __name__ == "__main__":
    main()
