"""The run lifecycle: the only module that knows the order of the stages.

lock -> mark dead runs abandoned -> (idempotent no-op?) -> run row `running` -> read -> prepare
-> fit -> profile -> publish (one transaction, status `succeeded`); any failure marks the run
`failed` with its reason and re-raises. `run_lifecycle` is the part fit and score runs share
(segjob.scoring.score supplies a score run's work).
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from segjob.config import JobSpec
from segjob.engines import local, spark
from segjob.engines.base import Assigned, Engine, Fitted
from segjob.errors import Interrupted, SegjobError
from segjob.model.algorithms import preload_in_background
from segjob.model.backtest import Backtest
from segjob.model.choose_k import Metric
from segjob.model.fit import ModelResult, fit
from segjob.model.labels import vocabulary_for
from segjob.model.profile import Profile, profile
from segjob.prepare.columns import PreparedData, prepare
from segjob.progress import Progress, Silent
from segjob.results import lineage, lineage_events, publish, validation
from segjob.source.backtest import read_backtest
from segjob.source.purchases import transaction_source
from segjob.source.tables import describe_source
from segjob.store import db, partitions, schema


@dataclass(frozen=True)
class RunOutcome:
    run_id: int
    job: str
    reused: bool  # True: a succeeded run with the same run key existed, nothing was written


def run_job(
    engine: sa.Engine,
    spec: JobSpec,
    progress: Progress | None = None,
    force: bool = False,
    spark_session: spark.SparkSession | None = None,
) -> RunOutcome:
    """Run one segmentation job end to end and publish its results atomically.

    With `spec.engine == "spark"` the rows are read, assigned and written on Spark: on
    `spark_session` when given, else on a session built from the spec's Spark settings."""
    progress = progress or Silent()
    preload_in_background()

    def setup() -> tuple[JobSpec, Callable[[int], None]]:
        checked, engine_for_run = _check_source(engine, spec, progress, spark_session)
        return checked, lambda run_id: _fit_and_publish(engine, checked, engine_for_run(), run_id, progress)

    return run_lifecycle(engine, spec, setup, force=force)


