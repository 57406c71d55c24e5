"""Least-privilege PostgreSQL roles for segjob: a reader for BI and a writer for jobs.

- reader: USAGE on schema segjob and SELECT on the BI views, nothing else. Views run with their
  owner's rights, so the reader needs no access to the base tables.
- writer: reads and writes segjob's tables (and reads the views) so it can run jobs, but does
  not own the schema, so it cannot create, alter or drop anything in it.

Grants to roles that already read the views are re-applied after every `segjob db upgrade`,
so views added by later migrations reach existing readers; default privileges give writers the
tables that later migrations create.
"""

from __future__ import annotations

import sqlalchemy as sa
from psycopg import sql

from segjob.errors import UsageError
from segjob.store import db
from segjob.store.dialect import dialect_of
from segjob.store.schema import SCHEMA


def grant(engine: sa.Engine, reader: str | None, writer: str | None) -> list[str]:
    """Grant the reader and/or writer privileges; returns the statements run, for the user."""
    if not dialect_of(engine).roles:
        raise UsageError("segjob db grant is for PostgreSQL; SQLite has no roles")
    if not reader and not writer:
        raise UsageError("give --reader ROLE, --writer ROLE or both")
    db.check_at_head(engine)
    done: list[str] = []
    with engine.begin() as connection:
        driver = connection.connection.driver_connection
        assert driver is not None  # a live connection has its DBAPI connection
        cursor = driver.cursor()
        for role in filter(None, (reader, writer)):
            _check_role(cursor, role)
        if reader:
            done += _grant_reader(cursor, reader)
        if writer:
            done += _grant_writer(cursor, writer)
    return done


def regrant_readers(connection: sa.Connection) -> None:
    """Give every role that can read run_summary SELECT on all current views (after a migration)."""
    driver = connection.connection.driver_connection
    assert driver is not None  # a live connection has its DBAPI connection
    cursor = driver.cursor()
    cursor.execute(
        "SELECT grantee FROM information_schema.role_table_grants "
        "WHERE table_schema = %s AND table_name = 'run_summary' AND privilege_type = 'SELECT'",
        (SCHEMA,),
    )
    for (role,) in cursor.fetchall():
        _grant_reader(cursor, role)


def _check_role(cursor, role: str) -> None:
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    if cursor.fetchone() is None:
        raise UsageError(f'role "{role}" does not exist; create it first (CREATE ROLE ... LOGIN)')


def _views(cursor) -> list[str]:
    cursor.execute("SELECT table_name FROM information_schema.views WHERE table_schema = %s ORDER BY 1", (SCHEMA,))
    return [name for (name,) in cursor.fetchall()]


def _run(cursor, statement: sql.Composable) -> str:
    cursor.execute(statement)
    return statement.as_string(cursor)


def _grant_reader(cursor, role: str) -> list[str]:
    who, schema = sql.Identifier(role), sql.Identifier(SCHEMA)
    statements = [_run(cursor, sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, who))]
    for view in _views(cursor):
        statements.append(_run(cursor, sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(SCHEMA, view), who)))
    return statements


def _grant_writer(cursor, role: str) -> list[str]:
    who, schema = sql.Identifier(role), sql.Identifier(SCHEMA)
    return [
        _run(cursor, statement.format(schema=schema, who=who))
        for statement in (
            sql.SQL("GRANT USAGE ON SCHEMA {schema} TO {who}"),
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {who}"),
            sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {who}"),
            # Publishing and pruning create/attach/drop a run's assignment partition through
            # segjob's SECURITY DEFINER functions (migration 0003).
            sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {who}"),
            # Tables and sequences that later migrations create (run by the current role) too.
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {who}"
            ),
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {who}"),
        )
    ]
