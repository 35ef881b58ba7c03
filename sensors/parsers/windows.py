"""Windows event records -> ECS documents, with the fields Winlogbeat and Elastic's pipelines set.

Stage: sensors, parse step for Windows events. In: one record as a parsed JSON object, in either
shape the sensors meet:
- the evtx JSON rendering, `{"Event": {"System": {...}, "EventData": {...}}}`, as pyevtx-rs and
  evtx_dump write it (SigmaHQ's regression data holds it too); attributes under `#attributes` or
  xmltodict's `@Name`, values bare or under `#text`;
- a Winlogbeat document, `{"@timestamp": ..., "winlog": {"channel", "event_id", "event_data", ...}}`.
Out: a `WindowsRecord` (System normalised, EventData by name), and `windows_document(record)`, a
nested ECS document with `@timestamp` (aware UTC) and no tenant or `event.id` (the reader adds them:
`sensors.windows` for files, `sensors.files` for `parse_windows_line`).

Invariants:
- Every EventData item is kept under its own name at `winlog.event_data.<Name>`: this is what keeps
  Sigma's Windows field names (Image, CommandLine, TargetObject, ...) reachable. Values are text, as
  in the event's XML and as Winlogbeat sends them (numbers in decimal, booleans `true`/`false`, an
  empty item `""`), so a field has one type whichever shape it came in. Unnamed `Data` items are
  `param1`, `param2`, ... (Winlogbeat's names). Unlike Winlogbeat, empty items are kept and unlike
  Elastic's pipelines nothing is moved out of `event_data`: the ECS fields are copies. The
  attributes of the EventData element itself (`Name="TaskDisabled"`) are not items and stay only in
  `event.original`.
- UserData (events whose manifest has no EventData) -> `winlog.user_data.<Name>` plus `xml_name`.
- `event.code` / `winlog.event_id` are the EventID as text, `winlog.record_id` the record id as text
  (the types Elastic indexes them with); `event.outcome` comes from the audit keywords, as Winlogbeat.
- ECS copies follow Elastic's `windows.sysmon_operational` and `system.security` pipelines for the
  cases where the meaning is certain; deliberate differences are commented where they are made.
- Total: anything that is not a Windows event record raises `ParseError`, nothing else.
- Input is what a JSON parser returns, so objects are tested with `isinstance(x, dict)`: it is what
  they are, and the `Mapping` ABC check cost a fifth of the mapping time (cProfile, 16,600 records).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline import ecs
from pipeline.errors import ParseError
from pipeline.records import get_path, set_path
from sensors.parsers.syslog import LineContext

SYSMON_PROVIDER = "Microsoft-Windows-Sysmon"
SECURITY_PROVIDERS = frozenset({"Microsoft-Windows-Security-Auditing", "Microsoft-Windows-Eventlog"})
MAX_DEPTH = 16  # nesting of a value inside EventData; real events have at most 2
FILETIME_EPOCH_YEAR = 1601  # no Windows time is earlier
_AUDIT_FAILURE, _AUDIT_SUCCESS = 0x10000000000000, 0x20000000000000  # keyword bits (winmeta.xml)
_LEVELS = {0: "information", 1: "critical", 2: "error", 3: "warning", 4: "information", 5: "verbose"}
_DATASETS = {"Security": "windows.security", "Microsoft-Windows-Sysmon/Operational": "windows.sysmon_operational",
             "Windows PowerShell": "windows.powershell", "System": "windows.system",
             "Microsoft-Windows-PowerShell/Operational": "windows.powershell_operational",
             "ForwardedEvents": "windows.forwarded"}
_ABSENT = frozenset({"", "-", "{00000000-0000-0000-0000-000000000000}"})  # Elastic drops these first
_NO_ACCOUNT = frozenset({"", "-", "S-1-0-0"})  # S-1-0-0 is "Nobody"

# ECS names not yet in pipeline/ecs.py (to move there); the copy tables below name the rest once.
EVENT_CODE = "event.code"
EVENT_PROVIDER = "event.provider"
LOG_LEVEL = "log.level"
RELATED_HASH = "related.hash"
WINLOG = "winlog"

EventValue = str | list[Any] | dict[str, Any]  # text, or (rarely) lists and nested elements of text


@dataclass(frozen=True, slots=True)
class WindowsRecord:
    """One Windows event: the System fields that matter, and EventData / UserData by item name."""

    timestamp: datetime  # aware, UTC
    channel: str
    event_id: int
    provider_name: str | None = None
    provider_guid: str | None = None
    computer: str | None = None
    record_id: int | None = None
    level: str | None = None  # lower-case name ("information"), as log.level
    outcome: str | None = None  # "success" / "failure" from the audit keywords
    version: int | None = None
    process_id: int | None = None  # of the process that logged the event
    thread_id: int | None = None
    user_sid: str | None = None  # System/Security UserID
    activity_id: str | None = None
    related_activity_id: str | None = None
    message: str | None = None  # only Winlogbeat sends the rendered message
    event_data: Mapping[str, EventValue] = field(default_factory=dict)
    user_data: Mapping[str, EventValue] = field(default_factory=dict)  # with "xml_name" when present


def parse_windows_line(line: str, ctx: LineContext) -> dict[str, Any]:
    """The registry's "windows_json" format: one JSON record (either shape) per line. `ctx` is
    unused: Windows times carry their zone."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise ParseError(f"not JSON: {e}") from e
    return windows_document(parse_windows_json(value))


