"""Windows events: .evtx and JSON files to ECS events, and the record mapping itself.

Ground truth: SigmaHQ's regression data (../shared/data/sigma-regression, DRL 1.1), every case of
which holds one event as an .evtx file and as its JSON rendering. Events written inline below are
ours, built the way Windows logs them, and say so.
"""

from __future__ import annotations

import json
import random
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from pipeline.errors import ParseError
from pipeline.records import DeadLetter, Event
from sensors.files import INVALID_UTF8_TAG
from sensors.parsers import LineContext
from sensors.parsers.windows import (
    WindowsRecord,
    dataset_of,
    parse_windows_json,
    parse_windows_line,
    windows_document,
)
from sensors.windows import MAX_DOCUMENT_BYTES, WindowsSource, read_windows_file, read_windows_json_file

REGRESSION = Path(__file__).resolve().parents[3] / "shared" / "data" / "sigma-regression"
SOURCE = WindowsSource(tenant="hanoi", sensor="hanoi-s1")
SC_STOP = REGRESSION / ("rules/windows/process_creation/proc_creation_win_sc_stop_service/"
                        "81bcb81b-5b1f-474b-b373-52c871aaa7b1")
RDP_HELP = REGRESSION / ("rules/windows/registry/registry_set/registry_set_allow_rdp_remote_assistance_feature/"
                         "37b437cf-3fc5-4c8e-9c94-1d7c9aff842b")
RUNMRU = REGRESSION / ("rules/windows/registry/registry_delete/registry_delete_runmru/"
                       "3a9b8c1e-5b2e-4f7a-9d1c-2a7f3b6e1c55")
DLL_FILE = REGRESSION / ("rules/windows/file/file_event/file_event_win_creation_system_dll_files/"
                         "13c02350-4177-4e45-ac17-cf7ca628ff5e")
EXPLICIT_LOGON = REGRESSION / ("rules/windows/builtin/security/win_security_explicit_credential_local_logon/"
                               "e3c6d245-7b8f-4e2a-c17f-a9d0e5b38f62")
WMI_CLEAR = REGRESSION / ("rules/windows/builtin/wmi/win_wmi_activity_nteventlogfile_cleareventlog/"
                          "d4f1a2b3-7c8e-4d5f-b6a9-1e0c2d3f4e5b")
TASK_DISABLED = REGRESSION / ("rules/windows/builtin/taskscheduler/win_taskscheduler_susp_schtasks_delete_or_disable/"
                              "9e3cb244-bdb8-4632-8c90-6079c8f4f16d")
SEVEN_RECORDS = REGRESSION / ("rules/windows/file/file_event/file_event_win_hktl_netexec_file_indicators/"
                              "efc21479-9e83-41da-8cf1-122e06ba8db3.evtx")


def read_all(path: Path, source: WindowsSource = SOURCE, **kwargs: Any) -> tuple[list[Event], list[DeadLetter]]:
    events: list[Event] = []
    dead: list[DeadLetter] = []
    with capture_logs():  # dead letters log warnings; keep them out of the test output
        for batch in read_windows_file(path, source, **kwargs):
            events += batch.events
            dead += batch.dead_letters
    return events, dead


def only_event(path: Path) -> Event:
    events, dead = read_all(path)
    assert dead == [] and len(events) == 1
    return events[0]


def json_documents(path: Path) -> list[dict[str, Any]]:
    """The regression JSON: one document, or several pretty-printed ones one after another."""
    text, decoder, pos, found = path.read_text(encoding="utf-8"), json.JSONDecoder(), 0, []
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        value, pos = decoder.raw_decode(text, pos)
        found.append(value)
    return found


