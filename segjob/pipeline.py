"""The run lifecycle: the only module that knows the order of the stages.

lock -> mark dead runs abandoned -> (idempotent no-op?) -> run row `running` -> read -> prepare
-> fit -> profile -> publish (one transaction, status `succeeded`); any failure marks the run
`failed` with its reason and re-raises. `run_lifecycle` is the part fit and score runs share
(segjob.score supplies a score run's work).
"""

from __future__ import annotations

import hashlib
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from segjob import db, lineage, results, schema, streaming, validation
from segjob.algorithms import KMEANS, preload_in_background
from segjob.config import JobSpec
from segjob.errors import Interrupted, SegjobError
from segjob.labels import vocabulary_for
from segjob.model import fit
from segjob.prepare import PrepareOptions, prepare
from segjob.profile import profile
from segjob.progress import Progress, Silent
from segjob.source import count_rows, describe_source, read_source
from segjob.transactions import transaction_source


@dataclass(frozen=True)
class RunOutcome:
    run_id: int
    job: str
    reused: bool  # True: a succeeded run with the same run key existed, nothing was written


def run_job(engine: sa.Engine, spec: JobSpec, progress: Progress | None = None, force: bool = False) -> RunOutcome:
    """Run one segmentation job end to end and publish its results atomically."""
    progress = progress or Silent()
    preload_in_background()

    def setup() -> tuple[JobSpec, Callable[[int], None]]:
        if spec.transactions:  # the spec comes back with the feature definitions, stored with the run
            checked, source = transaction_source(engine, spec, progress, validate=True)
        else:
            checked, source = spec, describe_source(engine, spec)
        return checked, lambda run_id: _fit_and_publish(engine, checked, source, run_id, progress)

    return run_lifecycle(engine, spec, setup, force=force)


def run_lifecycle(
    engine: sa.Engine,
    spec: JobSpec,
    setup: Callable[[], tuple[JobSpec, Callable[[int], None]]],
    force: bool = False,
    kind: str = "fit",
    model_run_id: int | None = None,
) -> RunOutcome:
    """The lifecycle every run shares, fit or score.

    Checks the schema, calls `setup()` (check the source before taking the lock; it returns the
    spec to store and the work to do), takes the job lock, marks dead runs abandoned, returns the
    succeeded run of the same kind with the same run key unless `force`, inserts the run row and
    calls `work(run_id)`, which must publish and mark the run succeeded. Any failure, SIGINT or
    SIGTERM marks the run failed and raises a SegjobError where one fits.
    """
    db.check_at_head(engine)
    with db.translate_errors(engine, spec.statement_timeout):
        spec, work = setup()
        with db.job_lock(engine, spec.job, lambda: _describe_running(engine, spec.job)):
            results.mark_abandoned(engine, spec.job)
            if spec.run_key and not force:
                previous = _succeeded_run_with_key(engine, spec.job, spec.run_key, kind)
                if previous is not None:
                    return RunOutcome(previous, spec.job, reused=True)
            run_id = results.start_run(engine, spec, kind=kind, model_run_id=model_run_id)
            stop = _StopSignals()
            try:
                with stop.raise_interrupted():
                    work(run_id)
            except SegjobError as exc:
                _mark_failed_if_reachable(engine, run_id, str(exc))
                raise
            except Exception as exc:
                if stop.received is not None:
                    # The signal hit a database call, whose cleanup raised a driver error instead.
                    interrupted = Interrupted(stop.received)
                    _mark_failed_if_reachable(engine, run_id, str(interrupted))
                    raise interrupted from exc
                trouble = db.database_trouble(engine, exc, spec.statement_timeout)
                if trouble is not None:
                    _mark_failed_if_reachable(engine, run_id, str(trouble))
                    raise trouble from exc
                _mark_failed_if_reachable(engine, run_id, f"{type(exc).__name__}: {exc}")
                raise
            return RunOutcome(run_id, spec.job, reused=False)


