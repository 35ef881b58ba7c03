"""Alembic revisions, one module each, on two branches: `incidents_NNNN` and `runs_NNNN` (docs/migrations.md)."""
