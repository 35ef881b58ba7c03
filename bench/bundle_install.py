"""`govsoc bundle` then an install from the bundle alone, timed: the isolated-network path.

1. `govsoc bundle OUT` (pip wheel of this source tree with the [scale] extra and every dependency,
   from whatever index pip is configured for);
2. a fresh venv, and `pip install --no-index --find-links OUT -r OUT/requirements.txt` with the
   index switched off (`PIP_NO_INDEX=1`) and pip's configuration ignored (`PIP_CONFIG_FILE=/dev/null`,
   no `PIP_FIND_LINKS`/`PIP_EXTRA_INDEX_URL`), so only OUT can satisfy it;
3. `govsoc --help` and an import of the scale-out clients from the new venv.

Opt-in (minutes: ~100 wheels, scikit-learn and numpy among them), not part of the test suite.
Usage: .venv/bin/python -m bench.bundle_install [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from api.cli.bundle import build_bundle, source_tree
from api.cli.common import configure_logging


def offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_NO_INDEX="1", PIP_CONFIG_FILE="/dev/null", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="Build in this directory and keep it.")
    args = parser.parse_args()
    configure_logging(False)  # warnings on stderr; stdout carries the results only
    console = Console(stderr=True)
    source = source_tree()
    if source is None:
        sys.exit("no govsoc source tree")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        out, venv = work / "wheels", work / "venv"
        started = time.perf_counter()
        with console.status("govsoc bundle") as status:
            count = [0]

            def advance(n: int) -> None:
                count[0] += n
                status.update(f"govsoc bundle: {count[0]} packages")

            wheels = build_bundle(out, source, ("scale",), on_progress=advance)
        bundled = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-index", "--find-links", str(out),
               "-r", str(out / "requirements.txt")]
        subprocess.run(pip, check=True, env=offline_env())
        installed = time.perf_counter() - started
        subprocess.run([str(venv / "bin" / "govsoc"), "--help"], check=True, env=offline_env(),
                       stdout=subprocess.DEVNULL)
        subprocess.run([str(venv / "bin" / "python"), "-c", "import kafka, elasticsearch, psycopg, api.cli.main"],
                       check=True, env=offline_env(), cwd=work)  # not this tree: the installed one
    Console().print(f"bundle: {len(wheels)} wheels in {bundled:.0f} s; offline install in {installed:.0f} s; "
                    "govsoc --help and the scale-out clients import from the new venv")


if __name__ == "__main__":
    main()
