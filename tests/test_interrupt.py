"""Ctrl-C (SIGINT) and SIGTERM at several moments of a PostgreSQL run, in a real `segjob run` process.

Whenever the signal lands (the source being read, the assignment COPY being sent, the partition
being attached, the status flip of the publish), segjob prints exactly one `Error:` line and no
traceback, exits 128 + the signal number, marks the run failed, and the job's current run and
views stay as they were. Two moments are made certain by holding a lock the run's statement
waits for, so the signal always lands while psycopg is inside a query.
"""

from __future__ import annotations

import inspect
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from helpers import SEGJOB, one_error_line, query

from segjob.background import Sender

ROWS = 300_000
# A small fit sample keeps the fit short: what the tries interrupt is the reading and publishing.
JOB = ("--source", "big", "--id", "id", "--features", "a,b", "--k", "4", "--fit-sample", "5000")


@contextmanager
def _interrupted_inside_notify() -> Iterator[None]:
    """Raise KeyboardInterrupt in this thread where Ctrl-C once hung a run: inside
    threading.Condition.notify, after it woke the waiting thread and before it forgot that
    thread's waiter (the stale waiter then takes the next wake-up meant for that thread)."""
    lines, first = inspect.getsourcelines(threading.Condition.notify)
    target = first + next(i for i, text in enumerate(lines) if "waiters.remove(waiter)" in text)
    notify = threading.Condition.notify.__code__

    def in_notify(frame, event, _arg):
        if event == "line" and frame.f_lineno == target:
            sys.settrace(None)
            raise KeyboardInterrupt
        return in_notify

    sys.settrace(lambda frame, _event, _arg: in_notify if frame.f_code is notify else None)
    try:
        yield
    finally:
        sys.settrace(None)


def test_an_interrupt_inside_the_senders_handoff_does_not_hang_it():
    written = threading.Event()
    sender = Sender(lambda _data: written.set())
    sender.send(b"first")
    assert written.wait(5)
    time.sleep(0.2)  # the thread waits for the next buffer again
    with pytest.raises(KeyboardInterrupt), _interrupted_inside_notify():
        sender.send(b"second")
    time.sleep(0.2)  # the thread took the buffer, wrote it and waits for the next one
    stopping = threading.Thread(target=sender.abandon, daemon=True)  # what the COPY's cleanup calls
    stopping.start()
    stopping.join(5)
    assert not stopping.is_alive(), "the sender thread never saw that it should stop"


class Run:
    """`segjob run` in a process of its own, its progress lines (stderr is a pipe) read as they come."""

    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen(
            [SEGJOB, "run", *JOB, "--log-format", "text", "--database-url", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def wait_for_line(self, text: str, timeout: float = 60) -> None:
        _until(lambda: any(text in line for line in self.lines), f"a line with {text!r}", timeout, self)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        code = self.process.wait(timeout)
        self.reader.join(10)
        return code, "".join(self.lines)


def _until(condition: Callable[[], bool], what: str, timeout: float, run: Run) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert run.process.poll() is None, f"the run ended before {what}: {''.join(run.lines)}"
        assert time.monotonic() < deadline, f"never saw {what}: {''.join(run.lines)}"
        time.sleep(0.01)


def _segjob_statement(url: str, pattern: str, waiting_for_lock: bool = False) -> bool:
    """Whether a segjob session is running a statement like `pattern` (and waits for a lock)."""
    return bool(
        query(
            url,
            "SELECT 1 AS x FROM pg_stat_activity WHERE application_name = 'segjob' AND datname = current_database()"
            " AND state = 'active' AND query LIKE :p AND (NOT :lock OR wait_event_type = 'Lock')",
            p=pattern,
            lock=waiting_for_lock,
        )
    )


def _wait_for_statement(run: Run, url: str, pattern: str, waiting_for_lock: bool = False) -> None:
    _until(lambda: _segjob_statement(url, pattern, waiting_for_lock), f"a statement like {pattern!r}", 60, run)


@pytest.fixture(scope="module")
def published(pg_admin_engine, pg_template):
    """A database with a table of ROWS customers and one good run of its job, shared by the tries:
    each leaves a failed run and must leave the views as they were."""
    name = f"segjob_int_{uuid.uuid4().hex[:10]}"
    with pg_admin_engine.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name} TEMPLATE {pg_template}"))
    url = pg_admin_engine.url.set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE big AS SELECT 'c' || g AS id, random() * 100 AS a, mod(g, 89)::float8 AS b"
            f" FROM generate_series(1, {ROWS}) AS g"
        )
    engine.dispose()
    code, stderr = Run(url).finish()
    assert code == 0, stderr
    yield url, _views(url)
    with pg_admin_engine.connect() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _views(url: str) -> dict:
    return {
        "current": query(url, "SELECT run_id, COUNT(*) AS n FROM current_segment GROUP BY run_id"),
        "profile": query(
            url, "SELECT run_id, segment_id, feature, size, centroid FROM segment_profile ORDER BY 1, 2, 3"
        ),
        "history": query(url, "SELECT run_id, COUNT(*) AS n FROM customer_segment_history GROUP BY run_id"),
        "assignments": query(url, "SELECT run_id, COUNT(*) AS n FROM assignment GROUP BY run_id"),
    }


