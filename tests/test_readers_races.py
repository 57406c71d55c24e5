"""Prune beside other writers (PostgreSQL): what dashboards see stays consistent and nobody fails.

- A prune drops the tables it detached while a run of another job may be marking dead runs
  abandoned, which drops the same orphaned tables (migration 0010): neither may fail.
- A prune and a promote of the same job take the job's promotion lock, so a prune never deletes
  a run that became current meanwhile, and a promote of a run being pruned says it is gone
  (exit 2) instead of failing on a foreign key (exit 1).
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from helpers import INCOME, MALL_ID, SPENDING, invoke, load_mall, query, run_json

from segjob.errors import DatabaseError, UsageError
from segjob.results import history, promotion, retention
from segjob.store import db


def _driver_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def test_two_sessions_dropping_the_same_orphaned_tables_both_succeed(migrated_pg_url):
    url = _driver_url(migrated_pg_url)
    with psycopg.connect(url, autocommit=True) as setup:
        for run_id in (9001, 9002):  # standalone tables of runs that do not exist (detached by a prune)
            setup.execute(f"CREATE TABLE segjob.assignment_r{run_id} (LIKE segjob.assignment)")
    first, second = psycopg.connect(url), psycopg.connect(url)
    outcome: dict = {}

    def drop_too() -> None:
        try:
            outcome["dropped"] = second.execute("SELECT segjob.drop_orphan_assignment_tables()").fetchone()[0]
            second.commit()
        except psycopg.Error as exc:
            outcome["error"] = exc

    try:
        assert first.execute("SELECT segjob.drop_orphan_assignment_tables()").fetchone()[0] == 2  # not committed
        other = threading.Thread(target=drop_too)
        other.start()
        pid = second.info.backend_pid
        deadline = time.monotonic() + 30
        while not query(
            migrated_pg_url, "SELECT 1 AS x FROM pg_stat_activity WHERE pid = :p AND wait_event_type = 'Lock'", p=pid
        ):
            assert time.monotonic() < deadline, "the second session never waited for the first one's drop"
            time.sleep(0.02)
        first.commit()
        other.join(30)
    finally:
        first.close()
        second.close()
    assert "error" not in outcome, outcome.get("error")
    assert query(migrated_pg_url, "SELECT relname FROM pg_class WHERE relname ~ '^assignment_r900[12]$'") == []


class HeldTransaction:
    """Another session's transaction that holds job `mall`'s promotion lock, as a promote or a
    prune in progress does, until `commit()`."""

    def __init__(self, url: str, statement: str) -> None:
        self.engine = db.make_engine(url)
        self.connection = self.engine.connect()
        promotion.lock(self.connection, "mall")
        self.connection.exec_driver_sql(statement)

    def commit(self) -> None:
        self.connection.commit()
        self.connection.close()
        self.engine.dispose()


def _in_thread(work) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def _wait_for_advisory_lock_wait(url: str) -> None:
    deadline = time.monotonic() + 30
    while not query(url, "SELECT 1 AS x FROM pg_stat_activity WHERE wait_event = 'advisory'"):
        assert time.monotonic() < deadline, "nobody waited for the promotion lock"
        time.sleep(0.02)


@pytest.fixture
def mall_runs(migrated_pg_url):
    load_mall(migrated_pg_url)
    return [
        run_json(
            migrated_pg_url, "--source", "mall", "--id", MALL_ID, "--features", f"{INCOME},{SPENDING}", "--k", str(k)
        )["run_id"]
        for k in (3, 4, 5, 6)
    ]


def test_prune_keeps_a_run_promoted_while_it_decided(migrated_pg_url, mall_runs):
    url, (first, _, _, _) = migrated_pg_url, mall_runs
    promoting = HeldTransaction(
        url,
        f"INSERT INTO segjob.promotion (job, run_id, promoted_at, reason) VALUES ('mall', {first}, now(), 'promoted')",
    )
    thread, outcome = _in_thread(lambda: retention.prune(db.make_engine(url), "mall", keep=1))
    _wait_for_advisory_lock_wait(url)
    promoting.commit()
    thread.join(60)
    assert "error" not in outcome, outcome.get("error")
    assert first not in [gone.run_id for gone in outcome["value"].deleted]
    assert query(url, "SELECT DISTINCT run_id FROM current_segment") == [{"run_id": first}]


def test_promoting_a_run_that_a_prune_is_deleting_says_it_is_gone(migrated_pg_url, mall_runs):
    url, (first, _, _, _) = migrated_pg_url, mall_runs
    pruning = HeldTransaction(url, f"DELETE FROM segjob.run WHERE run_id = {first}")
    thread, outcome = _in_thread(lambda: promotion.promote(db.make_engine(url), first))
    _wait_for_advisory_lock_wait(url)
    pruning.commit()
    thread.join(60)
    assert isinstance(outcome.get("error"), UsageError), outcome
    assert str(outcome["error"]) == f"run {first} not found; 'segjob runs list' shows the runs"
    result = invoke(url, "promote", str(first))
    assert result.exit_code == 2


def test_lock_wait_is_a_number_of_seconds(migrated_db_url):
    for command in (("prune", "--job", "mall", "--keep", "1"), ("db", "upgrade")):
        result = invoke(migrated_db_url, *command, "--lock-wait", "-1")
        assert result.exit_code == 2
        assert result.stderr == "Error: --lock-wait must be 0 or more seconds, not -1\n"


def test_reading_a_run_back_from_a_database_that_went_away_is_exit_5():
    """`segjob run` reads its run back after publishing; PostgreSQL restarting at that moment (the
    soak test's restarts found it) is a lost database (exit 5), not an unexpected error (exit 1)."""
    gone = db.make_engine("postgresql://segjob@127.0.0.1:1/segjob")  # nothing listens on port 1
    for read in (history.run_summary, history.show_run):
        with pytest.raises(
            DatabaseError, match=r"^cannot use database postgresql\+psycopg://segjob@127.0.0.1:1/segjob: "
        ):
            read(gone, 1)
    with pytest.raises(DatabaseError):
        history.list_runs(gone)
