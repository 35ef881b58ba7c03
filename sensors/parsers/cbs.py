"""Windows servicing logs (CBS.log: Component Based Servicing and CSI lines) -> ECS documents.

Stage: sensors, parse step. In: one line of text. Out: a nested ECS document with `@timestamp`
(aware UTC), no tenant or `event.id`; `ParseError` for a line that is not the format. The layout is
what `%windir%\\Logs\\CBS\\CBS.log` holds, a local wall-clock time, the level padded to 22 columns,
the component padded to 7, then the text:
`2016-09-28 04:30:31, Info                  CSI    00000005 Creating NT transaction (seq 1)`.
- `@timestamp`: the time has no zone (the servicing stack writes local time), so it is read in
  `LineContext.tz`, as the other parsers read zone-less times.
- `log.level`: the level as written (`Info`, `Warning`, `Error`, ...), as ECS asks for the
  original level; any word of letters is accepted.
- `event.provider`: the component (`CBS`, `CSI`, ...). ECS defines `event.provider` as the
  source of an event, "the name of the software that generated the event ... or of a subsystem
  of the operating system (kernel, Microsoft-Windows-Security-Auditing)", and CBS (Component
  Based Servicing) and CSI (Component Servicing Infrastructure) are such Windows subsystems, each
  writing its own lines into the shared file; `log.logger` is "the name of the logger inside an
  application", usually a class name, which these are not. It is also where the Windows event
  parser (`sensors.parsers.windows`) puts the provider, so `event.provider: CBS` reads alike.
- `message`: the text after the component, stripped of surrounding blanks (the reader keeps the
  line verbatim in `event.original`). A CSI line's sequence number and its own UTC time
  (`00000001@2016/9/27:20:30:31.455 ...`) stay in the message.
- `event.module` `windows`, `event.dataset` `windows.cbs` (Elastic has no integration for this
  log; the name follows the `windows.<log>` datasets of `sensors.parsers.windows`). No
  `event.category` or `event.type`: the file mixes package operations with the servicing stack's
  own housekeeping, which a per-line category would need the message templates to tell apart.

Ground truth: loghub's Windows_2k.log and its structured CSV (Date, Time, Level, Component,
Content), matched field by field in tests/sensors/test_cbs.py. Lines a CBS.log can hold without
the header (the `CSIPERF:...` line after `CSI perf trace:`, continuation lines of a multi-line
CSI entry) are not the format: they raise `ParseError` and become dead letters with their text.

Invariants: total, any `str` gives a document or `ParseError` (Hypothesis-tested). The pattern
is anchored, its quantifiers are bounded and each is followed by a character it cannot match
(linear time); the time is resolved once per distinct text and zone (cached).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, tzinfo
from typing import Any

from pipeline import ecs
from pipeline.errors import ParseError
from sensors.parsers.syslog import LineContext

# The component is at most 64 characters (the file pads it to 7 columns), then blanks or the end.
_HEAD = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}), ([A-Za-z]{1,32}) +(\S{1,64})(?: +|\Z)")


def parse_cbs_line(line: str, ctx: LineContext) -> dict[str, Any]:
    """The "windows_cbs" format: `yyyy-mm-dd hh:mm:ss, Level   Component   text`, dataset `windows.cbs`.

    The document is built whole, in ECS shape (`event.provider`, `log.level`), as `sensors.parsers.web`
    builds its access documents."""
    head = _HEAD.match(line)
    if head is None:
        raise ParseError("not a Windows CBS line: expected yyyy-mm-dd hh:mm:ss, Level Component text")
    stamp, level, component = head.groups()
    return {ecs.TIMESTAMP: _local_time(stamp, ctx.tz),
            "event": {"kind": "event", "module": "windows", "dataset": "windows.cbs", "provider": component},
            "log": {"level": level},
            ecs.MESSAGE: line[head.end():].strip()}


@functools.lru_cache(maxsize=1024)
def _local_time(stamp: str, tz: tzinfo) -> datetime:
    """`2016-09-28 04:30:31` read in `tz` -> aware UTC. Cached: the stack writes bursts a second."""
    try:
        return datetime.fromisoformat(stamp).replace(tzinfo=tz).astimezone(UTC)
    except (ValueError, OverflowError) as e:
        raise ParseError(f"Windows CBS time: no such date or time: {stamp!r}") from e
