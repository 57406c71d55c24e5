"""A run's failure (or a dead run's abandonment) is recorded even when the clean-up after it fails.

Dropping orphaned standalone assignment tables comes after the status change, as best effort:
here another session reads an orphaned table, so the DROP cannot get its lock. The status change
must stay committed, and the job must stay runnable (PostgreSQL; SQLite has no such tables).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from helpers import invoke, query

from segjob.config import build_spec
from segjob.results import publish

ORPHAN = "segjob.assignment_r999999"  # no run 999999 is running, so the table is an orphan
# Before the clean-up was best effort, its DROP waited for the reader until this many seconds.
TIMEOUT = ("--statement-timeout", "2")


@pytest.fixture
def orphan_being_read(migrated_pg_url):
    """A table of 30 customers (feature `a` numeric, `words` not) and an orphaned assignment table
    that another session reads until the test ends, so dropping it waits for that session."""
    engine = sa.create_engine(migrated_pg_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE customers AS SELECT 'c' || g AS id, mod(g, 3) * 10.0 + mod(g, 2) AS a, 'w' || g AS words"
            " FROM generate_series(1, 30) AS g"
        )
        connection.exec_driver_sql(f"CREATE TABLE {ORPHAN} (LIKE segjob.assignment)")
    reader = engine.connect()
    reader.exec_driver_sql(f"SELECT COUNT(*) FROM {ORPHAN}")  # its lock stays until the reader closes
    yield migrated_pg_url
    reader.close()
    engine.dispose()


def _orphan_exists(url: str) -> bool:
    return query(url, "SELECT to_regclass(:name)::text AS t", name=ORPHAN)[0]["t"] is not None


def test_a_failed_run_is_recorded_when_the_clean_up_fails(orphan_being_read):
    url = orphan_being_read
    result = invoke(url, "run", "--source", "customers", "--id", "id", "--features", "a,words", "--k", "2", *TIMEOUT)
    assert result.exit_code == 3, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith('Error: column "words" is not numeric')
    runs = query(url, "SELECT status, error FROM run")
    assert runs == [{"status": "failed", "error": line.removeprefix("Error: ")}]
    assert _orphan_exists(url)  # left for the next run or prune, which try again


def test_a_dead_run_is_marked_abandoned_when_the_clean_up_fails(orphan_being_read):
    url = orphan_being_read
    engine = sa.create_engine(url)
    publish.start_run(engine, build_spec(None, source="customers", id="id", features="a"))  # its process died
    engine.dispose()
    result = invoke(url, "run", "--source", "customers", "--id", "id", "--features", "a", "--k", "2", *TIMEOUT)
    assert result.exit_code == 0, result.output
    runs = query(url, "SELECT status, error FROM run ORDER BY run_id")
    assert runs == [
        {"status": "abandoned", "error": "the process running it stopped before finishing"},
        {"status": "succeeded", "error": None},
    ]
    assert query(url, "SELECT COUNT(*) AS n FROM current_segment")[0]["n"] == 30
    assert _orphan_exists(url)