def parse_windows_json(value: Any) -> WindowsRecord:
    """A record from a parsed JSON object of either shape; `ParseError` says why it is not one."""
    if not isinstance(value, dict):
        raise ParseError(f"a Windows event is a JSON object, got {type(value).__name__}")
    try:
        if "Event" in value:
            return record_from_evtx_json(value)
        if get_path(value, "winlog.channel") is not None or "winlog" in value:
            return record_from_winlogbeat(value)
    except RecursionError as e:
        raise ParseError("nested too deeply") from e
    raise ParseError("not a Windows event: expected Event.System (evtx JSON) or winlog (Winlogbeat)")


def record_from_evtx_json(value: Mapping[str, Any]) -> WindowsRecord:
    event = value.get("Event")
    system = event.get("System") if isinstance(event, dict) else None
    if not isinstance(event, dict) or not isinstance(system, dict):
        raise ParseError("Event.System: missing")
    time_text = _attribute(system.get("TimeCreated"), "SystemTime")
    if time_text is None:
        raise ParseError("Event.System.TimeCreated.SystemTime: missing")
    event_id = _to_int(_text_of(system.get("EventID")))
    if event_id is None:
        raise ParseError("Event.System.EventID: missing or not a number")
    channel = _text_of(system.get("Channel"))
    if not channel:
        raise ParseError("Event.System.Channel: missing")
    provider, execution, correlation = system.get("Provider"), system.get("Execution"), system.get("Correlation")
    keywords = _to_int(_text_of(system.get("Keywords")))
    level = _to_int(_text_of(system.get("Level")))
    return WindowsRecord(
        timestamp=_parse_time(time_text, "Event.System.TimeCreated.SystemTime"), channel=channel,
        event_id=event_id,
        provider_name=_attribute(provider, "Name") or _attribute(provider, "EventSourceName"),
        provider_guid=_attribute(provider, "Guid"), computer=_text_of(system.get("Computer")) or None,
        record_id=_to_int(_text_of(system.get("EventRecordID"))),
        level=None if level is None else _LEVELS.get(level),
        outcome=_keyword_outcome(keywords), version=_to_int(_text_of(system.get("Version"))),
        process_id=_to_int(_attribute(execution, "ProcessID")), thread_id=_to_int(_attribute(execution, "ThreadID")),
        user_sid=_attribute(system.get("Security"), "UserID"),
        activity_id=_attribute(correlation, "ActivityID"),
        related_activity_id=_attribute(correlation, "RelatedActivityID"),
        event_data=_event_data(event.get("EventData")), user_data=_user_data(event.get("UserData")),
    )


def record_from_winlogbeat(value: Mapping[str, Any]) -> WindowsRecord:
    """A Winlogbeat document (nested or with dotted keys); its `@timestamp` is TimeCreated."""
    get = _nested_get if _is_nested_only(value) else get_path

    def text(name: str) -> str | None:
        return _text_of(get(value, name)) or None

    time_text = text(ecs.TIMESTAMP) or text("winlog.time_created")
    if time_text is None:
        raise ParseError("@timestamp: missing")
    event_id = _to_int(text("winlog.event_id") or text(EVENT_CODE))
    if event_id is None:
        raise ParseError("winlog.event_id: missing or not a number")
    channel = text("winlog.channel")
    if channel is None:
        raise ParseError("winlog.channel: missing")
    keywords = get(value, "winlog.keywords")
    outcome = text(ecs.EVENT_OUTCOME) or text("winlog.outcome")
    if outcome is None and isinstance(keywords, list):
        outcome = "failure" if "Audit Failure" in keywords else "success" if "Audit Success" in keywords else None
    user_data = get(value, "winlog.user_data")
    return WindowsRecord(
        timestamp=_parse_time(time_text, ecs.TIMESTAMP), channel=channel, event_id=event_id,
        provider_name=text("winlog.provider_name") or text(EVENT_PROVIDER), provider_guid=text("winlog.provider_guid"),
        computer=text("winlog.computer_name"), record_id=_to_int(text("winlog.record_id")),
        level=(text(LOG_LEVEL) or text("winlog.level") or "").lower() or None, outcome=outcome,
        version=_to_int(text("winlog.version")), process_id=_to_int(text("winlog.process.pid")),
        thread_id=_to_int(text("winlog.process.thread.id")), user_sid=text("winlog.user.identifier"),
        activity_id=text("winlog.activity_id"), related_activity_id=text("winlog.related_activity_id"),
        message=text(ecs.MESSAGE), event_data=_event_data(get(value, "winlog.event_data")),
        user_data=_items(user_data) if isinstance(user_data, dict) else {},
    )


# The objects `record_from_winlogbeat` reads names in: when none of them has a dotted key, walking
# the nested objects finds what `get_path` finds (it tries dotted keys first), 18 lookups a record
# at a fifth of the cost (cProfile, the demo's Winlogbeat records; bench/sensor.py).
_WINLOGBEAT_OBJECTS = ((), ("event",), ("log",), ("winlog",), ("winlog", "process"), ("winlog", "process", "thread"),
                       ("winlog", "user"))


