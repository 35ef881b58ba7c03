"""The one typed settings model, and the tenant tree it describes.

`Settings` is built by `config.load.load_settings` from a YAML file, `GOVSOC_*` environment variables
and command-line overrides (highest wins); nothing else in govsoc reads the environment. Every model
forbids unknown keys, so a typo fails at start with the key named instead of being ignored.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from config.reports import ReportSettings
from config.watch import ServiceWatchSettings

TenantId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
SecurityLevel = Annotated[int, Field(ge=1, le=5)]


class Role(StrEnum):
    """What a user or token may do; with the tenant it decides everything."""

    ADMIN = "admin"
    ANALYST = "analyst"
    AGENCY_REPORTER = "agency_reporter"
    SENSOR = "sensor"
    NATIONAL_COORDINATOR = "national_coordinator"
    AUDITOR = "auditor"


class TenantKind(StrEnum):
    NATIONAL = "national"
    MINISTRY = "ministry"
    PROVINCE = "province"
    DISTRICT = "district"
    COMMUNE = "commune"
    AGENCY = "agency"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AssetConfig(_Strict):
    """A host or service an agency owns, with its information-system security level (1-5)."""

    id: TenantId
    name: str
    kind: Literal["portal", "mail", "domain_controller", "workstation", "server", "network", "other"] = "other"
    hostnames: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    security_level: SecurityLevel = 2

    @field_validator("addresses")
    @classmethod
    def _addresses_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # raises ValueError naming the bad value
        return value


class SensorConfig(_Strict):
    """An edge sensor; events it ships belong to its tenant."""

    id: TenantId
    name: str = ""
    kind: Literal["log", "packet", "service"] = "log"
    timezone: str = "Asia/Ho_Chi_Minh"  # for log formats that carry no zone (RFC 3164 syslog)


class TenantConfig(_Strict):
    """One node of the tenant tree; `parent` names another tenant's id (None for the root)."""

    id: TenantId
    name: str
    name_en: str = ""
    kind: TenantKind = TenantKind.AGENCY
    parent: TenantId | None = None
    assets: tuple[AssetConfig, ...] = ()
    sensors: tuple[SensorConfig, ...] = ()


class ApiToken(_Strict):
    """A bearer token known by its SHA-256 only; the token itself is never stored."""

    name: str
    tenant: TenantId
    role: Role
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class OidcRule(_Strict):
    """A claim value that admits a user: the first rule whose claim holds `value` gives tenant and role."""

    claim: str = "groups"
    value: str
    tenant: TenantId
    role: Role


class OidcProvider(_Strict):
    """An agency's OpenID Connect identity provider (authorization code flow with PKCE).

    The client secret is read from `client_secret_file` (a file only the service can read, e.g. a
    systemd credential), never from this configuration, so no secret lands in a repository.
    A user no rule admits is refused; a signed-in user is kept as an external account that has no
    password here.
    """

    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
    name: str
    issuer: Annotated[str, StringConstraints(pattern=r"^https?://")]
    client_id: str
    client_secret_file: Path | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    username_claim: str = "preferred_username"
    rules: tuple[OidcRule, ...] = Field(min_length=1)


