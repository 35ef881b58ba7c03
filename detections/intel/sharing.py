"""Who may see an indicator and its sightings: the TLP rules over the tenant tree, in one place.

The store's SQL (store.py) and the matcher (match.py) both follow these rules; the tests check the
SQL against `can_see` on every pair of tenants.

A reader is a `TenantScope`: its root tenant R and the subtree D below it. "Near" R means R's
ancestors, R itself and D (a tenant sees what is shared down to it and oversees what its subtree
publishes). For an indicator published at P:
- TLP:CLEAR and TLP:GREEN: every tenant of the network (the community the marking allows).
- TLP:AMBER: P is near R (R is in P's subtree, or is P's ancestor), or one of the tenants the
  publisher widened it to (`shared_with`) is near R. A sibling of P sees nothing.
- TLP:AMBER+STRICT: P is near R; it is never widened.
- TLP:RED: R is P or one of the named `recipients`, nobody else: not the national centre, and not
  an all-tenant scope (`TenantScope.everything()`, the command line) unless its root is named.
An all-tenant scope sees every indicator but the TLP:RED ones above.

A sighting (indicator I seen at tenant S) is visible when S or I's publisher is R or below it
(the sighting tenant, the publisher and their ancestors; never a sibling), and I itself is
visible to the reader: TLP wins over the tree.
"""

from __future__ import annotations

from config.tenants import TenantScope, TenantTree
from detections.intel.model import Indicator, Tlp

OPEN_TLPS = frozenset({Tlp.CLEAR, Tlp.GREEN})


def near_tenants(scope: TenantScope, tree: TenantTree) -> frozenset[str]:
    """R's ancestors, R and its subtree (empty for an all-tenant scope, which needs no list)."""
    if scope.is_all:
        return frozenset()
    ancestors = tree.ancestors(scope.root) if scope.root in tree else []
    return frozenset({*ancestors, scope.root, *scope.tenant_ids})


def can_see(indicator: Indicator, scope: TenantScope, near: frozenset[str]) -> bool:
    """Whether the reader of `scope` (with `near = near_tenants(scope, tree)`) may see `indicator`."""
    if indicator.tlp in OPEN_TLPS:
        return True
    if indicator.tlp is Tlp.RED:
        return scope.root == indicator.publisher or scope.root in indicator.recipients
    if scope.is_all or indicator.publisher in near:
        return True
    return indicator.tlp is Tlp.AMBER and any(t in near for t in indicator.shared_with)


class Audience:
    """`can_see` for single tenants, cached per tenant: the matcher asks once per hit."""

    def __init__(self, tree: TenantTree) -> None:
        self._tree = tree
        self._cache: dict[str, tuple[TenantScope, frozenset[str]]] = {}

    def allows(self, indicator: Indicator, tenant: str) -> bool:
        if indicator.tlp in OPEN_TLPS:
            return True
        found = self._cache.get(tenant)
        if found is None:
            if tenant not in self._tree:
                return False  # an event of an unknown tenant sees only open intelligence
            scope = self._tree.scope(tenant)
            found = (scope, near_tenants(scope, self._tree))
            self._cache[tenant] = found
        return can_see(indicator, *found)