class _StopSignals:
    """While a run works, SIGINT and SIGTERM raise Interrupted, so the run is marked failed and
    its open publish transaction rolls back instead of the process vanishing mid-way."""

    def __init__(self) -> None:
        self.received: int | None = None

    @contextmanager
    def raise_interrupted(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def interrupt(signal_number, _frame):
            self.received = signal_number
            raise Interrupted(signal_number)

        previous = {number: signal.signal(number, interrupt) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


def _fit_and_publish(engine, spec: JobSpec, source, run_id: int, progress: Progress) -> None:
    if spec.algorithm == KMEANS:
        rows = count_rows(engine, source)
        if streaming.should_stream(spec, rows):  # large input: sampled fit, streamed assignment
            beat = _HeartbeatOnDone(progress, lambda: results.heartbeat(engine, run_id))
            streaming.fit_and_publish(
                engine, spec, source, run_id, rows, progress, beat, vocabulary_for(spec),
                validation.measurer(spec, run_id),
            )
            return
    progress.stage(f"reading {source.description}")
    frame = read_source(engine, spec, source, progress.rows)
    progress.done(f"{len(frame):,} rows")
    fingerprint = input_fingerprint(frame)

    progress.stage("preparing")
    options = PrepareOptions.from_spec(spec)
    prepared = prepare(frame, spec.id, options)
    del frame
    dropped = ", ".join(f"{reason}: {count:,}" for reason, count in prepared.dropped.items()) or "none"
    progress.done(f"{prepared.rows_used:,} rows used, {prepared.X.shape[1]} model columns, dropped {dropped}")
    results.heartbeat(engine, run_id)

    model = fit(
        prepared.X, spec.k, spec.k_min, spec.k_max, spec.seed, spec.silhouette_sample,
        algorithm=spec.algorithm, select=spec.select, min_segment_share=spec.min_segment_share,
        eps=spec.eps, stability_sample=spec.stability_sample,
        progress=_HeartbeatOnDone(progress, lambda: results.heartbeat(engine, run_id)),
        describe_rows=prepared.describe_rows,
    )

    stable_ids = lineage.stable_segment_ids(engine, spec.job, prepared.features, model)  # matched to the last fit
    segments = profile(
        prepared, model, spec.segment_labels, vocabulary_for(spec), segment_ids=stable_ids
    )
    progress.stage("publishing")
    results.publish(engine, run_id, fingerprint, prepared, model, segments, validation.measurer(spec, run_id))
    progress.done(f"run {run_id}: {prepared.rows_used:,} assignments, {model.k} segments")


class _HeartbeatOnDone:
    """Passes progress on, and refreshes the run's heartbeat whenever a step (e.g. one k) finishes."""

    def __init__(self, progress: Progress, beat) -> None:
        self.progress, self.beat = progress, beat

    def stage(self, name: str, total: int | None = None) -> None:
        self.progress.stage(name, total)

    def rows(self, done: int) -> None:
        self.progress.rows(done)

    def done(self, summary: str) -> None:
        self.progress.done(summary)
        self.beat()


def input_fingerprint(frame: pd.DataFrame) -> str:
    """A digest of the rows read, so analysts can tell whether two runs saw the same input."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _mark_failed_if_reachable(engine: sa.Engine, run_id: int, error: str) -> None:
    try:
        results.mark_failed(engine, run_id, error)
    except (sa.exc.DBAPIError, SegjobError):
        pass  # the database is gone; the next run of the job marks this one abandoned


def _succeeded_run_with_key(engine: sa.Engine, job: str, run_key: str, kind: str) -> int | None:
    run = schema.run
    with engine.connect() as connection:
        return connection.execute(
            sa.select(sa.func.max(run.c.run_id)).where(
                run.c.job == job, run.c.run_key == run_key, run.c.kind == kind, run.c.status == "succeeded"
            )
        ).scalar()


def _describe_running(engine: sa.Engine, job: str) -> str:
    run = schema.run
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(run.c.run_id, run.c.started_at, run.c.host, run.c.pid)
            .where(run.c.job == job, run.c.status == "running")
            .order_by(run.c.run_id.desc())
            .limit(1)
        ).first()
    if row is None:
        return "a run is starting"
    return f"run {row.run_id} started {row.started_at:%Y-%m-%d %H:%M:%S} on {row.host}, pid {row.pid}"
