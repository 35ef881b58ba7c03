"""Log parsers: one module per format, a line of text in, a nested ECS document out.

Modules, in flow order:
- syslog: the syslog header (RFC 3164, RFC 5424, ISO 8601-prefixed) -> `SyslogRecord`, and the
  generic `system.syslog` document ("syslog" format).
- auth: auth.log / secure lines -> `system.auth` documents, as Filebeat's system/auth module.
- windows: one Windows event record (EVTX JSON form or Winlogbeat JSON) -> `windows.*` / `sysmon`
  documents keeping every EventData item at `winlog.event_data.<Name>` ("windows_json" format).

Contract of a registered parser, `(line, ctx) -> document`: the line has no line ending; the
document holds `@timestamp` as an aware datetime and no tenant or `event.id` (the reader adds
them, see `sensors.files`); anything that is not the format raises `ParseError`, nothing else.
`PARSERS` is keyed by the words users write in configuration (`format: auth`).
"""

from collections.abc import Callable
from typing import Any

from sensors.parsers.auth import parse_auth, parse_auth_line
from sensors.parsers.syslog import LineContext, SyslogRecord, parse_syslog, parse_syslog_line
from sensors.parsers.windows import parse_windows_line

LineParser = Callable[[str, LineContext], dict[str, Any]]

PARSERS: dict[str, LineParser] = {
    "auth": parse_auth_line,
    "syslog": parse_syslog_line,
    "windows_json": parse_windows_line,
}

__all__ = ["PARSERS", "LineContext", "LineParser", "SyslogRecord", "parse_auth", "parse_auth_line",
           "parse_syslog", "parse_syslog_line", "parse_windows_line"]
