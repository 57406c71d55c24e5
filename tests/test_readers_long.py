"""A long dashboard query never makes later dashboard queries wait for segjob (PostgreSQL).

PostgreSQL grants locks in arrival order, so a segjob statement waiting for a lock that a long
query holds would make every later query wait behind it too (issue 24: one 35 s extract froze
every dashboard while `segjob prune` waited). Each test here starts one long query that reads
the BI views and holds its locks (one statement: the views, then pg_sleep), runs a real segjob
process beside it (prune, a publishing run, promote and rollback, db upgrade with a migration
that re-creates views) while a second thread sends short dashboard queries one after another,
and checks that every short query answered within 1 s and that the operation finished, or gave
up cleanly, within its documented bound.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid

import psycopg
import pytest
import sqlalchemy as sa
from helpers import invoke, query
from test_faults import SEGJOB, _make_big_table

from segjob.store import db, migrate, partitions

ROWS = 20_000
JOB = ("--source", "big", "--id", "id", "--features", "a,b,c", "--k", "4", "--quiet")
MAX_DASHBOARD_SECONDS = 1.0
# The migration before the one that re-creates the history views (0009, promotion-aware history).
BEFORE_VIEW_CHANGE = "0008"
HISTORY_VIEWS = ("current_segment", "customer_segment_history", "segment_migration", "segment_size_history")

pytestmark = pytest.mark.slow


def _driver_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


class LongQuery(threading.Thread):
    """One dashboard query that reads the history views and holds their locks until `end()`."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.connection = psycopg.connect(_driver_url(url), autocommit=True)
        self.pid = self.connection.info.backend_pid
        self.url = url
        self.reading = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.connection.execute(
                "SELECT (SELECT COUNT(*) FROM segjob.current_segment)"
                " + (SELECT COUNT(*) FROM segjob.customer_segment_history)"
                " + (SELECT COUNT(*) FROM segjob.segment_migration), pg_sleep(600)"
            )
        except psycopg.errors.QueryCanceled:
            pass  # end() cancelled it, as a user closing a dashboard would
        except BaseException as exc:  # surfaced by the test
            self.error = exc
        finally:
            self.connection.close()

    def start_reading(self) -> None:
        self.start()
        deadline = time.monotonic() + 30
        while not query(
            self.url, "SELECT 1 AS x FROM pg_stat_activity WHERE pid = :p AND wait_event = 'PgSleep'", p=self.pid
        ):
            assert time.monotonic() < deadline, "the long query never started sleeping"
            time.sleep(0.05)

    def end(self) -> None:
        with psycopg.connect(_driver_url(self.url), autocommit=True) as other:
            other.execute("SELECT pg_cancel_backend(%s)", (self.pid,))
        self.join(30)
        self.ended_at = time.monotonic()
        assert self.error is None, self.error

    def end_once_segjob_works(self, seconds: float) -> threading.Thread:
        """End the query `seconds` after a segjob process has connected (its start-up, which varies
        with the machine's load, does not count), from a thread of its own."""

        def wait_then_end() -> None:
            with psycopg.connect(_driver_url(self.url), autocommit=True) as watcher:
                since = watcher.execute("SELECT clock_timestamp()").fetchone()
                while not watcher.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE application_name = 'segjob'"
                    " AND datname = current_database() AND backend_start > %s",
                    since,
                ).fetchone():
                    time.sleep(0.02)
            time.sleep(seconds)
            self.end()

        ender = threading.Thread(target=wait_then_end, daemon=True)
        ender.start()
        return ender