def _is_nested_only(value: Mapping[str, Any]) -> bool:
    """True when every object `record_from_winlogbeat` reads in is a dict without dotted keys."""
    for path in _WINLOGBEAT_OBJECTS:
        node: Any = value
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, Mapping) and (not isinstance(node, dict) or any("." in str(key) for key in node)):
            return False
    return True


def _nested_get(doc: Mapping[str, Any], dotted: str) -> Any:
    """`get_path` for objects without dotted keys: the value at the nested path, None when absent.
    Also used on the documents this module builds (`set_path` never makes a dotted key; the only
    user-named keys are the items under `winlog`, which no ECS copy reads through this)."""
    node: Any = doc
    for part in _parts(dotted):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


@functools.lru_cache(maxsize=256)
def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(dotted.split("."))


def windows_document(record: WindowsRecord) -> dict[str, Any]:
    """The ECS document of one record (see the module docstring for what is set and why)."""
    code = str(record.event_id)
    doc: dict[str, Any] = {ecs.TIMESTAMP: record.timestamp}
    set_path(doc, ecs.EVENT_KIND, "event")
    set_path(doc, EVENT_CODE, code)
    set_path(doc, ecs.EVENT_MODULE, "sysmon" if record.provider_name == SYSMON_PROVIDER else "windows")
    set_path(doc, ecs.EVENT_DATASET, dataset_of(record.channel))
    for name, value in ((EVENT_PROVIDER, record.provider_name), (ecs.EVENT_OUTCOME, record.outcome),
                        (LOG_LEVEL, record.level), (ecs.HOST_NAME, record.computer), (ecs.MESSAGE, record.message)):
        if value:
            set_path(doc, name, value)
    doc[WINLOG] = _winlog(record, code)
    if record.provider_name == SYSMON_PROVIDER:
        _map_sysmon(doc, record.event_id, record.event_data)
    elif record.provider_name == "Microsoft-Windows-Security-Auditing" or (
            record.provider_name in SECURITY_PROVIDERS and record.channel == "Security"):
        _map_security(doc, record.event_id, record.event_data or record.user_data)
    _set_related(doc)
    return doc


def dataset_of(channel: str) -> str:
    """`windows.security`, `windows.sysmon_operational`, ...; other channels `windows.<channel>`
    in lower case with every run of other characters as `_` (ECS dataset names are such words)."""
    known = _DATASETS.get(channel)
    if known is not None:
        return known
    return "windows." + (re.sub(r"[^a-z0-9]+", "_", channel.lower()).strip("_") or "unknown")


def _winlog(record: WindowsRecord, code: str) -> dict[str, Any]:
    winlog: dict[str, Any] = {"channel": record.channel, "event_id": code}
    for name, value in (("provider_name", record.provider_name), ("provider_guid", record.provider_guid),
                        ("computer_name", record.computer), ("version", record.version),
                        ("process.pid", record.process_id), ("process.thread.id", record.thread_id),
                        ("user.identifier", record.user_sid), ("activity_id", record.activity_id),
                        ("related_activity_id", record.related_activity_id)):
        if value is not None:
            set_path(winlog, name, value)
    if record.record_id is not None:
        winlog["record_id"] = str(record.record_id)
    if record.event_data:
        winlog["event_data"] = dict(record.event_data)
    if record.user_data:
        winlog["user_data"] = dict(record.user_data)
    return winlog


# --- normalising the evtx JSON rendering -------------------------------------------------------

def _text_of(node: Any) -> str | None:
    """The text of a scalar or of an element rendered as `{"#text": ..., "#attributes": ...}`."""
    if isinstance(node, dict):
        node = node.get("#text")
    if node is None or isinstance(node, dict | list):
        return None
    return _scalar(node)


def _attribute(node: Any, name: str) -> str | None:
    """An XML attribute: under `#attributes` (evtx), `@name` (xmltodict) or as a plain key."""
    if not isinstance(node, dict):
        return None
    attributes = node.get("#attributes")
    if isinstance(attributes, dict) and name in attributes:
        return _text_of(attributes[name])
    return _text_of(node.get(f"@{name}", node.get(name)))


