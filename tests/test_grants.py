"""Least privilege on PostgreSQL: the reader sees only the views, the writer runs jobs but
cannot change segjob's schema."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from helpers import INCOME, MALL_ID, SPENDING, invoke, load_mall, query

from segjob.store import migrate


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
    return psycopg.connect(
        sa.make_url(_as(url, role)).set(drivername="postgresql").render_as_string(False), autocommit=True
    )


def test_reader_sees_views_only_and_writer_runs_jobs(migrated_pg_url, roles, pg_admin_engine):
    reader, writer = roles
    load_mall(migrated_pg_url)
    granted = invoke(migrated_pg_url, "db", "grant", "--reader", reader, "--writer", writer)
    assert granted.exit_code == 0, granted.stderr
    assert f'GRANT SELECT ON "segjob"."current_segment" TO "{reader}"' in granted.stdout

    # The writer runs a job (it also needs to read the customer table, which is the user's to grant).
    with _connect(migrated_pg_url, "postgres") as admin:
        admin.execute(f"GRANT SELECT ON public.mall TO {writer}")
    writer_url = _as(migrated_pg_url, writer)
    result = invoke(
        writer_url, "run", "--source", "mall", "--id", MALL_ID, "--features", f"{INCOME},{SPENDING}", "--json"
    )
    assert result.exit_code == 0, result.stderr

    with _connect(migrated_pg_url, writer) as connection:
        for statement in (
            "DROP TABLE segjob.assignment",
            "ALTER TABLE segjob.run ADD COLUMN x int",
            "DROP SCHEMA segjob CASCADE",
            "CREATE TABLE segjob.mine (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)

    with _connect(migrated_pg_url, reader) as connection:
        assert connection.execute("SELECT COUNT(*) FROM segjob.current_segment").fetchone()[0] == 200
        assert connection.execute("SELECT COUNT(*) FROM segjob.run_summary").fetchone()[0] == 1
        for statement in (
            "SELECT * FROM segjob.run",
            "SELECT * FROM segjob.assignment",
            "DELETE FROM segjob.run",
            "INSERT INTO segjob.segment VALUES (1, 1, 'x', 1, 1)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)


def test_readers_get_views_added_by_later_migrations(migrated_pg_url, roles):
    reader, _ = roles
    assert invoke(migrated_pg_url, "db", "grant", "--reader", reader).exit_code == 0
    with _connect(migrated_pg_url, "postgres") as admin:
        admin.execute("CREATE VIEW segjob.extra_view AS SELECT 1 AS one")
    migrate.downgrade(migrated_pg_url, "0001")  # an older schema, whose views the reader can read
    assert invoke(migrated_pg_url, "db", "upgrade").exit_code == 0
    with _connect(migrated_pg_url, reader) as connection:
        assert connection.execute("SELECT one FROM segjob.extra_view").fetchone() == (1,)


def test_grant_errors(migrated_pg_url, sqlite_url):
    missing = invoke(migrated_pg_url, "db", "grant", "--reader", "no_such_role_xyz")
    assert missing.exit_code == 2 and 'role "no_such_role_xyz" does not exist' in missing.stderr
    assert invoke(migrated_pg_url, "db", "grant").exit_code == 2
    sqlite = invoke(sqlite_url, "db", "grant", "--reader", "x")
    assert sqlite.exit_code == 2 and "PostgreSQL" in sqlite.stderr
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # and it made no database file


def _segjob_relations(connection: psycopg.Connection, kinds: str) -> list[str]:
    """Names of segjob's relations of the given pg_class kinds ('r' table, 'p' partitioned, 'v' view, 'S' sequence)."""
    rows = connection.execute(
        "SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'segjob' AND c.relkind = ANY(%s) ORDER BY 1",
        (list(kinds),),
    ).fetchall()
    return [name for (name,) in rows]


