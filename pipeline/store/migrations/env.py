"""Alembic's environment for govsoc: always online, always on the connection `migrate` hands over.

In: `config.attributes["connection"]` (a SQLAlchemy `Connection`, usually inside the caller's
transaction) and `config.attributes["branch"]` (`incidents` or `runs`, or None for every
branch). Out: the revisions Alembic was asked to run, on that connection.

Why no URL here: `migrate` (pipeline/store/migrations/__init__.py) opens the connection, takes
the lock and reads the version first; running the revisions inside its transaction means a
failed revision leaves the database as it was (PostgreSQL DDL is transactional, and SQLite's runs
under `BEGIN IMMEDIATE`). Autogenerate and `command.check` compare only the branch's own tables,
so a SQLite file that also holds the event store's tables shows no drift for them.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from pipeline.store.migrations import include_object_for
from pipeline.store.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("govsoc migrations run through pipeline.store.migrations.migrate(), which passes a connection")
context.configure(connection=connection, target_metadata=metadata, compare_type=True, render_as_batch=True,
                  include_object=include_object_for(context.config.attributes.get("branch")))
with context.begin_transaction():
    context.run_migrations()