def as_text(value: Any) -> Any:
    """A JSON value as the XML writes it (the form winlog.event_data keeps)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict):
        return {k: as_text(v) for k, v in value.items()}
    return value if isinstance(value, str) else str(value)


def by_record_id(events: list[Event]) -> dict[str, Event]:
    return {e.get("winlog.record_id"): e for e in events}


# --- every regression case ----------------------------------------------------------------------

CASES = sorted(path.with_suffix("") for path in REGRESSION.rglob("*.json"))


def test_every_case_has_both_files() -> None:
    assert len(CASES) == 142
    assert sorted(path.with_suffix("") for path in REGRESSION.rglob("*.evtx")) == CASES


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.parent.name)
def test_regression_case_maps_every_event_data_item(case: Path) -> None:
    json_events, json_dead = read_all(case.with_suffix(".json"))
    evtx_events, evtx_dead = read_all(case.with_suffix(".evtx"))
    assert json_dead == [] and evtx_dead == []
    documents = json_documents(case.with_suffix(".json"))
    assert len(json_events) == len(documents) >= 1 and len(evtx_events) >= 1
    from_json, from_evtx = by_record_id(json_events), by_record_id(evtx_events)
    for document in documents:
        system = document["Event"]["System"]
        event = from_json[str(system["EventRecordID"])]
        assert event.get("event.code") == event.get("winlog.event_id") == str(system["EventID"])
        event_data = document["Event"].get("EventData") or {}
        for key, value in event_data.items():
            if key != "#attributes":  # the EventData element's own attributes are not items
                assert event.get(f"winlog.event_data.{key}") == as_text(value), key
        for element in (document["Event"].get("UserData") or {}).values():
            for key, value in element.items():
                if key != "#attributes":
                    assert event.get(f"winlog.user_data.{key}") == as_text(value), key
        assert_same_event(event, from_evtx[event.get("winlog.record_id")], case.parent.name)


# Where the regression JSON says something else than its .evtx (the files themselves differ).
JSON_DIFFERS = {("proc_creation_win_susp_right_to_left_override", "ParentCommandLine"):
                ("C:\\Windows\\Explorer.exe", "C:\\Windows\\Explorer.EXE")}


def assert_same_event(from_json: Event, from_evtx: Event, case: str) -> None:
    """The .evtx and its JSON rendering give the same event. The JSON was rendered by a tool that
    trimmed trailing blanks (Sysmon ends some command lines with a space; pyevtx-rs keeps it)."""
    def trimmed(data: Any) -> Any:
        return {k: v.rstrip() if isinstance(v, str) else v for k, v in (data or {}).items()}

    json_data, evtx_data = trimmed(from_json.get("winlog.event_data")), trimmed(from_evtx.get("winlog.event_data"))
    for (known_case, key), (in_json, in_evtx) in JSON_DIFFERS.items():
        if known_case == case:
            assert (json_data.pop(key), evtx_data.pop(key)) == (in_json, in_evtx)
    assert from_json.get("event.code") == from_evtx.get("event.code")
    assert json_data == evtx_data
    assert from_json.get("winlog.user_data") == from_evtx.get("winlog.user_data")
    assert (from_json.id, from_json.timestamp) == (from_evtx.id, from_evtx.timestamp)


def test_two_reads_give_identical_events() -> None:
    for case in CASES:
        for path in (case.with_suffix(".json"), case.with_suffix(".evtx")):
            first, second = read_all(path), read_all(path)
            assert [(e.id, e.doc) for e in first[0]] == [(e.id, e.doc) for e in second[0]]


def test_ids_depend_on_tenant_and_sensor() -> None:
    path = SC_STOP.with_suffix(".evtx")
    ids = {only_event(path).id, read_all(path, WindowsSource("hue", "hanoi-s1"))[0][0].id,
           read_all(path, WindowsSource("hanoi", "hanoi-s2"))[0][0].id}
    assert len(ids) == 3


# --- spot checks on named cases ---------------------------------------------------------------

def test_sysmon_process_creation_document_is_complete() -> None:
    path = SC_STOP.with_suffix(".json")
    event = only_event(path)
    data = json_documents(path)[0]["Event"]["EventData"]
    assert event.doc == {
        "@timestamp": "2025-10-22T20:33:27.276702Z",
        "event": {"kind": "event", "code": "1", "module": "sysmon", "dataset": "windows.sysmon_operational",
                  "provider": "Microsoft-Windows-Sysmon", "category": ["process"], "type": ["start"],
                  "action": "Process creation", "id": event.id, "original": path.read_text(encoding="utf-8").strip()},
        "log": {"level": "information", "file": {"path": str(path.resolve())}, "offset": 0},
        "host": {"name": "ar-win-1"},
        "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": "1",
                   "provider_name": "Microsoft-Windows-Sysmon", "provider_guid": "5770385F-C22A-43E0-BF4C-06F5698FFBD9",
                   "computer_name": "ar-win-1", "version": 5, "process": {"pid": 3168, "thread": {"id": 4580}},
                   "user": {"identifier": "S-1-5-18"}, "record_id": "256875", "event_data": as_text(data)},
        "process": {
            "entity_id": "5AB40FD1-3F97-68F9-5631-000000003B02", "pid": 3424,
            "executable": "C:\\Windows\\System32\\sc.exe", "name": "sc.exe", "command_line": "sc  stop mpssvc",
            "working_directory": "C:\\Users\\Administrator\\Downloads\\testdata\\",
            "parent": {"entity_id": "5AB40FD1-3E0C-68F9-1731-000000003B02", "pid": 8252,
                       "executable": "C:\\Windows\\System32\\cmd.exe", "name": "cmd.exe",
                       "command_line": '"C:\\Windows\\system32\\cmd.exe"'},
            "pe": {"original_file_name": "sc.exe", "company": "Microsoft Corporation",
                   "description": "Service Control Manager Configuration Tool",
                   "file_version": "10.0.20348.1 (WinBuild.160101.0800)",
                   "product": "Microsoft® Windows® Operating System", "imphash": "803254e010814e69947095a2725b2afd"},
            "hash": {"md5": "6fb10cd439b40d92935f8f6a0c99670a",
                     "sha256": "2bf663ea493cdc21ad33aebd8da40cc5d2afa55e24f9e1bbf3d73e99dcadf693"},
        },
        "user": {"domain": "AR-WIN-1", "name": "Administrator"},
        "related": {"user": ["Administrator"], "hash": ["6fb10cd439b40d92935f8f6a0c99670a",
                                                        "2bf663ea493cdc21ad33aebd8da40cc5d2afa55e24f9e1bbf3d73e99dcadf693",
                                                        "803254e010814e69947095a2725b2afd"]},
        "organization": {"id": "hanoi"},
        "observer": {"name": "hanoi-s1", "type": "sensor"},
    }
    assert Event.from_json(event.to_json()).doc == event.doc


def test_sysmon_process_creation_from_evtx_keeps_the_trailing_space() -> None:
    event = only_event(SC_STOP.with_suffix(".evtx"))
    assert event.get("process.parent.command_line") == '"C:\\Windows\\system32\\cmd.exe" '
    assert event.get("winlog.event_data.ParentCommandLine") == '"C:\\Windows\\system32\\cmd.exe" '
    assert event.get("process.executable") == "C:\\Windows\\System32\\sc.exe"
    assert event.get("log.offset") is None
    assert orjson.loads(event.get("event.original"))["Event"]["System"]["EventRecordID"] == 256875


def test_sysmon_registry_value_set() -> None:
    event = only_event(RDP_HELP.with_suffix(".evtx"))
    assert event.get("registry") == {
        "path": "HKLM\\System\\CurrentControlSet\\Control\\Terminal Server\\fAllowToGetHelp", "hive": "HKLM",
        "key": "System\\CurrentControlSet\\Control\\Terminal Server", "value": "fAllowToGetHelp",
        "data": {"type": "REG_DWORD", "strings": ["1"]},
    }
    assert event.get("winlog.event_data.Details") == "DWORD (0x00000001)"
    assert (event.get("event.code"), event.get("event.action")) == ("13", "RegistryEvent (Value Set)")
    assert event.get("event.category") == ["configuration", "registry"]
    assert (event.get("user.domain"), event.get("user.name")) == ("ATTACKRANGE", "Administrator")
    assert event.get("process.name") == "reg.exe" and event.get("host.name") == "ar-win-dc.attackrange.local"


def test_sysmon_registry_key_deleted_has_no_value() -> None:
    event = only_event(RUNMRU.with_suffix(".json"))
    assert event.get("winlog.event_data.EventType") == "DeleteKey"
    assert event.get("registry") == {
        "path": "HKU\\S-1-5-21-3960063115-309473240-3247002503-500\\Software\\Microsoft\\Windows\\CurrentVersion"
                "\\Explorer\\RunMRU",
        "hive": "HKU",
        "key": "S-1-5-21-3960063115-309473240-3247002503-500\\Software\\Microsoft\\Windows\\CurrentVersion"
               "\\Explorer\\RunMRU",
    }


def test_sysmon_file_create() -> None:
    event = only_event(DLL_FILE.with_suffix(".evtx"))
    assert event.get("file") == {"path": "C:\\tdh.dll", "directory": "C:", "name": "tdh.dll", "extension": "dll"}
    assert (event.get("event.category"), event.get("event.type")) == (["file"], ["creation"])
    assert event.get("process.executable") == "C:\\Windows\\system32\\cmd.exe"


def test_security_explicit_credential_logon() -> None:
    event = only_event(EXPLICIT_LOGON.with_suffix(".evtx"))
    assert (event.get("event.module"), event.get("event.dataset")) == ("windows", "windows.security")
    assert (event.get("event.code"), event.get("event.action"), event.get("event.outcome")) == (
        "4648", "logged-in-explicit", "success")  # Keywords 0x8020000000000000: audit success
    assert event.get("user") == {"id": "S-1-5-21-2555720767-1205513275-3893774561-1001", "name": "xodih",
                                 "domain": "SWACHCHHANDA",
                                 "effective": {"name": "testuser", "domain": "swachchhanda"}}
    assert event.get("process") == {"pid": 0x378, "executable": "C:\\Users\\xodih\\OneDrive\\Desktop\\LegacyHive.exe",
                                    "name": "LegacyHive.exe"}
    assert event.get("source") is None  # IpAddress and IpPort are "-"
    assert event.get("winlog.event_data.ProcessId") == "0x378" and event.get("winlog.event_data.IpAddress") == "-"
    assert event.get("related.user") == ["xodih", "testuser"]
    assert event.get("winlog.activity_id") == "C96B491C-1545-0001-6049-6BC94515DD01"


def test_user_data_event_keeps_its_items() -> None:
    event = only_event(WMI_CLEAR.with_suffix(".evtx"))
    assert event.get("winlog.event_data") is None
    assert event.get("winlog.user_data.xml_name") == "Operation_ClientFailure"
    assert event.get("winlog.user_data.ClientProcessId") == "25920"
    assert "cleareventlog" in event.get("winlog.user_data.Operation")
    assert event.get("event.dataset") == "windows.microsoft_windows_wmi_activity_operational"
    assert event.get("log.level") == "error"


def test_event_data_element_attributes_are_not_items() -> None:
    event = only_event(TASK_DISABLED.with_suffix(".json"))
    assert event.get("winlog.event_data") == {"TaskName": "\\Microsoft\\Windows\\SystemRestore\\SR",
                                              "UserName": "System"}
    assert '"TaskDisabled"' in event.get("event.original")  # still there, in the original


# --- shapes the regression data does not have (our own events) ---------------------------------

def evtx_json(event_id: Any, event_data: Any, *, channel: str = "Security",
              provider: str = "Microsoft-Windows-Security-Auditing", keywords: str = "0x8020000000000000",
              record_id: int = 1001) -> dict[str, Any]:
    """An event in pyevtx-rs's JSON rendering (ours, written as Windows logs it)."""
    return {"Event": {"#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"}, "System": {
        "Provider": {"#attributes": {"Name": provider, "Guid": "54849625-5478-4994-A5BA-3E3B0328C30D"}},
        "EventID": event_id, "Version": 2, "Level": 0, "Task": 13312, "Opcode": 0, "Keywords": keywords,
        "TimeCreated": {"#attributes": {"SystemTime": "2026-11-23T03:00:00.1234567Z"}}, "EventRecordID": record_id,
        "Correlation": None, "Execution": {"#attributes": {"ProcessID": 4, "ThreadID": 8}}, "Channel": channel,
        "Computer": "ws01.bo-tc.gov.vn", "Security": None}, "EventData": event_data}}


