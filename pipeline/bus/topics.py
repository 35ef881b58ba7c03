"""Topic names, one per stream (ARCHITECTURE.md: data flows one way through them).

- RAW: events as sensors made them (tenant set, not yet enriched).
- EVENTS: normalised and enriched events, as stored; detections consume these.
- DEAD_LETTERS: input that could not become an event, with the reason.
- ALERTS: detections' output; the incident service consumes these.
- HEARTBEATS: sensors' health reports; the SOC keeps the newest per sensor.
- INCIDENTS: references (`{"id", "tenant"}`) to incidents opened or updated; playbook workers
  consume these (published by the scale-out incidents worker only).
"""

RAW = "govsoc.raw"
EVENTS = "govsoc.events"
DEAD_LETTERS = "govsoc.dead-letters"
ALERTS = "govsoc.alerts"
HEARTBEATS = "govsoc.heartbeats"  # sensors' SensorHeartbeat records, keyed by tenant
INCIDENTS = "govsoc.incidents"
ALL = (RAW, EVENTS, DEAD_LETTERS, ALERTS, HEARTBEATS, INCIDENTS)
