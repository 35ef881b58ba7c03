"""The one typed settings model, and the tenant tree it describes.

`Settings` is built by `config.load.load_settings` from a YAML file, `GOVSOC_*` environment variables
and command-line overrides (highest wins); nothing else in govsoc reads the environment. Every model
forbids unknown keys, so a typo fails at start with the key named instead of being ignored.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

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


class ApiSettings(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    tokens: tuple[ApiToken, ...] = ()


class DetectionSettings(_Strict):
    """Where Sigma rules come from: the rules govsoc ships, plus any directories listed here."""

    include_builtin_rules: bool = True
    rule_dirs: tuple[Path, ...] = ()
    correlation_max_groups: Annotated[int, Field(ge=1)] = 100_000


class IncidentSettings(_Strict):
    """How alerts group into incidents: same tenant, rule and entity within `group_window_s`."""

    group_window_s: Annotated[int, Field(ge=1)] = 24 * 3600


class PipelineSettings(_Strict):
    bus_url: str = "memory://"
    store_url: str = ""  # empty: sqlite:///<data_dir>/govsoc.db
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000


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
        return self.pipeline.store_url or f"sqlite:///{self.data_dir / 'govsoc.db'}"


class TreeError(ValueError):
    """A structural problem in the tenant tree, with the key path (`loc`) it is about."""

    def __init__(self, reason: str, loc: tuple[str | int, ...]) -> None:
        super().__init__(reason)
        self.loc = loc
