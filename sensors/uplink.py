"""HTTP uplink: the sensor's spool shipped to the API's ingest endpoint instead of a bus.

Stage: sensors, store-and-forward, between the `Shipper` and the SOC. In: what the shipper
publishes (`HttpBus.publish(topic, messages)`, the Bus interface). Out: `POST /api/v1/ingest`
(events, NDJSON, gzip), `POST /api/v1/sensors/heartbeat`, and a local dead-letter file.

The ack contract (the Bus one: `publish` returning means the other side took every message):
- Events go in requests of at most `max_lines` lines, gzip'd, with the sensor's bearer token.
  A 202 takes the request: lines the API refused (another tenant, not an event) are written to
  the dead-letter file with the API's reason and count as taken, so they never block the spool.
- 503 and 429 raise `UplinkBusy` with the server's Retry-After (the shipper waits at least that
  long); 413 splits the request in halves down to one line (a single line still too large is a
  dead letter); connection errors, timeouts, 5xx, 401 and 403 raise `BusError`. Nothing is acked
  then, and the shipper sends the batch again: part of it may arrive twice, which the events'
  deterministic ids turn into an overwrite in the store.
- Dead letters (spooled by the parsers, or refused by the API) are appended to
  `dead_letter_path` (JSON lines, fsynced before `publish` returns): the ingest endpoint takes
  events only.

Enrollment (`load_or_enroll_token`): the sensor token is read from its file; without one, the
one-time enrollment token is presented to `POST /api/v1/sensors/enroll` and the sensor token it
returns is written with mode 0600 (atomically, never world-readable, even briefly).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson
import structlog

from pipeline.bus import Consumer, topics
from pipeline.errors import BusError
from pipeline.records import DeadLetter

log = structlog.get_logger(__name__)

INGEST_PATH = "/api/v1/ingest"
HEARTBEAT_PATH = "/api/v1/sensors/heartbeat"
ENROLL_PATH = "/api/v1/sensors/enroll"
DEAD_LETTER_FILE = "dead-letters.ndjson"  # in the spool's directory
MAX_LINES = 1000  # per request; the API's ingest_max_events default is larger, 413 splits anyway
_HEARTBEAT_FIELDS = ("version", "inputs", "lag_s", "spool_pending", "spool_bytes", "dropped")


class UplinkBusy(BusError):
    """The API asked the sensor to wait (503, 429): `retry_after_s` from its Retry-After header."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def _retry_after(response: httpx.Response, default: float = 5.0) -> float:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, min(float(value), 600.0))
    except ValueError:
        return default


