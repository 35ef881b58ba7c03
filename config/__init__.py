"""Configuration: the bottom layer, importing nothing else of govsoc.

Modules, in the order a start-up uses them:
- errors: `GovsocError`, `SourceLocation`, `ConfigError`, the error root of every stage.
- settings: the typed `Settings` model (pydantic-settings) and its parts (tenants, assets, sensors).
- load: `load_settings` from a YAML file, `GOVSOC_*` variables and overrides, with locations.
- tenants: `TenantTree` and `TenantScope`, what every store read is limited to.
- default.yaml: the configuration `govsoc up` uses when given none (the demo network).
"""