class Dashboards(threading.Thread):
    """Short dashboard queries, one after another on one connection, each timed."""

    STATEMENTS = (
        "SELECT run_id, COUNT(*) FROM segjob.current_segment WHERE job = 'big' GROUP BY run_id",
        "SELECT COUNT(*) FROM segjob.customer_segment_history WHERE job = 'big' AND customer_key = 'c42'",
        "SELECT run_id, status FROM segjob.run_summary WHERE job = 'big'",
    )

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.connection = psycopg.connect(_driver_url(url), autocommit=True)
        self.stop = threading.Event()
        self.seconds: list[float] = []
        self.current: list[list[tuple]] = []  # what current_segment showed, read by read
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                for number, statement in enumerate(self.STATEMENTS):
                    started = time.perf_counter()
                    rows = self.connection.execute(statement).fetchall()
                    self.seconds.append(time.perf_counter() - started)
                    if number == 0:
                        self.current.append(rows)
                time.sleep(0.05)
        except BaseException as exc:
            self.error = exc
        finally:
            self.connection.close()

    def finish(self, what: str) -> float:
        """Stop; check every read answered in time and saw one whole run; returns the slowest."""
        self.stop.set()
        self.join(30)
        assert self.error is None, self.error
        assert len(self.seconds) > 20, self.seconds  # it really read throughout
        slowest = max(self.seconds)
        print(f"{what}: {len(self.seconds)} dashboard queries, slowest {slowest:.3f} s")
        assert slowest < MAX_DASHBOARD_SECONDS, f"{what}: a dashboard query took {slowest:.2f} s"
        for rows in self.current:
            assert len(rows) == 1 and rows[0][1] == ROWS, rows  # one whole run, never two or part of one
        return slowest


