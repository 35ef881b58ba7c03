"""Sensors: the outside world turned into ECS events (and dead letters for what is not).

Modules, in flow order:
- parsers/: one module per log format (`syslog`, `auth`), text in, ECS documents out.
- files: read log files into events with their offsets; bad lines become dead letters.
- windows: read .evtx files and Windows event JSON (one document, several, or one per line).
- formats: `read_any`, which picks the reader for a file (EVTX, Windows JSON, text logs) or a folder.
"""
