"""Sigma field names and Windows log sources on our Windows events (fields.py, logsources.py).

Events are built by the real Windows parser from the evtx JSON shape, so the tests exercise the
paths the parser writes (`winlog.event_data.<Name>`, `winlog.user_data.<Name>`, `event.code`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sigma.pipelines.common import windows_logsource_mapping

from detections.sigma.fields import AUDIT_RENAMES, ECS_FIELDS, WINDOWS_AUDIT_FIELDS, WINDOWS_FIELDS, flat_view
from detections.sigma.load import load_rules
from detections.sigma.logsources import (
    LOG_SOURCES,
    SYSMON_CATEGORY_EVENT_IDS,
    WINDOWS_CATEGORY_EVENTS,
    EventScope,
    sources_for,
)
from detections.sigma.match import SigmaEngine
from pipeline.records import MISSING, Event
from sensors.parsers.windows import parse_windows_json, windows_document

SYSMON = ("Microsoft-Windows-Sysmon", "Microsoft-Windows-Sysmon/Operational")
SECURITY = ("Microsoft-Windows-Security-Auditing", "Security")


def windows_event(provider: tuple[str, str], event_id: int, data: dict[str, Any], *, n: int = 1,
                  user_data: dict[str, Any] | None = None) -> Event:
    """One event as the Windows reader makes it, from the evtx JSON rendering."""
    system = {"Provider": {"#attributes": {"Name": provider[0]}}, "EventID": event_id, "Channel": provider[1],
              "TimeCreated": {"#attributes": {"SystemTime": "2026-11-23T07:00:00Z"}}, "EventRecordID": n,
              "Computer": "pc-01"}
    body: dict[str, Any] = {"System": system, "EventData": data}
    if user_data is not None:
        body = {"System": system, "UserData": user_data}
    doc = windows_document(parse_windows_json({"Event": body}))
    doc["organization"] = {"id": "hanoi"}
    return Event.create(doc, id_parts=["fields-test", n])


PROCESS_RULE = """
title: Certutil download
id: 11111111-1111-4111-8111-111111111111
logsource: {category: process_creation, product: windows}
detection:
  selection:
    Image|endswith: '\\certutil.exe'
    CommandLine|contains: 'urlcache'
  condition: selection