def document(value: dict[str, Any]) -> dict[str, Any]:
    return windows_document(parse_windows_json(value))


def test_security_process_creation_4688() -> None:
    doc = document(evtx_json({"#text": 4688, "#attributes": {"Qualifiers": 0}}, {
        "SubjectUserSid": "S-1-5-21-1-2-3-1104", "SubjectUserName": "nguyenvana", "SubjectDomainName": "BOTC",
        "SubjectLogonId": "0x3e7", "NewProcessId": "0x1a2c", "NewProcessName": "C:\\Windows\\System32\\whoami.exe",
        "TokenElevationType": "%%1936", "ProcessId": "0x10f0", "CommandLine": "whoami /all",
        "TargetUserSid": "S-1-0-0", "TargetUserName": "-", "TargetDomainName": "-", "TargetLogonId": "0x0",
        "ParentProcessName": "C:\\Windows\\System32\\cmd.exe", "MandatoryLabel": "S-1-16-12288"}))
    assert doc["event"]["code"] == doc["winlog"]["event_id"] == "4688"
    assert (doc["event"]["category"], doc["event"]["type"], doc["event"]["action"]) == (
        ["process"], ["start"], "created-process")
    assert doc["process"] == {"pid": 0x1A2C, "executable": "C:\\Windows\\System32\\whoami.exe", "name": "whoami.exe",
                              "command_line": "whoami /all",
                              "parent": {"pid": 0x10F0, "executable": "C:\\Windows\\System32\\cmd.exe",
                                         "name": "cmd.exe"}}
    assert doc["user"] == {"id": "S-1-5-21-1-2-3-1104", "name": "nguyenvana", "domain": "BOTC"}  # no effective: "-"
    assert doc["winlog"]["event_data"]["NewProcessName"] == "C:\\Windows\\System32\\whoami.exe"
    assert doc["@timestamp"] == datetime(2026, 11, 23, 3, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(("event_id", "keywords", "outcome", "action"), [
    (4624, "0x8020000000000000", "success", "logged-in"),
    (4625, "0x8010000000000000", "failure", "logon-failed"),
])
def test_security_logons(event_id: int, keywords: str, outcome: str, action: str) -> None:
    doc = document(evtx_json(event_id, {
        "SubjectUserSid": "S-1-5-18", "SubjectUserName": "WS01$", "SubjectDomainName": "BOTC",
        "TargetUserSid": "S-1-5-21-1-2-3-500", "TargetUserName": "quantri@botc.gov.vn", "TargetDomainName": "BOTC",
        "LogonType": "10", "WorkstationName": "ATTACKER", "ProcessId": "0x0", "ProcessName": "-",
        "IpAddress": "::ffff:203.0.113.77", "IpPort": "51234"}, keywords=keywords))
    assert (doc["event"]["category"], doc["event"]["type"]) == (["authentication"], ["start"])
    assert (doc["event"]["action"], doc["event"]["outcome"]) == (action, outcome)
    assert doc["user"] == {"id": "S-1-5-21-1-2-3-500", "name": "quantri", "domain": "BOTC"}
    assert doc["source"] == {"ip": "203.0.113.77", "port": 51234, "domain": "ATTACKER"}
    assert doc["process"] == {"pid": 0}
    assert doc["winlog"]["logon"] == {"type": "RemoteInteractive"}
    assert doc["related"] == {"user": ["quantri"], "ip": ["203.0.113.77"]}


def test_security_user_created_4720() -> None:
    doc = document(evtx_json(4720, {"TargetUserName": "backdoor", "TargetDomainName": "WS01",
                                    "TargetSid": "S-1-5-21-1-2-3-1010", "SubjectUserSid": "S-1-5-21-1-2-3-500",
                                    "SubjectUserName": "quantri", "SubjectDomainName": "WS01"}))
    assert (doc["event"]["category"], doc["event"]["type"]) == (["iam"], ["user", "creation"])
    assert doc["user"] == {"id": "S-1-5-21-1-2-3-500", "name": "quantri", "domain": "WS01",
                           "target": {"id": "S-1-5-21-1-2-3-1010", "name": "backdoor", "domain": "WS01"}}
    assert doc["related"]["user"] == ["quantri", "backdoor"]


def test_sysmon_network_connection() -> None:
    doc = document(evtx_json(3, {
        "RuleName": "-", "UtcTime": "2026-11-23 03:00:00.100", "ProcessId": 4242, "Image": "C:\\Tools\\beacon.exe",
        "User": "BOTC\\nguyenvana", "Protocol": "tcp", "Initiated": True, "SourceIsIpv6": False,
        "SourceIp": "10.1.2.3", "SourceHostname": "ws01.bo-tc.gov.vn", "SourcePort": 50000, "SourcePortName": "-",
        "DestinationIsIpv6": False, "DestinationIp": "203.0.113.77", "DestinationHostname": "-",
        "DestinationPort": 443, "DestinationPortName": "https"},
        channel="Microsoft-Windows-Sysmon/Operational", provider="Microsoft-Windows-Sysmon",
        keywords="0x8000000000000000"))
    assert doc["source"] == {"ip": "10.1.2.3", "domain": "ws01.bo-tc.gov.vn", "port": 50000}
    assert doc["destination"] == {"ip": "203.0.113.77", "port": 443}
    assert doc["network"] == {"transport": "tcp", "protocol": "https", "direction": "egress", "type": "ipv4"}
    assert doc["winlog"]["event_data"]["Initiated"] == "true" and doc["winlog"]["event_data"]["SourcePort"] == "50000"
    assert doc["related"]["ip"] == ["10.1.2.3", "203.0.113.77"] and "outcome" not in doc["event"]


def test_sysmon_dns_query() -> None:
    doc = document(evtx_json(22, {
        "RuleName": "-", "ProcessId": 4242, "QueryName": "c2.example.net", "QueryStatus": "0",
        "QueryResults": "type:  5 edge.example.net;::ffff:203.0.113.9;2001:db8::1;", "Image": "C:\\Tools\\beacon.exe"},
        channel="Microsoft-Windows-Sysmon/Operational", provider="Microsoft-Windows-Sysmon"))
    assert doc["dns"] == {"question": {"name": "c2.example.net"}, "resolved_ip": ["203.0.113.9", "2001:db8::1"]}
    assert doc["network"] == {"protocol": "dns"} and doc["event"]["category"] == ["network"]


@pytest.mark.parametrize(("event_data", "expected"), [
    ({"Data": ["svchost", "4.2", None]}, {"param1": "svchost", "param2": "4.2", "param3": ""}),
    ({"Data": {"#text": "one text"}}, {"param1": "one text"}),
    ({"Data": {"#text": ["a", "b"]}, "Binary": "0A14"}, {"param1": "a", "param2": "b", "Binary": "0A14"}),
    ({"Data": [{"@Name": "Image", "#text": "C:\\x.exe"}, {"@Name": "Empty"}]}, {"Image": "C:\\x.exe", "Empty": ""}),
    ({"Data": [{"#attributes": {"Name": "Image"}, "#text": "C:\\x.exe"}]}, {"Image": "C:\\x.exe"}),
    ({"Flag": True, "Count": 7, "Ratio": 0.5, "Gone": None},
     {"Flag": "true", "Count": "7", "Ratio": "0.5", "Gone": ""}),
    ("just text", {"param1": "just text"}),
])
def test_event_data_shapes(event_data: Any, expected: dict[str, Any]) -> None:
    doc = document(evtx_json(7045, event_data, channel="System", provider="Service Control Manager"))
    assert doc["winlog"]["event_data"] == expected
    assert doc["event"]["dataset"] == "windows.system" and doc["event"]["module"] == "windows"


def test_winlogbeat_document_maps_like_the_evtx_rendering() -> None:
    rendering = json_documents(SC_STOP.with_suffix(".json"))[0]
    winlogbeat = {  # what Winlogbeat 8 sends for this event (strings in event_data, rendered names)
        "@timestamp": "2025-10-22T20:33:27.276702Z", "message": "Process Create:\nRuleName: -",
        "event": {"code": "1", "kind": "event", "provider": "Microsoft-Windows-Sysmon",
                  "created": "2025-10-22T20:33:28Z"},
        "log": {"level": "information"}, "host": {"name": "ar-win-1"},
        "winlog": {"api": "wineventlog", "channel": "Microsoft-Windows-Sysmon/Operational", "computer_name": "ar-win-1",
                   "event_data": as_text(rendering["Event"]["EventData"]), "event_id": "1", "opcode": "Info",
                   "process": {"pid": 3168, "thread": {"id": 4580}}, "record_id": 256875,
                   "provider_guid": "5770385F-C22A-43E0-BF4C-06F5698FFBD9", "provider_name": "Microsoft-Windows-Sysmon",
                   "task": "Process Create (rule: ProcessCreate)", "version": 5,
                   "user": {"identifier": "S-1-5-18", "domain": "NT AUTHORITY", "name": "SYSTEM", "type": "User"}}}
    from_winlogbeat, from_rendering = document(winlogbeat), document(rendering)
    assert from_winlogbeat.pop("message") == "Process Create:\nRuleName: -"
    assert from_winlogbeat == from_rendering


def test_winlogbeat_lines_in_a_file(tmp_path: Path) -> None:
    lines = [{"@timestamp": f"2026-11-23T03:00:0{n}.000Z", "event": {"outcome": "failure"},
              "winlog": {"channel": "Security", "event_id": 4625,
                         "provider_name": "Microsoft-Windows-Security-Auditing", "computer_name": "dc01",
                         "record_id": str(100 + n), "keywords": ["Audit Failure"],
                         "event_data": {"TargetUserName": f"user{n}", "IpAddress": "203.0.113.77", "LogonType": "3"}}}
             for n in range(3)]
    path = tmp_path / "winlogbeat.ndjson"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    events, dead = read_all(path)
    assert dead == [] and [e.get("user.name") for e in events] == ["user0", "user1", "user2"]
    assert {e.get("event.outcome") for e in events} == {"failure"}
    assert [e.get("log.offset") for e in events] == [0, len(orjson.dumps(lines[0])) + 1,
                                                      len(orjson.dumps(lines[0])) + len(orjson.dumps(lines[1])) + 2]
    assert events[0].get("event.original") == orjson.dumps(lines[0]).decode()


def test_dataset_names() -> None:
    assert dataset_of("Security") == "windows.security"
    assert dataset_of("Microsoft-Windows-Sysmon/Operational") == "windows.sysmon_operational"
    assert dataset_of("Windows PowerShell") == "windows.powershell"
    assert dataset_of("Microsoft-Windows-TaskScheduler/Operational") == (
        "windows.microsoft_windows_taskscheduler_operational")
    assert dataset_of("Application") == "windows.application" and dataset_of("///") == "windows.unknown"


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "reason"), [
    ({"Event": {"EventData": {"Image": "x"}}}, "Event.System: missing"),
    ({"Event": {"System": {"EventID": 1, "Channel": "Security"}}}, "Event.System.TimeCreated.SystemTime: missing"),
    ({"Event": {"System": {"EventID": 1, "Channel": "S", "TimeCreated": {"#attributes": {"SystemTime": "noon"}}}}},
     "not an ISO 8601 time"),
    ({"Event": {"System": {"EventID": 1, "Channel": "S", "TimeCreated": {"@SystemTime": "0900-01-01"}}}},
     "not a Windows time"),
    ({"Event": {"System": {"EventID": "x", "TimeCreated": {"#attributes": {"SystemTime": "2026-01-01T00:00:00Z"}}}}},
     "EventID: missing or not a number"),
    ({"Event": {"System": {"EventID": 1, "TimeCreated": {"#attributes": {"SystemTime": "2026-01-01T00:00:00Z"}}}}},
     "Channel: missing"),
    ({"winlog": {"channel": "Security", "event_id": "4624"}}, "@timestamp: missing"),
    ({"message": "hello"}, "not a Windows event"),
    ([1, 2], "got list"),
])
def test_not_a_windows_event_is_a_parse_error(value: Any, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_windows_json(value)


def test_bad_documents_become_dead_letters_and_the_rest_events(tmp_path: Path) -> None:
    good = SC_STOP.with_suffix(".json").read_bytes().strip()
    bad_json, no_system = b'{"Event": {"System": ', b'{"Event": {"EventData": {"Image": "x"}}}'
    path = tmp_path / "mixed.json"
    path.write_bytes(b"\xef\xbb\xbf" + good + b"\n" + bad_json + b"\n" + no_system + b"\n" + good + b"\n")
    events, dead = read_all(path)
    assert len(events) == 2 and events[0].id == events[1].id  # the same Windows event twice: one id
    assert [e.get("log.offset") for e in events] == [3, 3 + len(good) + len(bad_json) + len(no_system) + 3]
    assert [d.reason for d in dead] == [
        f"byte {len(good) + 4}: not JSON: Expecting ',' delimiter (63 characters in)",
        f"byte {len(good) + len(bad_json) + 5}: Event.System: missing",
    ]
    assert [d.raw for d in dead] == [bad_json + b"\n", no_system]
    assert {d.source for d in dead} == {str(path)} and {d.tenant for d in dead} == {"hanoi"}


def test_a_document_over_the_limit_is_cut_into_dead_letters(tmp_path: Path) -> None:
    good = SC_STOP.with_suffix(".json").read_bytes().strip()
    huge = b'{"Event": {"EventData": {"Blob": "' + b"A" * (MAX_DOCUMENT_BYTES + 10) + b'"}}}'
    path = tmp_path / "huge.json"
    path.write_bytes(huge + b"\n" + good + b"\n")
    events, dead = read_all(path)
    assert len(events) == 1 and events[0].get("log.offset") == len(huge) + 1
    assert dead[0].reason == f"byte 0: a JSON document longer than {MAX_DOCUMENT_BYTES} bytes"
    assert b"".join(d.raw for d in dead) == huge + b"\n"


def test_text_that_is_not_utf8_is_replaced_and_tagged(tmp_path: Path) -> None:
    line = orjson.dumps({"@timestamp": "2026-11-23T03:00:00Z",
                         "winlog": {"channel": "Security", "event_id": "4625", "record_id": 9,
                                    "event_data": {"TargetUserName": "XX", "Escaped": "\\ud800"}}})
    path = tmp_path / "bad-utf8.json"
    path.write_bytes(line.replace(b'"XX"', b'"r\xffot"').replace(b"\\\\ud800", b"\\ud800"))
    [event], [] = read_all(path)
    assert event.get("winlog.event_data.TargetUserName") == "r\ufffdot"
    assert event.get("winlog.event_data.Escaped") == "\ufffd"
    assert event.get("tags") == [INVALID_UTF8_TAG]
    assert Event.from_json(event.to_json()).doc == event.doc


def test_random_bytes_as_evtx_are_one_dead_letter_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "random.evtx"
    path.write_bytes(random.Random(7).randbytes(5000))
    events, [dead] = read_all(path)
    assert events == [] and dead.source == str(path) and dead.raw == path.read_bytes()
    assert dead.reason.startswith("evtx: cannot read the file: ")


@pytest.mark.parametrize("size", [0, 100, 4096, 4096 + 512, 30_000])
def test_truncated_evtx_never_raises(tmp_path: Path, size: int) -> None:
    path = tmp_path / "cut.evtx"
    path.write_bytes(SEVEN_RECORDS.read_bytes()[:size])
    events, dead = read_all(path)
    assert events == [] and all(d.source == str(path) for d in dead)


def test_damaged_chunk_is_a_dead_letter_naming_the_file(tmp_path: Path) -> None:
    data = bytearray(SEVEN_RECORDS.read_bytes())
    data[4096 + 512:4096 + 3000] = random.Random(1).randbytes(2488)  # the chunk's string and template tables
    path = tmp_path / "damaged.evtx"
    path.write_bytes(bytes(data))
    events, dead = read_all(path)
    assert events == [] and len(dead) == 1
    assert dead[0].reason.startswith("evtx: records skipped after record 0: ") and dead[0].source == str(path)


def test_unreadable_file_raises_os_error(tmp_path: Path) -> None:
    for name in ("missing.evtx", "missing.json"):
        with pytest.raises(OSError):
            read_all(tmp_path / name)


def test_batches_and_progress_cover_the_file(tmp_path: Path) -> None:
    text = b"\n".join(SC_STOP.with_suffix(".json").read_bytes().strip() for _ in range(5)) + b"\n\n"
    path = tmp_path / "five.json"
    path.write_bytes(text)
    progress: list[int] = []
    with capture_logs():
        batches = list(read_windows_json_file(path, SOURCE, batch_size=2, on_progress=progress.append))
    assert [len(b.events) for b in batches] == [2, 2, 1]
    assert sum(b.bytes_read for b in batches) == sum(progress) == len(text)
    with capture_logs():
        evtx_batches = list(read_windows_file(SEVEN_RECORDS, SOURCE, batch_size=3, on_progress=progress.append))
    assert [len(b.events) for b in evtx_batches] == [3, 3, 1]
    assert [b.bytes_read for b in evtx_batches] == [0, 0, SEVEN_RECORDS.stat().st_size]


def test_evtx_suffix_in_any_case(tmp_path: Path) -> None:
    path = tmp_path / "COPY.EVTX"
    path.write_bytes(SC_STOP.with_suffix(".evtx").read_bytes())
    assert only_event(path).id == only_event(SC_STOP.with_suffix(".evtx")).id


# --- the line parser (the registry's contract) --------------------------------------------------

def test_line_parser_keeps_the_registry_contract() -> None:
    ctx = LineContext(tz=timezone(timedelta(hours=7)), reference=datetime(2026, 11, 23, tzinfo=UTC))
    line = orjson.dumps(json_documents(SC_STOP.with_suffix(".json"))[0]).decode()
    doc = parse_windows_line(line, ctx)
    assert doc["@timestamp"] == datetime(2025, 10, 22, 20, 33, 27, 276702, tzinfo=UTC)
    assert "organization" not in doc and "id" not in doc["event"]
    for not_windows in ("Nov 23 10:00:00 web1 sshd[1]: Invalid user x from 203.0.113.7 port 22", "{}", "[]", "{"):
        with pytest.raises(ParseError):
            parse_windows_line(not_windows, ctx)


# --- properties -----------------------------------------------------------------------------------

def evtx_mutations() -> st.SearchStrategy[bytes]:
    """A real file cut short and with a few bytes overwritten: past the header check, into chunks."""
    original = SEVEN_RECORDS.read_bytes()

    def mutate(cut: int, changes: list[tuple[int, int]]) -> bytes:
        data = bytearray(original[:cut])
        for at, byte in changes:
            if at < len(data):
                data[at] = byte
        return bytes(data)

    return st.builds(mutate, st.integers(0, len(original)),
                     st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)), max_size=8))


