"""Least privilege on PostgreSQL: the reader sees only the views, the writer runs jobs but
cannot change segjob's schema."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import sqlalchemy as sa

from helpers import INCOME, MALL_ID, SPENDING, invoke, load_mall
from segjob import db


@pytest.fixture
def roles(pg_admin_engine, migrated_pg_url):
    """Two login roles, removed with their privileges in the test database after the test."""
    suffix = uuid.uuid4().hex[:8]
    reader, writer = f"segjob_reader_{suffix}", f"segjob_writer_{suffix}"
    with pg_admin_engine.connect() as connection:
        for role in (reader, writer):
            connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    yield reader, writer
    with _connect(migrated_pg_url, "postgres") as connection:
        connection.execute(f"DROP OWNED BY {reader}, {writer}")
    with pg_admin_engine.connect() as connection:
        for role in (reader, writer):
            connection.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")


def _as(url: str, role: str) -> str:
    return sa.make_url(url).set(username=role).render_as_string(hide_password=False)


def _connect(url: str, role: str) -> psycopg.Connection:
    return psycopg.connect(sa.make_url(_as(url, role)).set(drivername="postgresql").render_as_string(False), autocommit=True)


def test_reader_sees_views_only_and_writer_runs_jobs(migrated_pg_url, roles, pg_admin_engine):
    reader, writer = roles
    load_mall(migrated_pg_url)
    granted = invoke(migrated_pg_url, "db", "grant", "--reader", reader, "--writer", writer)
    assert granted.exit_code == 0, granted.stderr
    assert f"GRANT SELECT ON \"segjob\".\"current_segment\" TO \"{reader}\"" in granted.stdout

    # The writer runs a job (it also needs to read the customer table, which is the user's to grant).
    with _connect(migrated_pg_url, "postgres") as admin:
        admin.execute(f"GRANT SELECT ON public.mall TO {writer}")
    writer_url = _as(migrated_pg_url, writer)
    result = invoke(writer_url, "run", "--source", "mall", "--id", MALL_ID, "--features", f"{INCOME},{SPENDING}", "--json")
    assert result.exit_code == 0, result.stderr

    with _connect(migrated_pg_url, writer) as connection:
        for statement in ("DROP TABLE segjob.assignment", "ALTER TABLE segjob.run ADD COLUMN x int",
                          "DROP SCHEMA segjob CASCADE", "CREATE TABLE segjob.mine (x int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)

    with _connect(migrated_pg_url, reader) as connection:
        assert connection.execute("SELECT COUNT(*) FROM segjob.current_segment").fetchone()[0] == 200
        assert connection.execute("SELECT COUNT(*) FROM segjob.run_summary").fetchone()[0] == 1
        for statement in ("SELECT * FROM segjob.run", "SELECT * FROM segjob.assignment",
                          "DELETE FROM segjob.run", "INSERT INTO segjob.segment VALUES (1, 1, 'x', 1, 1)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)


def test_readers_get_views_added_by_later_migrations(migrated_pg_url, roles):
    reader, _ = roles
    assert invoke(migrated_pg_url, "db", "grant", "--reader", reader).exit_code == 0
    with _connect(migrated_pg_url, "postgres") as admin:
        admin.execute("CREATE VIEW segjob.extra_view AS SELECT 1 AS one")
    db.downgrade(migrated_pg_url, "0001")  # an older schema, whose views the reader can read
    assert invoke(migrated_pg_url, "db", "upgrade").exit_code == 0
    with _connect(migrated_pg_url, reader) as connection:
        assert connection.execute("SELECT one FROM segjob.extra_view").fetchone() == (1,)


def test_grant_errors(migrated_pg_url, sqlite_url):
    missing = invoke(migrated_pg_url, "db", "grant", "--reader", "no_such_role_xyz")
    assert missing.exit_code == 2 and 'role "no_such_role_xyz" does not exist' in missing.stderr
    assert invoke(migrated_pg_url, "db", "grant").exit_code == 2
    sqlite = invoke(sqlite_url, "db", "grant", "--reader", "x")
    assert sqlite.exit_code == 2 and "PostgreSQL" in sqlite.stderr
