"""Sensors: the outside world turned into ECS events (and dead letters for what is not).

Modules, in flow order:
- parsers/: one module per log format (`syslog`, `auth`), text in, ECS documents out.
- files: read log files into events with their offsets; bad lines become dead letters.
- windows: read .evtx files and Windows event JSON (one document, several, or one per line).
- tail: follow files across rotation (rename, copytruncate, gzip) with checkpoints.
- syslog_server: RFC 3164/5424 over UDP and TCP (octet counting and newline framing).
- spool: the sensor's bounded, CRC-checked disk spool; nothing leaves it before the bus acknowledged.
- spool_format: the spool's record layout on disk (encode, decode, never raising for content).
- shipper: drains the spool to a Bus, advancing the acked cursor only after publish returned.
- uplink: the API's ingest endpoint as a publish-only Bus (NDJSON + gzip, sensor token from a
  one-time enrollment, Retry-After, 413 split, refused lines to a local dead-letter file).
- agent: one sensor process (inputs -> parse -> spool -> shipper, heartbeats); `govsoc sensor run`.
- formats: `read_any`, which picks the reader for a file (EVTX, Windows JSON, text logs) or a folder.
"""
