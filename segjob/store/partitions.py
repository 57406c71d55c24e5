"""PostgreSQL: one partition of `assignment` per run (LIST on run_id), created without blocking
BI readers and dropped when the run is pruned.

A run's partition starts as a standalone table, created with a CHECK matching the partition
bound, that the publish transaction fills with COPY; then it gets its primary key and is
attached. ATTACH PARTITION takes only SHARE UPDATE EXCLUSIVE on `assignment` (PostgreSQL 12+),
which does not conflict with the ACCESS SHARE lock of readers' SELECTs, and the CHECK spares it
the validation scan. The work is done by SECURITY DEFINER functions (migrations 0003 and 0004),
so a writer role that does not own the schema can publish too.

A pruned run's partition goes in two steps that never make a reader wait (`finish_pruned`):
`DETACH PARTITION ... CONCURRENTLY` (SHARE UPDATE EXCLUSIVE on `assignment`; it waits for the
queries that were already reading the partition, and later queries no longer see it), then DROP
of the detached table, which no query reads. A prune deletes the run rows first, so a partition
left behind by an interrupted prune (still attached, "detach pending", or detached) belongs to
no run and no view shows it; the next prune or run finishes it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from segjob.store import db, locks
from segjob.store.dialect import dialect_of


def partition_name(run_id: int) -> str:
    return f"assignment_r{int(run_id)}"


def create(connection: sa.Connection, run_id: int) -> str:
    """Create the run's standalone assignment table; returns its schema-qualified, quoted name."""
    name = connection.execute(
        sa.text("SELECT segjob.create_assignment_partition(:run_id)"), {"run_id": run_id}
    ).scalar_one()
    return f"segjob.{connection.dialect.identifier_preparer.quote(name)}"


def attach(connection: sa.Connection, run_id: int) -> None:
    """Index the filled table and attach it to `assignment` as the run's partition."""
    connection.execute(sa.text("SELECT segjob.attach_assignment_partition(:run_id)"), {"run_id": run_id})


def drop(connection: sa.Connection, run_id: int) -> bool:
    """Drop the run's partition (its assignments); False if it has none."""
    return bool(
        connection.execute(sa.text("SELECT segjob.drop_assignment_partition(:run_id)"), {"run_id": run_id}).scalar_one()
    )


def existing(connection: sa.Connection) -> set[int]:
    """Run ids that have an attached assignment partition."""
    names = connection.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'segjob.assignment'::regclass"
        )
    ).scalars()
    return {int(name.removeprefix("assignment_r")) for name in names if name.startswith("assignment_r")}


def drop_orphans(connection: sa.Connection) -> int:
    """Drop every standalone assignment table whose run is no longer running (one the Spark
    engine's executors filled before the run failed or its driver died); returns how many."""
    return int(connection.execute(sa.text("SELECT segjob.drop_orphan_assignment_tables()")).scalar_one())


@dataclass(frozen=True)
class Leftover:
    """A partition of `assignment` whose run was deleted by a prune that has not dropped it yet."""

    run_id: int
    name: str
    detach_pending: bool  # a DETACH ... CONCURRENTLY was interrupted after its first transaction


def leftovers(connection: sa.Connection) -> list[Leftover]:
    """Partitions of `assignment` (attached or detach pending) whose run row no longer exists,
    pending ones first: PostgreSQL allows one pending detach per table, so it is finished first."""
    rows = connection.exec_driver_sql(
        "SELECT substr(c.relname, 13)::integer AS run_id, c.relname, i.inhdetachpending"
        " FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'segjob.assignment'::regclass AND c.relname ~ '^assignment_r[0-9]+$'"
        " AND NOT EXISTS (SELECT 1 FROM segjob.run AS r WHERE r.run_id = substr(c.relname, 13)::integer)"
        " ORDER BY i.inhdetachpending DESC, 1"
    )
    return [Leftover(run_id, name, pending) for run_id, name, pending in rows]


# How long a starting run spends finishing what an interrupted prune left (it tries again next time).
RUN_WAIT = 1.0
# A namespaced advisory-lock key that no job name can reach (job names hold no NUL).
_CLEANUP_LOCK = "assignment cleanup\0"


