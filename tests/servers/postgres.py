"""PostgreSQL for tests: Debian's PostgreSQL 15 on a free 127.0.0.1 port, a database per test.

`postgres_server` (session scope) runs `initdb` and then the `postgres` binary itself from
`/usr/lib/postgresql/15/bin` (apt-get install -y postgresql), in a fresh directory that is
removed at the end. The server listens on 127.0.0.1 only, keeps its socket in that directory,
trusts local connections (user `postgres`, no password) and runs with `fsync=off`: a test server,
not a place to keep data. Missing binaries FAIL the test, naming the package, rather than skip
it: the contract suite is meant to run against every implementation.

initdb and postgres refuse to run as root: when pytest runs as root, both are started with
`Popen(user="postgres")`, which switches user in the child before exec, so the PID we hold is the
postmaster's own (no runuser or pg_ctl process in between) and the server is stopped by that
PID: SIGINT (fast shutdown), then SIGKILL. It is also started with PR_SET_PDEATHSIG, so a pytest
killed before its teardown leaves no server behind.

`postgres_database` (function scope) creates a database of the test's own and drops it
(`WITH (FORCE)`) afterwards; its value is the `postgresql://` URL a store opens. A module binds
the fixtures by name (`postgres_server = postgres.postgres_server`), as with tests/servers/search.py;
the process is shared through `_shared`, so every binding uses one server per session.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

HOST = "127.0.0.1"
BIN_DIR = Path("/usr/lib/postgresql/15/bin")
APT_PACKAGE = "postgresql"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
SERVER_USER = "postgres"  # the OS account the server runs as when pytest is root

_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None
try:  # resolved here: the child, between fork and exec, must not import or load anything
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


def binary(name: str) -> Path:
    path = BIN_DIR / name
    if not path.is_file():
        pytest.fail(f"PostgreSQL 15 is not installed ({path} is missing): apt-get install -y {APT_PACKAGE}")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        """One statement in autocommit on the maintenance database (CREATE/DROP DATABASE)."""
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.encode())

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _as_server_user() -> dict[str, str]:
    """Popen arguments that run the child as the postgres account when we are root."""
    return {"user": SERVER_USER, "group": SERVER_USER} if os.geteuid() == 0 else {}


def _initdb(workdir: Path) -> Path:
    data = workdir / "data"
    argv = [str(binary("initdb")), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
            "--locale=C.UTF-8", "--no-sync"]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, cwd=workdir, check=False,
                          **_as_server_user())  # type: ignore[call-overload]
    if done.returncode != 0:
        pytest.fail(f"initdb failed ({done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}")
    return data


def _wait_ready(server: PostgresServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert server.process is not None
        if server.process.poll() is not None:
            pytest.fail(f"postgres exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            psycopg.connect(server.url(), connect_timeout=1).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.05)
    stop(server)
    pytest.fail(f"postgres did not accept connections on {HOST}:{server.port} within {START_TIMEOUT_S} s:\n"
                f"{server.log_tail()}")


def start(workdir: Path) -> PostgresServer:
    """initdb in `workdir` (owned by the server's account), then the postmaster on a free port."""
    if os.geteuid() == 0:
        shutil.chown(workdir, SERVER_USER, SERVER_USER)
    data = _initdb(workdir)
    server = PostgresServer(port=free_port(), workdir=workdir)
    argv = [str(binary("postgres")), "-D", str(data), "-p", str(server.port), "-k", str(workdir),
            "-c", f"listen_addresses={HOST}", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=200"]
    with server.log.open("wb") as log:
        server.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=workdir, start_new_session=True, preexec_fn=_die_with_parent,
                                          **_as_server_user())  # type: ignore[call-overload]
    _wait_ready(server)
    return server


def stop(server: PostgresServer) -> None:
    """Fast shutdown by PID (SIGINT), SIGKILL if it has not exited within `STOP_TIMEOUT_S`."""
    process, server.process = server.process, None
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT_S)


_shared: list[PostgresServer] = []


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if _shared:
        yield _shared[0]
        return
    # Not under pytest's tmp dir: that is private to root (0700), and the server runs as postgres.
    workdir = Path(tempfile.mkdtemp(prefix="govsoc-postgres-"))
    try:
        server = start(workdir)
        _shared.append(server)
        try:
            yield server
        finally:
            _shared.clear()
            stop(server)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh database of this test's own, dropped afterwards."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)
