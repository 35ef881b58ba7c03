"""The README's first command installs govsoc without the `scale` extra: every command must still
import. A subprocess blocks the scale-out clients (as a plain `pip install -e .` lacks them) and
imports the command line, the app and the wiring."""

from __future__ import annotations

import subprocess
import sys

BLOCKED = ("kafka", "elasticsearch", "elastic_transport", "psycopg", "psycopg_pool")

PROGRAM = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not in a plain install)")
        return None
sys.meta_path.insert(0, Block())
import api.cli.main, api.app, api.wiring, api.cli.up, api.demo.setup
"""


def test_every_command_imports_without_the_scale_out_clients() -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
