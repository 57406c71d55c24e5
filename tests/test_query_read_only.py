"""A `--query` runs as exactly one statement in a read-only transaction that is rolled back, and
may not call functions that act outside that transaction (issue 22).

Each hostile text below is tried through the CLI (`run`, and `score` for the stacking cases); a
`canary` table must come through untouched, other sessions must stay alive, and nothing the text
asked for may outlive the read.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
import sqlalchemy as sa
from helpers import INCOME, MALL_ID, SPENDING, invoke, load_mall, one_error_line, query

# Each closes segjob's "(" around the query and stacks statements after it, as in the report
# that opened issue 22 (it dropped the canary before the fix).
STACKED = [
    "SELECT 1 AS id, 1 AS a) s; COMMIT; DROP TABLE canary; SELECT * FROM (SELECT 1 AS id, 1 AS a",
    "SELECT 1 AS id, 1 AS a) s; ROLLBACK; DELETE FROM canary; SELECT * FROM (SELECT 1 AS id, 1 AS a",
    "SELECT 1 AS id, 1 AS a) s; SET transaction_read_only = off; DROP TABLE canary; SELECT * FROM (SELECT 1 AS id, 1 AS a",
    "SELECT 1 AS id, 1 AS a) s; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; COMMIT;"
    " DROP TABLE canary; SELECT * FROM (SELECT 1 AS id, 1 AS a",
    # Comments that hide the terminators from a naive scan, but not from the server.
    "SELECT 1 AS id, 1 AS a) s; /* ) */ COMMIT; -- (\nDROP TABLE canary; SELECT * FROM (SELECT 1 AS id, 1 AS a",
    "SELECT 1 AS id, 1 AS a) s --\n; COMMIT /* ; */; DROP TABLE canary; SELECT * FROM (SELECT 1 AS id, 1 AS a",
    "SELECT 1 AS id, 1 AS a) s; END; DROP TABLE canary; SELECT * FROM (SELECT 1 AS id, 1 AS a",
]
SQLITE_STACKED = [
    "SELECT 1 AS id, 1 AS a) s; DROP TABLE canary; SELECT * FROM (SELECT 1 AS id, 1 AS a",
    "SELECT 1 AS id, 1 AS a) s; /* ) */ PRAGMA query_only = OFF; -- (\nDROP TABLE canary; --",
]


def _canary(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE canary (x INTEGER)")
        connection.exec_driver_sql("INSERT INTO canary VALUES (1), (2), (3)")
    engine.dispose()


def _canary_rows(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql("SELECT count(*) FROM canary").scalar_one()
    finally:
        engine.dispose()


def _run_query(url: str, text: str, *extra: str):
    return invoke(url, "run", "--query", text, "--job", "evil", "--id", "id", "--features", "a", "--k", "2", *extra)


def test_stacked_statements_are_refused_and_write_nothing(migrated_db_url):
    url = migrated_db_url
    postgres = url.startswith("postgresql")
    _canary(url)
    for text in STACKED if postgres else SQLITE_STACKED:
        result = _run_query(url, text)
        assert result.exit_code == 2, (text, result.stderr)
        line = one_error_line(result.stderr)
        assert line.startswith("Error: reading the source failed: "), (text, line)
        if postgres:
            assert "must be one SELECT statement" in line, (text, line)
        assert _canary_rows(url) == 3, text
    assert query(url, "SELECT COUNT(*) AS n FROM run")[0]["n"] == 0


def test_score_with_a_stacked_query_is_refused(migrated_pg_url):
    url = migrated_pg_url
    load_mall(url)
    result = invoke(url, "run", "--source", "mall", "--id", MALL_ID, "--features", f"{INCOME},{SPENDING}", "--k", "3")
    assert result.exit_code == 0, result.stderr
    _canary(url)
    text = f'SELECT * FROM mall) s; COMMIT; DROP TABLE canary; SELECT * FROM (SELECT "{MALL_ID}" FROM mall'
    result = invoke(url, "score", "--job", "mall", "--query", text, "--id", MALL_ID)
    assert result.exit_code == 2, result.stderr
    assert "must be one SELECT statement" in one_error_line(result.stderr)
    assert _canary_rows(url) == 3


def _other_session_pid(url: str) -> tuple[psycopg.Connection, int]:
    dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = psycopg.connect(dsn, autocommit=True)
    return connection, connection.info.backend_pid


@pytest.mark.parametrize(
    "call",
    [
        "pg_terminate_backend({pid})",
        "pg_cancel_backend({pid})",
        'pg_catalog."pg_terminate_backend"({pid})',
        'U&"pg_\\0074erminate_backend"({pid})',
        "lo_export(lo_import('/etc/hostname'), '/tmp/segjob-evil-{tag}')",
        "lo_create(0)",
        "pg_reload_conf()",
        "pg_advisory_lock({pid})",
        "dblink_exec('dbname=' || current_database(), 'DROP TABLE canary')",
    ],
)
def test_functions_that_act_outside_the_transaction_are_refused(migrated_pg_url, call, tmp_path):
    url = migrated_pg_url
    _canary(url)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS dblink")
        # Behind a view, the call is not in the query's text at all.
        tag = uuid.uuid4().hex[:8]
        other, pid = _other_session_pid(url)
        rendered = call.format(pid=pid, tag=tag)
        connection.exec_driver_sql(f"CREATE VIEW hidden AS SELECT 1 AS id, 2 AS a WHERE {rendered} IS NOT NULL")
    engine.dispose()
    try:
        for text in [
            f"SELECT 1 AS id, {rendered} AS a",
            f"SELECT id, a FROM (SELECT 1 AS id, 1 AS a) t WHERE {rendered} IS NOT NULL",
            "SELECT * FROM hidden",
        ]:
            result = _run_query(url, text)
            assert result.exit_code == 2, (text, result.stderr)
            line = one_error_line(result.stderr)
            assert "acts outside a read-only transaction" in line, (text, line)
            assert other.execute("SELECT 1").fetchone() == (1,)  # not terminated, not cancelled
            assert _canary_rows(url) == 3
            assert not (tmp_path.parent / f"segjob-evil-{tag}").exists()
    finally:
        other.close()


def test_a_literal_that_names_such_a_function_is_not_refused(migrated_pg_url):
    engine = sa.create_engine(migrated_pg_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE notes AS SELECT g AS id, g * 1.5 AS a, 'pg_terminate_backend(1)' AS note"
            " FROM generate_series(1, 40) AS g"
        )
    engine.dispose()
    text = "SELECT id, a FROM notes WHERE note <> 'dblink_exec(''x'')'"
    result = _run_query(migrated_pg_url, text, "--json")
    assert result.exit_code == 0, result.stderr
    assert query(migrated_pg_url, "SELECT COUNT(*) AS n FROM current_segment")[0]["n"] == 40


def test_transactional_side_effects_are_rolled_back(migrated_pg_url):
    """NOTIFY and set_config are allowed in a read-only transaction; segjob rolls the read back,
    so a listener hears nothing and the next statement on any pooled connection sees defaults."""
    url = migrated_pg_url
    listener, _ = _other_session_pid(url)
    listener.execute("LISTEN segjob_evil")
    text = (
        "SELECT g AS id, g * 2.0 AS a FROM generate_series(1, 30) AS g"
        " WHERE pg_notify('segjob_evil', 'x') IS NOT NULL"
        " AND set_config('default_transaction_read_only', 'off', false) IS NOT NULL"
    )
    try:
        result = _run_query(url, text)
        assert result.exit_code == 0, result.stderr
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == []
    finally:
        listener.close()


def test_the_streaming_read_keeps_the_url_settings(migrated_pg_url):
    """The rows stream over a connection of their own (ADBC): it must carry the URL's options
    too (issue 22.8), or this query, which keeps its rows only under the URL's work_mem, reads none."""
    url = sa.make_url(migrated_pg_url).update_query_dict({"options": "-c work_mem=7MB"})
    rendered = url.render_as_string(hide_password=False)
    text = "SELECT g AS id, g * 1.5 AS a FROM generate_series(1, 30) AS g WHERE current_setting('work_mem') = '7MB'"
    result = _run_query(rendered, text, "--json")
    assert result.exit_code == 0, result.stderr
    assert query(migrated_pg_url, "SELECT rows_used FROM run_summary")[0]["rows_used"] == 30