def read_twice(data: bytes, name: str) -> list[tuple[list[Event], list[DeadLetter]]]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        return [read_all(path), read_all(path)]


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=150)
@given(st.one_of(st.binary(max_size=3000), evtx_mutations()))
@example(b"")
@example(SEVEN_RECORDS.read_bytes()[:4096])
def test_arbitrary_bytes_as_evtx_never_raise(data: bytes) -> None:
    (events, dead), (again, dead_again) = read_twice(data, "any.evtx")
    assert [e.id for e in events] == [e.id for e in again] and [d.id for d in dead] == [d.id for d in dead_again]
    for event in events:
        Event.from_json(event.to_json())


def system_shapes() -> st.SearchStrategy[dict[str, Any]]:
    """Records shaped like the evtx rendering, with plausible or any values where the fields are."""
    times = st.one_of(st.datetimes(min_value=datetime(1601, 1, 2), timezones=st.just(UTC)).map(datetime.isoformat),
                      st.text())
    texts = st.one_of(json_values, st.sampled_from([
        "HKLM\\SOFTWARE\\Run\\x", "\\REGISTRY\\MACHINE\\A", "DWORD (0x00000010)", "QWORD (0x1-0x2)", "SetValue",
        "MD5=AB12,SHA256=00,IMPHASH=", "BOTC\\user", "::ffff:10.0.0.1", "0x1f", "-", "type:  5 a;1.2.3.4;", "x@y"]))
    return st.fixed_dictionaries({"Event": st.fixed_dictionaries({
        "System": st.fixed_dictionaries({
            "EventID": st.one_of(st.sampled_from([1, 3, 7, 12, 13, 22, 4624, 4688]), st.integers(), st.text(),
                                 st.just({"#text": 4688})),
            "Channel": st.one_of(st.just("Security"), st.just("Microsoft-Windows-Sysmon/Operational"), json_values),
            "Provider": st.one_of(json_values, st.sampled_from(["Microsoft-Windows-Sysmon",
                                                                 "Microsoft-Windows-Security-Auditing"]).map(
                lambda name: {"#attributes": {"Name": name}})),
            "TimeCreated": times.map(lambda t: {"#attributes": {"SystemTime": t}}),
            "EventRecordID": json_values, "Keywords": json_values, "Level": json_values, "Execution": json_values}),
        "EventData": st.one_of(json_values, st.dictionaries(st.sampled_from(
            ["Image", "TargetObject", "EventType", "Details", "Hashes", "User", "SourceIp", "DestinationPort",
             "ProcessId", "NewProcessId", "TargetUserName", "IpAddress", "IpPort", "QueryResults", "Data"]),
            texts))})})


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(json_scalars,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                           max_leaves=12)


