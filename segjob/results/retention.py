"""`segjob prune`: delete a job's older runs and everything they wrote.

Kept: the newest --keep runs of the job, the job's current run (the one current_segment shows)
and the run `segjob promote --previous` would go back to, with the model runs of both (the
model `segjob score` uses by default), and any run still marked running. Deleting a run row
cascades to its features, bins, segments, centroids, metrics, rejected k and promotions, in one
transaction under the job lock (no run of the job starts or publishes meanwhile) and the job's
promotion lock (no promote or rollback changes what is current meanwhile); from its commit no
view shows the runs. Assignments have no foreign key: on SQLite they are deleted in that transaction;
on PostgreSQL each run's partition of `assignment` is then detached concurrently and dropped
(segjob.store.partitions.finish_pruned), outside the job lock, without making a reader wait.
Partitions still read after --lock-wait seconds are left, invisible, to the next prune or run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from segjob.errors import UsageError
from segjob.results import promotion
from segjob.store import db, locks, partitions, schema
from segjob.store.dialect import dialect_of


@dataclass
class PrunedRun:
    run_id: int
    kind: str
    status: str
    started_at: datetime
    assignments: int  # rows it had in `assignment`
    partition_dropped: bool  # PostgreSQL: its assignment partition was dropped


@dataclass
class PruneResult:
    job: str
    kept: list[int]
    deleted: list[PrunedRun] = field(default_factory=list)
    # PostgreSQL: runs (of any job) whose partition is still there, because queries that started
    # before the prune still read it after --lock-wait; no view shows them, the next prune or run drops them.
    partitions_left: list[int] = field(default_factory=list)


def prune(engine: sa.Engine, job: str, keep: int, lock_wait: float | None = None) -> PruneResult:
    """Delete the older runs of `job`, keeping the newest `keep` and the protected ones.

    Takes about `lock_wait` seconds (default locks.DEFAULT_WAIT) at most on PostgreSQL."""
    if keep < 1:
        raise UsageError("--keep must be at least 1")
    lock_wait = locks.lock_wait(lock_wait)
    db.check_at_head(engine)
    deadline = locks.Deadline(lock_wait)
    with db.translate_errors(engine):
        with db.job_lock(engine, job, lambda: "a run of the job is in progress"):
            result, with_partition = locks.retrying(
                engine, lambda connection: _delete_runs(connection, job, keep), "segjob prune", lock_wait
            )
        if dialect_of(engine).partitioned_assignments:
            result.partitions_left = partitions.finish_pruned(engine, deadline.left())
            for gone in result.deleted:
                gone.partition_dropped = gone.run_id in with_partition and gone.run_id not in result.partitions_left
    return result


def _delete_runs(connection: sa.Connection, job: str, keep: int) -> tuple[PruneResult, set[int]]:
    """Delete the doomed runs' rows (and, on SQLite, assignments); returns what was deleted and
    which of the runs have a partition to drop (PostgreSQL)."""
    run = schema.run
    promotion.lock(connection, job)  # what is current cannot change until the deletes commit
    runs = connection.execute(
        sa.select(run.c.run_id, run.c.kind, run.c.status, run.c.started_at, run.c.model_run_id)
        .where(run.c.job == job)
        .order_by(run.c.run_id.desc())
    ).all()
    if not runs:
        raise UsageError(f"job {job!r} has no runs; 'segjob runs list' shows the jobs")
    protected = _protected(connection, job, runs)
    doomed = [r for r in runs[keep:] if r.run_id not in protected]
    ids = [r.run_id for r in doomed]
    result = PruneResult(job, kept=sorted(r.run_id for r in runs if r.run_id not in ids))
    if not doomed:
        return result, set()
    counts = _assignment_counts(connection, ids)
    connection.execute(sa.delete(run).where(run.c.run_id.in_(ids)))  # cascades to the run's tables
    if dialect_of(connection).partitioned_assignments:
        with_partition = partitions.existing(connection) & set(ids)
    else:
        connection.execute(sa.delete(schema.assignment).where(schema.assignment.c.run_id.in_(ids)))
        with_partition = set()
    result.deleted = [
        PrunedRun(r.run_id, r.kind, r.status, r.started_at, counts.get(r.run_id, 0), partition_dropped=False)
        for r in doomed
    ]
    return result, with_partition


def _protected(connection: sa.Connection, job: str, runs: Sequence[sa.Row]) -> set[int]:
    keep = {r.run_id for r in runs if r.status == "running"}
    model_of = {r.run_id: r.model_run_id for r in runs}
    current = promotion.current(connection, job)
    rollback_target = None if current is None else promotion.before(connection, current)
    for kept in (current, rollback_target):
        if kept is not None:
            keep.add(kept.run_id)
            if model_of.get(kept.run_id) is not None:
                keep.add(model_of[kept.run_id])
    return keep


def _assignment_counts(connection: sa.Connection, ids: list[int]) -> dict[int, int]:
    assignment = schema.assignment
    rows = connection.execute(
        sa.select(assignment.c.run_id, sa.func.count())
        .where(assignment.c.run_id.in_(ids))
        .group_by(assignment.c.run_id)
    )
    return {run_id: count for run_id, count in rows}
