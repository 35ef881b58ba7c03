"""TenantTree and TenantScope: who may read what, and the tree checks made on construction."""

from __future__ import annotations

import time

import pytest

from config.settings import TenantConfig, TenantKind, TreeError
from config.tenants import TenantScope, TenantTree


def tree_of(*pairs: tuple[str, str | None]) -> TenantTree:
    """A tree from (id, parent) pairs, in the order given."""
    return TenantTree.from_config(TenantConfig(id=tid, name=tid, parent=parent) for tid, parent in pairs)


# national -> province -> district -> commune, and a ministry beside the province
DEEP = tree_of(
    ("national", None),
    ("ministry", "national"),
    ("province", "national"),
    ("district", "province"),
    ("commune-a", "district"),
    ("commune-b", "district"),
    ("other-district", "province"),
)


def test_descendants_are_the_tenant_and_below_parents_first() -> None:
    assert DEEP.descendants("province") == [
        "province",
        "district",
        "commune-a",
        "commune-b",
        "other-district",
    ]
    assert DEEP.descendants("commune-a") == ["commune-a"]
    assert len(DEEP.descendants("national")) == len(DEEP) == 7


def test_ancestors_nearest_first_and_depth() -> None:
    assert DEEP.ancestors("commune-b") == ["district", "province", "national"]
    assert DEEP.ancestors("national") == []
    assert [DEEP.depth(t) for t in ("national", "province", "district", "commune-a")] == [0, 1, 2, 3]


def test_children_in_file_order() -> None:
    assert DEEP.children("national") == ["ministry", "province"]
    assert DEEP.children("commune-a") == []


def test_scope_holds_the_subtree_and_never_a_sibling() -> None:
    scope = DEEP.scope("province")
    assert scope.root == "province" and not scope.is_all
    assert "commune-b" in scope and "province" in scope
    assert "ministry" not in scope and "national" not in scope
    assert "district" not in DEEP.scope("other-district")


def test_scope_of_the_root_is_all() -> None:
    scope = DEEP.scope("national")
    assert scope.is_all
    assert scope.tenant_ids == frozenset(t.id for t in DEEP)
    assert "a-tenant-added-later" in scope  # is_all skips the filter


def test_scope_of_an_unknown_tenant() -> None:
    with pytest.raises(KeyError):
        DEEP.scope("nowhere")


def test_everything_scope() -> None:
    scope = TenantScope.everything()
    assert scope.is_all and "any" in scope


def test_get_and_membership() -> None:
    assert DEEP.get("district").parent == "province"
    assert "district" in DEEP and "nowhere" not in DEEP
    assert DEEP.root == "national"


def test_default_kind_is_agency() -> None:
    assert DEEP.get("commune-a").kind is TenantKind.AGENCY


@pytest.mark.parametrize(
    ("pairs", "reason", "loc"),
    [
        ([("n", None), ("a", "b"), ("b", "a")], "tenant cycle: a -> b -> a", ("tenants", 1, "parent")),
        (
            [("n", None), ("c", "a"), ("a", "b"), ("b", "a")],
            "tenant cycle: a -> b -> a",
            ("tenants", 2, "parent"),
        ),
        ([("n", None), ("s", "s")], "tenant cycle: s -> s", ("tenants", 1, "parent")),
        ([("n", None), ("a", "x")], "unknown parent 'x'", ("tenants", 1, "parent")),
        ([("n", None), ("n", "n")], "duplicate tenant id 'n'", ("tenants", 1, "id")),
        (
            [("n", None), ("a", "n"), ("m", None)],
            "tenant 'm' has no parent, but 'n' is already the root",
            ("tenants", 2, "parent"),
        ),
        ([], "no tenants: the tree needs a root (a tenant with no parent)", ("tenants",)),
    ],
)
def test_unsound_trees_name_the_entry(
    pairs: list[tuple[str, str | None]], reason: str, loc: tuple[str | int, ...]
) -> None:
    with pytest.raises(TreeError) as caught:
        tree_of(*pairs)
    assert (str(caught.value), caught.value.loc) == (reason, loc)


def national_network() -> list[tuple[str, str | None]]:
    """3,400 tenants: the centre, 30 ministries, 34 provinces and 3,335 communes below them."""
    pairs: list[tuple[str, str | None]] = [("national", None)]
    pairs += [(f"ministry-{m}", "national") for m in range(30)]
    pairs += [(f"province-{p}", "national") for p in range(34)]
    pairs += [(f"commune-{c}", f"province-{c % 34}") for c in range(3335)]
    return pairs


def test_a_national_network_builds_fast() -> None:
    pairs = national_network()
    configs = [TenantConfig(id=tid, name=tid, parent=parent) for tid, parent in pairs]
    started = time.perf_counter()
    tree = TenantTree.from_config(configs)
    scope = tree.scope("province-7")
    elapsed = time.perf_counter() - started
    assert len(tree) == 3400
    assert len(scope.tenant_ids) == 1 + len(range(7, 3335, 34))
    assert elapsed < 0.5, f"{elapsed:.3f}s"


def test_a_deep_chain_builds_fast() -> None:
    """Cycle checking is linear: each tenant's chain to the root is walked once."""
    configs = [TenantConfig(id=f"t{i}", name="t", parent=f"t{i - 1}" if i else None) for i in range(3400)]
    started = time.perf_counter()
    tree = TenantTree.from_config(configs)
    elapsed = time.perf_counter() - started
    assert tree.depth("t3399") == 3399
    assert elapsed < 0.5, f"{elapsed:.3f}s"