class ApiSettings(_Strict):
    """The API's door: where it listens, static tokens, sessions, limits, identity providers."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    tokens: tuple[ApiToken, ...] = ()
    # console sessions; the cookie is Secure unless turned off for plain-HTTP development
    cookie_secure: bool = True
    session_idle: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(minutes=30)
    session_max: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(hours=12)
    # sign-in throttling: free failures per user name and per address, then doubling locks
    login_free_failures: Annotated[int, Field(ge=1, le=100)] = 5
    login_lock_max: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(minutes=15)
    # request limits
    max_body_bytes: Annotated[int, Field(ge=1024)] = 16 * 1024 * 1024
    rate_per_s: Annotated[float, Field(gt=0)] = 50.0  # per key and per address, sustained
    rate_burst: Annotated[int, Field(ge=1)] = 200
    ingest_max_events: Annotated[int, Field(ge=1, le=100_000)] = 10_000  # per request
    ingest_max_pending: Annotated[int, Field(ge=1)] = 200_000  # raw events waiting: beyond, 503
    oidc: tuple[OidcProvider, ...] = ()


class DetectionSettings(_Strict):
    """Where Sigma rules come from: the rules govsoc ships, plus any directories listed here."""

    include_builtin_rules: bool = True
    rule_dirs: tuple[Path, ...] = ()
    correlation_max_groups: Annotated[int, Field(ge=1)] = 100_000
    # A correlation group is dropped once it is both this far behind its tenant's newest event
    # (beyond its own timespan) and untouched for this many correlation hits (detections/sigma/
    # correlate.py, `Correlator.expire`): raise them for sensors that ship very late.
    correlation_lateness: Annotated[timedelta, Field(ge=timedelta(0))] = timedelta(hours=1)
    correlation_recent_hits: Annotated[int, Field(ge=1)] = 10_000


SeverityLabel = Literal["informational", "low", "medium", "high", "critical"]
Duration = Annotated[timedelta, Field(ge=timedelta(0))]


class SlaTarget(_Strict):
    """How long an incident of one severity may wait for a first response and for its resolution."""

    first_response: Duration
    resolution: Duration


def _default_sla() -> dict[SeverityLabel, SlaTarget]:
    # (severity, first response hours, resolution hours); a deployment sets its own in YAML.
    hours: list[tuple[SeverityLabel, int, int]] = [
        ("critical", 1, 24), ("high", 4, 72), ("medium", 24, 7 * 24), ("low", 72, 30 * 24),
        ("informational", 7 * 24, 90 * 24),
    ]
    return {label: SlaTarget(first_response=timedelta(hours=first), resolution=timedelta(hours=end))
            for label, first, end in hours}


class RegulatoryClock(_Strict):
    """A legal deadline, configured rather than coded: the legal basis moves with new decrees.

    The clock starts at the incident's `starts_on` time (detected: when govsoc opened it;
    response_ended: when it was resolved or found false; reported: when an agency reported it) and is
    due `due_after` later (0 means "at once"). It applies to every incident (`applies_to: always`)
    or to those at or above a severity, and warns `warn_before` its due time.
    """

    id: TenantId
    name_vi: str
    name_en: str
    starts_on: Literal["detected", "response_ended", "reported"]
    due_after: Duration
    applies_to: Literal["always"] | SeverityLabel = "always"
    warn_before: Duration = timedelta(0)


def _default_clocks() -> tuple[RegulatoryClock, ...]:
    """Today's national rules for the operating unit of an information system."""
    day = timedelta(days=1)
    return (
        RegulatoryClock(
            id="initial-report", name_vi="Báo cáo ban đầu sự cố (chủ quản, đơn vị ứng cứu, cơ quan điều phối)",
            name_en="Initial report to the system owner, response unit and national coordinator",
            starts_on="detected", due_after=5 * day, warn_before=day),
        RegulatoryClock(
            id="beyond-capacity", name_vi="Báo cáo ngay sự cố vượt khả năng xử lý",
            name_en="Report at once an incident that may exceed the unit's capacity",
            starts_on="detected", due_after=timedelta(0), applies_to="critical"),
        RegulatoryClock(
            id="acknowledge-report", name_vi="Xác nhận đã nhận báo cáo sự cố",
            name_en="Acknowledge a received incident report at once",
            starts_on="reported", due_after=timedelta(0)),
        RegulatoryClock(
            id="final-report", name_vi="Báo cáo kết thúc ứng cứu sự cố",
            name_en="Final report after the response ends",
            starts_on="response_ended", due_after=5 * day, warn_before=day),
    )


class SuppressionRule(_Strict):
    """A global exception: alerts of `rule_id` (any if None) whose entity has every pair of `entity`,
    of `tenant` and the tenants below it (all if None), are not grouped until `expires`."""

    reason: Annotated[str, StringConstraints(min_length=1)]
    rule_id: str | None = None
    entity: dict[str, str] = Field(default_factory=dict)
    tenant: TenantId | None = None
    expires: AwareDatetime | None = None


class NoiseSettings(_Strict):
    """Noise control before grouping, for every kind of alert (Sigma, ML, network).

    - dedup: an alert with the same (tenant, rule, entity, events) key as one kept within
      `dedup_window_s` is dropped (0: off);
    - flood guard: at most `flood_max_alerts` alerts per (rule, tenant) in `flood_window_s`;
      the rest are counted and dropped until the window moves on (0: off);
    - suppressions: global exceptions, each with a reason and an optional expiry.
    """

    dedup_window_s: Annotated[int, Field(ge=0)] = 0
    flood_window_s: Annotated[int, Field(ge=1)] = 60
    flood_max_alerts: Annotated[int, Field(ge=0)] = 0
    suppressions: tuple[SuppressionRule, ...] = ()


class IncidentSettings(_Strict):
    """How alerts group into incidents (same tenant, rule and entity within `group_window_s`),
    the SLA per severity, the regulatory clocks and noise control."""

    group_window_s: Annotated[int, Field(ge=1)] = 24 * 3600
    # An incident's severity is its worst alert's, one step higher on an asset of security level 4
    # or 5, and one step higher again at a tenant of these kinds (its place in the tree: the
    # national centre's own systems are the e-government services every agency relies on).
    severity_raise_tenant_kinds: tuple[TenantKind, ...] = (TenantKind.NATIONAL,)
    sla: dict[SeverityLabel, SlaTarget] = Field(default_factory=_default_sla)
    regulatory_clocks: tuple[RegulatoryClock, ...] = Field(default_factory=_default_clocks)
    noise: NoiseSettings = NoiseSettings()

    @model_validator(mode="after")
    def _complete(self) -> IncidentSettings:
        missing = sorted(set(SeverityLabel.__args__) - set(self.sla))  # type: ignore[attr-defined]
        if missing:
            raise ValueError(f"sla: no target for severity {', '.join(missing)}")
        ids = [clock.id for clock in self.regulatory_clocks]
        if len(ids) != len(set(ids)):
            raise ValueError("regulatory_clocks: two clocks share an id")
        return self


