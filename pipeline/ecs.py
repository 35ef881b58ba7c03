"""Elastic Common Schema field names govsoc reads or writes, defined once.

Events are nested ECS documents (`{"source": {"ip": ...}}`); these dotted names address them
(`Event.get(SOURCE_IP)`), in rules, store queries and the API alike.
"""

TIMESTAMP = "@timestamp"
MESSAGE = "message"
TAGS = "tags"

EVENT_ID = "event.id"
EVENT_KIND = "event.kind"
EVENT_CATEGORY = "event.category"
EVENT_TYPE = "event.type"
EVENT_ACTION = "event.action"
EVENT_OUTCOME = "event.outcome"
EVENT_DATASET = "event.dataset"
EVENT_MODULE = "event.module"
EVENT_ORIGINAL = "event.original"
EVENT_INGESTED = "event.ingested"
EVENT_SEVERITY = "event.severity"

ORGANIZATION_ID = "organization.id"
ORGANIZATION_NAME = "organization.name"

OBSERVER_NAME = "observer.name"
OBSERVER_TYPE = "observer.type"

HOST_NAME = "host.name"
HOST_HOSTNAME = "host.hostname"
HOST_IP = "host.ip"

SOURCE_ADDRESS = "source.address"
SOURCE_IP = "source.ip"
SOURCE_DOMAIN = "source.domain"
SOURCE_PORT = "source.port"
DESTINATION_ADDRESS = "destination.address"
DESTINATION_IP = "destination.ip"
DESTINATION_PORT = "destination.port"

USER_NAME = "user.name"
USER_EFFECTIVE_NAME = "user.effective.name"
USER_TARGET_NAME = "user.target.name"

PROCESS_NAME = "process.name"
PROCESS_PID = "process.pid"

LOG_FILE_PATH = "log.file.path"
LOG_OFFSET = "log.offset"
LOG_SYSLOG_APPNAME = "log.syslog.appname"
LOG_SYSLOG_HOSTNAME = "log.syslog.hostname"

RELATED_IP = "related.ip"
RELATED_USER = "related.user"
