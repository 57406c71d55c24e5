"""Dashboards reading the BI views while runs publish: no read waits more than a moment, and every
read sees exactly one complete run of the job (or none before the first run succeeds).

segjob runs as a separate process (its own GIL, its own connections) while a reader thread in
the test loops over current_segment, segment_profile and run_summary, timing every query. Each
check is a single statement, so it sees one snapshot.
"""

from __future__ import annotations

import subprocess
import threading
import time

import pytest
import sqlalchemy as sa
from test_faults import SEGJOB, _make_big_table

ROWS = 100_000
JOB = ("--source", "big", "--id", "id", "--features", "a,b,c", "--k", "4", "--quiet")
MAX_READ_SECONDS = 1.0

pytestmark = pytest.mark.slow


class Reader(threading.Thread):
    """Reads the views in a loop until stopped; records every read's duration and what it saw,
    and counts the loops during which segjob held a write transaction."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.engine = sa.create_engine(url)
        self.postgres = self.engine.dialect.name == "postgresql"
        prefix = "segjob." if self.postgres else ""
        self.statements = {
            # Each: (run_id, rows it shows, rows_used of that run) per run visible for the job.
            "current_segment": f"""
                SELECT cs.run_id, COUNT(*) AS n, MAX(rs.rows_used) AS used
                FROM {prefix}current_segment AS cs JOIN {prefix}run_summary AS rs ON rs.run_id = cs.run_id
                WHERE cs.job = 'big' GROUP BY cs.run_id""",
            "segment_profile": f"""
                SELECT sp.run_id, SUM(sp.size) AS n, MAX(rs.rows_used) AS used
                FROM {prefix}segment_profile AS sp JOIN {prefix}run_summary AS rs ON rs.run_id = sp.run_id
                WHERE sp.job = 'big' AND sp.feature = 'a' AND sp.run_id = (
                    SELECT MAX(run_id) FROM {prefix}run_summary WHERE job = 'big' AND status = 'succeeded')
                GROUP BY sp.run_id""",
            "run_summary": f"""
                SELECT run_id, rows_used AS n, rows_used AS used FROM {prefix}run_summary
                WHERE job = 'big' AND status = 'succeeded' AND run_id = (
                    SELECT MAX(run_id) FROM {prefix}run_summary WHERE job = 'big' AND status = 'succeeded')""",
        }
        self.stop = threading.Event()
        self.reads: list[tuple[str, float, list[tuple]]] = []  # (view, seconds, rows)
        self.during_write = 0  # reads that ran while a segjob write transaction was open (PostgreSQL)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.engine.connect() as connection:
                while not self.stop.is_set():
                    for view, statement in self.statements.items():
                        started = time.perf_counter()
                        rows = [tuple(row) for row in connection.exec_driver_sql(statement)]
                        connection.commit()  # end the snapshot, as a dashboard's next query would
                        self.reads.append((view, time.perf_counter() - started, rows))
                    self.during_write += self._writer_active(connection)
        except BaseException as exc:  # surfaced by the test
            self.error = exc
        finally:
            self.engine.dispose()

    def _writer_active(self, connection: sa.Connection) -> bool:
        """Whether segjob holds a write transaction right now."""
        if self.postgres:
            active = connection.exec_driver_sql(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'segjob'"
                " AND datname = current_database() AND backend_xid IS NOT NULL"
                " AND query LIKE '%%segjob.assignment%%')"
            ).scalar()
            connection.commit()
            return bool(active)
        # SQLite: asking for the write lock without waiting fails while another process holds it.
        import sqlite3

        probe = sqlite3.connect(self.engine.url.database, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc), exc
            return True
        finally:
            probe.close()


def _run_segjob(url: str) -> None:
    result = subprocess.run([SEGJOB, "run", *JOB, "--database-url", url], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr


def test_readers_are_never_blocked_and_see_one_complete_run(migrated_db_url):
    url = migrated_db_url
    _make_big_table(url, ROWS)

    reader = Reader(url)
    reader.start()
    try:
        _run_segjob(url)  # the first run of the job publishes
        first_done = len(reader.reads)
        _run_segjob(url)  # a second run replaces it
        time.sleep(0.3)
    finally:
        reader.stop.set()
        reader.join(timeout=60)
    assert reader.error is None, reader.error

    assert len(reader.reads) > first_done > 0
    slowest = max(seconds for _, seconds, _ in reader.reads)
    assert slowest < MAX_READ_SECONDS, f"a read took {slowest:.2f} s"

    seen_runs = []
    for view, _, rows in reader.reads:
        assert len(rows) <= 1, (view, rows)  # never two runs of the job at once
        for run_id, shown, used in rows:
            assert int(shown) == used == ROWS, (view, run_id, shown, used)  # complete, never partial
            seen_runs.append(run_id)
    # Runs appear in order and the job is never without a run once the first one succeeded.
    assert seen_runs == sorted(seen_runs) and len(set(seen_runs)) == 2
    first_seen = next(i for i, (_, _, rows) in enumerate(reader.reads) if rows)
    assert all(rows for _, _, rows in reader.reads[first_seen:])
    assert reader.during_write > 0  # some reads really overlapped a write transaction of segjob