def _scalar(value: Any) -> str:
    """Text as the XML has it: JSON true/false as `true`/`false`, numbers in decimal."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _value(value: Any, depth: int = 0) -> EventValue:
    if depth > MAX_DEPTH:
        raise ParseError(f"EventData: values nested over {MAX_DEPTH} deep")
    if isinstance(value, str):  # most items: first
        return value
    if value is None:
        return ""
    if isinstance(value, dict):
        if "#text" in value and all(key in ("#text", "#attributes") for key in value):
            return _value(value["#text"], depth + 1)
        return {str(key): _value(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_value(item, depth + 1) for item in value]
    return _scalar(value)


def _event_data(node: Any) -> dict[str, EventValue]:
    """Items by name. Named `Data` elements come collapsed (`{"Image": ...}`) or as a list of
    `{"@Name"/"#attributes": ..., "#text": ...}`; unnamed ones (`Data` lists, `#text`) become paramN."""
    if node is None:
        return {}
    if not isinstance(node, dict):
        return {"param1": _value(node)}
    items: dict[str, EventValue] = {}
    unnamed: list[EventValue] = []
    for key, value in node.items():
        if key == "#attributes" or str(key).startswith("@"):
            continue  # the EventData element's own attributes, not items
        if key == "Data":
            _add_data(value, items, unnamed)
        elif key == "#text":
            unnamed.extend(value if isinstance(value, list) else [value])
        else:
            items.setdefault(str(key), _value(value))
    for number, value in enumerate(unnamed, start=1):
        items.setdefault(f"param{number}", _value(value))
    return items


def _add_data(value: Any, items: dict[str, EventValue], unnamed: list[EventValue]) -> None:
    for element in value if isinstance(value, list) else [value]:
        name = _attribute(element, "Name") if isinstance(element, dict) else None
        if name:
            items.setdefault(name, _value(element.get("#text")))
        elif isinstance(element, dict) and "#text" in element:
            text = element["#text"]
            unnamed.extend(text if isinstance(text, list) else [text])
        else:
            unnamed.append(_value(element))


def _user_data(node: Any) -> dict[str, EventValue]:
    """`{"<Element>": {items}}` -> the items plus `xml_name`, as Winlogbeat."""
    if not isinstance(node, dict):
        return {} if node is None else {"param1": _value(node)}
    names = [key for key in node if not str(key).startswith(("#", "@"))]
    if not names:
        return {}
    content = node[names[0]]
    items = _items(content) if isinstance(content, dict) else {names[0]: _value(content)}
    items.setdefault("xml_name", str(names[0]))
    for other in names[1:]:  # more than one child element: keep them, nested
        items.setdefault(str(other), _value(node[other]))
    return items


def _items(node: Mapping[str, Any]) -> dict[str, EventValue]:
    return {str(key): _value(value) for key, value in node.items() if not str(key).startswith(("#attributes", "@"))}


def _to_int(text: str | None) -> int | None:
    """A decimal or `0x` number (Security logs pids in hex) that fits 64 bits, else None."""
    if text is None:
        return None
    text = text.strip()
    try:
        number = int(text[2:], 16) if text[:2].lower() == "0x" else int(text, 10)
    except ValueError:
        return None
    return number if 0 <= number < 1 << 64 else None


def _parse_time(text: str, name: str) -> datetime:
    """ISO 8601 (digits past microseconds are cut); a time without zone is UTC, as SystemTime is."""
    try:
        parsed = datetime.fromisoformat(text.strip())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError) as e:
        raise ParseError(f"{name}: not an ISO 8601 time: {text[:64]!r}") from e
    if parsed.year < FILETIME_EPOCH_YEAR:
        raise ParseError(f"{name}: before {FILETIME_EPOCH_YEAR}, not a Windows time: {text[:64]!r}")
    return parsed


def _keyword_outcome(keywords: int | None) -> str | None:
    if keywords is None:
        return None
    return "failure" if keywords & _AUDIT_FAILURE else "success" if keywords & _AUDIT_SUCCESS else None


# --- ECS copies ----------------------------------------------------------------------------------

Copy = tuple[str, str, Callable[[str], Any]]  # (EventData name, ECS name, conversion or None to skip)


def _as_text(text: str) -> str | None:
    return None if text in _ABSENT else text


def _as_int(text: str) -> int | None:
    return _to_int(text)


def _as_ip(text: str) -> str | None:
    try:
        address = ipaddress.ip_address(text.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:a.b.c.d -> a.b.c.d, as Elastic's gsub
    return str(mapped or address)


def _copy(doc: dict[str, Any], data: Mapping[str, EventValue], table: tuple[Copy, ...]) -> None:
    """Copy items present as text, converted; later rows win (as Elastic's renames in order)."""
    for source, target, convert in table:
        value = data.get(source)
        if isinstance(value, str):
            converted = convert(value)
            if converted is not None:
                set_path(doc, target, converted)


def _categorise(doc: dict[str, Any], kind: tuple[tuple[str, ...], tuple[str, ...], str] | None) -> None:
    if kind is None:
        return
    categories, types, action = kind
    if categories:
        set_path(doc, ecs.EVENT_CATEGORY, list(categories))
    set_path(doc, ecs.EVENT_TYPE, list(types))
    set_path(doc, ecs.EVENT_ACTION, action)


def _basename(path: Any) -> str | None:
    return path.rpartition("\\")[2] or None if isinstance(path, str) else None


def _set_related(doc: dict[str, Any]) -> None:
    for target, sources in ((ecs.RELATED_USER, ("user.name", "user.effective.name", "user.target.name")),
                            (ecs.RELATED_IP, ("source.ip", "destination.ip"))):
        values = [v for v in (_nested_get(doc, s) for s in sources) if isinstance(v, str)]
        if target == ecs.RELATED_IP:
            values += _nested_get(doc, "dns.resolved_ip") or []
        if values:
            set_path(doc, target, list(dict.fromkeys(values)))


# --- Sysmon (Elastic's windows.sysmon_operational pipeline) -------------------------------------

_SYSMON_KINDS: dict[int, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    1: (("process",), ("start",), "Process creation"),
    2: (("file",), ("change",), "A process changed a file creation time"),
    3: (("network",), ("start", "connection", "protocol"), "Network connection"),
    4: (("process",), ("change",), "Sysmon service state changed"),
    5: (("process",), ("end",), "Process terminated"),
    6: (("driver",), ("start",), "Driver loaded"),
    7: (("process",), ("change",), "Image loaded"),
    8: (("process",), ("change",), "CreateRemoteThread"),
    9: (("process",), ("access",), "RawAccessRead"),
    10: (("process",), ("access",), "ProcessAccess"),
    11: (("file",), ("creation",), "FileCreate"),
    12: (("configuration", "registry"), ("change",), "RegistryEvent (Object create and delete)"),
    13: (("configuration", "registry"), ("change",), "RegistryEvent (Value Set)"),
    14: (("configuration", "registry"), ("change",), "RegistryEvent (Key and Value Rename)"),
    15: (("file",), ("access",), "FileCreateStreamHash"),
    16: (("configuration",), ("change",), "ServiceConfigurationChange"),
    17: (("file",), ("creation",), "PipeEvent (Pipe Created)"),
    18: (("file",), ("access",), "PipeEvent (Pipe Connected)"),
    19: (("process",), ("info",), "WmiEvent (WmiEventFilter activity detected)"),
    20: (("process",), ("change",), "WmiEvent (WmiEventConsumer activity detected)"),
    21: (("process",), ("access",), "WmiEvent (WmiEventConsumerToFilter activity detected)"),
    22: (("network",), ("connection", "protocol", "info"), "DNSEvent (DNS query)"),
    23: (("file",), ("deletion",), "FileDelete (File Delete archived)"),
    24: ((), ("change",), "ClipboardChange (New content in the clipboard)"),
    25: (("process",), ("change",), "ProcessTampering (Process image change)"),
    26: (("file",), ("deletion",), "FileDeleteDetected (File Delete logged)"),
    27: (("file",), ("creation",), "FileBlockExecutable"),
    28: (("file",), ("deletion",), "FileBlockShredding"),
    29: (("file",), ("creation",), "FileExecutableDetected"),
    255: (("process",), (), "Error"),
}
_SYSMON_FAILURES = frozenset({27, 255})  # blocked and error events: Elastic sets outcome failure

_SYSMON_COPIES: tuple[Copy, ...] = (
    ("RuleName", "rule.name", _as_text),
    ("ProcessGuid", "process.entity_id", _as_text),
    ("ProcessId", "process.pid", _as_int),
    ("Image", "process.executable", _as_text),
    ("SourceProcessGuid", "process.entity_id", _as_text),  # 8, 10: the acting process is the source
    ("SourceProcessId", "process.pid", _as_int),
    ("SourceThreadId", "process.thread.id", _as_int),
    ("SourceImage", "process.executable", _as_text),
    ("CommandLine", "process.command_line", _as_text),
    ("CurrentDirectory", "process.working_directory", _as_text),
    ("ParentProcessGuid", "process.parent.entity_id", _as_text),
    ("ParentProcessId", "process.parent.pid", _as_int),
    ("ParentImage", "process.parent.executable", _as_text),
    ("ParentCommandLine", "process.parent.command_line", _as_text),
    ("TargetFilename", "file.path", _as_text),
    ("Device", "file.path", _as_text),
    ("ImageLoaded", "file.path", _as_text),
    ("PipeName", "file.name", _as_text),
    ("Signature", "file.code_signature.subject_name", _as_text),
    ("SignatureStatus", "file.code_signature.status", _as_text),
    ("Protocol", "network.transport", _as_text),
    ("DestinationPortName", "network.protocol", _as_text),
    ("SourceIp", "source.ip", _as_ip),
    ("SourceHostname", "source.domain", _as_text),
    ("SourcePort", "source.port", _as_int),
    ("DestinationIp", "destination.ip", _as_ip),
    ("DestinationHostname", "destination.domain", _as_text),
    ("DestinationPort", "destination.port", _as_int),
    ("QueryName", "dns.question.name", _as_text),
)
_PE_COPIES = (("OriginalFileName", "original_file_name"), ("Company", "company"), ("Description", "description"),
              ("FileVersion", "file_version"), ("Product", "product"))
_PROCESS_HASH_CODES = frozenset({1, 23, 24, 25})
_FILE_HASH_CODES = frozenset({6, 7, 15, 26, 29})
_HIVES = {"HKEY_CLASSES_ROOT": "HKCR", "HKCR": "HKCR", "HKEY_CURRENT_CONFIG": "HKCC", "HKCC": "HKCC",
          "HKEY_CURRENT_USER": "HKCU", "HKCU": "HKCU", "HKEY_DYN_DATA": "HKDD", "HKDD": "HKDD",
          "HKEY_LOCAL_MACHINE": "HKLM", "HKLM": "HKLM", "HKEY_PERFORMANCE_DATA": "HKPD", "HKPD": "HKPD",
          "HKEY_USERS": "HKU", "HKU": "HKU"}
_KERNEL_HIVES = {"MACHINE": "HKLM", "USER": "HKU"}  # \REGISTRY\MACHINE\..., when Sysmon does not abbreviate
_DWORD = re.compile(r"DWORD \((0x[0-9A-Fa-f]{1,8})\)")


def _map_sysmon(doc: dict[str, Any], code: int, data: Mapping[str, EventValue]) -> None:
    _categorise(doc, _SYSMON_KINDS.get(code))
    if code in _SYSMON_FAILURES:
        set_path(doc, ecs.EVENT_OUTCOME, "failure")
    _copy(doc, data, _SYSMON_COPIES)
    pe = "file.pe." if code == 7 else "process.pe."  # event 7 describes the loaded image, not the process
    _copy(doc, data, tuple((source, pe + target, _as_text) for source, target in _PE_COPIES))
    for path_field, name_field in (("process.executable", "process.name"),
                                   ("process.parent.executable", "process.parent.name")):
        name = _basename(_nested_get(doc, path_field))
        if name:
            set_path(doc, name_field, name)
    _set_file_parts(doc)
    _set_sysmon_user(doc, data.get("User"))
    if code in _PROCESS_HASH_CODES | _FILE_HASH_CODES:
        _set_hashes(doc, data.get("Hashes", data.get("Hash")), "process" if code in _PROCESS_HASH_CODES else "file")
    if code == 3:
        _set_connection(doc, data)
    elif code == 22:
        _set_dns(doc, data)
    elif code in (12, 13, 14):
        _set_registry(doc, code, data)


def _set_file_parts(doc: dict[str, Any]) -> None:
    """file.name, directory and extension of a Windows file.path (the extension of the name only)."""
    path = _nested_get(doc, "file.path")
    if not isinstance(path, str) or "\\" not in path:
        return
    directory, _, name = path.rpartition("\\")
    set_path(doc, "file.directory", directory)
    if name:
        set_path(doc, "file.name", name)
        stem, dot, extension = name.rpartition(".")
        if dot and stem and extension:
            set_path(doc, "file.extension", extension)


def _set_sysmon_user(doc: dict[str, Any], user: EventValue | None) -> None:
    """`DOMAIN\\name` -> user.domain and user.name. Not user.id: Elastic copies the System UserID,
    but in Sysmon that is the Sysmon service's account (S-1-5-18), not this user."""
    if not isinstance(user, str):
        return
    parts = user.split("\\")
    if len(parts) == 2 and parts[0] and parts[1]:
        set_path(doc, "user.domain", parts[0])
        set_path(doc, "user.name", parts[1])


def _set_hashes(doc: dict[str, Any], hashes: EventValue | None, owner: str) -> None:
    """`SHA1=..,MD5=..,IMPHASH=..` -> `<owner>.hash.<algo>` in lower case; the imphash is `<owner>.pe.imphash`."""
    if not isinstance(hashes, str):
        return
    found: list[str] = []
    for pair in hashes.split(","):
        algorithm, equals, digest = pair.partition("=")
        digest = digest.strip().lower()
        if not equals or not digest or not digest.isalnum() or not digest.strip("0"):
            continue
        algorithm = algorithm.strip().lower()
        set_path(doc, f"{owner}.pe.imphash" if algorithm == "imphash" else f"{owner}.hash.{algorithm}", digest)
        found.append(digest)
    if found:
        set_path(doc, RELATED_HASH, list(dict.fromkeys(found)))


def _set_connection(doc: dict[str, Any], data: Mapping[str, EventValue]) -> None:
    direction = {"true": "egress", "false": "ingress"}.get(str(data.get("Initiated")).lower())
    if direction is not None:
        set_path(doc, "network.direction", direction)
    family = {"true": "ipv6", "false": "ipv4"}.get(str(data.get("SourceIsIpv6")).lower())
    if family is not None:
        set_path(doc, "network.type", family)


def _set_dns(doc: dict[str, Any], data: Mapping[str, EventValue]) -> None:
    """network.protocol dns; the addresses among QueryResults (`type:  5 cname;::ffff:1.2.3.4;`)."""
    set_path(doc, "network.protocol", "dns")
    results = data.get("QueryResults")
    if isinstance(results, str):
        addresses = [_as_ip(answer) for answer in results.split(";") if not answer.startswith("type:")]
        resolved = [address for address in addresses if address is not None]
        if resolved:
            set_path(doc, "dns.resolved_ip", list(dict.fromkeys(resolved)))


def _set_registry(doc: dict[str, Any], code: int, data: Mapping[str, EventValue]) -> None:
    """registry.path, hive, key and value of TargetObject, as ECS defines them: the key is the
    hive-relative path of the key, without the value's name (Elastic's pipeline keeps the value's
    name in the key), and there is a value only when the event is about one."""
    path = data.get("TargetObject")
    if not isinstance(path, str) or path in _ABSENT:
        return
    set_path(doc, "registry.path", path)
    parts = path.split("\\")
    hive = _HIVES.get(parts[0].upper())
    rest = parts[1:]
    if hive is None and len(parts) > 2 and parts[0] == "" and parts[1].upper() == "REGISTRY":
        hive, rest = _KERNEL_HIVES.get(parts[2].upper()), parts[3:]
    event_type = data.get("EventType")
    is_value = event_type.endswith("Value") if isinstance(event_type, str) and event_type else code == 13
    if is_value and rest:
        set_path(doc, "registry.value", rest[-1])
        rest = rest[:-1]
    if hive is not None:
        set_path(doc, "registry.hive", hive)
        if rest:
            set_path(doc, "registry.key", "\\".join(rest))
    details = data.get("Details")
    if code == 13 and isinstance(details, str) and details not in _ABSENT:
        _set_registry_data(doc, details)


def _set_registry_data(doc: dict[str, Any], details: str) -> None:
    """Sysmon's rendering of the data: `DWORD (0x00000001)` -> REG_DWORD "1"; `QWORD (0x..-0x..)`
    -> REG_QWORD, kept as written (the order of its halves is not documented); `Binary Data` ->
    REG_BINARY; anything else is string data (REG_SZ or REG_EXPAND_SZ: Sysmon does not say which)."""
    dword = _DWORD.fullmatch(details)
    if dword is not None:
        kind, strings = "REG_DWORD", [str(int(dword.group(1), 16))]
    elif details.startswith("QWORD ("):
        kind, strings = "REG_QWORD", [details]
    elif details == "Binary Data":
        kind, strings = "REG_BINARY", [details]
    else:
        kind, strings = "REG_SZ", [details]
    set_path(doc, "registry.data.type", kind)
    set_path(doc, "registry.data.strings", strings)


# --- Security (Elastic's system.security pipeline) ------------------------------------------------

def _kinds(codes: tuple[int, ...], categories: tuple[str, ...], types: tuple[str, ...],
           action: str) -> dict[int, tuple[tuple[str, ...], tuple[str, ...], str]]:
    return dict.fromkeys(codes, (categories, types, action))


_SECURITY_KINDS = {
    **_kinds((1100,), ("process",), ("end",), "logging-service-shutdown"),
    **_kinds((1102,), ("iam",), ("admin", "change"), "audit-log-cleared"),
    **_kinds((1104,), ("iam",), ("admin",), "logging-full"),
    **_kinds((4624,), ("authentication",), ("start",), "logged-in"),
    **_kinds((4625,), ("authentication",), ("start",), "logon-failed"),
    **_kinds((4634, 4647), ("authentication",), ("end",), "logged-out"),
    **_kinds((4648,), ("authentication",), ("start",), "logged-in-explicit"),
    **_kinds((4657,), ("registry", "configuration"), ("change",), "registry-value-modified"),
    **_kinds((4672,), ("iam",), ("admin",), "logged-in-special"),
    **_kinds((4688,), ("process",), ("start",), "created-process"),
    **_kinds((4689,), ("process",), ("end",), "exited-process"),
    **_kinds((4697,), ("iam", "configuration"), ("admin", "change"), "service-installed"),
    **_kinds((4698,), ("iam", "configuration"), ("creation", "admin"), "scheduled-task-created"),
    **_kinds((4699,), ("iam", "configuration"), ("deletion", "admin"), "scheduled-task-deleted"),
    **_kinds((4700,), ("iam", "configuration"), ("change", "admin"), "scheduled-task-enabled"),
    **_kinds((4701,), ("iam", "configuration"), ("change", "admin"), "scheduled-task-disabled"),
    **_kinds((4702,), ("iam", "configuration"), ("change", "admin"), "scheduled-task-updated"),
    **_kinds((4719,), ("iam", "configuration"), ("admin", "change"), "changed-audit-config"),
    **_kinds((4720,), ("iam",), ("user", "creation"), "added-user-account"),
    **_kinds((4722,), ("iam",), ("user", "change"), "enabled-user-account"),
    **_kinds((4723,), ("iam",), ("user", "change"), "changed-password"),
    **_kinds((4724,), ("iam",), ("user", "change"), "reset-password"),
    **_kinds((4725,), ("iam",), ("user", "deletion"), "disabled-user-account"),
    **_kinds((4726,), ("iam",), ("user", "deletion"), "deleted-user-account"),
    **_kinds((4727, 4731, 4754), ("iam",), ("group", "creation"), "added-group-account"),
    **_kinds((4728, 4732, 4756), ("iam",), ("group", "change"), "added-member-to-group"),
    **_kinds((4729, 4733, 4757), ("iam",), ("group", "change"), "removed-member-from-group"),
    **_kinds((4730, 4734, 4758), ("iam",), ("group", "deletion"), "deleted-group-account"),
    **_kinds((4735, 4737, 4755), ("iam",), ("group", "change"), "modified-group-account"),
    **_kinds((4738,), ("iam",), ("user", "change"), "modified-user-account"),
    **_kinds((4740,), ("iam",), ("user", "change"), "locked-out-user-account"),
    **_kinds((4767,), ("iam",), ("user", "change"), "unlocked-user-account"),
    **_kinds((4768,), ("authentication",), ("start",), "kerberos-authentication-ticket-requested"),
    **_kinds((4769,), ("authentication",), ("start",), "kerberos-service-ticket-requested"),
    **_kinds((4770,), ("authentication",), ("start",), "kerberos-service-ticket-renewed"),
    **_kinds((4771,), ("authentication",), ("start",), "kerberos-preauth-failed"),
    **_kinds((4776,), ("authentication",), ("start",), "credential-validated"),
    **_kinds((4778,), ("authentication", "session"), ("start",), "session-reconnected"),
    **_kinds((4779,), ("authentication", "session"), ("end",), "session-disconnected"),
    **_kinds((4798,), ("iam",), ("user", "info"), "group-membership-enumerated"),
    **_kinds((4799,), ("iam",), ("group", "info"), "user-member-enumerated"),
    **_kinds((5140,), ("network", "file"), ("info", "access"), "network-share-object-accessed"),
    **_kinds((5145,), ("network", "file"), ("info", "access"), "network-share-object-access-checked"),
}
# Which account is `user` (and `user.target`, `user.effective`), by event code, as Elastic's pipeline
# sets them; where an event is in two of the first sets, Subject wins (it is applied second).
_TARGET_IS_USER = frozenset({4624, 4625, 4634, 4647, 4648, 4768, 4769, 4770, 4771, 4776, 4964})
_SUBJECT_IS_USER = frozenset({
    1102, 4648, 4657, 4670, 4672, 4673, 4674, 4688, 4689, 4697, 4698, 4699, 4700, 4701, 4702, 4706, 4707, 4713,
    4716, 4717, 4718, 4719, 4720, *range(4722, 4736), *range(4737, 4765), 4767, 4781, 4798, 4799, 4817, 4904, 4905,
    4907, 4912, 5140, 5145})
_TARGET_IS_TARGET = frozenset({4670, 4720, 4722, 4723, 4724, 4725, 4726, 4738, 4740, 4767, 4798, 4817, 4907})
_TARGET_IS_EFFECTIVE = frozenset({4648, 4688})
_LOGON_PROCESS_CODES = frozenset({
    1100, 1102, 1104, 1105, 1108, 4624, 4625, 4648, 4670, 4673, 4674, 4689, 4697, 4719, 4720, *range(4722, 4736),
    *range(4737, 4765), 4767, 4768, 4769, 4770, 4771, 4798, 4799, 4817, 4904, 4905, 4907, 4912, 5140, 5145})
_LOGON_PROCESS_COPIES: tuple[Copy, ...] = (
    ("ProcessId", "process.pid", _as_int),
    ("ProcessName", "process.executable", _as_text),
    ("IpAddress", "source.ip", _as_ip),
    ("IpPort", "source.port", lambda text: _to_int(text) or None),  # 0: no port
    ("WorkstationName", "source.domain", _as_text),
)
_PROCESS_CREATION_COPIES: tuple[Copy, ...] = (  # 4688: ProcessId is the creator's
    ("NewProcessId", "process.pid", _as_int),
    ("NewProcessName", "process.executable", _as_text),
    ("CommandLine", "process.command_line", _as_text),
    ("ProcessId", "process.parent.pid", _as_int),
    ("ParentProcessName", "process.parent.executable", _as_text),
)
_LOGON_TYPES = {"2": "Interactive", "3": "Network", "4": "Batch", "5": "Service", "7": "Unlock",
                "8": "NetworkCleartext", "9": "NewCredentials", "10": "RemoteInteractive", "11": "CachedInteractive"}


def _map_security(doc: dict[str, Any], code: int, data: Mapping[str, EventValue]) -> None:
    _categorise(doc, _SECURITY_KINDS.get(code))
    if code in _TARGET_IS_USER:
        _set_account(doc, "user", data, "Target")
    if code in _SUBJECT_IS_USER:
        _set_account(doc, "user", data, "Subject")
    if code in _TARGET_IS_TARGET:
        _set_account(doc, "user.target", data, "Target")
    if code in _TARGET_IS_EFFECTIVE:
        _set_account(doc, "user.effective", data, "Target")
    if code == 4688:
        _copy(doc, data, _PROCESS_CREATION_COPIES)
    elif code in _LOGON_PROCESS_CODES:
        _copy(doc, data, _LOGON_PROCESS_COPIES)
    for path_field, name_field in (("process.executable", "process.name"),
                                   ("process.parent.executable", "process.parent.name")):
        name = _basename(_nested_get(doc, path_field))
        if name:
            set_path(doc, name_field, name)
    logon_type = _LOGON_TYPES.get(str(data.get("LogonType")))
    if logon_type is not None:
        set_path(doc, "winlog.logon.type", logon_type)


def _set_account(doc: dict[str, Any], prefix: str, data: Mapping[str, EventValue], role: str) -> None:
    """`<role>UserSid|Sid`, `<role>UserName`, `<role>DomainName` -> `<prefix>.id|name|domain`; a
    Target name `alice@corp` is `alice`, as Elastic splits it. `-` and S-1-0-0 mean no account."""
    sid = data.get(f"{role}UserSid", data.get(f"{role}Sid"))
    name = data.get(f"{role}UserName")
    if isinstance(name, str) and role == "Target":
        name = name.split("@")[0]
    for value, suffix in ((sid, "id"), (name, "name"), (data.get(f"{role}DomainName"), "domain")):
        if isinstance(value, str) and value not in _NO_ACCOUNT:
            set_path(doc, f"{prefix}.{suffix}", value)
