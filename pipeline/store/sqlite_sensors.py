"""SqliteSensorStore: the newest heartbeat of every sensor, in the embedded SQLite file.

Contract (`SensorStore` in base.py): one row per (tenant, sensor), replaced only by a newer beat,
so heartbeats delivered twice or out of order never move a sensor back in time; reads are scoped.
"""

from __future__ import annotations

from collections.abc import Sequence

from config.tenants import TenantScope
from pipeline.records import SensorHeartbeat
from pipeline.store.sqlite_db import Schema, SqliteStore, scoped, to_us

SCHEMA = Schema(
    component="sensors",
    version=1,
    statements=(
        """CREATE TABLE IF NOT EXISTS sensor_heartbeats (
            tenant TEXT NOT NULL, sensor TEXT NOT NULL, ts INTEGER NOT NULL, doc TEXT NOT NULL,
            PRIMARY KEY (tenant, sensor))""",
    ),
)

_UPSERT = """INSERT INTO sensor_heartbeats (tenant, sensor, ts, doc) VALUES (?, ?, ?, ?)
    ON CONFLICT (tenant, sensor) DO UPDATE SET ts = excluded.ts, doc = excluded.doc
    WHERE excluded.ts > sensor_heartbeats.ts"""


class SqliteSensorStore(SqliteStore):
    schema = SCHEMA

    def record_heartbeats(self, beats: Sequence[SensorHeartbeat]) -> int:
        rows = [(b.tenant, b.sensor, to_us(b.timestamp, f"heartbeat of {b.sensor}"), b.to_json().decode())
                for b in beats]
        with self._db.transaction("record heartbeats") as conn:
            before = conn.total_changes
            conn.executemany(_UPSERT, rows)
            return int(conn.total_changes - before)

    def latest_heartbeats(self, scope: TenantScope) -> list[SensorHeartbeat]:
        where = scoped(scope, "tenant")
        sql = f"SELECT doc FROM sensor_heartbeats WHERE {where.sql} ORDER BY tenant, sensor"
        rows = self._db.query("read heartbeats", sql, where.params)
        return [SensorHeartbeat.from_json(row[0].encode()) for row in rows]

