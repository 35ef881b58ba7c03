"""`govsoc bundle OUT`: a wheelhouse with govsoc and every dependency, for networks with no internet.

Run it on a machine that reaches a package index (PyPI, or a mirror pip is configured for), with
the same Python version and platform as the servers (wheels are per interpreter and platform).
It runs `pip wheel` on the govsoc source tree with the chosen extras, so OUT holds a wheel of
govsoc itself and one of each dependency (built from source where no wheel exists), then writes
`OUT/requirements.txt` (the exact pins) and `OUT/SHA256SUMS`. On the isolated network:

    python3.11 -m venv /opt/govsoc/venv
    /opt/govsoc/venv/bin/pip install --no-index --find-links OUT -r OUT/requirements.txt

(docs/deploy.md). Nothing is installed here; OUT may already hold wheels (they are reused).
Exit 0 ok, 2 usage (no source tree), 3 pip failed (its last lines are shown).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from api.cli.common import ExitCode, QuietOption, err_console, fail, out_console
from config.errors import GovsocError

DEFAULT_EXTRAS = ("scale",)
_SAVED = re.compile(r"^(Saved|Collecting|File was already downloaded|Created wheel)\b")
_WHEEL = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)-")


class BundleError(GovsocError):
    """pip could not build the wheelhouse (the reason is pip's own last lines)."""


def source_tree() -> Path | None:
    """The govsoc source tree this installation runs from (an editable or source install)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def build_bundle(out: Path, source: Path, extras: tuple[str, ...], on_progress: Callable[[int], None]) -> list[Path]:
    """`pip wheel` govsoc[extras] and its dependencies into `out`; returns the wheels there."""
    out.mkdir(parents=True, exist_ok=True)
    target = f"{source}[{','.join(extras)}]" if extras else str(source)
    argv = [sys.executable, "-m", "pip", "wheel", "--wheel-dir", str(out), target]
    tail: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as pip:
        for line in pip.stdout or ():
            tail = [*tail[-19:], line.rstrip()]
            if _SAVED.match(line.strip()):
                on_progress(1)
    if pip.returncode != 0:
        raise BundleError(f"pip wheel {target} into {out} failed (exit {pip.returncode}):\n" + "\n".join(tail))
    wheels = sorted(out.glob("*.whl"))
    _write_manifest(out, wheels)
    return wheels


def _write_manifest(out: Path, wheels: list[Path]) -> None:
    """`requirements.txt` pinning every wheel's name and version, and `SHA256SUMS`."""
    pins = []
    for wheel in wheels:
        found = _WHEEL.match(wheel.name)
        if found:
            pins.append(f"{found['name'].replace('_', '-')}=={found['version']}")
    (out / "requirements.txt").write_text("\n".join(sorted(pins, key=str.lower)) + "\n", encoding="utf-8")
    sums = [f"{hashlib.sha256(w.read_bytes()).hexdigest()}  {w.name}" for w in wheels]
    (out / "SHA256SUMS").write_text("\n".join(sums) + "\n", encoding="utf-8")


def bundle(
    out: Annotated[Path, typer.Argument(help="Directory for the wheelhouse (created if missing).")],
    extras: Annotated[str, typer.Option(help="Comma-separated extras of govsoc.")] = ",".join(DEFAULT_EXTRAS),
    source: Annotated[Path | None, typer.Option(help="The govsoc source tree (default: this installation's).")] = None,
    quiet: QuietOption = False,
) -> None:
    """Write a wheelhouse of govsoc and every dependency into OUT, for offline installation."""
    tree = source or source_tree()
    if tree is None or not (tree / "pyproject.toml").is_file():
        fail("--source: no govsoc source tree (pyproject.toml) found; pass --source DIR", ExitCode.USAGE)
    chosen = tuple(e for e in (part.strip() for part in extras.split(",")) if e)
    try:
        if quiet:
            wheels = build_bundle(out, tree, chosen, on_progress=lambda n: None)
        else:
            with err_console.status("pip wheel: 0 packages") as status:
                done = [0]

                def advance(n: int) -> None:
                    done[0] += n
                    status.update(f"pip wheel: {done[0]} packages")

                wheels = build_bundle(out, tree, chosen, on_progress=advance)
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    version = importlib.metadata.version("govsoc")
    out_console.print(f"{len(wheels)} wheels for govsoc {version} in {out}; install offline with:\n"
                      f"  pip install --no-index --find-links {out} -r {out / 'requirements.txt'}",
                      markup=False, highlight=False)