class SensorWatchSettings(_Strict):
    """When the SOC calls a sensor silent: no heartbeat for `silent_after_s` seconds."""

    silent_after_s: Annotated[int, Field(ge=10)] = 600
    check_every_s: Annotated[int, Field(ge=1)] = 60


class MlSettings(_Strict):
    """ML anomaly detection (detections/ml): windows, model reloads, retraining period and window.

    The same fields as `detections.ml.MlConfig` (config/ imports nothing of ours), which the
    runtime and `govsoc ml` build from this section with `MlConfig.of(settings)`.
    """

    enabled: bool = True
    window: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(minutes=5)
    check_every_s: Annotated[float, Field(ge=0)] = 60.0  # how often the feed looks for new model files
    flush_grace: Duration = timedelta(minutes=1)  # windows close on the clock this long after their end
    retrain_every: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(days=7)
    training_window: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(days=14)
    detector: Literal["isolation_forest", "local_outlier_factor", "elliptic_envelope"] = "isolation_forest"
    target_alert_rate: Annotated[float, Field(gt=0, lt=0.5)] = 0.01
    min_rows: Annotated[int, Field(ge=10)] = 50
    top_reasons: Annotated[int, Field(ge=1, le=10)] = 3
    drift_rows: Annotated[int, Field(ge=10)] = 500
    max_window_events: Annotated[int, Field(ge=1)] = 20_000
    max_held_events: Annotated[int, Field(ge=1)] = 1_000_000


class PipelineSettings(_Strict):
    """The bus and the stores, each picked by the scheme of its URL (pipeline/store/registry.py).

    `store_url` is every store's default (empty: `sqlite:///<data_dir>/govsoc.db`); `events_url`,
    `incidents_url` and `sensors_url` each override it for one interface when set, so events can
    live in a search cluster and incidents in PostgreSQL
    (`GOVSOC_PIPELINE__INCIDENTS_URL=postgresql://govsoc@db:5432/govsoc`).
    """

    bus_url: str = "memory://"
    store_url: str = ""  # empty: sqlite:///<data_dir>/govsoc.db
    events_url: str = ""  # empty: store_url
    incidents_url: str = ""  # empty: store_url
    sensors_url: str = ""  # empty: store_url
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000

    def url_for(self, interface: Literal["events", "incidents", "sensors"], data_dir: Path) -> str:
        """The URL the store of `interface` opens: its own, else `store_url`, else the default file."""
        own = {"events": self.events_url, "incidents": self.incidents_url, "sensors": self.sensors_url}[interface]
        return own or self.store_url or f"sqlite:///{data_dir / 'govsoc.db'}"


ConnectorName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
# Option names a secret would be written under: refused, the secret is read from a file instead.
_INLINE_SECRETS = frozenset({"password", "passwd", "token", "secret", "api_key", "apikey", "client_secret",
                             "bearer", "credentials", "user", "username"})
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"})


class _ConnectorSettings(BaseModel):
    """A connector as a deployment writes it: the kind and the options its class takes.

    Only what decides where requests go and where secrets come from is typed here (config/ imports
    nothing of ours); every other option is kept as written and checked in full by the connector's
    own class when a process builds its runner (`playbooks.connectors.ConnectorRegistry`), at start.
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    def options(self) -> dict[str, Any]:
        """What the connector class is built from: the keys written, under the names written."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class HttpConnectorSettings(_ConnectorSettings):
    """POSTs JSON to `url`; `token_file` holds a bearer token, read at each request."""

    kind: Literal["http"]
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]
    token_file: Path | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class SmtpConnectorSettings(_ConnectorSettings):
    """Mails through a relay; `credentials_file` holds the user (line 1) and password (line 2)."""

    kind: Literal["smtp"]
    host: Annotated[str, StringConstraints(min_length=1)]
    sender: Annotated[str, StringConstraints(min_length=1)] = Field(alias="from")
    credentials_file: Path | None = None


ConnectorSettings = Annotated[HttpConnectorSettings | SmtpConnectorSettings, Field(discriminator="kind")]
CONNECTOR_KINDS = ("http", "smtp")  # the kinds of `playbooks.connectors.CONNECTOR_KINDS` this model types
_TAGS = tuple((kind,) for kind in CONNECTOR_KINDS)


