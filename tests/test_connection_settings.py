"""Settings in the database URL reach every connection segjob opens, next to segjob's own (issue 22).

Each check asks the server (SHOW) what a real connection got. The Spark engine's JDBC read is
checked against a real Spark in tests/test_spark.py.
"""

from __future__ import annotations

from urllib.parse import quote

import psycopg
import pytest
import sqlalchemy as sa

from segjob.config import build_spec
from segjob.engines import spark as spark_engine
from segjob.errors import UsageError
from segjob.store import db

SETTINGS = ("work_mem", "search_path", "statement_timeout", "application_name")


def _with_options(url: str, options: str, **more: str) -> str:
    extra = "".join(f"&{name}={quote(value, safe='')}" for name, value in more.items())
    return f"{url}{'&' if '?' in url else '?'}options={quote(options, safe='')}{extra}"


def _show(connection, names=SETTINGS) -> dict[str, str]:
    return {name: connection.execute(f"SHOW {name}").fetchone()[0] for name in names}


def test_engine_keeps_the_url_options_and_adds_the_statement_timeout(pg_url):
    url = _with_options(pg_url, "-c work_mem=12MB -c search_path=elsewhere,public", application_name="nightly")
    engine = db.make_engine(url, statement_timeout=7)
    try:
        with engine.connect() as connection:
            shown = _show(connection.connection.driver_connection)
    finally:
        engine.dispose()
    assert shown == {
        "work_mem": "12MB",
        "search_path": "elsewhere,public",
        "statement_timeout": "7s",
        "application_name": "nightly",
    }


def test_segjob_settings_win_over_the_same_names_in_the_url_and_pgoptions_counts(pg_url, monkeypatch):
    url = _with_options(pg_url, "-c statement_timeout=1 -c work_mem=9MB")
    engine = db.make_engine(url, statement_timeout=3)
    try:
        with engine.connect() as connection:
            shown = _show(connection.connection.driver_connection, ("statement_timeout", "work_mem"))
    finally:
        engine.dispose()
    assert shown == {"statement_timeout": "3s", "work_mem": "9MB"}
    # Without options in the URL, libpq would send $PGOPTIONS: they are kept as well.
    monkeypatch.setenv("PGOPTIONS", "-c work_mem=11MB")
    engine = db.make_engine(pg_url, statement_timeout=3)
    try:
        with engine.connect() as connection:
            shown = _show(connection.connection.driver_connection, ("statement_timeout", "work_mem"))
    finally:
        engine.dispose()
    assert shown == {"statement_timeout": "3s", "work_mem": "11MB"}


def test_a_setting_with_spaces_reaches_the_server_whole(pg_url):
    options = db.server_options(sa.make_url(pg_url), {"segjob.note": r"two words\ and a backslash"})
    with psycopg.connect(
        sa.make_url(pg_url).set(drivername="postgresql").render_as_string(False), options=options
    ) as c:
        assert _show(c, ("segjob.note",)) == {"segjob.note": r"two words\ and a backslash"}


def test_spark_executors_connect_with_the_url_settings(pg_url):
    url = _with_options(pg_url, "-c work_mem=12MB -c search_path=elsewhere,public", sslmode="disable")
    engine = db.make_engine(url)
    try:
        conninfo = spark_engine.executor_conninfo(engine, 60)
    finally:
        engine.dispose()
    with psycopg.connect(conninfo) as connection:
        shown = _show(connection, ("work_mem", "search_path", "statement_timeout"))
        assert connection.info.get_parameters()["sslmode"] == "disable"
    assert shown == {"work_mem": "12MB", "search_path": "elsewhere,public", "statement_timeout": "1min"}


def test_spark_jdbc_url_and_properties_carry_the_url_settings():
    spec = build_spec(source="customers", id="id", features="a", engine="spark", statement_timeout=7)
    url = "postgresql://reader:secret@/warehouse?host=db1:5433&host=db2:5434&sslmode=verify-full"
    engine = db.make_engine(_with_options(url, "-c work_mem=64MB", target_session_attrs="read-write"))
    assert spark_engine.jdbc_url(engine) == "jdbc:postgresql://db1:5433,db2:5434/warehouse"
    properties = spark_engine.jdbc_properties(engine, spec)
    assert properties["sslmode"] == "verify-full"
    assert properties["targetServerType"] == "primary"
    assert properties["user"] == "reader" and properties["password"] == "secret"
    assert properties["options"] == "-c work_mem=64MB -c default_transaction_read_only=on -c statement_timeout=7000"
    assert properties["readOnly"] == "true"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "postgresql://postgres@/test?host=/var/run/postgresql",
            "which cannot connect through a Unix socket (host=/var/run/postgresql in the database URL)",
        ),
        (
            "postgresql://postgres@db/test?passfile=/secrets/pgpass",
            "has no equivalent of passfile= in the database URL",
        ),
    ],
)
def test_spark_jdbc_refuses_settings_it_cannot_honour(url, message):
    spec = build_spec(source="customers", id="id", features="a", engine="spark")
    engine = db.make_engine(url)
    with pytest.raises(UsageError, match="--engine spark reads the source through PostgreSQL's JDBC driver") as error:
        spark_engine.jdbc_url(engine)
        spark_engine.jdbc_properties(engine, spec)
    assert message in str(error.value)