def _segjob(url: str, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run the installed segjob; returns the result and the moment it ended (time.monotonic)."""
    done = subprocess.run([SEGJOB, *args, "--database-url", url], capture_output=True, text=True, timeout=300)
    return done, time.monotonic()


def _runs(url: str, count: int) -> list[int]:
    ids = []
    for seed in range(count):
        result = invoke(url, "run", *JOB, "--seed", str(seed), "--json")
        assert result.exit_code == 0, result.stderr
        ids.append(query(url, "SELECT MAX(run_id) AS r FROM run")[0]["r"])
    return ids


def _assignment_tables(url: str) -> list[str]:
    rows = query(url, "SELECT relname FROM pg_class WHERE relname ~ '^assignment_r[0-9]+$' AND relkind = 'r'")
    return sorted(row["relname"] for row in rows)


def _leftovers(url: str) -> list[partitions.Leftover]:
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            return partitions.leftovers(connection)
    finally:
        engine.dispose()


@pytest.fixture
def big_url(migrated_pg_url):
    _make_big_table(migrated_pg_url, ROWS)
    return migrated_pg_url


def test_prune_waits_for_the_long_query_without_blocking_dashboards(big_url):
    url = big_url
    first, second, third = _runs(url, 3)
    long_query, dashboards = LongQuery(url), Dashboards(url)
    long_query.start_reading()
    dashboards.start()
    ender = long_query.end_once_segjob_works(4.0)
    pruned, finished_at = _segjob(url, "prune", "--job", "big", "--keep", "1")
    ender.join(30)
    dashboards.finish("prune beside a long query")
    assert pruned.returncode == 0, pruned.stderr
    assert f"deleted run {first} " in pruned.stdout and "partition dropped" in pruned.stdout
    # Bound: prune ends once the queries that were reading when it started have ended.
    after = finished_at - long_query.ended_at
    print(f"prune ended {after:.2f} s after the long query")
    assert 0 < after < 2.0 + 2.0  # a generous margin for the process to end on a busy machine
    assert _assignment_tables(url) == sorted(partitions.partition_name(r) for r in (second, third))


def test_prune_leaves_what_readers_still_read_to_the_next_run_and_shows_none_of_it(big_url):
    url = big_url
    first, second, third = _runs(url, 3)
    long_query, dashboards = LongQuery(url), Dashboards(url)
    long_query.start_reading()
    dashboards.start()
    try:
        started = time.monotonic()
        pruned, finished_at = _segjob(url, "prune", "--job", "big", "--keep", "1", "--lock-wait", "1", "--json")
        assert pruned.returncode == 0, pruned.stderr
        print(f"prune with --lock-wait 1 took {finished_at - started:.2f} s, start-up included")
        assert long_query.is_alive()  # it did not wait for the long query
        assert json.loads(pruned.stdout)["partitions_left"] == [first]
        # Half-pruned: the run is gone from every view while its partition waits, detach pending.
        assert [(left.run_id, left.detach_pending) for left in _leftovers(url)] == [(first, True)]
        for view in ("run_summary", "current_segment", "customer_segment_history", "segment_size_history"):
            assert query(url, f"SELECT COUNT(*) AS n FROM {view} WHERE run_id = :r", r=first)[0]["n"] == 0, view
        moves = "SELECT COUNT(*) AS n FROM segment_migration WHERE :r IN (from_run_id, to_run_id)"
        assert query(url, moves, r=first)[0]["n"] == 0
    finally:
        long_query.end()
    dashboards.finish("prune --lock-wait 1 beside a long query")
    fourth = _runs(url, 1)[0]  # the next run finishes the detach and drops the table
    assert _leftovers(url) == []
    assert _assignment_tables(url) == sorted(partitions.partition_name(r) for r in (second, third, fourth))


def test_a_run_publishes_while_a_long_query_reads(big_url):
    url = big_url
    (first,) = _runs(url, 1)
    long_query, dashboards = LongQuery(url), Dashboards(url)
    long_query.start_reading()
    dashboards.start()
    try:
        started = time.monotonic()
        ran, finished_at = _segjob(url, "run", *JOB, "--seed", "7")
        assert ran.returncode == 0, ran.stderr
        assert long_query.is_alive()  # it published without waiting for the long query to end
    finally:
        long_query.end()
    dashboards.finish("a run publishing beside a long query")
    print(f"the run took {finished_at - started:.2f} s")
    shown = {run_id for rows in dashboards.current for run_id, _ in rows}
    assert shown == {first, first + 1}  # the dashboards saw the old run, then the whole new one


def test_promote_and_roll_back_while_a_long_query_reads(big_url):
    url = big_url
    first, second = _runs(url, 2)
    long_query, dashboards = LongQuery(url), Dashboards(url)
    long_query.start_reading()
    dashboards.start()
    try:
        back, _ = _segjob(url, "promote", "--job", "big", "--previous")
        assert back.returncode == 0, back.stderr
        assert query(url, "SELECT DISTINCT run_id FROM current_segment") == [{"run_id": first}]
        forth, _ = _segjob(url, "promote", str(second))
        assert forth.returncode == 0, forth.stderr
        assert long_query.is_alive()  # neither waited for it
    finally:
        long_query.end()
    dashboards.finish("promote and rollback beside a long query")
    assert query(url, "SELECT DISTINCT run_id FROM current_segment") == [{"run_id": second}]


def _view_definitions(url: str) -> dict[str, str]:
    rows = query(
        url,
        "SELECT viewname, definition FROM pg_views WHERE schemaname = 'segjob' AND viewname = ANY(:names)",
        names=list(HISTORY_VIEWS),
    )
    return {row["viewname"]: row["definition"] for row in rows}


def _revision(url: str) -> str | None:
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            return db.current_revision(connection)
    finally:
        engine.dispose()


@pytest.fixture
def before_view_change(big_url):
    """Runs of the job, then the schema taken back to before the migration that re-creates views."""
    _runs(url=big_url, count=2)
    at_head = _view_definitions(big_url)
    migrate.downgrade(big_url, BEFORE_VIEW_CHANGE)
    older = _view_definitions(big_url)
    assert older != at_head  # the upgrade below really re-creates views
    return big_url, older, at_head


def test_db_upgrade_retries_until_the_long_query_ends_without_blocking_dashboards(before_view_change):
    url, _, at_head = before_view_change
    long_query, dashboards = LongQuery(url), Dashboards(url)
    long_query.start_reading()
    dashboards.start()
    ender = long_query.end_once_segjob_works(4.0)
    upgraded, finished_at = _segjob(url, "db", "upgrade")
    ender.join(30)
    dashboards.finish("db upgrade beside a long query")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"upgraded from {BEFORE_VIEW_CHANGE} to {db.SCHEMA_REVISION}" in upgraded.stdout
    # Bound: the upgrade ends at most one back-off pause (2 s) and its own work after the long query.
    after = finished_at - long_query.ended_at
    print(f"db upgrade ended {after:.2f} s after the long query")
    assert 0 < after < 2.0 + 2.0 + 2.0  # the same margin
    assert _view_definitions(url) == at_head


def test_db_upgrade_gives_up_cleanly_after_lock_wait(before_view_change):
    url, older, _ = before_view_change
    long_query, dashboards = LongQuery(url), Dashboards(url)
    long_query.start_reading()
    dashboards.start()
    try:
        started = time.monotonic()
        upgraded, finished_at = _segjob(url, "db", "upgrade", "--lock-wait", "2")
        assert long_query.is_alive()  # it gave up before the long query ended
    finally:
        long_query.end()
    dashboards.finish("db upgrade --lock-wait 2 beside a long query")
    print(f"db upgrade --lock-wait 2 gave up after {finished_at - started:.2f} s, start-up included")
    assert upgraded.returncode == 5, upgraded.stderr
    assert upgraded.stderr.count("\n") == 1, upgraded.stderr
    assert upgraded.stderr.startswith("Error: segjob db upgrade gave up after 2 s waiting for other sessions' queries")
    assert f"pid {long_query.pid}" in upgraded.stderr and "nothing was changed" in upgraded.stderr
    assert _revision(url) == BEFORE_VIEW_CHANGE and _view_definitions(url) == older


def test_a_writer_role_prunes_without_queueing_dashboards(big_url, pg_admin_engine):
    """A role that does not own `assignment` cannot detach concurrently: it drops the partition
    through segjob's function, each attempt under the short lock timeout, until the query ends."""
    url = big_url
    writer = f"segjob_w_{uuid.uuid4().hex[:8]}"
    with pg_admin_engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {writer} LOGIN")
    try:
        assert invoke(url, "db", "grant", "--writer", writer).exit_code == 0
        first, second, third = _runs(url, 3)
        as_writer = sa.make_url(url).set(username=writer).render_as_string(hide_password=False)
        long_query, dashboards = LongQuery(url), Dashboards(url)
        long_query.start_reading()
        dashboards.start()
        ender = long_query.end_once_segjob_works(4.0)
        pruned, finished_at = _segjob(as_writer, "prune", "--job", "big", "--keep", "1")
        ender.join(30)
        dashboards.finish("prune by a writer role beside a long query")
        assert pruned.returncode == 0, pruned.stderr
        assert f"deleted run {first} " in pruned.stdout and "partition dropped" in pruned.stdout
        after = finished_at - long_query.ended_at
        print(f"the writer's prune ended {after:.2f} s after the long query")
        assert 0 < after < 2.0 + 2.0  # one back-off pause at most, and the same margin as above
        assert _assignment_tables(url) == sorted(partitions.partition_name(r) for r in (second, third))
    finally:
        cleanup = db.make_engine(url)
        with cleanup.begin() as connection:
            connection.exec_driver_sql(f"DROP OWNED BY {writer}")
        cleanup.dispose()
        with pg_admin_engine.connect() as connection:
            connection.exec_driver_sql(f"DROP ROLE IF EXISTS {writer}")


def test_what_an_interrupted_prune_left_is_invisible_and_the_next_prune_drops_it(big_url):
    url = big_url
    first, second, third, fourth = _runs(url, 4)
    engine = db.make_engine(url)
    with engine.begin() as connection:
        # As a prune killed after deleting the runs (first), and one killed after detaching (second).
        connection.exec_driver_sql(f"DELETE FROM segjob.run WHERE run_id IN ({first}, {second})")
        connection.exec_driver_sql(f"ALTER TABLE segjob.assignment DETACH PARTITION segjob.assignment_r{second}")
    engine.dispose()
    assert [left.run_id for left in _leftovers(url)] == [first]
    assert _assignment_tables(url) == sorted(partitions.partition_name(r) for r in (first, second, third, fourth))
    for view in ("run_summary", "current_segment", "customer_segment_history", "segment_size_history"):
        shown = query(url, f"SELECT COUNT(*) AS n FROM {view} WHERE run_id IN (:a, :b)", a=first, b=second)
        assert shown[0]["n"] == 0, view
    moves = "SELECT COUNT(*) AS n FROM segment_migration WHERE from_run_id IN (:a, :b) OR to_run_id IN (:a, :b)"
    assert query(url, moves, a=first, b=second)[0]["n"] == 0

    pruned = invoke(url, "prune", "--job", "big", "--keep", "10", "--json")
    assert pruned.exit_code == 0, pruned.stderr
    assert json.loads(pruned.stdout)["deleted"] == [] and json.loads(pruned.stdout)["partitions_left"] == []
    assert _leftovers(url) == []
    assert _assignment_tables(url) == sorted(partitions.partition_name(r) for r in (third, fourth))
