"""`segjob sql score`: the printed PostgreSQL SELECT, executed by PostgreSQL itself, gives every
customer the same segment as `segjob score` on the same rows."""

from __future__ import annotations

import pytest
from helpers import INCOME, MALL_ID, SPENDING, invoke, load_mall, query, run_json
from test_score import ODD_LEVEL, PEOPLE_RUN, TX_RUN, assignments, load_people, make_people, score_json
from test_transactions import load_tables, make_transactions

from segjob.store import db


def print_sql(url: str, *args: str) -> str:
    result = invoke(url, "sql", "score", *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def execute(url: str, sql: str) -> dict[str, tuple]:
    """Run the statement as a BI tool would: the text as is, no parameters."""
    engine = db.make_engine(url)
    try:
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            names = [column[0] for column in cursor.description]
            rows = cursor.fetchall()
        finally:
            connection.close()
    finally:
        engine.dispose()
    assert names == ["customer_key", "segment_id", "segment_label", "distance"]
    return {key: (segment_id, label, distance) for key, segment_id, label, distance in rows}


def assert_sql_equals_score(url: str, sql: str, score_run: int) -> None:
    from_sql = execute(url, sql)
    scored = assignments(url, score_run)
    labels = {
        row["segment_id"]: row["label"]
        for row in query(url, "SELECT segment_id, label FROM segment WHERE run_id = :r", r=score_run)
    }
    assert len(scored) > 50 and from_sql.keys() == scored.keys()
    for key, (segment_id, label, distance) in from_sql.items():
        assert segment_id == scored[key][0], key
        assert label == labels[segment_id]
        assert distance == pytest.approx(scored[key][1], rel=1e-9, abs=1e-12), key


def test_sql_score_equals_score_numeric(migrated_pg_url):
    url = migrated_pg_url
    load_mall(url)
    run_json(url, "--source", "mall", "--id", MALL_ID, "--features", f"Age,{INCOME},{SPENDING}", "--k", "5")
    scored = score_json(url, "--job", "mall", "--source", "mall")
    sql = print_sql(url, "--job", "mall")
    assert '"Annual Income (k$)"' in sql
    assert_sql_equals_score(url, sql, scored["run_id"])
    result = invoke(url, "sql", "score", "--job", "mall", "--as-of", "2024-01-01")
    assert result.exit_code == 2 and "--as-of is for purchase-history jobs" in result.stderr


def test_sql_score_equals_score_categorical_transformed(migrated_pg_url):
    url = migrated_pg_url
    frame = make_people(400, seed=3)
    frame.loc[5, "age"] = None
    load_people(url, "people", frame)
    fit = run_json(url, *PEOPLE_RUN)
    scored = score_json(url, "--job", "people", "--source", "people")
    sql = print_sql(url, "--job", "people", "--model-run", str(fit["run_id"]))
    assert "LN(1 + " in sql and "LEAST(GREATEST(" in sql and "CASE WHEN c0 = " in sql
    assert '"visits ""per"" %month"' in sql  # quoted by the identifier preparer, % kept as is
    assert "O''Hare \\\\ West" in sql  # escaped by psycopg: E'O''Hare \\ West'
    assert_sql_equals_score(url, sql, scored["run_id"])
    # A customer whose level is the odd one is scored too.
    assert any(value == ODD_LEVEL for value in frame["region"])


def test_sql_score_of_a_query_job_and_new_rows(migrated_pg_url):
    """The job's --query becomes a subquery; rows added to the source later are scored live."""
    url = migrated_pg_url
    load_people(url, "people", make_people(300, seed=3))
    run_json(url, *PEOPLE_RUN[2:], "--query", "SELECT * FROM people WHERE spend > 0", "--job", "people_q")
    load_people(url, "people_more", make_people(80, seed=12, prefix="M"))
    engine = db.make_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO people SELECT * FROM people_more")
    finally:
        engine.dispose()
    scored = score_json(url, "--job", "people_q", "--query", "SELECT * FROM people WHERE spend > 0")
    sql = print_sql(url, "--job", "people_q")
    assert "WHERE spend > 0" in sql
    assert len(assignments(url, scored["run_id"])) == 380
    assert_sql_equals_score(url, sql, scored["run_id"])


def test_sql_score_equals_score_transactions(migrated_pg_url):
    url = migrated_pg_url
    engine = db.make_engine(url)
    try:
        load_tables(engine, make_transactions())
    finally:
        engine.dispose()
    run_json(url, *TX_RUN, "--features", "recency,frequency,monetary_total,tenure", "--transform", "auto", "--k", "3")
    scored = score_json(url, "--job", "tx")
    sql = print_sql(url, "--job", "tx")
    assert "customer_days" in sql
    assert_sql_equals_score(url, sql, scored["run_id"])

    # An earlier as-of date: fewer customers, other recencies; still the same segments as score.
    scored = score_json(url, "--job", "tx", "--as-of", "2024-05-01")
    sql = print_sql(url, "--job", "tx", "--as-of", "2024-05-01")
    assert "2024-05-01" in sql
    assert_sql_equals_score(url, sql, scored["run_id"])
    result = invoke(url, "sql", "score", "--job", "tx", "--as-of", "May 1st")
    assert result.exit_code == 2 and "--as-of must be a date like 2024-12-31" in result.stderr


def test_sql_score_errors(migrated_db_url):
    url = migrated_db_url
    result = invoke(url, "sql", "score", "--job", "nothing")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    if url.startswith("sqlite"):
        assert "writes PostgreSQL SQL and this database is SQLite" in lines[0]
    else:
        assert "job 'nothing' has no runs" in lines[0]
    assert result.stdout == ""
