"""The tenant tree built from configuration, and the scopes that reads are limited to.

A `TenantScope` is the only way a store read learns which tenants it may return: a user at a
province gets the province and every commune below it, never a sibling. Scopes are made by the
tree (or `TenantScope.everything()` for local administration from the command line).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from config.settings import TenantConfig, TreeError


@dataclass(frozen=True, slots=True)
class TenantScope:
    """The set of tenant ids a caller may read. `is_all` skips the filter (national centre, CLI)."""

    root: str
    tenant_ids: frozenset[str]
    is_all: bool = False

    def __contains__(self, tenant: object) -> bool:
        return self.is_all or tenant in self.tenant_ids

    @classmethod
    def everything(cls) -> TenantScope:
        return cls(root="*", tenant_ids=frozenset(), is_all=True)


class TenantTree:
    """Parent/child relations of tenants; validated on construction (one root, no cycles)."""

    def __init__(self, tenants: dict[str, TenantConfig], children: dict[str, list[str]], root: str) -> None:
        self._tenants = tenants
        self._children = children
        self.root = root

    @classmethod
    def from_config(cls, configs: Iterable[TenantConfig]) -> TenantTree:
        """Index the tenants; raise `TreeError` at the first problem, with its key path.

        Checked in order: duplicate ids, unknown parents, cycles, then a single root (with the
        first three ruled out, a tree without a root is an empty one).
        """
        tenants: dict[str, TenantConfig] = {}
        for index, tenant in enumerate(configs):
            if tenant.id in tenants:
                raise TreeError(f"duplicate tenant id {tenant.id!r}", ("tenants", index, "id"))
            tenants[tenant.id] = tenant
        index_of = {tid: i for i, tid in enumerate(tenants)}
        children: dict[str, list[str]] = {tid: [] for tid in tenants}
        for tenant in tenants.values():
            if tenant.parent is None:
                continue
            if tenant.parent not in tenants:
                raise TreeError(f"unknown parent {tenant.parent!r}", ("tenants", index_of[tenant.id], "parent"))
            children[tenant.parent].append(tenant.id)
        cls._check_no_cycles(tenants, index_of)
        roots = [t.id for t in tenants.values() if t.parent is None]
        if not roots:
            raise TreeError("no tenants: the tree needs a root (a tenant with no parent)", ("tenants",))
        if len(roots) > 1:
            reason = f"tenant {roots[1]!r} has no parent, but {roots[0]!r} is already the root"
            raise TreeError(reason, ("tenants", index_of[roots[1]], "parent"))
        return cls(tenants, children, roots[0])

    @staticmethod
    def _check_no_cycles(tenants: dict[str, TenantConfig], index_of: dict[str, int]) -> None:
        """Raise at the first cycle met in file order, located at the `parent` of a tenant on it.

        Linear overall: a chain already known to reach the root is not walked again.
        """
        reaches_root: set[str] = set()
        for start in tenants:
            chain: dict[str, None] = {}  # an ordered set: the path walked from `start`
            current: str | None = start
            while current is not None and current not in reaches_root:
                if current in chain:
                    on_cycle = list(chain)[list(chain).index(current) :]
                    path = " -> ".join([*on_cycle, current])
                    raise TreeError(f"tenant cycle: {path}", ("tenants", index_of[current], "parent"))
                chain[current] = None
                current = tenants[current].parent
            reaches_root.update(chain)

    def __contains__(self, tenant: object) -> bool:
        return tenant in self._tenants

    def __iter__(self) -> Iterator[TenantConfig]:
        return iter(self._tenants.values())

    def __len__(self) -> int:
        return len(self._tenants)

    def get(self, tenant: str) -> TenantConfig:
        return self._tenants[tenant]

    def children(self, tenant: str) -> list[str]:
        return list(self._children[tenant])

    def ancestors(self, tenant: str) -> list[str]:
        """The tenant's parents up to the root, nearest first."""
        out: list[str] = []
        parent = self._tenants[tenant].parent
        while parent is not None:
            out.append(parent)
            parent = self._tenants[parent].parent
        return out

    def depth(self, tenant: str) -> int:
        return len(self.ancestors(tenant))

    def descendants(self, tenant: str) -> list[str]:
        """The tenant and everything below it, parents before children."""
        out, stack = [], [tenant]
        while stack:
            current = stack.pop()
            out.append(current)
            stack.extend(reversed(self._children[current]))
        return out

    def scope(self, tenant: str) -> TenantScope:
        """What a user of `tenant` may read: the tenant and its subtree."""
        if tenant not in self._tenants:
            raise KeyError(tenant)
        return TenantScope(root=tenant, tenant_ids=frozenset(self.descendants(tenant)), is_all=tenant == self.root)
