"""`segjob prune`: delete a job's older runs and everything they wrote.

Kept: the newest --keep runs of the job, the job's current run (the one current_segment shows)
and the run `segjob promote --previous` would go back to, with the model runs of both (the
model `segjob score` uses by default), and any run still marked running. Deleting a run row
cascades to its features, bins, segments, centroids, metrics and rejected k; assignments have
no foreign key, so they go first: on PostgreSQL by dropping the run's partition of `assignment`
(no row-by-row delete, no bloat), on SQLite with DELETE. All in one transaction, under the job
lock, so no run of the job starts or publishes meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from segjob.errors import UsageError
from segjob.results import promotion
from segjob.store import db, partitions, schema


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


def prune(engine: sa.Engine, job: str, keep: int) -> PruneResult:
    """Delete the older runs of `job`, keeping the newest `keep` and the protected ones."""
    if keep < 1:
        raise UsageError("--keep must be at least 1")
    db.check_at_head(engine)
    run = schema.run
    with db.translate_errors(engine), db.job_lock(engine, job, lambda: "a run of the job is in progress"):
        with engine.begin() as connection:
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
                return result
            counts = _assignment_counts(connection, ids)
            connection.execute(sa.delete(run).where(run.c.run_id.in_(ids)))  # cascades to the run's tables
            # Assignments last: on PostgreSQL dropping a partition locks `assignment` against
            # readers until commit, so that lock is taken as late as possible.
            dropped = _delete_assignments(connection, ids)
            result.deleted = [
                PrunedRun(r.run_id, r.kind, r.status, r.started_at, counts.get(r.run_id, 0), r.run_id in dropped)
                for r in doomed
            ]
            return result


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


def _delete_assignments(connection: sa.Connection, ids: list[int]) -> set[int]:
    """Remove the runs' assignments; returns the runs whose partition was dropped (PostgreSQL)."""
    if not db.is_postgres(connection):
        connection.execute(sa.delete(schema.assignment).where(schema.assignment.c.run_id.in_(ids)))
        return set()
    return {run_id for run_id in ids if partitions.drop(connection, run_id)}
