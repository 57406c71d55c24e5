"""Which run of a job is current: the one `current_segment` shows and the history views follow.

Every change of the current run is a row of `promotion` (append-only, so the history of what
dashboards showed is kept): an ordinary run adds one when it succeeds, inside its publish
transaction; `segjob promote RUN_ID` adds one for a succeeded run (a candidate, or an older run);
`segjob promote --job J --previous` adds one that goes back to the run that was current before.
Each row points at the row that was current before it (`previous_promotion_id`), so rolling
back twice goes back two steps, like popping a stack, and promoting again pushes.
A candidate run (`segjob run --candidate`) adds no row: it is complete and queryable by its run
id, and nothing that dashboards read by default changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from segjob.errors import UsageError
from segjob.store import db, schema
from segjob.store.dialect import dialect_of

SUCCEEDED, PROMOTED, ROLLED_BACK = "succeeded", "promoted", "rolled back"


@dataclass(frozen=True)
class Current:
    job: str
    run_id: int
    promotion_id: int
    promoted_at: datetime
    reason: str
    previous_promotion_id: int | None


@dataclass(frozen=True)
class Promotion:
    job: str
    run_id: int  # the job's current run now
    previous_run_id: int | None  # the job's current run before (None: it had none)
    changed: bool  # False: `run_id` was current already, nothing was written


def current(connection: sa.Connection, job: str) -> Current | None:
    """The job's current run (its latest promotion), or None when it has none."""
    promotion = schema.promotion
    row = connection.execute(
        sa.select(promotion).where(promotion.c.job == job).order_by(promotion.c.promotion_id.desc()).limit(1)
    ).first()
    return None if row is None else Current(**row._mapping)


def current_run_id(connection: sa.Connection, job: str) -> int | None:
    found = current(connection, job)
    return None if found is None else found.run_id


def record_success(connection: sa.Connection, job: str, run_id: int) -> None:
    """An ordinary run succeeded: it becomes current, in the caller's publish transaction."""
    lock(connection, job)
    _push(connection, job, run_id, SUCCEEDED, _id(current(connection, job)))


def promote(engine: sa.Engine, run_id: int, job: str | None = None) -> Promotion:
    """Make succeeded run `run_id` its job's current run, atomically (`job`, if given, must be its job)."""
    db.check_at_head(engine)
    run = schema.run
    with db.translate_errors(engine), engine.begin() as connection:
        find = sa.select(run.c.job, run.c.status).where(run.c.run_id == run_id)
        row = connection.execute(find).first()
        if row is not None:
            lock(connection, row.job)
            row = connection.execute(find).first()  # again: a prune holding the lock may have deleted it
        if row is None:
            raise UsageError(f"run {run_id} not found; 'segjob runs list' shows the runs")
        if job is not None and row.job != job:
            raise UsageError(f"run {run_id} belongs to job {row.job!r}, not {job!r}")
        if row.status != "succeeded":
            raise UsageError(f"run {run_id} is {row.status}; only a succeeded run can become current")
        before = current(connection, row.job)
        if before is not None and before.run_id == run_id:
            return Promotion(row.job, run_id, run_id, changed=False)
        _push(connection, row.job, run_id, PROMOTED, _id(before))
        return Promotion(row.job, run_id, None if before is None else before.run_id, changed=True)


def roll_back(engine: sa.Engine, job: str) -> Promotion:
    """Make the run that was current before the job's current run current again."""
    db.check_at_head(engine)
    with db.translate_errors(engine), engine.begin() as connection:
        lock(connection, job)
        now_current = current(connection, job)
        if now_current is None:
            known = connection.execute(sa.select(sa.func.count()).where(schema.run.c.job == job)).scalar()
            if not known:
                raise UsageError(f"job {job!r} has no runs; 'segjob runs list' shows the jobs")
            raise UsageError(f"job {job!r} has no current run to roll back from")
        earlier = before(connection, now_current)
        if earlier is None:
            raise UsageError(
                f"run {now_current.run_id} is the first current run of job {job!r} that is still kept;"
                " there is nothing to roll back to (promote a run by its id instead)"
            )
        # The new row points where the re-instated one pointed: a second rollback goes one further.
        _push(connection, job, earlier.run_id, ROLLED_BACK, earlier.previous_promotion_id)
        return Promotion(job, earlier.run_id, now_current.run_id, changed=True)


def before(connection: sa.Connection, row: Current) -> Current | None:
    """The promotion that was current before `row` (None: none, or it was pruned)."""
    if row.previous_promotion_id is None:
        return None
    promotion = schema.promotion
    query = sa.select(promotion).where(promotion.c.promotion_id == row.previous_promotion_id)
    found = connection.execute(query).first()
    return None if found is None else Current(**found._mapping)


def _push(connection: sa.Connection, job: str, run_id: int, reason: str, previous_promotion_id: int | None) -> None:
    connection.execute(
        sa.insert(schema.promotion).values(
            job=job, run_id=run_id, promoted_at=_now(), reason=reason, previous_promotion_id=previous_promotion_id
        )
    )


def _id(row: Current | None) -> int | None:
    return None if row is None else row.promotion_id


def lock(connection: sa.Connection, job: str) -> None:
    """Serialize changes of a job's current run until the transaction ends (PostgreSQL: a
    transaction advisory lock, so a promotion and a publishing run never both read the same
    "current" row and push beside each other, and a prune never deletes a run promoted while it
    chose what to keep; SQLite allows one writer at a time anyway)."""
    if dialect_of(connection).server_locks:
        # A NUL no job name can hold (PostgreSQL text has none) keeps this key apart from the job lock's.
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(db.lock_key(f"promotion\0{job}"))))


def _now() -> datetime:
    return datetime.now(UTC)
