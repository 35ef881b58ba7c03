"""The service-watch detector: check events in time order -> alerts, one per episode.

In: `service_watch` events (sensors' checks, any vantage point, in timestamp order) and the
`ServiceWatchSettings` that say what each target should look like. Out: `Alert`s of kind
`service_watch` (rules.py). Events of other datasets are ignored.

Contract:
- Outage: declared once `outage.consecutive_failures` checks in a row failed from each of at least
  `outage.vantage_points` vantage points; a success from a vantage point resets its streak. When
  the condition no longer holds, a recovery alert (same rule and entity, informational, tag
  `service_watch.recovered`) joins the outage's incident and clears it.
- Every other condition is an episode per (tenant, target, rule): one alert when it starts (or
  when its subject changes: another certificate, another answer set), none while it lasts, and
  it ends silently when a check no longer shows it. So a certificate expiring in 3 days raises one
  alert, not one a minute.
- Defacement: the first `defacement.learn_checks` available pages make the baseline; a page
  judged benign replaces it (daily news does not accumulate drift); a defaced page does not, so
  the "before" stays the last good page until the site is restored. The alert keeps both
  snapshots' event ids and a text diff in its description.
- Deterministic: alert ids derive from the event that opened the episode (rules.py); state is per
  process, bounded by the number of configured targets (plus targets seen only in events). A
  restarted worker rebuilds it by processing the last day's `service_watch` events from the store
  first: the alerts that replay raises have the ids already stored, so publishing them again is a
  no-op (the store keeps the first copy).
- Order: events are judged in timestamp order within a call; a check that arrives late (a sensor
  shipping its spool after an outage of its uplink) is judged when it arrives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from pydantic import ValidationError

from config.watch import ServiceWatchSettings, WatchExpect, WatchTarget
from detections.watch import rules
from detections.watch.defacement import compare, diff_evidence
from detections.watch.observe import DATASET, Observation, Page, judge_availability
from detections.watch.rules import Finding, make_alert
from pipeline.records import Alert, Event, to_iso

log = structlog.get_logger(__name__)

MAX_EVIDENCE = 20
UNTRUSTED_SKIP = {10, 62}  # expired, hostname mismatch: their own rules say it better


@dataclass
class _Streak:
    failures: int = 0
    event_ids: list[str] = field(default_factory=list)  # the failed checks' events, the last MAX_EVIDENCE


@dataclass
class _TargetState:
    streaks: dict[str, _Streak] = field(default_factory=dict)
    down_since: datetime | None = None
    episodes: dict[str, str] = field(default_factory=dict)  # rule id -> the episode's subject
    learning: list[tuple[Page, str]] = field(default_factory=list)
    baseline: tuple[Page, str] | None = None  # (page, id of the event that showed it)


class WatchDetector:
    def __init__(self, settings: ServiceWatchSettings) -> None:
        self._settings = settings
        self._state: dict[tuple[str, str], _TargetState] = {}

    def process(self, events: Iterable[Event]) -> list[Alert]:
        alerts: list[Alert] = []
        # Other datasets are dropped before the sort: the detect step hands over whole batches,
        # mostly events that are not checks.
        checks = [e for e in events if e.get("event.dataset") == DATASET]
        for event in sorted(checks, key=lambda e: e.timestamp):
            obs = Observation.of(event)
            if obs is None:
                continue
            target = self._target(obs)
            if target is None:
                continue
            findings = self._judge(obs, target, self._state.setdefault((obs.tenant, target.id), _TargetState()))
            alerts.extend(make_alert(f, obs.at) for f in findings)
        return alerts

    def baseline(self, tenant: str, target_id: str) -> Page | None:
        state = self._state.get((tenant, target_id))
        return state.baseline[0] if state and state.baseline else None

    def _target(self, obs: Observation) -> WatchTarget | None:
        target = self._settings.target(obs.tenant, obs.target_id)
        if target is not None:
            return target
        url, domain = obs.event.get("url.full"), obs.event.get("govsoc.watch.hostname")
        try:  # a target this configuration does not know: judge only what needs no expectation
            if isinstance(url, str) and url:
                return WatchTarget(id=obs.target_id, tenant=obs.tenant, url=url, expect=WatchExpect(status=()))
            return WatchTarget(id=obs.target_id, tenant=obs.tenant, domain=str(domain or obs.target_id))
        except ValidationError as e:
            log.warning("watch_event_skipped", target=obs.target_id, tenant=obs.tenant, reason=str(e))
            return None

    def _judge(self, obs: Observation, target: WatchTarget, state: _TargetState) -> list[Finding]:
        available, why = judge_availability(obs, target)
        findings = [f for f in (self._outage(obs, target, state, available, why),) if f is not None]
        conditions = {**self._certificate(obs, target), **self._dns(obs, target)}
        if available and obs.page is not None:
            conditions.update(self._content(obs, target, state, obs.page))
        checked = _checked_rules(obs, target, available)
        for rule_id in checked:
            found = conditions.get(rule_id)
            if found is None:
                state.episodes.pop(rule_id, None)
                continue
            subject, finding = found
            if state.episodes.get(rule_id) != subject:
                state.episodes[rule_id] = subject
                findings.append(finding)
        return findings

    def _outage(self, obs: Observation, target: WatchTarget, state: _TargetState, available: bool,
                why: str) -> Finding | None:
        policy = self._settings.outage
        streak = state.streaks.setdefault(obs.vantage, _Streak())
        if available:
            streak.failures, streak.event_ids = 0, []
        else:
            streak.failures += 1
            streak.event_ids = [*streak.event_ids, obs.event.id][-MAX_EVIDENCE:]
        failing = sorted((v, s) for v, s in state.streaks.items() if s.failures >= policy.consecutive_failures)
        if state.down_since is None and len(failing) >= policy.vantage_points:
            state.down_since = obs.at
            where = ", ".join(f"{v} ({s.failures} checks)" for v, s in failing)
            return Finding(rules.OUTAGE, target, obs.event.id,
                           tuple(dict.fromkeys(i for _, s in failing for i in s.event_ids)),
                           f"{_name(target)} unreachable from {where} since {to_iso(obs.at)}: {why}")
        if state.down_since is not None and available and len(failing) < policy.vantage_points:
            minutes = (obs.at - state.down_since).total_seconds() / 60
            state.down_since = None
            return Finding(rules.RECOVERED, target, obs.event.id, (obs.event.id,),
                           f"{_name(target)} reachable again from {obs.vantage} after about {minutes:.0f} min")
        return None

    def _certificate(self, obs: Observation, target: WatchTarget) -> dict[str, tuple[str, Finding]]:
        tls = obs.tls
        if tls is None:
            return {}
        out: dict[str, tuple[str, Finding]] = {}

        def add(rule: rules.WatchRule, text: str, subject: str = tls.cert_sha256) -> None:
            out[rule.id] = (subject, Finding(rule, target, obs.event.id, (obs.event.id,), f"{_name(target)}: {text}"))

        days = tls.days_to_expiry
        if days is not None and days <= 0:
            add(rules.CERT_EXPIRED, f"the certificate expired {-days:.1f} days ago (issuer {tls.issuer})")
        elif days is not None and days <= self._settings.certificates.warn_days:
            add(rules.CERT_EXPIRING, f"the certificate expires in {days:.1f} days (issuer {tls.issuer})")
        if not tls.verified and tls.verify_code not in UNTRUSTED_SKIP:
            kind = "self-signed" if tls.self_signed else "not trusted"
            add(rules.CERT_UNTRUSTED, f"the certificate is {kind}: {tls.verify_error} (issuer {tls.issuer})")
        if not tls.hostname_match:
            add(rules.CERT_NAME, f"the certificate names {', '.join(tls.names) or 'nothing'}, "
                                 f"not {target.hostname}")
        expect = target.expect
        if expect.cert_issuer and expect.cert_issuer not in tls.issuer:
            add(rules.CERT_UNEXPECTED, f"issuer {tls.issuer!r}, expected one with {expect.cert_issuer!r}")
        elif expect.spki_sha256 and tls.spki_sha256 not in expect.spki_sha256:
            add(rules.CERT_UNEXPECTED, f"public key {tls.spki_sha256[:16]}... is not a pinned key")
        if tls.legacy_protocols or tls.weak_cipher:
            weak = [*tls.legacy_protocols, *([tls.cipher] if tls.weak_cipher else [])]
            add(rules.TLS_WEAK, f"offers {', '.join(weak)}", "|".join(weak))
        return out

    def _dns(self, obs: Observation, target: WatchTarget) -> dict[str, tuple[str, Finding]]:
        answers = obs.dns_answers
        if answers is None or not obs.dns_code:
            return {}
        name = obs.event.get("dns.question.name") or target.hostname

        def finding(rule: rules.WatchRule, text: str) -> Finding:
            return Finding(rule, target, obs.event.id, (obs.event.id,), f"{name}: {text}")

        if obs.dns_code == "NXDOMAIN":
            return {rules.DNS_NXDOMAIN.id: ("NXDOMAIN", finding(rules.DNS_NXDOMAIN, "the resolver says NXDOMAIN"))}
        if obs.dns_code == "NOERROR" and not answers:
            types = ", ".join(target.record_types)
            return {rules.DNS_MISSING.id: ("empty", finding(rules.DNS_MISSING, f"no {types} record"))}
        expected = target.expect.dns_answers
        if expected and answers and set(answers) != set(expected):
            text = f"answers {', '.join(answers)}; expected {', '.join(expected)}"
            return {rules.DNS_CHANGED.id: ("|".join(answers), finding(rules.DNS_CHANGED, text))}
        return {}

    def _content(self, obs: Observation, target: WatchTarget, state: _TargetState,
                 page: Page) -> dict[str, tuple[str, Finding]]:
        banned = [t for t in target.expect.must_not_contain if t in page.text]
        if state.baseline is None:
            if not banned:
                state.learning.append((page, obs.event.id))
                if len(state.learning) >= self._settings.defacement.learn_checks:
                    state.baseline, state.learning = state.learning[-1], []
            return {}
        before, before_id = state.baseline
        verdict = compare(before, page, self._settings.defacement.extra_phrases)
        reasons = [*(f"forbidden text {t!r}" for t in banned), *verdict.reasons]
        if not reasons:
            state.baseline = (page, obs.event.id)
            return {}
        text = (f"{_name(target)} looks defaced ({'; '.join(reasons)}).\n"
                f"Before ({before_id}, page {before.fingerprint}) / after ({obs.event.id}, page "
                f"{page.fingerprint}):\n{diff_evidence(before, page)}")
        finding = Finding(rules.DEFACEMENT, target, obs.event.id, (before_id, obs.event.id), text)
        return {rules.DEFACEMENT.id: ("defaced", finding)}


def _checked_rules(obs: Observation, target: WatchTarget, available: bool) -> Sequence[str]:
    """The episode rules this check could see (an episode ends only when its condition was checked)."""
    checked: list[str] = []
    if obs.tls is not None:
        checked += [rules.CERT_EXPIRED.id, rules.CERT_EXPIRING.id, rules.CERT_UNTRUSTED.id, rules.CERT_NAME.id,
                    rules.CERT_UNEXPECTED.id, rules.TLS_WEAK.id]
    if obs.dns_answers is not None and obs.dns_code:
        checked += [rules.DNS_NXDOMAIN.id, rules.DNS_MISSING.id, rules.DNS_CHANGED.id]
    if available and obs.page is not None:
        checked.append(rules.DEFACEMENT.id)
    return checked


def _name(target: WatchTarget) -> str:
    return target.url or target.address or target.hostname