def _assert_interrupted_and_nothing_changed(url: str, before: dict, run: Run, sig: signal.Signals) -> None:
    run.process.send_signal(sig)
    _check_outcome(url, before, run, sig)


def _check_outcome(url: str, before: dict, run: Run, sig: signal.Signals) -> None:
    code, stderr = run.finish()
    assert code == 128 + sig, stderr
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr
    assert one_error_line(stderr) == f"Error: interrupted by {sig.name}"
    last = query(url, "SELECT run_id, status, error FROM run ORDER BY run_id DESC LIMIT 1")[0]
    assert (last["status"], last["error"]) == ("failed", f"interrupted by {sig.name}")
    assert _views(url) == before
    leftovers = query(url, "SELECT to_regclass(:name)::text AS t", name=f"segjob.assignment_r{last['run_id']}")
    assert leftovers == [{"t": None}]  # the run's standalone assignment table went with its transaction


@pytest.mark.slow
def test_interrupt_while_reading_the_source(published):
    url, before = published
    run = Run(url)
    run.wait_for_line("sampling table big: started")
    _wait_for_statement(run, url, "COPY (SELECT%")
    _assert_interrupted_and_nothing_changed(url, before, run, signal.SIGINT)


@pytest.mark.slow
def test_interrupt_while_fitting(published):
    url, before = published
    run = Run(url)
    run.wait_for_line("fitting: started")
    _assert_interrupted_and_nothing_changed(url, before, run, signal.SIGINT)


@pytest.mark.slow
def test_interrupt_while_sending_the_assignments(published):
    url, before = published
    run = Run(url)
    run.wait_for_line("assigning and writing: started")
    _wait_for_statement(run, url, "COPY segjob.assignment%")
    _assert_interrupted_and_nothing_changed(url, before, run, signal.SIGINT)


def _holding(url: str, statement: str):
    """A connection of the test's that holds the lock `statement` takes until it is closed."""
    engine = sa.create_engine(url)
    connection = engine.connect()
    connection.exec_driver_sql(statement)
    return engine, connection


@pytest.mark.slow
@pytest.mark.parametrize(
    ("moment", "lock", "waiting", "sig"),
    [
        (
            "attaching the partition",
            "LOCK TABLE segjob.assignment IN SHARE UPDATE EXCLUSIVE MODE",
            "%attach_assignment_partition%",
            signal.SIGINT,
        ),
        (
            "flipping the status",
            "SELECT 1 FROM segjob.run WHERE status = 'running' FOR NO KEY UPDATE",
            "UPDATE%",
            signal.SIGINT,
        ),
        (
            "flipping the status",
            "SELECT 1 FROM segjob.run WHERE status = 'running' FOR NO KEY UPDATE",
            "UPDATE%",
            signal.SIGTERM,
        ),
    ],
)
def test_interrupt_while_a_publish_statement_runs(published, moment, lock, waiting, sig):
    """The statement waits for the test's lock, so the signal surely lands inside psycopg."""
    url, before = published
    run = Run(url)
    run.wait_for_line("assigning and writing: started")  # the run row exists; the fit has heartbeaten
    engine, holder = _holding(url, lock)
    try:
        _wait_for_statement(run, url, waiting, waiting_for_lock=True)
        run.process.send_signal(sig)
        time.sleep(0.5)  # marking the run failed needs the run row: let go once the signal is in
    finally:
        holder.close()
        engine.dispose()
    _check_outcome(url, before, run, sig)


@pytest.mark.slow
def test_interrupt_while_the_streaming_read_starts(published):
    """The assignment pass's read waits for the test's lock on the source while it starts. ADBC
    swaps in a SIGINT handler of its own while it blocks the main thread, so its calls run in a
    worker (background.call_interruptibly): before, Ctrl-C here cancelled the statement (exit 5,
    'cancelled from outside segjob') or was lost and the run published."""
    url, before = published
    run = Run(url)
    run.wait_for_line("fitting: started")  # the sample's read is over; the assignment pass's is next
    engine, holder = _holding(url, "LOCK TABLE big IN ACCESS EXCLUSIVE MODE")
    try:
        _wait_for_statement(run, url, "SELECT CAST(%", waiting_for_lock=True)
        run.process.send_signal(signal.SIGINT)
        time.sleep(0.5)
    finally:
        holder.close()
        engine.dispose()
    _check_outcome(url, before, run, signal.SIGINT)
