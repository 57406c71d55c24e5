"""Database trouble: an unreachable server, a statement timeout, a connection terminated by the
server while a run reads or publishes. Each gives one `Error:` line and exit code 5, the run is
marked failed (the database is still there), nothing of it is visible, the job's previous run
stays current and intact, and the next run succeeds.

Reads and publishes are made to wait on a lock that the test holds, so the backend to terminate
(or the statement to time out) is caught at a known point instead of by timing.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from helpers import INCOME, MALL_ID, SEGJOB, SPENDING, invoke, load_mall, one_error_line, query

from segjob.store import db

JOB = ("--source", "mall", "--id", MALL_ID, "--features", f"{INCOME},{SPENDING}", "--k", "4")


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(sa.make_url(url).set(drivername="postgresql").render_as_string(False))


@pytest.fixture
def mall_pg_url(migrated_pg_url):
    """A PostgreSQL database with the mall table and one succeeded run of job `mall`."""
    load_mall(migrated_pg_url)
    first = invoke(migrated_pg_url, "run", *JOB, "--json")
    assert first.exit_code == 0, first.stderr
    return migrated_pg_url


def _previous_run_is_current_and_intact(url: str, failed_error: str) -> None:
    runs = query(url, "SELECT run_id, status, error, rows_used FROM run_summary ORDER BY run_id")
    assert [r["status"] for r in runs] == ["succeeded", "failed"]
    assert runs[1]["error"] == failed_error
    first, failed = runs[0]["run_id"], runs[1]["run_id"]
    current = query(url, "SELECT run_id, COUNT(*) AS n FROM current_segment GROUP BY run_id")
    assert current == [{"run_id": first, "n": 200}]
    assert {r["run_id"] for r in query(url, "SELECT DISTINCT run_id FROM segment_profile")} == {first}
    for table in ("assignment", "segment", "segment_centroid", "run_metric", "run_feature"):
        assert query(url, f"SELECT COUNT(*) AS n FROM {table} WHERE run_id = :r", r=failed)[0]["n"] == 0, table


def _next_run_succeeds(url: str) -> None:
    again = invoke(url, "run", *JOB, "--json")
    assert again.exit_code == 0, again.stderr
    statuses = [r["status"] for r in query(url, "SELECT status FROM run_summary ORDER BY run_id")]
    assert statuses == ["succeeded", "failed", "succeeded"]
    assert query(url, "SELECT COUNT(*) AS n FROM current_segment")[0]["n"] == 200


# --- unreachable server -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://segjob:s3cret-Pw@127.0.0.1:1/nowhere",  # nothing listens on port 1
        "postgresql://segjob:s3cret-Pw@no-such-host.invalid:5432/nowhere",  # name does not resolve
        "postgresql://segjob:s3cret-Pw@127.0.0.1:5432/no_such_database_here",  # server up, no database
    ],
    ids=["closed-port", "unknown-host", "unknown-database"],
)
@pytest.mark.parametrize(
    "args",
    [
        ("run", *JOB),
        ("db", "upgrade"),
        ("runs", "list"),
        (
            "load-csv",
            str(Path(__file__).resolve().parents[1] / "segjob" / "data" / "mall_customers.csv"),
            "--table",
            "x",
        ),
    ],
    ids=["run", "db-upgrade", "runs-list", "load-csv"],
)
@pytest.mark.slow
def test_unreachable_server_exits_5_without_the_password(url, args):
    result = subprocess.run([SEGJOB, *args, "--database-url", url], capture_output=True, text=True, timeout=60)
    assert result.returncode == 5, result.stderr
    line = one_error_line(result.stderr)
    assert "postgresql+psycopg://segjob:***@" in line, line
    assert any(reason in line for reason in ("Connection refused", "resolve host", "does not exist")), line
    assert "s3cret-Pw" not in result.stderr + result.stdout


# --- statement timeout --------------------------------------------------------------------


def test_statement_timeout_cancels_a_slow_read_and_fails_the_run(mall_pg_url):
    slow = "SELECT m.* FROM mall AS m CROSS JOIN pg_sleep(5) AS s"
    started = time.monotonic()
    result = invoke(
        mall_pg_url,
        "run",
        "--query",
        slow,
        "--job",
        "mall",
        "--id",
        MALL_ID,
        "--features",
        INCOME,
        "--statement-timeout",
        "0.5",
    )
    elapsed = time.monotonic() - started
    assert result.exit_code == 5
    message = (
        "a database statement ran longer than --statement-timeout (0.5 s) and was cancelled;"
        " raise --statement-timeout or make the source faster"
    )
    assert one_error_line(result.stderr) == f"Error: {message}"
    assert elapsed < 4, elapsed  # cancelled, not waited out
    _previous_run_is_current_and_intact(mall_pg_url, message)
    _next_run_succeeds(mall_pg_url)


def test_statement_timeout_from_the_config_file_cancels_a_publish_stuck_on_a_lock(mall_pg_url, tmp_path):
    config = tmp_path / "job.toml"
    config.write_text("statement_timeout = 1.5\n")
    with _admin(mall_pg_url) as blocker:
        # SHARE mode lets readers in but makes the publish's INSERT into segment wait.
        blocker.execute("LOCK TABLE segjob.segment IN SHARE MODE")
        result = invoke(mall_pg_url, "run", *JOB, "--config", str(config))
        blocker.rollback()
    assert result.exit_code == 5
    message = (
        "a database statement ran longer than --statement-timeout (1.5 s) and was cancelled;"
        " raise --statement-timeout or make the source faster"
    )
    assert one_error_line(result.stderr) == f"Error: {message}"
    _previous_run_is_current_and_intact(mall_pg_url, message)
    _next_run_succeeds(mall_pg_url)


def test_statement_timeout_default_is_six_hours_and_is_stored_with_the_run(mall_pg_url):
    spec = query(mall_pg_url, "SELECT spec FROM run")[0]["spec"]
    assert spec["statement_timeout"] == 6 * 3600
    engine = db.make_engine(mall_pg_url, statement_timeout=spec["statement_timeout"])
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "6h"
            # The raw driver connections that read sources get it too.
        raw = engine.raw_connection()
        try:
            assert raw.cursor().execute("SHOW statement_timeout").fetchone()[0] == "6h"
        finally:
            raw.close()
    finally:
        engine.dispose()


def test_bad_statement_timeout_is_a_usage_error(mall_pg_url, tmp_path):
    for value in ("0", "-3", "nan"):
        result = invoke(mall_pg_url, "run", *JOB, "--statement-timeout", value)
        assert result.exit_code == 2, value
        assert "statement-timeout must be a" in one_error_line(result.stderr), value
    config = tmp_path / "job.toml"
    config.write_text('statement_timeout = "soon"\n')
    result = invoke(mall_pg_url, "run", *JOB, "--config", str(config))
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == "Error: statement-timeout must be a number, not 'soon'"
    # Not a number on the command line: Typer's own usage error, exit 2 as well.
    assert invoke(mall_pg_url, "run", *JOB, "--statement-timeout", "soon").exit_code == 2
    assert query(mall_pg_url, "SELECT COUNT(*) AS n FROM run")[0]["n"] == 1


# --- connection terminated mid-run ----------------------------------------------------------


def _wait_for_waiting_backend(url: str, pattern: str, timeout: float = 60) -> int:
    """The pid of the segjob backend running a statement like `pattern` and waiting on a lock."""
    deadline = time.monotonic() + timeout
    while True:
        rows = query(
            url,
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'segjob' AND query LIKE :p"
            " AND datname = current_database() AND wait_event_type = 'Lock'",
            p=pattern,
        )
        if rows:
            return rows[0]["pid"]
        assert time.monotonic() < deadline, f"no segjob backend waiting on {pattern!r}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize(
    "lock, statement, extra",
    [
        # K-Means counts the source's rows first; other algorithms go straight to the read.
        ("LOCK TABLE public.mall IN ACCESS EXCLUSIVE MODE", 'SELECT count(*) FROM "mall"%', ()),
        ("LOCK TABLE public.mall IN ACCESS EXCLUSIVE MODE", "SELECT CAST(%", ("--algorithm", "gmm")),
        ("LOCK TABLE segjob.segment IN SHARE MODE", "INSERT INTO segjob.segment%", ()),
    ],
    ids=["counting", "reading", "publishing"],
)
def test_connection_terminated_mid_run(mall_pg_url, lock, statement, extra):
    with _admin(mall_pg_url) as blocker:
        blocker.execute(lock)
        process = subprocess.Popen(
            [SEGJOB, "run", *JOB, *extra, "--quiet", "--database-url", mall_pg_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            pid = _wait_for_waiting_backend(mall_pg_url, statement)
            terminated = blocker.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
            assert terminated
        finally:
            blocker.rollback()
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 5, stderr
    where = db.display_url(db.resolve_url(mall_pg_url))
    line = one_error_line(stderr)
    # The server's goodbye is either read ("terminating ...") or lost with the socket.
    assert line in (
        f"Error: lost the connection to database {where}: terminating connection due to administrator command",
        f"Error: lost the connection to database {where}: consuming input failed: server closed the connection unexpectedly",
    ), line
    _previous_run_is_current_and_intact(mall_pg_url, line.removeprefix("Error: "))
    _next_run_succeeds(mall_pg_url)


@pytest.mark.slow
def test_statement_cancelled_by_an_administrator(mall_pg_url):
    with _admin(mall_pg_url) as blocker:
        blocker.execute("LOCK TABLE segjob.segment IN SHARE MODE")
        process = subprocess.Popen(
            [SEGJOB, "run", *JOB, "--quiet", "--database-url", mall_pg_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            pid = _wait_for_waiting_backend(mall_pg_url, "INSERT INTO segjob.segment%")
            assert blocker.execute("SELECT pg_cancel_backend(%s)", (pid,)).fetchone()[0]
        finally:
            blocker.rollback()
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 5, stderr
    message = "a database statement was cancelled from outside segjob: canceling statement due to user request"
    assert one_error_line(stderr) == f"Error: {message}"
    _previous_run_is_current_and_intact(mall_pg_url, message)
    _next_run_succeeds(mall_pg_url)


@pytest.mark.slow
def test_a_run_that_lost_its_job_lock_publishes_nothing(mall_pg_url):
    """The lock connection is ended by the server (an idle-session timeout, a DBA) while the run
    works: a newer run may then start and mark it abandoned; the old run must not publish."""

    def segjob_run() -> subprocess.Popen:
        return subprocess.Popen(
            [SEGJOB, "run", *JOB, "--quiet", "--database-url", mall_pg_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def waiting_publishes() -> int:
        # The old run waits to insert its segments; the new one waits behind the old one's
        # ATTACH PARTITION (or on the same insert).
        return query(
            mall_pg_url,
            "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE application_name = 'segjob'"
            " AND datname = current_database() AND wait_event_type = 'Lock'",
        )[0]["n"]

    with _admin(mall_pg_url) as blocker:
        blocker.execute("LOCK TABLE segjob.segment IN SHARE MODE")
        old = segjob_run()
        try:
            _wait_for_waiting_backend(mall_pg_url, "INSERT INTO segjob.segment%")
            (lock_pid,) = blocker.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory'"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchone()
            assert blocker.execute("SELECT pg_terminate_backend(%s)", (lock_pid,)).fetchone()[0]
            new = segjob_run()
            deadline = time.monotonic() + 60
            while waiting_publishes() < 2:
                assert time.monotonic() < deadline and new.poll() is None, "the new run never reached its publish"
                time.sleep(0.05)
        finally:
            blocker.rollback()
        _, old_stderr = old.communicate(timeout=120)
        _, new_stderr = new.communicate(timeout=120)
    assert new.returncode == 0, new_stderr
    assert old.returncode == 4, old_stderr
    runs = query(mall_pg_url, "SELECT run_id, status FROM run_summary ORDER BY run_id")
    assert [r["status"] for r in runs] == ["succeeded", "abandoned", "succeeded"]
    assert one_error_line(old_stderr) == (
        f"Error: run {runs[1]['run_id']} lost its job lock and was marked abandoned by a newer run of the job;"
        " nothing of it was published"
    )
    current = query(mall_pg_url, "SELECT run_id, COUNT(*) AS n FROM current_segment GROUP BY run_id")
    assert current == [{"run_id": runs[2]["run_id"], "n": 200}]
    for table in ("assignment", "segment", "segment_centroid", "run_metric", "run_feature"):
        assert (
            query(mall_pg_url, f"SELECT COUNT(*) AS n FROM {table} WHERE run_id = :r", r=runs[1]["run_id"])[0]["n"] == 0
        )
