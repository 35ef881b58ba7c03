"""`govsoc` processes for end-to-end tests: workers, replay and setup as real subprocesses.

`GovsocProcesses(env, workdir)` starts `govsoc worker STAGE` (or `python -m api.cli.worker STAGE`
while the `worker` group is not registered in api/cli/main.py yet), `govsoc replay` and
`govsoc setup` with the given environment (`GOVSOC_BUS`, `GOVSOC_EVENTS`, ...), each with its
output in a log file under `workdir`. `stop_all()` sends SIGTERM to what still runs (SIGKILL
after a grace period). Children get SIGTERM if pytest dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

STOP_TIMEOUT_S = 20.0
_SETUP_MODULE = ("from api.cli.common import configure_logging; configure_logging(False); import typer; "
                 "from api.cli.setup import setup; typer.run(setup)")


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)


def govsoc_argv(*args: str) -> list[str]:
    """argv of `govsoc ARGS...` from this venv; `worker` falls back to its module until registered."""
    from api.cli.main import app

    groups = {group.name for group in app.registered_groups}
    commands = {command.name or (command.callback.__name__ if command.callback else "")
                for command in app.registered_commands}
    if args and args[0] == "worker" and "worker" not in groups:
        return [sys.executable, "-m", "api.cli.worker", *args[1:]]
    if args and args[0] == "setup" and "setup" not in commands:
        return [sys.executable, "-c", _SETUP_MODULE, *args[1:]]
    return [str(Path(sys.executable).with_name("govsoc")), *args]


@dataclass
class GovsocProcesses:
    env: dict[str, str]
    workdir: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        process = subprocess.Popen(govsoc_argv(*args), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env={**os.environ, **self.env},
                                   preexec_fn=_die_with_parent)
        log.close()
        self.running[name] = process
        return process

    def run(self, name: str, *args: str, timeout_s: float = 600) -> str:
        """Run to completion; returns stdout, fails with the log on a non-zero exit."""
        result = subprocess.run(govsoc_argv(*args), capture_output=True, env={**os.environ, **self.env},
                                timeout=timeout_s, preexec_fn=_die_with_parent)
        (self.workdir / f"{name}.log").write_bytes(result.stdout + result.stderr)
        if result.returncode != 0:
            raise AssertionError(f"govsoc {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stderr.decode(errors='replace')[-3000:]}")
        return result.stdout.decode()

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        process = self.running.pop(name)
        process.send_signal(sig)
        process.wait(STOP_TIMEOUT_S)

    def assert_alive(self) -> None:
        """Fail with its log if a process exited with an error (a finished replay exits 0)."""
        for name, process in self.running.items():
            if process.poll() not in (None, 0):
                raise AssertionError(f"{name} exited {process.returncode}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self.running.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.running.clear()