def _secure_write(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 from the first byte on, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(descriptor, text.encode("utf-8"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.chmod(temporary, 0o600)  # O_CREAT's mode is masked by the umask; 0600 is never widened by it
    os.replace(temporary, path)


def load_or_enroll_token(client: httpx.Client, token_path: Path, enrollment_token: str | None) -> str:
    """The sensor token: from `token_path`, or (once) by enrollment, then saved there with mode 0600.

    Raises `BusError` when there is neither, or the API refuses the enrollment token (spent,
    expired, unknown: an operator must issue a new one).
    """
    if token_path.exists():
        token = token_path.read_text(encoding="utf-8").strip()
        if token:
            return token
    if not enrollment_token:
        raise BusError(f"{token_path}: no sensor token yet, and no enrollment token to get one")
    try:
        response = client.post(ENROLL_PATH, headers={"Authorization": f"Bearer {enrollment_token}"})
    except httpx.HTTPError as e:
        raise BusError(f"enrollment at {client.base_url}: {e}") from e
    if response.status_code != 201:
        raise BusError(f"enrollment at {client.base_url}: HTTP {response.status_code}: {response.text[:200]}")
    token = str(response.json()["token"])
    _secure_write(token_path, token + "\n")
    log.info("sensor_enrolled", url=str(client.base_url), token_file=str(token_path))
    return token


class HttpBus:
    """A publish-only Bus over the API (see the module docstring); one shipper thread uses it."""

    def __init__(self, client: httpx.Client, token_path: Path, dead_letter_path: Path, *,
                 enrollment_token: str | None = None, max_lines: int = MAX_LINES) -> None:
        self.client = client
        self.token_path = token_path
        self.enrollment_token = enrollment_token
        self.dead_letter_path = dead_letter_path
        self.max_lines = max_lines
        self.refused_lines = 0
        self._token: str | None = None

    @classmethod
    def from_url(cls, url: str, *, token_path: Path, dead_letter_path: Path, enrollment_token: str | None = None,
                 timeout_s: float = 30.0, verify: str | bool = True) -> HttpBus:
        """The uplink to the API at `url`; `verify` is a CA bundle path or a bool (httpx's).

        Enrollment waits for the first publish, so a sensor that starts while the API is away
        still collects; until it succeeds every publish raises `BusError` and the spool keeps all.
        """
        client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s, verify=verify)
        return cls(client, token_path, dead_letter_path, enrollment_token=enrollment_token)

    def _authorization(self) -> str:
        if self._token is None:
            self._token = load_or_enroll_token(self.client, self.token_path, self.enrollment_token)
        return f"Bearer {self._token}"

    def publish(self, topic: str, messages: Sequence[tuple[str | None, bytes]]) -> None:
        """Deliver `messages`; returns once the API took (or dead-lettered) every one of them."""
        if not messages:
            return
        if topic == topics.RAW:
            lines = [value for _key, value in messages]
            for start in range(0, len(lines), self.max_lines):
                self._ingest(lines[start:start + self.max_lines])
        elif topic == topics.HEARTBEATS:
            for _key, value in messages:
                self._heartbeat(value)
        elif topic == topics.DEAD_LETTERS:
            self._write_dead_letters([value for _key, value in messages])
        else:
            raise BusError(f"the HTTP uplink carries events, dead letters and heartbeats, not {topic!r}")

    def consumer(self, topics: Sequence[str], group: str) -> Consumer:
        raise BusError("the HTTP uplink only publishes: consume on the SOC's bus")

    def close(self) -> None:
        self.client.close()

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            response = self.client.post(path, content=body, headers=headers)
        except httpx.HTTPError as e:
            raise BusError(f"{self.client.base_url}{path}: {type(e).__name__}: {e}") from e
        if response.status_code in (429, 503):
            raise UplinkBusy(f"{path}: HTTP {response.status_code}", _retry_after(response))
        if response.status_code in (401, 403):
            log.error("uplink_token_refused", status=response.status_code, path=path)
        return response

    def _ingest(self, lines: list[bytes]) -> None:
        body = gzip.compress(b"\n".join(lines), compresslevel=1)  # level 1: fast, and NDJSON still shrinks ~8x
        response = self._post(INGEST_PATH, body, {"Authorization": self._authorization(),
                                                  "Content-Type": "application/x-ndjson",
                                                  "Content-Encoding": "gzip"})
        if response.status_code == 413:
            if len(lines) == 1:
                self._refused(lines, {1: f"the API refused the event as too large: {response.text[:200]}"})
                return
            half = len(lines) // 2  # in order: the first half is taken before the second is sent
            self._ingest(lines[:half])
            self._ingest(lines[half:])
            return
        if response.status_code != 202:
            raise BusError(f"{INGEST_PATH}: HTTP {response.status_code}: {response.text[:200]}")
        result = response.json()
        if result.get("refused"):
            reasons = {int(r["line"]): str(r["reason"]) for r in result.get("refusals", [])}
            self._refused(lines, reasons)
            unnamed = int(result["refused"]) - len(reasons)
            if unnamed > 0:  # the API names the first 100 only
                log.warning("uplink_refusals_unnamed", lines=unnamed)

    def _refused(self, lines: list[bytes], reasons: dict[int, str]) -> None:
        records = []
        for number, reason in sorted(reasons.items()):
            if 1 <= number <= len(lines):
                tenant = _tenant_of(lines[number - 1])
                records.append(DeadLetter.create(source=f"uplink:{self.client.base_url}{INGEST_PATH}",
                                                 reason=f"refused by the API: {reason}", raw=lines[number - 1],
                                                 tenant=tenant).to_json())
        self.refused_lines += len(records)
        log.warning("uplink_lines_refused", lines=len(records))
        self._write_dead_letters(records)

    def _write_dead_letters(self, values: list[bytes]) -> None:
        if not values:
            return
        self.dead_letter_path.parent.mkdir(parents=True, exist_ok=True)
        with self.dead_letter_path.open("ab") as out:
            out.write(b"".join(value.rstrip(b"\n") + b"\n" for value in values))
            out.flush()
            os.fsync(out.fileno())  # before publish returns, so before the spool acks

    def _heartbeat(self, value: bytes) -> None:
        beat = orjson.loads(value)
        body = orjson.dumps({name: beat[name] for name in _HEARTBEAT_FIELDS if name in beat})
        response = self._post(HEARTBEAT_PATH, body, {"Authorization": self._authorization(),
                                                     "Content-Type": "application/json"})
        if response.status_code != 204:
            raise BusError(f"{HEARTBEAT_PATH}: HTTP {response.status_code}: {response.text[:200]}")


def _tenant_of(line: bytes) -> str | None:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    organization = doc.get("organization") if isinstance(doc, dict) else None
    tenant = organization.get("id") if isinstance(organization, dict) else None
    return tenant if isinstance(tenant, str) else None
