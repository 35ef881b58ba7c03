"""Demo step 6: the national centre publishes the brute-force source as an indicator; it is sighted again.

After the day's logs are replayed (api/demo/setup.py), `publish_and_sight`:
1. publishes 203.0.113.77 at the national centre (TLP:AMBER, so every agency below it may match
   it; confidence 90, the ATT&CK credential-access phase, valid for 30 days);
2. writes and replays Đà Nẵng's portal log with two quiet SSH attempts from that address, ten
   minutes apart: below the brute-force rule's threshold, so only intelligence catches them;
3. hunts the day's stored events of every tenant with the published indicators (the same matcher
   as `govsoc hunt --intel`), records the sightings and sends the alerts through the incident
   pipeline: an intel incident at Hà Nội (where the brute force was) and one at Đà Nẵng, both
   visible to the national centre, with the sightings of both.
Deterministic: the lines come from a seed and the alert ids from the events, so running it twice
adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from api.cli.hunt import hunt_events
from api.demo.authlog import Attack, AuthLogSpec, generate_auth_log
from api.demo.setup import ATTACKER, demo_start
from api.wiring import Runtime, open_intel_store
from config.tenants import TenantScope
from detections.intel import ImportOptions, IndicatorType, IntelMatcher, Tlp, sightings_of
from detections.intel.model import make_indicator
from pipeline.bus import topics
from sensors.files import FileSource

SECOND_AGENCY = ("danang", "danang-s1")
SOURCE = "Trung tâm giám sát quốc gia (national centre)"


@dataclass(frozen=True, slots=True)
class IntelDemoStats:
    indicator_id: str
    alerts: int
    sightings: dict[str, int] = field(default_factory=dict)  # tenant -> events that carried it


def quiet_attempts_log(start: datetime) -> list[str]:
    """Two failed SSH logins from the attacker at Đà Nẵng's portal, ten minutes apart, in the afternoon."""
    attack = Attack(source=ATTACKER, at=start + timedelta(hours=16, minutes=3), attempts=2,
                    seconds_between=600.0, users=("admin", "quantri"), success_user=None)
    return generate_auth_log(AuthLogSpec(host="portal", start=start, lines=2, seed=41, attacks=(attack,)))


def publish_and_sight(runtime: Runtime, now: datetime) -> IntelDemoStats:
    """Publish, replay the second agency's log, hunt, send; returns what was raised and sighted."""
    start = demo_start(now)
    store = open_intel_store(runtime.settings, runtime.tree)
    try:
        indicator = make_indicator(
            ImportOptions(publisher=runtime.tree.root, source=SOURCE), IndicatorType.IPV4, ATTACKER,
            tlp=Tlp.AMBER, confidence=90, valid_from=start, valid_until=now + timedelta(days=30),
            name="Nguồn dò mật khẩu SSH vào cổng thông tin Hà Nội (SSH brute-force source)",
            kill_chain=("mitre-attack:credential-access",), labels=("malicious-activity",))
        store.publish([indicator])
        tenant, sensor = SECOND_AGENCY
        path = runtime.settings.data_dir / "demo" / f"{tenant}-intel-auth.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(quiet_attempts_log(start)) + "\n", encoding="utf-8")
        runtime.pipeline.replay([path], FileSource(tenant=tenant, sensor=sensor, format="auth"))
        everything = TenantScope.everything()
        matcher = IntelMatcher(store.matchable(everything), runtime.tree)
        alerts = hunt_events(runtime.events, everything, matcher, start)
        store.record_sightings(sightings_of(alerts))
        if alerts:
            runtime.bus.publish(topics.ALERTS, [(a.tenant, a.to_json()) for a in alerts])
            runtime.pipeline.drain()
        sightings = {s.tenant: s.count for s in store.sightings(everything, indicator_id=indicator.id)}
        return IntelDemoStats(indicator_id=indicator.id, alerts=len(alerts), sightings=sightings)
    finally:
        store.close()
