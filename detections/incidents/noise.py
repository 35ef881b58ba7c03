"""Noise control between the detection engines and grouping, the same for every kind of alert.

In: alerts the store had not seen before (Sigma, correlation, ML, intel). Out: a `Decision` per
alert: keep it (it is grouped into an incident) or drop it as a duplicate, suppressed or flooded.
Dropped alerts stay in the store (the evidence is kept); they only join no incident.

Checks, in order:
1. suppression: an active `Suppression` (from configuration or the store) matches the alert's
   rule, entity (every pair it names) and tenant (the suppression's tenant or one below it);
2. dedup: an alert with the same key (tenant, rule, entity) as one kept less than
   `dedup_window_s` before it (0: off);
3. flood guard: more than `flood_max_alerts` kept alerts of one (rule, tenant) within
   `flood_window_s` (0: off).

Times are the alerts' own timestamps, never the wall clock, so a replay decides as the live run
did. State (the last kept alert per key, recent alerts per rule and tenant) is per process, bounded
by the windows: entries older than the window are pruned as alerts arrive in time order.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from config.settings import NoiseSettings, SuppressionRule
from config.tenants import TenantTree
from pipeline.ids import stable_id
from pipeline.records import Alert, Suppression

CONFIG_ACTOR = "config:incidents.noise"
_CONFIG_CREATED = datetime(1970, 1, 1, tzinfo=UTC)


class Verdict(StrEnum):
    KEEP = "keep"
    SUPPRESSED = "suppressed"
    DUPLICATE = "duplicate"
    FLOODED = "flooded"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: str = ""

    @property
    def is_kept(self) -> bool:
        return self.verdict is Verdict.KEEP


KEEP = Decision(Verdict.KEEP)
_Covering = tuple[Suppression, frozenset[str] | None]  # a suppression and the tenants it covers (None: all)


def dedup_key(alert: Alert) -> str:
    entity = "|".join(f"{k}={v}" for k, v in sorted(alert.entity.items()))
    return stable_id("dedup", alert.tenant, alert.rule_id, entity)


def suppression_from_rule(rule: SuppressionRule) -> Suppression:
    """A configured global exception as a `Suppression` (tenant "*" when it covers every tenant)."""
    tenant = rule.tenant or "*"
    entity = dict(rule.entity)
    return Suppression(id=stable_id("suppression", tenant, rule.rule_id, str(sorted(entity.items())), rule.reason),
                       tenant=tenant, reason=rule.reason, created_by=CONFIG_ACTOR, created=_CONFIG_CREATED,
                       expires=rule.expires, rule_id=rule.rule_id, entity=entity)


def suppression_id(suppression: Suppression) -> str:
    """The id a new suppression gets: its tenant, what it matches, its reason and when it was made."""
    entity = str(sorted(suppression.entity.items()))
    return stable_id("suppression", suppression.tenant, suppression.rule_id, entity, suppression.reason,
                     suppression.created.isoformat())


def suppression_matches(suppression: Suppression, alert: Alert, tree: TenantTree) -> bool:
    """Does the suppression cover this alert at the alert's time (rule, entity, tenant, expiry)?"""
    tenants = _covered_tenants(suppression, tree)
    return (tenants is None or alert.tenant in tenants) and _matches_alert(suppression, alert)


def _covered_tenants(suppression: Suppression, tree: TenantTree) -> frozenset[str] | None:
    """The tenants a suppression covers (None: every tenant; empty: a tenant the tree lacks)."""
    if suppression.tenant == "*":
        return None
    return tree.scope(suppression.tenant).tenant_ids if suppression.tenant in tree else frozenset()


def _matches_alert(suppression: Suppression, alert: Alert) -> bool:
    """Expiry, rule and entity; the tenant is checked by the caller."""
    if not suppression.is_active(alert.timestamp):
        return False
    if suppression.rule_id is not None and suppression.rule_id != alert.rule_id:
        return False
    return all(alert.entity.get(k) == v for k, v in suppression.entity.items())


def preview_suppression(suppression: Suppression, alerts: Iterable[Alert], tree: TenantTree) -> int:
    """How many of `alerts` (say, the last 30 days from the store) the suppression would have hidden;
    shown before an exception is saved."""
    return sum(1 for alert in alerts if suppression_matches(suppression, alert, tree))


class NoiseFilter:
    """Decides, alert by alert, what is grouped; counts what it dropped in `dropped`."""

    def __init__(self, settings: NoiseSettings, tree: TenantTree, suppressions: Sequence[Suppression] = ()) -> None:
        self._tree = tree
        self._dedup_window = timedelta(seconds=settings.dedup_window_s)
        self._flood_window = timedelta(seconds=settings.flood_window_s)
        self._flood_max = settings.flood_max_alerts
        self._configured = self._with_tenants(suppression_from_rule(rule) for rule in settings.suppressions)
        self._suppressions = self._configured + self._with_tenants(suppressions)
        self._last_kept: OrderedDict[str, datetime] = OrderedDict()
        self._recent: dict[tuple[str, str], deque[datetime]] = {}
        self.dropped: Counter[Verdict] = Counter()

    def set_suppressions(self, stored: Sequence[Suppression]) -> None:
        """Replace the stored suppressions (the configured ones stay)."""
        self._suppressions = self._configured + self._with_tenants(stored)

    def _with_tenants(self, suppressions: Iterable[Suppression]) -> tuple[_Covering, ...]:
        """Each suppression with the tenants it covers, worked out once rather than per alert."""
        return tuple((s, _covered_tenants(s, self._tree)) for s in suppressions)

    def decide(self, alert: Alert) -> Decision:
        decision = self._check(alert)
        if decision.is_kept:
            self._remember(alert)
        else:
            self.dropped[decision.verdict] += 1
        return decision

    def _check(self, alert: Alert) -> Decision:
        for suppression, tenants in self._suppressions:
            if (tenants is None or alert.tenant in tenants) and _matches_alert(suppression, alert):
                return Decision(Verdict.SUPPRESSED, f"suppression {suppression.id}: {suppression.reason}")
        if self._dedup_window:
            last = self._last_kept.get(dedup_key(alert))
            if last is not None and abs(alert.timestamp - last) < self._dedup_window:
                return Decision(Verdict.DUPLICATE, f"same rule and entity as an alert at {last.isoformat()}")
        if self._flood_max:
            recent = self._window(alert)
            if len(recent) >= self._flood_max:
                return Decision(Verdict.FLOODED, f"more than {self._flood_max} alerts of rule {alert.rule_id} "
                                                 f"in tenant {alert.tenant} within {self._flood_window}")
        return KEEP

    def _window(self, alert: Alert) -> deque[datetime]:
        recent = self._recent.setdefault((alert.rule_id, alert.tenant), deque())
        while recent and recent[0] <= alert.timestamp - self._flood_window:
            recent.popleft()
        return recent

    def _remember(self, alert: Alert) -> None:
        if self._dedup_window:
            key = dedup_key(alert)
            self._last_kept.pop(key, None)
            self._last_kept[key] = alert.timestamp
            while self._last_kept:
                oldest_key, oldest = next(iter(self._last_kept.items()))
                if oldest > alert.timestamp - self._dedup_window:
                    break
                del self._last_kept[oldest_key]
        if self._flood_max:
            self._window(alert).append(alert.timestamp)
