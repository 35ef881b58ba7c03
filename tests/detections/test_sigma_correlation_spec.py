"""The example of the Sigma correlation specification, run as the specification means it.

Source: SigmaHQ/sigma-specification, specification/sigma-correlation-rules-specification.md
(commit 040dcf3a53102cb58f3da0565297bc25983ed04f), section "Failed Logins Followed by Successful
Login": a temporal_ordered correlation chained on an event_count correlation, grouped by `User`,
over Windows Security events. Kept verbatim below, author and references included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from detections.sigma.load import load_rules
from detections.sigma.match import SigmaEngine
from pipeline.records import Event
from sensors.parsers.windows import parse_windows_json, windows_document

SPEC_EXAMPLE = """\
title: Correlation - Multiple Failed Logins Followed by Successful Login
id: b180ead8-d58f-40b2-ae54-c8940995b9b6
status: experimental
description: Detects multiple failed logins by a single user followed by a successful login of that user
references:
    - https://reference.com
author: Florian Roth (Nextron Systems)
date: 2023-06-16
correlation:
    type: temporal_ordered
    rules:
        - multiple_failed_login
        - successful_login
    group-by:
        - User
    timespan: 10m
falsepositives:
    - Unlikely
level: high
---
title: Multiple failed logons
id: a8418a5a-5fc4-46b5-b23b-6c73beb19d41
description: Detects multiple failed logins within a certain amount of time
name: multiple_failed_login
correlation:
    type: event_count
    rules:
        - failed_login
    group-by:
        - User
    timespan: 10m
    condition:
        gte: 10
---
title: Single failed login
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID:
            - 529
            - 4625
    condition: selection
---
title: Successful login
id: 4d0a2c83-c62c-4ed4-b475-c7e23a9269b8
description: Detects a successful login
name: successful_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID:
            - 528
            - 4624
    condition: selection
"""
T0 = datetime(2026, 11, 23, 7, tzinfo=UTC)
CHAINED = "b180ead8-d58f-40b2-ae54-c8940995b9b6"


def logon(n: int, code: int, user: str, second: int) -> Event:
    """A Security-channel logon event (4625 failed, 4624 succeeded) as the Windows parser reads it."""
    system: dict[str, Any] = {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}}, "EventID": code,
        "Channel": "Security", "Computer": "dc01.mof.example", "EventRecordID": n,
        "TimeCreated": {"#attributes": {"SystemTime": (T0 + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%SZ")}},
    }
    doc = windows_document(parse_windows_json({"Event": {"System": system, "EventData": {"User": user}}}))
    doc["organization"] = {"id": "btc"}
    return Event.create(doc, id_parts=["spec-example", n])


def engine(tmp_path: Path) -> SigmaEngine:
    (tmp_path / "spec.yml").write_text(SPEC_EXAMPLE)
    ruleset, errors = load_rules([tmp_path])
    assert errors == [] and len(ruleset.correlations) == 2
    return SigmaEngine(ruleset)


def test_ten_failures_then_a_success_of_one_user_fire_the_chained_correlation(tmp_path: Path) -> None:
    events = [logon(i, 4625, "alice", i * 10) for i in range(10)] + [logon(100, 4624, "alice", 150)]
    fired = [a for a in engine(tmp_path).process(events) if a.rule_id == CHAINED]
    assert len(fired) == 1
    assert dict(fired[0].entity) == {"User": "alice"} and len(fired[0].event_ids) == 11


def test_nine_failures_another_user_or_the_wrong_order_fire_nothing(tmp_path: Path) -> None:
    nine = [logon(i, 4625, "bob", i * 10) for i in range(9)] + [logon(50, 4624, "bob", 150)]
    split = [logon(200 + i, 4625, "carol", i * 10) for i in range(10)] + [logon(300, 4624, "dave", 150)]
    success_first = [logon(400, 4624, "erin", 0)] + [logon(401 + i, 4625, "erin", 10 + i * 10) for i in range(10)]
    late = [logon(500 + i, 4625, "frank", i * 10) for i in range(10)] + [logon(600, 4624, "frank", 90 + 601)]
    for events in (nine, split, success_first, late):
        assert [a for a in engine(tmp_path).process(events) if a.rule_id == CHAINED] == []