def _check_source(
    engine: sa.Engine, spec: JobSpec, progress: Progress, spark_session: spark.SparkSession | None
) -> tuple[JobSpec, Callable[[], Engine]]:
    """Check the source before the run starts; returns the spec to store with the run and how to
    make the engine that moves its rows (the local engine's first read, which may fail or time
    out, belongs to the run)."""
    if spec.engine == "spark":
        progress.stage(f"starting Spark ({spec.spark_master})" if spark_session is None else "checking the source")
        session = spark_session or spark.session(spec)
        spark_source = spark.describe(engine, spec, session)
        progress.done(
            f"{spark_source.description}: {spark_source.partitions} partitions; Spark's log: {spark.spark_log()}"
        )
        return spec, lambda: spark.SparkEngine(engine, spec, session, spark_source)
    if spec.transactions:  # the spec comes back with the feature definitions, stored with the run
        checked, source = transaction_source(engine, spec, progress, validate=True)
    else:
        checked, source = spec, describe_source(engine, spec)
    return checked, lambda: local.engine_for(engine, checked, source)


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
            publish.mark_abandoned(engine, spec.job)
            partitions.finish_pruned(engine, partitions.RUN_WAIT, wait_for_other_cleaner=False)
            if spec.run_key and not force:
                previous = _succeeded_run_with_key(engine, spec.job, spec.run_key, kind)
                if previous is not None:
                    return RunOutcome(previous, spec.job, reused=True)
            run_id = publish.start_run(engine, spec, kind=kind, model_run_id=model_run_id)
            stop = _StopSignals()
            with lineage_events.emitted(engine, spec, run_id, kind):
                try:
                    with stop.raise_interrupted():
                        work(run_id)
                except SegjobError as exc:
                    _mark_failed_if_reachable(engine, run_id, str(exc))
                    raise
                except KeyboardInterrupt as exc:  # unwound from where the signal landed
                    interrupted = Interrupted(stop.received or signal.SIGINT)
                    _mark_failed_if_reachable(engine, run_id, str(interrupted))
                    raise interrupted from exc
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
    """While a run works, SIGINT and SIGTERM raise KeyboardInterrupt, which run_lifecycle turns
    into Interrupted once the work has unwound: the run is marked failed and its open publish
    transaction rolls back instead of the process vanishing mid-way.

    KeyboardInterrupt, not Interrupted (an Exception), because that is what the libraries
    expect a signal to raise wherever it lands: psycopg then cancels the statement in progress
    and waits for the server, and SQLAlchemy discards the connection instead of returning it to
    its pool. After any other exception psycopg's connection is still mid-command, so the
    rollback and the pool's reset fail ("another command is already in progress").
    """

    def __init__(self) -> None:
        self.received: int | None = None

    @contextmanager
    def raise_interrupted(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def interrupt(signal_number, _frame):
            self.received = signal_number
            raise KeyboardInterrupt

        previous = {number: signal.signal(number, interrupt) for number in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


def _fit_and_publish(engine: sa.Engine, spec: JobSpec, execution: Engine, run_id: int, progress: Progress) -> None:
    """Sample, prepare and fit on the driver, then let the engine assign and write every row
    inside the publish transaction (segjob.engines.base describes the steps)."""
    sample = execution.read_sample(progress)

    progress.stage("preparing")
    prepared = prepare(sample.frame, spec.id, spec.prepare_options())
    del sample.frame  # the raw rows are not needed again: free them before the fit
    dropped = ", ".join(f"{reason}: {count:,}" for reason, count in prepared.dropped.items()) or "none"
    fitted_on = "" if sample.every_row else " (fitted on the sample)"
    progress.done(
        f"{prepared.rows_used:,} rows used, {prepared.X.shape[1]} model columns, dropped {dropped}{fitted_on}"
    )
    publish.heartbeat(engine, run_id)

    heartbeat = _HeartbeatOnDone(progress, lambda: publish.heartbeat(engine, run_id))
    backtest, no_backtest = read_backtest(engine, spec, heartbeat)  # purchase histories choosing k only
    model = fit_model(prepared, spec, heartbeat, backtest, no_backtest)
    if not sample.every_row:
        model.k_reason += f" (fitted on a uniform sample of {prepared.rows_used:,} of {sample.rows:,} rows)"
        model.metrics.append(Metric("sample_size", float(prepared.rows_used), None))
    if spec.full_fit:
        model = execution.refine(prepared, model, heartbeat)

    segment_ids = lineage.stable_segment_ids(engine, spec.job, prepared.features, model, prepared.keys)
    fitted = Fitted(prepared, model, segment_ids)
    vocabulary = vocabulary_for(purchase_history=bool(spec.transactions))

    def assign_and_profile(connection: sa.Connection) -> tuple[str, Assigned, ModelResult, Profile]:
        assigned = execution.assign(connection, run_id, fitted, progress)
        progress.stage("publishing")
        model.metrics.extend(assigned.metrics)
        described = dataclasses.replace(prepared, features=assigned.features)
        segments = profile(
            described, model, spec.segment_labels, vocabulary, segment_ids=segment_ids, totals=assigned.totals
        )
        return assigned.fingerprint, assigned, model, segments

    publish.publish_run(engine, run_id, assign_and_profile, validation.measurer(spec, run_id))
    progress.done(f"run {run_id}: {model.k} segments")


def fit_model(
    prepared: PreparedData,
    spec: JobSpec,
    progress: Progress | None = None,
    backtest: Backtest | None = None,
    no_backtest: str = "",
) -> ModelResult:
    """Choose k (or take --k) and fit on prepared model columns, with the job's settings (and,
    for a purchase history choosing k by later behaviour, its backtest)."""
    return fit(
        prepared.X,
        spec.k,
        spec.k_min,
        spec.k_max,
        spec.seed,
        spec.silhouette_sample,
        algorithm=spec.algorithm,
        select=spec.select,
        min_segment_share=spec.min_segment_share,
        eps=spec.eps,
        stability_sample=spec.stability_sample,
        progress=progress,
        describe_rows=prepared.describe_rows,
        backtest=backtest,
        no_backtest=no_backtest,
    )


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


def _mark_failed_if_reachable(engine: sa.Engine, run_id: int, error: str) -> None:
    try:
        publish.mark_failed(engine, run_id, error)
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
