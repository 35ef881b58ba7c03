"""The doors: the FastAPI app, the `govsoc` command line, and the process wiring.

Modules:
- wiring: builds stores, bus, sensors and detection from `Settings` (the only place that does).
- app: the FastAPI application (`create_app`), routes under /api/v1.
- auth: bearer-token authentication and the caller's tenant scope.
- cli/: the `govsoc` command (typer), one module per command group.
- demo/: sample data the project generates itself for `govsoc up --demo`, tests and benches.
"""