def finish_pruned(engine: sa.Engine, wait: float, wait_for_other_cleaner: bool = True) -> list[int]:
    """Detach and drop the partitions of pruned runs (`leftovers`) and every standalone assignment
    table of a run that is not running; returns the run ids whose partition is still there after
    about `wait` seconds (they stay invisible; the next prune or run tries again).

    The owner of `assignment` detaches CONCURRENTLY, which waits for queries that were already
    reading the partition but blocks none. Another role (a writer from `segjob db grant`) may only
    drop partitions through segjob's SECURITY DEFINER function, which needs ACCESS EXCLUSIVE on
    `assignment`: each attempt waits at most locks.LOCK_TIMEOUT, so readers queue no longer.
    One process cleans at a time (an advisory lock); with `wait_for_other_cleaner` False (a run
    starting) this returns at once when another one is at it. PostgreSQL only; SQLite has none."""
    if not dialect_of(engine).partitioned_assignments:
        return []
    deadline = locks.Deadline(wait)
    key = db.lock_key(_CLEANUP_LOCK)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        locked = False
        try:
            locked = _cleanup_lock(connection, key, deadline, wait_for_other_cleaner)
            if locked:
                _finish(connection, deadline)
            return [leftover.run_id for leftover in leftovers(connection)]
        finally:
            if not connection.invalidated:  # the pooled connection goes back as it came
                connection.exec_driver_sql("RESET lock_timeout")
                if locked:
                    connection.execute(sa.select(sa.func.pg_advisory_unlock(key)))


def _finish(connection: sa.Connection, deadline: locks.Deadline) -> None:
    concurrently = _may_detach_concurrently(connection)
    for leftover in leftovers(connection):
        if concurrently:
            done = _detach_concurrently(connection, leftover, deadline)
        else:
            done = _retry(connection, deadline, functools.partial(drop, connection, leftover.run_id))
        if not done:
            break
    _retry(connection, deadline, functools.partial(drop_orphans, connection))


def _cleanup_lock(connection: sa.Connection, key: int, deadline: locks.Deadline, wait: bool) -> bool:
    if not wait:
        return bool(connection.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar())
    # Waiting for an advisory lock queues nobody but another cleaner.
    locks.set_lock_timeout(connection, max(deadline.left(), 0.001), local=False)
    try:
        connection.execute(sa.select(sa.func.pg_advisory_lock(key)))
        return True
    except sa.exc.DBAPIError as exc:
        if locks.is_lock_timeout(exc):
            return False
        raise


def _may_detach_concurrently(connection: sa.Connection) -> bool:
    """Only the table's owner may ALTER it, and PostgreSQL refuses CONCURRENTLY when the table has
    a default partition (segjob makes none)."""
    return bool(
        connection.exec_driver_sql(
            "SELECT pg_has_role(c.relowner, 'USAGE') AND p.partdefid = 0"
            " FROM pg_class AS c JOIN pg_partitioned_table AS p ON p.partrelid = c.oid"
            " WHERE c.oid = 'segjob.assignment'::regclass"
        ).scalar()
    )


def _detach_concurrently(connection: sa.Connection, leftover: Leftover, deadline: locks.Deadline) -> bool:
    """DETACH ... CONCURRENTLY (or FINALIZE, for one left pending), waiting up to the deadline for
    the queries that still read the partition; False when they outlast it (it stays pending)."""
    if deadline.left() <= 0:
        return False
    how = "FINALIZE" if leftover.detach_pending else "CONCURRENTLY"
    name = connection.dialect.identifier_preparer.quote(leftover.name)
    locks.set_lock_timeout(connection, max(deadline.left(), 0.001), local=False)
    try:
        connection.exec_driver_sql(f"ALTER TABLE segjob.assignment DETACH PARTITION segjob.{name} {how}")
        return True
    except sa.exc.DBAPIError as exc:
        if locks.is_lock_timeout(exc):
            return False
        raise


def _retry(connection: sa.Connection, deadline: locks.Deadline, statement: Callable[[], object]) -> bool:
    """Run `statement()` (autocommit) under the short lock timeout until it gets its locks or the
    deadline passes; False if it never did."""
    next_pause = locks.pauses()
    while True:
        locks.set_lock_timeout(connection, local=False)
        try:
            statement()
            return True
        except sa.exc.DBAPIError as exc:
            if not locks.is_lock_timeout(exc):
                raise
        pause = next_pause()
        if pause > deadline.left():
            return False
        time.sleep(pause)
