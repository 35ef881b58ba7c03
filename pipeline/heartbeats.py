"""Heartbeats in: sensors' `SensorHeartbeat` records from the bus into the SensorStore.

`HeartbeatStep` is a worker step (one batch, no loop): a message that is not a heartbeat is
logged and skipped (heartbeats are state, not evidence: the next one replaces it), a heartbeat
of a tenant or sensor the configuration does not know is skipped the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from config.tenants import TenantTree
from pipeline.bus import Message
from pipeline.errors import ParseError
from pipeline.records import SensorHeartbeat
from pipeline.store.base import SensorStore

log = structlog.get_logger(__name__)


class HeartbeatStep:
    def __init__(self, store: SensorStore, tree: TenantTree) -> None:
        self._store = store
        self._known = {(t.id, s.id) for t in tree for s in t.sensors}

    def __call__(self, messages: Sequence[Message]) -> int:
        beats: list[SensorHeartbeat] = []
        for message in messages:
            try:
                beat = SensorHeartbeat.from_json(message.value)
            except ParseError as e:
                log.warning("heartbeat_skipped", offset=message.offset, reason=str(e))
                continue
            if (beat.tenant, beat.sensor) not in self._known:
                log.warning("heartbeat_unknown_sensor", tenant=beat.tenant, sensor=beat.sensor)
                continue
            beats.append(beat)
        return self._store.record_heartbeats(beats) if beats else 0