class PlaybookSettings(_Strict):
    """Playbooks: where they are loaded from, and the connectors their side-effect steps name.

    Playbooks come from the library govsoc ships (`include_builtin_playbooks`) plus every
    directory in `playbook_dirs`. `connectors` maps the name a step writes (`connector: firewall`)
    to `{kind: http|smtp, ...}`. Secrets are never written here: an option that would hold one
    (`password`, `token`, an `Authorization` header, ...) is refused; name a file instead
    (`credentials_file` for smtp, `token_file` for http), which the connector reads at each send.
    """

    include_builtin_playbooks: bool = True
    playbook_dirs: tuple[Path, ...] = ()
    connectors: dict[ConnectorName, ConnectorSettings] = Field(default_factory=dict)

    @field_validator("connectors", mode="wrap")
    @classmethod
    def _by_kind(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Name a missing or unknown `kind` at its key, and drop pydantic's union tag from error
        paths (`connectors.mail.host`, not `connectors.mail.smtp.host`): it is not a key anyone wrote."""
        for name, options in value.items() if isinstance(value, dict) else ():
            kind = options.get("kind") if isinstance(options, dict) else "http"
            if kind not in CONNECTOR_KINDS:
                reason = "required: http or smtp" if kind is None else f"unknown kind {kind!r} (known: http, smtp)"
                raise TreeError(reason, ("playbooks", "connectors", name, "kind"))
        try:
            return handler(value)
        except ValidationError as e:
            details = [InitErrorDetails(type=d["type"], input=d["input"], ctx=d.get("ctx", {}),
                                        loc=(d["loc"][0], *d["loc"][2:]) if d["loc"][1:2] in _TAGS else d["loc"])
                       for d in e.errors()]
            raise ValidationError.from_exception_data(e.title, details) from None

    @model_validator(mode="after")
    def _no_inline_secrets(self) -> PlaybookSettings:
        for name, connector in self.connectors.items():
            where = ("playbooks", "connectors", name)
            file_key = "token_file" if isinstance(connector, HttpConnectorSettings) else "credentials_file"
            for key in connector.model_extra or {}:
                if key.lower() in _INLINE_SECRETS:
                    raise TreeError(f"no inline secret: name a {file_key} instead", (*where, key))
            if isinstance(connector, HttpConnectorSettings):
                for header in connector.headers:
                    if header.lower() in _SECRET_HEADERS:
                        raise TreeError("no secret in a header: name a token_file instead",
                                        (*where, "headers", header))
        return self


class Settings(BaseSettings):
    """Everything govsoc is configured by. Built by `config.load.load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="GOVSOC_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Path = Path("govsoc-data")
    timezone: str = "Asia/Ho_Chi_Minh"
    tenants: tuple[TenantConfig, ...] = Field(min_length=1)
    api: ApiSettings = ApiSettings()
    pipeline: PipelineSettings = PipelineSettings()
    detections: DetectionSettings = DetectionSettings()
    incidents: IncidentSettings = IncidentSettings()
    sensor_watch: SensorWatchSettings = SensorWatchSettings()
    reports: ReportSettings = ReportSettings()
    service_watch: ServiceWatchSettings = ServiceWatchSettings()
    ml: MlSettings = MlSettings()
    playbooks: PlaybookSettings = PlaybookSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments only: `config.load` reads the environment and merges the sources.

        So `Settings(...)` in a test or a factory never picks up a developer's `GOVSOC_*` variables,
        and the loader can tell which source each invalid value came from.
        """
        return (init_settings,)

    @model_validator(mode="after")
    def _tree_is_sound(self) -> Settings:
        from config.tenants import TenantTree  # tenants.py imports this module's models

        tree = TenantTree.from_config(self.tenants)
        for index, token in enumerate(self.api.tokens):
            if token.tenant not in tree:
                raise TreeError(f"unknown tenant {token.tenant!r}", ("api", "tokens", index, "tenant"))
        return self

    @property
    def store_url(self) -> str:
        """The default of every store (`pipeline.store_url`, else the SQLite file in `data_dir`)."""
        return self.pipeline.store_url or f"sqlite:///{self.data_dir / 'govsoc.db'}"

    @property
    def events_url(self) -> str:
        return self.pipeline.url_for("events", self.data_dir)

    @property
    def incidents_url(self) -> str:
        """Incidents, alerts and the audit trail; playbook runs and reports live beside them."""
        return self.pipeline.url_for("incidents", self.data_dir)

    @property
    def sensors_url(self) -> str:
        return self.pipeline.url_for("sensors", self.data_dir)


class TreeError(ValueError):
    """A structural problem in the tenant tree, with the key path (`loc`) it is about."""

    def __init__(self, reason: str, loc: tuple[str | int, ...]) -> None:
        super().__init__(reason)
        self.loc = loc
