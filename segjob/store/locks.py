"""Strong locks on PostgreSQL without queueing BI readers behind them.

PostgreSQL grants locks in arrival order: while one statement waits for an ACCESS EXCLUSIVE lock
on a table or view that a long dashboard query reads, every later query of it waits behind that
statement, even a one-second SELECT. So a segjob statement that needs such a lock (a migration's
DROP VIEW or ALTER TABLE, dropping a partition without being its table's owner) waits at most
LOCK_TIMEOUT per attempt; then its transaction rolls back (releasing everything, so the queue
behind it moves), segjob backs off and tries again until its budget (`--lock-wait`) is spent, and
gives up with LockWaitError (exit 5) and nothing changed. Readers wait at most LOCK_TIMEOUT plus
the time the transaction runs after its first strong lock.

SQLite has no lock queue of this kind: in WAL mode readers never wait for a writer, and writers
wait for each other through busy_timeout (segjob.store.db).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from segjob.errors import LockWaitError, UsageError
from segjob.store.dialect import dialect_of

T = TypeVar("T")

# The longest one attempt waits for a lock, and so the longest a reader queues behind it; short
# next to the 1 s a dashboard query may take, long enough to catch the gap between two queries.
LOCK_TIMEOUT = 0.3
# `--lock-wait`: how long segjob keeps trying before it gives up (or, for prune's drops, leaves
# them for the next prune or run).
DEFAULT_WAIT = 60.0
# Back-off between attempts: doubling from the first pause up to the last, each drawn at random
# from its upper half so that retrying processes do not fall into step.
_FIRST_PAUSE, _LAST_PAUSE = 0.1, 2.0
_LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of "canceling statement due to lock timeout"


def lock_wait(seconds: float | None) -> float:
    """The --lock-wait budget: DEFAULT_WAIT when not given."""
    if seconds is None:
        return DEFAULT_WAIT
    if not seconds >= 0:
        raise UsageError(f"--lock-wait must be 0 or more seconds, not {seconds:g}")
    return seconds


class Deadline:
    """A budget of seconds from now."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


def set_lock_timeout(connection: sa.Connection, seconds: float = LOCK_TIMEOUT, local: bool = True) -> None:
    """Cap every lock wait of the connection's transaction (`local`) or session at `seconds` (PostgreSQL)."""
    if dialect_of(connection).server_locks:
        scope = "LOCAL " if local else ""
        connection.exec_driver_sql(f"SET {scope}lock_timeout = {max(1, round(seconds * 1000))}")


def is_lock_timeout(exc: BaseException) -> bool:
    """Whether `exc` (SQLAlchemy-wrapped or the driver's) is PostgreSQL's lock_timeout cancel."""
    driver = getattr(exc, "orig", None) or exc
    return getattr(driver, "sqlstate", None) == _LOCK_NOT_AVAILABLE


def pauses() -> Callable[[], float]:
    """Successive back-off pauses in seconds: randomized, doubling, capped."""
    ceiling = _FIRST_PAUSE

    def next_pause() -> float:
        nonlocal ceiling
        pause = random.uniform(ceiling / 2, ceiling)
        ceiling = min(ceiling * 2, _LAST_PAUSE)
        return pause

    return next_pause


def retrying(engine: sa.Engine, work: Callable[[sa.Connection], T], what: str, wait: float | None = None) -> T:
    """`work(connection)` in a transaction of its own whose lock waits are capped at LOCK_TIMEOUT;
    on a lock timeout the transaction rolls back and, after a pause, `work` starts again, for up to
    `wait` seconds; then LockWaitError. `work` must be safe to repeat (it is, being rolled back).
    On SQLite `work` runs once, as before."""
    wait = lock_wait(wait)
    if not dialect_of(engine).server_locks:
        with engine.begin() as connection:
            return work(connection)
    deadline, next_pause = Deadline(wait), pauses()
    while True:
        try:
            with engine.begin() as connection:
                set_lock_timeout(connection)
                return work(connection)
        except sa.exc.DBAPIError as exc:
            if not is_lock_timeout(exc):
                raise
        pause = next_pause()
        if pause > deadline.left():
            raise LockWaitError(gave_up(engine, what, wait))
        time.sleep(pause)


def gave_up(engine: sa.Engine, what: str, wait: float) -> str:
    """One line: what gave up, after how long, and the oldest session holding a lock on segjob's
    tables or views (the likely reason), so the user knows what to wait for."""
    holder = oldest_holder(engine)
    who = "" if holder is None else f" (the oldest, pid {holder[0]}, has been in one transaction for {holder[1]:.0f} s)"
    return (
        f"{what} gave up after {wait:g} s waiting for other sessions' queries on segjob's tables and views"
        f" to finish{who}; nothing was changed. Try again later, or give it longer with --lock-wait"
    )


def oldest_holder(engine: sa.Engine) -> tuple[int, float] | None:
    """(pid, seconds in its transaction) of the oldest other session holding a lock in schema segjob."""
    with engine.connect() as connection:
        row = connection.exec_driver_sql(
            "SELECT a.pid, EXTRACT(EPOCH FROM clock_timestamp() - a.xact_start)"
            " FROM pg_locks AS l"
            " JOIN pg_class AS c ON c.oid = l.relation"
            " JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = 'segjob'"
            " JOIN pg_stat_activity AS a ON a.pid = l.pid"
            " WHERE l.granted AND l.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL"
            " ORDER BY a.xact_start LIMIT 1"
        ).first()
    return None if row is None else (int(row[0]), float(row[1]))
