"""Log parsers: one module per format, a line of text in, a nested ECS document out.

Modules, in flow order:
- syslog: the syslog header (RFC 3164, RFC 5424, ISO 8601-prefixed) -> `SyslogRecord`, and the
  generic `system.syslog` document ("syslog" format).
- auth: auth.log / secure lines -> `system.auth` documents, as Filebeat's system/auth module.
- windows: one Windows event record (EVTX JSON form or Winlogbeat JSON) -> `windows.*` / `sysmon`
  documents keeping every EventData item at `winlog.event_data.<Name>` ("windows_json" format).
- web: nginx and Apache access logs (combined / common) and error logs -> `nginx.access`,
  `apache.access`, `nginx.error`, `apache.error` ("nginx_access", "apache_access", "nginx_error",
  "apache_error" formats).
- firewall: FortiGate key=value logs -> `fortinet.firewall` ("fortigate"), any key=value firewall
  -> `kv_firewall.log` ("kv_firewall"); holds the key=value splitter auditd shares.
- cbs: Windows servicing logs (CBS.log, CBS and CSI lines) -> `windows.cbs` ("windows_cbs").
- auditd: Linux audit records -> `auditd.log` ("auditd").
- cef: ArcSight CEF lines, bare or after a syslog header -> `cef.log` ("cef").
- eve: Suricata EVE JSON records -> `suricata.eve` ("eve").
- jsonmap: JSON lines through a declarative field mapping (`json_parser(JsonMapping(...))`); the
  default instance reads ECS-shaped JSON with `@timestamp` ("json").

Contract of a registered parser, `(line, ctx) -> document`: the line has no line ending; the
document holds `@timestamp` as an aware datetime and no tenant or `event.id` (the reader adds
them, see `sensors.files`); anything that is not the format raises `ParseError`, nothing else.
`PARSERS` is keyed by the words users write in configuration (`format: auth`).
"""

from collections.abc import Callable
from typing import Any

from sensors.parsers.auditd import parse_auditd_line
from sensors.parsers.auth import parse_auth, parse_auth_line
from sensors.parsers.cbs import parse_cbs_line
from sensors.parsers.cef import parse_cef_line
from sensors.parsers.eve import parse_eve_line
from sensors.parsers.firewall import parse_fortigate_line, parse_kv_firewall_line
from sensors.parsers.jsonmap import JsonLineParser, JsonMapping, json_parser, parse_json_line
from sensors.parsers.syslog import LineContext, SyslogRecord, parse_syslog, parse_syslog_line
from sensors.parsers.web import (
    parse_apache_access_line,
    parse_apache_error_line,
    parse_nginx_access_line,
    parse_nginx_error_line,
)
from sensors.parsers.windows import parse_windows_line

LineParser = Callable[[str, LineContext], dict[str, Any]]

PARSERS: dict[str, LineParser] = {
    "auth": parse_auth_line,
    "syslog": parse_syslog_line,
    "windows_json": parse_windows_line,
    "windows_cbs": parse_cbs_line,
    "nginx_access": parse_nginx_access_line,
    "apache_access": parse_apache_access_line,
    "nginx_error": parse_nginx_error_line,
    "apache_error": parse_apache_error_line,
    "auditd": parse_auditd_line,
    "eve": parse_eve_line,
    "fortigate": parse_fortigate_line,
    "kv_firewall": parse_kv_firewall_line,
    "cef": parse_cef_line,
    "json": parse_json_line,
}

__all__ = ["PARSERS", "JsonLineParser", "JsonMapping", "LineContext", "LineParser", "SyslogRecord",
           "json_parser", "parse_apache_access_line", "parse_apache_error_line", "parse_auditd_line",
           "parse_auth", "parse_auth_line", "parse_cbs_line", "parse_cef_line", "parse_eve_line",
           "parse_fortigate_line", "parse_json_line", "parse_kv_firewall_line", "parse_nginx_access_line",
           "parse_nginx_error_line", "parse_syslog", "parse_syslog_line", "parse_windows_line"]
