"""Alembic environment for segjob's schema.

`segjob db upgrade` passes its connection in `config.attributes["connection"]`. Run from the
`alembic` command line, the URL comes from SEGJOB_DATABASE_URL (or the SQLite default).
On PostgreSQL everything lives in the schema `segjob`, version table included; on SQLite there
is no schema. Autogenerate compares only segjob's own tables, never the user's.
Every migration's lock waits are capped by a short lock_timeout (segjob.store.locks), so a
DROP VIEW or ALTER TABLE never leaves BI queries queued behind it; the caller retries.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from segjob.store import db, locks
from segjob.store.dialect import dialect_of
from segjob.store.schema import metadata_for


def run_migrations(connection: sa.Connection) -> None:
    schema = dialect_of(connection).schema
    if schema:
        locks.set_lock_timeout(connection)
        connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    target = metadata_for(connection.dialect.name)
    own_tables = {table.name for table in target.sorted_tables}

    def include_name(name, type_, parent_names):
        if type_ == "schema":
            return name == schema
        if type_ == "table":
            return name in own_tables
        return True

    context.configure(
        connection=connection,
        target_metadata=target,
        version_table_schema=schema,
        include_schemas=schema is not None,
        include_name=include_name,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    engine = db.make_engine(None)
    locks.retrying(engine, run_migrations, "alembic")
    engine.dispose()
