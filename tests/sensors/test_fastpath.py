"""The log sensor's fast path makes the events the generic path made: the same ids, the same JSON.

- `IdPrefix(a, b).id(c, d)` is `stable_id(a, b, c, d)`, for any parts.
- Every registered parser, on sample lines of every format (its own among them): the converter's
  fast path (`Event.trusted`, ids from a prepared hash state, plain dict annotation) gives the
  event `Event.create` gives after the `set_path` annotation, byte for byte; also for arbitrary
  text and JSON (dotted `organization.id` / `event.id` keys take the generic path).
- Before/after on real data: what the converter makes of the loghub samples (../shared/data/loghub,
  read in place; research use with attribution, see loghub/LICENSE) matches what the code made
  before the fast path, recorded in data/loghub_event_ids.json: ids are the no-duplicates
  contract with events already stored, so they must never change.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from api.demo.authlog import ICT, AuthLogSpec, generate_auth_log
from api.demo.firewall import FirewallSpec, generate_fortigate_log, generate_kv_firewall_log
from api.demo.weblog import WebLogSpec, generate_access_log
from api.demo.windows import WindowsSpec, generate_windows_events
from pipeline.errors import ParseError
from pipeline.ids import IdPrefix, stable_id
from pipeline.records import DeadLetter, Event
from sensors.files import FileSource, _Line, _LineConverter, _read_lines
from sensors.parsers import PARSERS, LineContext

LOGHUB = Path(__file__).resolve().parents[3] / "shared" / "data" / "loghub"
RECORDED = Path(__file__).parent / "data" / "loghub_event_ids.json"
CTX = LineContext(tz=ZoneInfo("Asia/Ho_Chi_Minh"), reference=datetime(2026, 11, 23, 12, tzinfo=UTC))
START = datetime(2026, 11, 22, tzinfo=ICT)

# A few lines of each format in the shapes the parsers' own tests document.
WRITTEN = {
    "syslog": ["<34>1 2026-11-23T10:00:00.123+07:00 web01 app 123 ID47 [x@1 a=\"b\"] started",
               "2026-11-23T10:00:00.123456+07:00 host sshd[1]: hello", "<13>Nov 23 10:00:00 fw1 kernel: x"],
    "nginx_error": ['2026/11/23 10:00:01 [error] 1001#0: *7 open() "/var/www/x.ico" failed (2: No such file), '
                    'client: 198.51.100.7, server: x, request: "GET /x.ico HTTP/1.1"'],
    "auditd": ['type=SYSCALL msg=audit(1795402800.123:77): arch=c000003e syscall=59 success=yes exit=0 ppid=2686 '
               'pid=3000 auid=1000 uid=1000 comm="cat" exe="/usr/bin/cat" key="exec"',
               "type=USER_LOGIN msg=audit(1795402800.200:78): pid=1 uid=0 msg='op=login acct=\"root\" res=failed'"],
    "cef": ["Nov 23 10:00:00 waf CEF:0|Vendor|WAF|2.1|942100|SQL injection|High|rt=1795402800000 "
            "src=203.0.113.9 spt=1024 dst=10.0.0.5 dpt=443 act=blocked msg=a \\= b"],
    "eve": [orjson.dumps({"timestamp": "2026-11-23T10:00:00.000000+0700", "flow_id": 1, "event_type": kind,
                          "src_ip": "10.0.0.1", "src_port": 1024, "dest_ip": "203.0.113.9", "dest_port": 443,
                          "proto": "TCP", "alert": {"action": "allowed", "signature_id": 2000001, "signature": "ET x",
                                                    "category": "Misc", "severity": 2},
                          "tls": {"sni": "portal.example", "version": "TLS 1.3"},
                          "dns": {"type": "query", "rrname": "x.example", "rrtype": "A"}}).decode()
            for kind in ("alert", "flow", "tls", "dns")],
    "json": ['{"@timestamp": "2026-11-23T03:00:00Z", "message": "m", "source": {"ip": "10.0.0.1"}}',
             '{"@timestamp": "2026-11-23T03:00:00Z", "organization.id": "spoofed", "event.id": "x"}',
             '{"@timestamp": "2026-11-23T03:00:00Z", "organization": "flat", "event": "flat", "log": 1}'],
}


def samples() -> dict[str, list[str]]:
    """Lines by where they come from; every parser is run over all of them."""
    loghub = {name: (LOGHUB / name).read_text(encoding="utf-8").splitlines()[:400]
              for name in ("Linux/Linux_2k.log", "Apache/Apache_2k.log", "Windows/Windows_2k.log")}
    return {
        **loghub, **{f"written {fmt}": lines for fmt, lines in WRITTEN.items()},
        "demo auth": generate_auth_log(AuthLogSpec(host="portal", start=START, lines=400)),
        "demo access": generate_access_log(WebLogSpec(host="portal.hanoi.example", start=START, lines=300)),
        "demo fortigate": generate_fortigate_log(FirewallSpec(start=START, lines=300)),
        "demo kv": generate_kv_firewall_log(FirewallSpec(start=START, lines=300, seed=53)),
        "demo windows": generate_windows_events(WindowsSpec(start=START, records=300)),
    }


SAMPLES = samples()


def converter(fmt: str) -> _LineConverter:
    source = FileSource(tenant="hanoi", sensor="hanoi-s1", format=fmt)
    return _LineConverter(source=source, path="x.log", absolute="/var/log/x.log", parse=PARSERS[fmt], ctx=CTX)


def generic(conv: _LineConverter, line: _Line) -> Event | DeadLetter:
    """What the converter did before its fast path: `set_path` annotation, then `Event.create`."""
    try:
        text, tags = line.raw.decode("utf-8"), []
    except UnicodeDecodeError:
        text, tags = line.raw.decode("utf-8", errors="replace"), ["invalid_utf8"]
    try:
        doc = conv.parse(text, conv.ctx)
        conv._annotate(doc, line, text, tags)
        return Event.create(doc, id_parts=(conv.source.sensor, conv.absolute, line.offset, text))
    except ParseError as e:
        return conv._dead(line, e.reason)


def assert_same(conv: _LineConverter, raw: bytes, offset: int = 0) -> bool:
    """True when the line became an event (the same either way), False for a dead letter."""
    line = _Line(number=1, offset=offset, raw=raw, size=len(raw) + 1)
    if b"\x00" in raw:  # dead-lettered before any parsing, either way
        assert isinstance(conv.convert(line), DeadLetter)
        return False
    fast, slow = conv.convert(line), generic(conv, line)
    assert type(fast) is type(slow)
    if isinstance(fast, DeadLetter):
        assert isinstance(slow, DeadLetter)
        assert (fast.id, fast.reason) == (slow.id, slow.reason)
        return False
    assert isinstance(slow, Event)
    assert (fast.id, fast.tenant, fast.timestamp) == (slow.id, slow.tenant, slow.timestamp)
    assert fast.to_json() == slow.to_json()
    return True


@given(st.lists(st.one_of(st.none(), st.integers(), st.text()), max_size=4),
       st.lists(st.one_of(st.none(), st.integers(), st.text()), max_size=4))
def test_a_prepared_prefix_gives_stable_id(head: list[str | int | None], tail: list[str | int | None]) -> None:
    assert IdPrefix(*head).id(*tail) == stable_id(*head, *tail)


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_every_parser_s_events_are_the_same_on_every_sample(fmt: str) -> None:
    conv = converter(fmt)
    events = sum(assert_same(conv, line.encode("utf-8"), offset)
                 for lines in SAMPLES.values() for offset, line in enumerate(lines))
    assert events > 0, f"{fmt}: no sample became an event"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(PARSERS)), st.text(max_size=300))
@example("syslog", "Nov 23 10:00:00 host sshd[1]: x")
@example("json", '{"@timestamp": "2026-11-23T03:00:00Z", "organization.id": "x"}')
def test_arbitrary_text_is_the_same_either_way(fmt: str, text: str) -> None:
    assert_same(converter(fmt), text.encode("utf-8", "surrogatepass"))


JSON_KEYS = st.sampled_from(["@timestamp", "message", "event", "event.id", "organization", "organization.id",
                             "observer", "log", "log.file.path", "tags", "winlog", "source"])
JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 63), 2 ** 63 - 1),
                                     st.text(max_size=8), st.just("2026-11-23T03:00:00Z")),
                           lambda inner: st.dictionaries(JSON_KEYS, inner, max_size=4), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["json", "windows_json", "eve"]), st.dictionaries(JSON_KEYS, JSON_VALUES, max_size=6))
def test_arbitrary_json_documents_are_the_same_either_way(fmt: str, value: dict[str, Any]) -> None:
    value.setdefault("@timestamp", "2026-11-23T03:00:00Z")
    assert_same(converter(fmt), orjson.dumps(value))


def recorded() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads(RECORDED.read_text(encoding="utf-8"))
    data.pop("_about")
    return data


@pytest.mark.parametrize("case", sorted(recorded()))
def test_loghub_ids_and_documents_are_what_they_were(case: str) -> None:
    name, fmt = case.split(" ")
    path = LOGHUB / name
    conv = _LineConverter(source=FileSource(tenant="hanoi", sensor="hanoi-s1", format=fmt), path=name,
                          absolute=f"/var/log/loghub/{name}", parse=PARSERS[fmt], ctx=CTX)
    ids, docs = hashlib.sha256(), hashlib.sha256()
    counts = {"events": 0, "dead_letters": 0}
    first = None
    with path.open("rb") as stream:
        for line in _read_lines(stream, path):
            if not line.raw:
                continue
            record = conv.convert(line)
            ids.update(record.id.encode() + b"\n")
            if isinstance(record, DeadLetter):
                counts["dead_letters"] += 1
                continue
            counts["events"] += 1
            first = first or record.id
            docs.update(record.to_json() + b"\n")
    want = recorded()[case]
    assert counts == {"events": want["events"], "dead_letters": want["dead_letters"]}
    assert first == want["first_event_id"]
    assert ids.hexdigest() == want["ids_sha256"], f"{case}: event or dead-letter ids changed"
    assert docs.hexdigest() == want["events_json_sha256"], f"{case}: the events' JSON changed"
