"""An Elasticsearch/OpenSearch REST server for tests: osmem-server, in memory, on loopback.

`search_server` (session scope) starts the binary bundled in the `osmem-server` wheel on a free
127.0.0.1 port (`-no-stdin-watch -no-ja`, see ../shared/SERVERS.md), waits until the port takes
connections, and stops the process by its PID when the session ends. `-parent-pid` makes the
server exit on its own if pytest is killed before it can stop it.

A module binds the fixture by name (`search_server = search.search_server`): the contract
suite's conftest must, as pytest refuses `pytest_plugins` in a conftest below the root, and a
test module that also listed the plugin would re-import this module (an assertion-rewrite
warning). Each binding is a fixture of its own, so the process is shared through `_shared`: the
first to run starts it, later ones reuse it, and the one that started it stops it at the end of
the session. With a root tests/conftest.py, `pytest_plugins = ["tests.servers.search"]` there
replaces the bindings.
Tests keep apart by giving the store a prefix of their own (`store_url(prefix=...)`) and
`drop(prefix)` afterwards.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class SearchServer:
    port: int
    pid: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def store_url(self, **options: str) -> str:
        """An `opensearch://` store URL for this server with the given query options."""
        query = f"?{urlencode(options)}" if options else ""
        return f"opensearch://{HOST}:{self.port}{query}"

    def request(self, method: str, path: str, body: object = None) -> Any:
        """One plain-JSON request, decoded; an error status raises `urllib.error.HTTPError`."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text else None

    def drop(self, prefix: str) -> None:
        """Delete every index and index template named `<prefix>-...`, each by name (no wildcard delete)."""
        for index in self.request("GET", f"/{prefix}-*?expand_wildcards=all") or {}:
            self.request("DELETE", f"/{index}")
        try:
            templates = self.request("GET", f"/_index_template/{prefix}-*")["index_templates"]
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
            templates = []
        for template in templates:
            self.request("DELETE", f"/_index_template/{template['name']}")


def osmem_binary() -> Path:
    binary = importlib.resources.files("osmem_server").joinpath("bin", "osmem-server")
    path = Path(str(binary))
    if not path.is_file():
        pytest.fail(f"osmem-server binary not found at {path}: pip install osmem-server")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"osmem-server exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    stop(process)
    pytest.fail(f"osmem-server did not open port {port} within {START_TIMEOUT} s")


def start(log: Path) -> tuple[subprocess.Popen[bytes], SearchServer]:
    port = free_port()
    args = [str(osmem_binary()), "-addr", f"{HOST}:{port}", "-no-stdin-watch", "-no-ja",
            "-parent-pid", str(os.getpid())]
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    wait_for_port(port, process, log)
    return process, SearchServer(port=port, pid=process.pid, log=log)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID, then SIGKILL if it has not exited within `STOP_TIMEOUT`."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


_shared: list[SearchServer] = []


@pytest.fixture(scope="session")
def search_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchServer]:
    if _shared:
        yield _shared[0]
        return
    process, server = start(tmp_path_factory.mktemp("osmem") / "osmem.log")
    _shared.append(server)
    try:
        yield server
    finally:
        _shared.clear()
        stop(process)
