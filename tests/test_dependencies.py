"""Every third-party module the shipped packages import is a declared dependency.

The README's first command installs `govsoc` without extras, so a runtime import of a package that
only the test extra brings (httpx was one) breaks `govsoc up --demo` on a fresh machine while
CI, which installs `.[test]`, stays green. Scale-out clients (`[scale]`) may be imported only by the
modules the store and bus registries load lazily.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "pipeline", "sensors", "detections", "playbooks", "api")
LAZY_SCALE_MODULES = re.compile(  # modules that import a scale-out client only when a URL asks for it
    r"^(pipeline/(bus/kafka|bus/checkpoints|bus/lag|store/elastic\w*|store/postgres\w*)|playbooks/runs_postgres"
    r"|detections/sigma/hunt_elastic)\.py$")


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return _names(project["dependencies"]), _names(project["optional-dependencies"]["scale"])


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _distributions(module: str) -> set[str]:
    mapping = importlib.metadata.packages_distributions()
    return {d.lower().replace("_", "-") for d in mapping.get(module, [])}


def test_shipped_code_imports_only_declared_dependencies() -> None:
    runtime, scale = _declared()
    own = set(PACKAGES) | set(sys.stdlib_module_names)
    problems = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            for module in sorted(_imports(path) - own):
                dists = _distributions(module)
                if dists & runtime:
                    continue
                if dists & scale and LAZY_SCALE_MODULES.match(relative):
                    continue
                problems.append(f"{relative}: imports {module!r} from {sorted(dists) or 'an unknown distribution'}")
    assert not problems, "\n".join(problems)