level: high
"""


def engine_for(tmp_path: Path, *rules: str) -> SigmaEngine:
    for number, text in enumerate(rules):
        (tmp_path / f"r{number}.yml").write_text(text, encoding="utf-8")
    ruleset, errors = load_rules([tmp_path])
    assert errors == []
    return SigmaEngine(ruleset)


def fired(engine: SigmaEngine, event: Event) -> list[str]:
    return [alert.rule_id for alert in engine.process([event])]


# --- resolution -----------------------------------------------------------------------------------

def test_a_windows_name_reads_event_data_then_user_data_then_ecs() -> None:
    assert WINDOWS_FIELDS.resolve("Image") == (
        "winlog.event_data.Image", "winlog.user_data.Image", "process.executable")
    assert WINDOWS_FIELDS.resolve("EventID")[-1] == "event.code"
    assert WINDOWS_FIELDS.resolve("Provider_Name")[-1] == "winlog.provider_name"
    assert WINDOWS_FIELDS.resolve("SomethingNew") == (
        "winlog.event_data.SomethingNew", "winlog.user_data.SomethingNew")


def test_a_dotted_name_is_already_an_event_path() -> None:
    assert WINDOWS_FIELDS.resolve("source.ip") == ("source.ip",)
    assert ECS_FIELDS.resolve("Image") == ("Image",)


def test_security_events_use_the_audit_pipelines_names() -> None:
    for sigma_name, audit_name in AUDIT_RENAMES.items():
        assert WINDOWS_AUDIT_FIELDS.resolve(sigma_name)[0] == f"winlog.event_data.{audit_name}"
    assert WINDOWS_AUDIT_FIELDS.resolve("CommandLine")[0] == "winlog.event_data.CommandLine"


# --- log sources ----------------------------------------------------------------------------------

def test_every_windows_service_of_pysigma_is_mapped_to_its_channels() -> None:
    for service, channels in windows_logsource_mapping.items():
        wanted = set(channels) if isinstance(channels, list) else {channels}
        assert {s.scope.value for s in sources_for(None, "windows", service)} == wanted


def test_process_creation_is_sysmon_1_and_security_4688() -> None:
    scopes = {(s.scope.value, s.scope.codes, s.fields.name) for s in sources_for("process_creation", "windows", None)}
    assert scopes == {("Microsoft-Windows-Sysmon/Operational", frozenset({"1"}), "windows:process_creation:sysmon"),
                      ("Security", frozenset({"4688"}), "windows:process_creation:security")}


def test_the_sources_of_one_log_source_never_overlap() -> None:
    for key, sources in LOG_SOURCES.items():
        pairs = [(s.scope.field, s.scope.value, code) for s in sources for code in s.scope.codes or {None}]
        assert len(pairs) == len(set(pairs)), key


def test_the_sysmon_table_agrees_with_pysigma_pipeline_sysmon_when_installed() -> None:
    sysmon = pytest.importorskip("sigma.pipelines.sysmon.sysmon")
    for category, ids in sysmon.sysmon_generic_logsource_eventid_mapping.items():
        assert SYSMON_CATEGORY_EVENT_IDS[category] == (tuple(ids) if isinstance(ids, list) else (ids,))


def test_the_powershell_table_agrees_with_pysigma_pipeline_windows_when_installed() -> None:
    windows = pytest.importorskip("sigma.pipelines.windows.windows")
    for category, info in windows.windows_generic_category_channel_mapping.items():
        assert WINDOWS_CATEGORY_EVENTS[category] == (info["service"], info["EventID"])


def test_a_scope_with_codes_wants_the_channel_and_one_of_the_codes() -> None:
    scope = EventScope("winlog.channel", "Microsoft-Windows-Sysmon/Operational", codes=frozenset({"12", "13"}))
    assert scope.matches(windows_event(SYSMON, 13, {}))
    assert not scope.matches(windows_event(SYSMON, 1, {}))
    assert not scope.matches(windows_event(SECURITY, 13, {}))
    assert "event.code in ['12', '13']" in str(scope)


# --- rules on events ------------------------------------------------------------------------------

def test_a_process_creation_rule_fires_on_sysmon_1_and_on_security_4688(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, PROCESS_RULE)
    sysmon = windows_event(SYSMON, 1, {"Image": r"C:\Windows\System32\certutil.exe",
                                       "CommandLine": "certutil -urlcache -f http://x/a.exe"})
    audit = windows_event(SECURITY, 4688, {"NewProcessName": r"C:\Windows\System32\certutil.exe",
                                           "CommandLine": "certutil -urlcache -f http://x/a.exe"}, n=2)
    assert fired(engine, sysmon) == ["11111111-1111-4111-8111-111111111111"]
    assert fired(engine, audit) == ["11111111-1111-4111-8111-111111111111"]


def test_a_process_creation_rule_ignores_other_event_ids(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, PROCESS_RULE)
    network = windows_event(SYSMON, 3, {"Image": r"C:\Windows\System32\certutil.exe",
                                        "CommandLine": "certutil -urlcache"})
    assert fired(engine, network) == []


def test_event_data_wins_over_the_ecs_copy_and_ecs_fills_in_when_it_is_gone(tmp_path: Path) -> None:
    event = windows_event(SYSMON, 1, {"Image": r"C:\a\certutil.exe", "CommandLine": "x -urlcache"})
    engine_doc = {**event.doc, "process": {"executable": r"C:\other.exe"}}
    ecs_only = {key: value for key, value in event.doc.items() if key != "winlog"}
    ecs_only["process"] = {"executable": r"C:\a\certutil.exe", "command_line": "x -urlcache"}
    ecs_only["winlog"] = {"channel": SYSMON[1]}
    rule_engine = engine_for(tmp_path, PROCESS_RULE)
    assert fired(rule_engine, Event.from_document(engine_doc)) != []
    assert fired(rule_engine, Event.from_document(ecs_only)) != []


def test_null_means_absent_from_every_place_the_name_can_be(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, PROCESS_RULE.replace(
        "CommandLine|contains: 'urlcache'", "OriginalFileName: null"))
    with_name = windows_event(SYSMON, 1, {"Image": r"C:\x\certutil.exe", "OriginalFileName": "CertUtil.exe"})
    without = windows_event(SYSMON, 1, {"Image": r"C:\x\certutil.exe"}, n=2)
    assert fired(engine, with_name) == []
    assert fired(engine, without) != []


def test_user_data_items_are_sigma_fields(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, """
title: Log cleared
id: 22222222-2222-4222-8222-222222222222
logsource: {product: windows, service: system}
detection:
  selection: {EventID: 104, Channel: Application}
  condition: selection
""")
    event = windows_event(("Microsoft-Windows-Eventlog", "System"), 104, {},
                          user_data={"LogFileCleared": {"Channel": "Application", "SubjectUserName": "bob"}})
    assert fired(engine, event) == ["22222222-2222-4222-8222-222222222222"]



def test_data_is_the_event_data_as_a_whole(tmp_path: Path) -> None:
    """SigmaHQ's MSSQL rule shape: `Data|contains|all` over a classic event's unnamed Data items."""
    engine = engine_for(tmp_path, """
title: xp_cmdshell
id: 66666666-6666-4666-8666-666666666666
logsource: {product: windows, service: application}
detection:
  selection:
    Provider_Name|contains: MSSQL
    EventID: 33205
    Data|contains|all: ['object_name:xp_cmdshell', 'statement:EXEC']
  condition: selection
""")
    application = ("MSSQLSERVER", "Application")
    unnamed = {"Data": ["audit_schema_version:1", "object_name:xp_cmdshell", "statement:EXEC xp_cmdshell 'whoami'"]}
    hit = windows_event(application, 33205, unnamed)
    miss = windows_event(application, 33205, {"Data": ["object_name:xp_cmdshell"]}, n=2)
    assert hit.get("winlog.event_data.param2") == "object_name:xp_cmdshell"
    assert fired(engine, hit) == ["66666666-6666-4666-8666-666666666666"]
    assert fired(engine, miss) == []


def test_a_named_data_item_is_read_as_it_is() -> None:
    doc = {"winlog": {"event_data": {"Other": "x", "Data": "named"}}}
    flat = flat_view(doc)
    assert WINDOWS_FIELDS.reader("Data")(flat) == "named"
    other = {"winlog": {"event_data": {"a": "1", "b": ["2"], "c": "3"}}}
    assert WINDOWS_FIELDS.reader("Data")(flat_view(other)) == "1\n3"
    assert WINDOWS_FIELDS.reader("Data")(flat_view({"winlog": {}})) is MISSING
    assert WINDOWS_FIELDS.reader("Missing")(flat) is MISSING
    assert ECS_FIELDS.reader("Data")(flat) is MISSING
