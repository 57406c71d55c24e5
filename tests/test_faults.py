"""Faults with real processes: kill -9 at several points of a run, SIGTERM, and two runs at once.

segjob runs in a subprocess whose stderr is a pseudo-terminal, so it prints its progress lines;
the test waits for the line (or the database activity) that marks the phase to interrupt.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import threading
import time

import pytest
import sqlalchemy as sa
from helpers import SEGJOB, query

ROWS = 600_000
JOB = ("--source", "big", "--id", "id", "--features", "a,b,c", "--k", "8")

pytestmark = pytest.mark.slow


def _make_big_table(url: str, rows: int = ROWS) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(
                "CREATE TABLE big AS SELECT 'c' || g AS id, random() * 100 AS a, random() * 10 AS b,"
                f" mod(g, 97)::float8 AS c FROM generate_series(1, {rows}) AS g"
            )
        else:
            connection.exec_driver_sql("CREATE TABLE big (id TEXT, a REAL, b REAL, c REAL)")
            connection.exec_driver_sql(
                f"WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {rows}) "
                "INSERT INTO big SELECT 'c' || n, abs(random()) % 10000 / 100.0, abs(random()) % 1000 / 100.0, n % 97 FROM g"
            )
    engine.dispose()


class Segjob:
    """A segjob process with its stderr on a pseudo-terminal, so progress lines are printed."""

    def __init__(self, url: str, *args: str) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [SEGJOB, "run", *args, "--database-url", url], stdout=subprocess.PIPE, stderr=slave, text=True
        )
        os.close(slave)
        self.stderr = ""

    def wait_for_text(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            assert time.monotonic() < deadline, f"never saw {text!r}; stderr so far: {self.stderr!r}"
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    self.stderr += os.read(self.master, 65536).decode(errors="replace")
                except OSError:  # the process closed the terminal
                    assert text in self.stderr, f"process ended before {text!r}: {self.stderr!r}"

    def keep_reading(self) -> None:
        """Read the terminal in the background from now on, as a person's terminal would: a
        progress bar that nobody reads fills the pty buffer and blocks the run mid-publish."""

        def read() -> None:
            while True:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                self.stderr += chunk.decode(errors="replace")

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()

    def finish(self, timeout: float = 300) -> int:
        code = self.process.wait(timeout)
        if getattr(self, "reader", None) is not None:
            self.reader.join(10)
            os.close(self.master)
            return code
        try:
            while select.select([self.master], [], [], 0)[0]:
                chunk = os.read(self.master, 65536)
                if not chunk:
                    break
                self.stderr += chunk.decode(errors="replace")
        except OSError:
            pass
        os.close(self.master)
        return code

    def kill(self, sig: int = signal.SIGKILL) -> int:
        self.process.send_signal(sig)
        return self.finish()


def _wait_for_query(url: str, pattern: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not query(
        url,
        "SELECT 1 AS x FROM pg_stat_activity WHERE application_name = 'segjob'"
        " AND datname = current_database() AND query LIKE :p",
        p=pattern,
    ):
        assert time.monotonic() < deadline, f"no segjob query like {pattern!r}"
        time.sleep(0.02)


def _assert_nothing_visible_and_recovers(url: str) -> None:
    statuses = query(url, "SELECT status FROM run_summary")
    assert [s["status"] for s in statuses] == ["running"]  # the dead run left its evidence
    for view in ("current_segment", "segment_profile", "customer_segment_history"):
        assert query(url, f"SELECT COUNT(*) AS n FROM {view}")[0]["n"] == 0
    assert query(url, "SELECT COUNT(*) AS n FROM assignment")[0]["n"] == 0

    rerun = Segjob(url, *JOB, "--quiet")
    assert rerun.finish() == 0, rerun.stderr
    statuses = query(url, "SELECT status, error FROM run_summary ORDER BY run_id")
    assert [s["status"] for s in statuses] == ["abandoned", "succeeded"]
    assert query(url, "SELECT COUNT(*) AS n FROM current_segment")[0]["n"] == ROWS


@pytest.fixture
def big_pg_url(migrated_pg_url):
    _make_big_table(migrated_pg_url)
    return migrated_pg_url


def test_kill_while_reading(big_pg_url):
    run = Segjob(big_pg_url, *JOB)
    _wait_for_query(big_pg_url, "COPY (SELECT%")
    assert run.kill() == -signal.SIGKILL
    _assert_nothing_visible_and_recovers(big_pg_url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_while_fitting(backend, request):
    url = request.getfixturevalue("migrated_pg_url" if backend == "postgresql" else "sqlite_url")
    if backend == "sqlite":
        from segjob.store import migrate

        migrate.upgrade(url)
    _make_big_table(url)
    run = Segjob(url, *JOB)
    run.wait_for_text("preparing: ")
    run.wait_for_text("\n", timeout=5)
    assert run.kill() == -signal.SIGKILL
    _assert_nothing_visible_and_recovers(url)


def test_kill_while_publishing(big_pg_url):
    run = Segjob(big_pg_url, *JOB)
    run.wait_for_text("fitting: k=8")
    _wait_for_query(big_pg_url, "COPY segjob.assignment%")
    assert run.kill() == -signal.SIGKILL
    _assert_nothing_visible_and_recovers(big_pg_url)


def test_sigterm_marks_the_run_failed(big_pg_url):
    run = Segjob(big_pg_url, *JOB)
    run.wait_for_text("preparing: ")
    code = run.kill(signal.SIGTERM)
    assert code == 143, run.stderr
    assert "Error: interrupted by SIGTERM" in run.stderr
    statuses = query(big_pg_url, "SELECT status, error FROM run_summary")
    assert statuses == [{"status": "failed", "error": "interrupted by SIGTERM"}]
    assert query(big_pg_url, "SELECT COUNT(*) AS n FROM assignment")[0]["n"] == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_second_run_of_a_job_exits_4_while_other_jobs_proceed(backend, request):
    url = request.getfixturevalue("migrated_pg_url" if backend == "postgresql" else "sqlite_url")
    if backend == "sqlite":
        from segjob.store import migrate

        migrate.upgrade(url)
    _make_big_table(url)
    first = Segjob(url, *JOB)
    first.wait_for_text("sampling table big: ")  # 600k rows > --fit-sample: the streamed path
    first.keep_reading()
    run_id = query(url, "SELECT run_id FROM run WHERE status = 'running'")[0]["run_id"]
    # Paused, the first run keeps its job lock however long the others take to start.
    os.kill(first.process.pid, signal.SIGSTOP)
    try:
        second = Segjob(url, *JOB)
        assert second.finish(timeout=60) == 4
        assert f"job 'big' is already running (run {run_id} started" in second.stderr
        assert f"pid {first.process.pid}" in second.stderr

        other = Segjob(url, *JOB[:-2], "--k", "3", "--job", "big-other", "--quiet")
        assert other.finish() == 0, other.stderr
    finally:
        os.kill(first.process.pid, signal.SIGCONT)
    assert first.finish() == 0, first.stderr
    statuses = query(url, "SELECT job, status FROM run_summary ORDER BY run_id")
    assert sorted((s["job"], s["status"]) for s in statuses) == [("big", "succeeded"), ("big-other", "succeeded")]