def json_files() -> st.SearchStrategy[bytes]:
    """Windows-shaped records and other JSON, one per line or pretty-printed, sometimes cut short."""
    documents = st.lists(st.one_of(json_values, system_shapes()), max_size=4)
    rendered = st.builds(lambda values, indent, gap: gap.join(json.dumps(v, indent=indent) for v in values).encode(),
                         documents, st.sampled_from([None, 2]), st.sampled_from(["\n", " ", "\r\n", ""]))
    cut = st.builds(lambda data, at: data[:at], rendered, st.integers(0, 400))
    return st.one_of(st.binary(max_size=2000), rendered, cut)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_files())
@example(b'{"Event": {"System": {"EventID": 1}}} {')
@example(b'"\\ud800" 1 [] {"winlog": {"channel": "\\udfff"}}')
@example(b"123")
def test_arbitrary_bytes_as_json_never_raise(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "any.json"
        path.write_bytes(data)
        with capture_logs():
            batches = list(read_windows_json_file(path, SOURCE, batch_size=2))
        again, dead_again = read_all(path)
    events = [e for b in batches for e in b.events]
    dead = [d for b in batches for d in b.dead_letters]
    assert [e.id for e in events] == [e.id for e in again] and [d.id for d in dead] == [d.id for d in dead_again]
    assert sum(b.bytes_read for b in batches) == len(data)
    for letter in dead:  # a dead letter holds the bytes at the place its reason names
        at = int(letter.reason.split(":")[0].removeprefix("byte "))
        assert data[at:at + len(letter.raw)] == letter.raw
    for event in events:
        if not event.get("tags"):
            assert data[event.get("log.offset"):].startswith(event.get("event.original").encode())
        Event.from_json(event.to_json())


@settings(deadline=None)
@given(system_shapes(), st.sampled_from([1, 3, 7, 11, 12, 13, 22, 4624, 4648, 4688, 4720]))
def test_any_record_gives_a_document_or_parse_error(value: dict[str, Any], event_id: int) -> None:
    if isinstance(value["Event"]["System"]["EventID"], int):
        value["Event"]["System"]["EventID"] = event_id
    try:
        record = parse_windows_json(value)
    except ParseError:
        return
    assert isinstance(record, WindowsRecord) and record.timestamp.tzinfo is UTC
    doc = windows_document(record)
    orjson.dumps(doc)
    assert set(doc["winlog"].get("event_data", {})) >= {k for k in record.event_data}