def test_reader_can_select_every_view_and_nothing_else(migrated_pg_url, roles):
    reader, _ = roles
    load_mall(migrated_pg_url)
    assert (
        invoke(migrated_pg_url, "run", "--source", "mall", "--id", MALL_ID, "--features", INCOME, "--k", "3").exit_code
        == 0
    )
    assert invoke(migrated_pg_url, "db", "grant", "--reader", reader).exit_code == 0
    with _connect(migrated_pg_url, "postgres") as admin:
        views = _segjob_relations(admin, "v")
        tables = _segjob_relations(admin, "rp")  # includes the run's assignment partition
        sequences = _segjob_relations(admin, "S")
        functions = [
            name
            for (name,) in admin.execute(
                "SELECT p.oid::regprocedure::text FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace"
                " WHERE n.nspname = 'segjob'"
            ).fetchall()
        ]
    assert {"current_segment", "segment_profile", "run_summary"} <= set(views)
    assert {"run", "assignment", "assignment_r1", "alembic_version"} <= set(tables)
    with _connect(migrated_pg_url, reader) as connection:
        for view in views:
            connection.execute(f'SELECT COUNT(*) FROM segjob."{view}"').fetchone()
            # Simple views are auto-updatable in PostgreSQL: only the missing privilege stops these
            # (or, for views that cannot be written at all, PostgreSQL refuses before checking it).
            for statement in (f'DELETE FROM segjob."{view}"', f'INSERT INTO segjob."{view}" DEFAULT VALUES'):
                with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectNotInPrerequisiteState)):
                    connection.execute(statement)
        for table in tables:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(f'SELECT 1 FROM segjob."{table}" LIMIT 1')
        for sequence in sequences:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(f"SELECT nextval('segjob.\"{sequence}\"')")
        for function in functions:  # e.g. the SECURITY DEFINER partition functions
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                name, arguments = function.rstrip(")").split("(")
                ones = ", ".join("1" for argument in arguments.split(",") if argument.strip())
                connection.execute(f"SELECT {name}({ones})")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("CREATE TABLE segjob.mine (x int)")
    assert query(migrated_pg_url, "SELECT COUNT(*) AS n FROM current_segment")[0]["n"] == 200
    assert query(migrated_pg_url, "SELECT COUNT(*) AS n FROM run_summary")[0]["n"] == 1


def test_writer_cannot_alter_or_drop_segjobs_objects(migrated_pg_url, roles):
    _, writer = roles
    load_mall(migrated_pg_url)
    assert invoke(migrated_pg_url, "db", "grant", "--writer", writer).exit_code == 0
    with _connect(migrated_pg_url, "postgres") as admin:
        admin.execute(f"GRANT SELECT ON public.mall TO {writer}")
    writer_url = _as(migrated_pg_url, writer)
    result = invoke(
        writer_url, "run", "--source", "mall", "--id", MALL_ID, "--features", f"{INCOME},{SPENDING}", "--k", "3"
    )
    assert result.exit_code == 0, result.stderr
    with _connect(migrated_pg_url, writer) as connection:
        for statement in (
            "DROP VIEW segjob.current_segment",
            "CREATE OR REPLACE VIEW segjob.current_segment AS SELECT 1 AS one",
            "ALTER VIEW segjob.segment_profile RENAME TO x",
            "TRUNCATE segjob.run CASCADE",
            "CREATE INDEX ON segjob.run (job)",
            "ALTER SCHEMA segjob RENAME TO x",
            "DROP TABLE segjob.assignment_r1",  # its own run's partition: made by the definer function
            "ALTER TABLE segjob.assignment DETACH PARTITION segjob.assignment_r1",
            "DROP FUNCTION segjob.drop_assignment_partition(integer)",
            "CREATE FUNCTION segjob.mine() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "ALTER TABLE segjob.alembic_version ADD COLUMN x int",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)
    assert query(migrated_pg_url, "SELECT COUNT(*) AS n FROM current_segment")[0]["n"] == 200


def test_default_privileges_cover_tables_added_later(migrated_pg_url, roles):
    reader, writer = roles
    assert invoke(migrated_pg_url, "db", "grant", "--reader", reader, "--writer", writer).exit_code == 0
    with _connect(migrated_pg_url, "postgres") as admin:  # as a later migration would, as the schema owner
        admin.execute("CREATE TABLE segjob.later_table (id serial PRIMARY KEY, x int)")
    with _connect(migrated_pg_url, writer) as connection:
        connection.execute("INSERT INTO segjob.later_table (x) VALUES (1)")  # the serial's sequence too
        assert connection.execute("SELECT id, x FROM segjob.later_table").fetchall() == [(1, 1)]
    with _connect(migrated_pg_url, reader) as connection:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute("SELECT * FROM segjob.later_table")
