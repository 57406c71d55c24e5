"""Results stage: the run row's lifecycle and the one-transaction publish of a run's results.

A run row is inserted as `running` in a short transaction of its own, so a crash leaves
evidence. Everything a run produces is written, and its status flipped to `succeeded`, in one
transaction: readers see all of a run or none of it. The BI views show only succeeded runs.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import socket
from collections.abc import Callable, Container
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import numpy as np
import sqlalchemy as sa

from segjob import background
from segjob.config import JobSpec
from segjob.errors import JobLockedError, UsageError
from segjob.model.fit import ModelResult
from segjob.model.profile import Profile
from segjob.prepare.columns import FeatureParams, PreparedData
from segjob.results import lineage, promotion, validation
from segjob.results.validation import Validation
from segjob.store import locks, partitions, pgcopy, schema
from segjob.store.dialect import dialect_of
from segjob.version import VERSION

if TYPE_CHECKING:
    import psycopg
    from pandas.api.extensions import ExtensionArray


class Published(Protocol):
    """What publish needs of the prepared rows: PreparedData, or a streamed run's totals."""

    features: list[FeatureParams]
    original: np.ndarray  # rows in original units (all, or a sample), for the stored decile bins
    rows_read: int
    dropped: dict[str, int]

    @property
    def rows_used(self) -> int: ...

    @property
    def rows_dropped(self) -> int: ...


# SQLite binds at most 32766 variables per statement; executemany has no such limit but
# batching keeps each call's Python-side list small.
_SQLITE_BATCH_ROWS = 20_000
# Rows per COPY chunk: bounds the encoded buffer to some tens of MB.
_COPY_CHUNK_ROWS = 500_000


def now() -> datetime:
    return datetime.now(UTC)


def start_run(engine: sa.Engine, spec: JobSpec, kind: str = "fit", model_run_id: int | None = None) -> int:
    """Insert the run row as `running` and commit it; returns run_id. A score run names the fit
    run whose model it uses in `model_run_id`."""
    moment = now()
    with engine.begin() as connection:
        return connection.execute(
            sa.insert(schema.run)
            .values(
                job=spec.job,
                run_key=spec.run_key,
                kind=kind,
                model_run_id=model_run_id,
                status="running",
                started_at=moment,
                heartbeat_at=moment,
                spec=spec.to_json(),
                source=spec.source_description,
                candidate=spec.candidate,
                features=json.dumps([*spec.features, *spec.categorical]),
                seed=spec.seed,
                algorithm=spec.algorithm,
                segjob_version=VERSION,
                sklearn_version=importlib.metadata.version("scikit-learn"),  # without importing it
                numpy_version=np.__version__,
                host=socket.gethostname(),
                pid=os.getpid(),
            )
            .returning(schema.run.c.run_id)
        ).scalar_one()


def heartbeat(engine: sa.Engine, run_id: int) -> None:
    with engine.begin() as connection:
        connection.execute(sa.update(schema.run).where(schema.run.c.run_id == run_id).values(heartbeat_at=now()))


def mark_failed(engine: sa.Engine, run_id: int, error: str, status: str = "failed") -> None:
    """Record the run's failure, committed on its own before any clean-up (see _drop_orphan_assignments)."""
    with engine.begin() as connection:
        connection.execute(
            sa.update(schema.run)
            .where(schema.run.c.run_id == run_id, schema.run.c.status == "running")
            .values(status=status, error=error[:4000], finished_at=now(), heartbeat_at=now())
        )
    _drop_orphan_assignments(engine)


def _drop_orphan_assignments(engine: sa.Engine) -> None:
    """Assignments written outside the publish transaction (Spark executors) die with their run.

    Best effort, after the status change has committed, in one try that waits for no lock longer
    than locks.LOCK_TIMEOUT: a table that cannot be dropped now (a session reads it, the role may
    not drop it, the connection is gone) stays invisible and is dropped by the next run or prune,
    and its error neither undoes the status change nor fails the command."""
    if not dialect_of(engine).partitioned_assignments:
        return
    try:
        with engine.begin() as connection:
            locks.set_lock_timeout(connection)
            partitions.drop_orphans(connection)
    except sa.exc.DBAPIError:
        pass


def mark_abandoned(engine: sa.Engine, job: str) -> list[int]:
    """Runs of `job` still `running` while we hold the job lock belong to dead processes."""
    run = schema.run
    with engine.begin() as connection:
        ids = (
            connection.execute(sa.select(run.c.run_id).where(run.c.job == job, run.c.status == "running"))
            .scalars()
            .all()
        )
        if ids:
            connection.execute(
                sa.update(run)
                # Re-checked on update: a run that lost its lock may have committed its publish since.
                .where(run.c.run_id.in_(ids), run.c.status == "running")
                .values(status="abandoned", error="the process running it stopped before finishing", finished_at=now())
            )
    _drop_orphan_assignments(engine)
    return list(ids)


def publish_run(
    engine: sa.Engine,
    run_id: int,
    write_assignments: Callable[[sa.Connection], tuple[str, Published, ModelResult, Profile]],
    validate: Callable[[sa.Connection], Validation] | None = None,
) -> None:
    """Write everything a fit run produced and mark it succeeded, in one transaction.

    `write_assignments(connection)` writes the assignment rows first, inside the transaction (an
    engine's `assign`), and returns the input's fingerprint, the row counts and features
    (`Published`), the model and the profile, which depend on what it assigned. `validate`, when
    given, checks the segments against later behaviour once the assignments are written
    (segjob.results.validation); its figures are stored with the segments and the run."""
    with engine.begin() as connection:
        input_fingerprint, prepared, model, profile = write_assignments(connection)
        checked = validate(connection) if validate else None
        _insert_many(connection, schema.run_feature, _feature_rows(run_id, prepared))
        _insert_many(
            connection,
            schema.segment,
            [
                dict(
                    run_id=run_id,
                    segment_id=s.segment_id,
                    label=s.label,
                    size=s.size,
                    share=s.share,
                    top_features=s.top_features,
                    cluster_index=s.cluster_index,
                    **validation.segment_columns(checked, s.segment_id),
                )
                for s in profile.segments
            ],
        )
        _insert_many(
            connection,
            schema.segment_centroid,
            [dict(run_id=run_id, **vars(c)) for c in profile.centroids],
        )
        _insert_many(
            connection,
            schema.run_metric,
            [
                dict(run_id=run_id, k=m.k, name=m.name, value=_finite_or_none(m.value), sample_size=m.sample_size)
                for m in model.metrics
            ],
        )
        _insert_many(
            connection,
            schema.k_rejection,
            [dict(run_id=run_id, k=r.k, smallest_share=r.smallest_share, reason=r.reason) for r in model.rejected],
        )
        lineage.record(connection, run_id, prepared.features, prepared.original)
        _mark_succeeded(
            connection,
            run_id,
            input_fingerprint,
            prepared,
            k=model.k,
            k_reason=model.k_reason,
            algorithm=model.algorithm,
            k_criterion=model.criterion,
            **validation.run_columns(checked),
        )


def _mark_succeeded(
    connection: sa.Connection, run_id: int, input_fingerprint: str, prepared: Published, **model
) -> None:
    """Flip the run to `succeeded` with its counts, at the end of its publish transaction; an
    ordinary run (not --candidate) becomes its job's current run in the same transaction."""
    finished = connection.execute(
        sa.update(schema.run)
        .where(schema.run.c.run_id == run_id, schema.run.c.status == "running")
        .values(
            status="succeeded",
            finished_at=now(),
            heartbeat_at=now(),
            input_fingerprint=input_fingerprint,
            rows_read=prepared.rows_read,
            rows_used=prepared.rows_used,
            rows_dropped=prepared.rows_dropped,
            dropped_by_reason=prepared.dropped,
            **model,
        )
    )
    if finished.rowcount != 1:
        raise _taken_over(run_id)
    run = connection.execute(
        sa.select(schema.run.c.job, schema.run.c.candidate).where(schema.run.c.run_id == run_id)
    ).one()
    if not run.candidate:
        promotion.record_success(connection, run.job, run_id)


def _taken_over(run_id: int) -> JobLockedError:
    """The run row is no longer `running`: this process lost its job lock (e.g. its lock
    connection was ended) and a newer run of the job marked it abandoned. Its publish rolls back."""
    return JobLockedError(
        f"run {run_id} lost its job lock and was marked abandoned by a newer run of the job;"
        " nothing of it was published"
    )


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def _feature_rows(run_id: int, prepared: Published) -> list[dict]:
    return [
        dict(
            run_id=run_id,
            feature=f.name,
            position=position,
            kind=f.kind,
            source_column=f.source_column,
            level=f.level,
            impute_value=f.impute_value,
            missing_count=f.missing_count,
            center=f.center,
            scale=f.scale,
            mean=f.mean,
            std=f.std,
            min=f.min,
            max=f.max,
            transform=f.transform,
            skewness=f.skewness,
            clip_low=f.clip_low,
            clip_high=f.clip_high,
            clipped_count=f.clipped_count,
        )
        for position, f in enumerate(prepared.features)
    ]


def _insert_many(connection: sa.Connection, table: sa.Table, rows: list[dict]) -> None:
    if not rows:
        return
    for start in range(0, len(rows), _SQLITE_BATCH_ROWS):
        connection.execute(sa.insert(table), rows[start : start + _SQLITE_BATCH_ROWS])


def _nulls(values: np.ndarray) -> list[float | None]:
    """Floats for executemany, with NaN as None (NULL)."""
    return np.where(np.isnan(values), np.array(None, dtype=object), values).tolist()


def write_assignments(
    connection: sa.Connection,
    run_id: int,
    keys: np.ndarray | ExtensionArray,
    segment_ids: np.ndarray,
    distance: np.ndarray,
    second_distance: np.ndarray,
    model_probability: np.ndarray | None,
) -> None:
    """Write a run's assignment rows inside the caller's transaction (COPY on PostgreSQL)."""
    with AssignmentWriter(connection, run_id, model_probability is not None) as writer:
        for start in range(0, len(keys), _COPY_CHUNK_ROWS):
            end = start + _COPY_CHUNK_ROWS
            writer.write(
                keys[start:end],
                segment_ids[start:end],
                distance[start:end],
                second_distance[start:end],
                None if model_probability is None else model_probability[start:end],
            )


class AssignmentWriter:
    """Streams a run's assignment rows, chunk by chunk, inside the caller's transaction.

    PostgreSQL: one binary COPY into the run's standalone partition table, which gets its
    primary key and is attached when the writer closes (indexes built after the load are
    cheaper than maintained during it), so a duplicate customer key surfaces at close. Encoded
    chunks are sent by a thread of their own, so the caller prepares the next chunk while the
    server stores this one.
    SQLite: batched executemany per chunk.
    """

    def __init__(self, connection: sa.Connection, run_id: int, with_probability: bool) -> None:
        self.connection, self.run_id, self.with_probability = connection, run_id, with_probability
        self.partitioned = dialect_of(connection).partitioned_assignments
        self.rows = 0
        self._any_nan_second = False
        self._copy: psycopg.Copy | None = None

    def __enter__(self) -> AssignmentWriter:
        if not self.partitioned:
            plain_table = schema.metadata_for(self.connection.dialect.name).tables["assignment"]
            self._insert = str(sa.insert(plain_table).compile(self.connection))
            return self
        self.columns = ["run_id", "customer_key", "segment_id", "distance", "second_distance"]
        if self.with_probability:
            self.columns.append("probability")  # otherwise left out, so it defaults to NULL
        target = partitions.create(self.connection, self.run_id)  # filled standalone, attached at close
        driver = self.connection.connection.driver_connection
        assert driver is not None  # a live connection has its DBAPI connection
        cursor = driver.cursor()
        self._copy_context = cursor.copy(f"COPY {target} ({', '.join(self.columns)}) FROM STDIN (FORMAT BINARY)")
        self._copy = self._copy_context.__enter__()
        self._sender = background.Sender(self._copy.write)
        self._sender.send(pgcopy.HEADER)
        return self

    def write(
        self,
        keys: np.ndarray | ExtensionArray,
        segment_ids: np.ndarray,
        distance: np.ndarray,
        second_distance: np.ndarray,
        probability: np.ndarray | None = None,
    ) -> None:
        """Write one chunk of rows; NaN second_distance / probability are stored as NULL."""
        # Missing values are NULL in both paths: no probability (not a GMM), no second centre (k=1).
        probability = probability if probability is not None else np.full(len(keys), np.nan)
        self.rows += len(keys)
        if not self.partitioned:
            for start in range(0, len(keys), _SQLITE_BATCH_ROWS):
                end = start + _SQLITE_BATCH_ROWS
                rows = zip(
                    [self.run_id] * len(keys[start:end]),
                    keys[start:end].tolist(),
                    segment_ids[start:end].tolist(),
                    distance[start:end].tolist(),
                    _nulls(second_distance[start:end]),
                    _nulls(probability[start:end]),
                )
                self.connection.exec_driver_sql(self._insert, list(rows))
            return
        self._any_nan_second = self._any_nan_second or bool(np.isnan(second_distance).any())
        values = [
            ("int4", np.full(len(keys), self.run_id)),
            ("text", keys),
            ("int4", segment_ids),
            ("float8", distance),
            ("float8", second_distance),
            ("float8", probability),
        ]
        self._sender.send(pgcopy.encode_rows(values[: len(self.columns)]))

    def __exit__(self, exc_type, exc, traceback) -> None:
        if not self.partitioned:
            return
        if exc_type is not None:
            self._sender.abandon()
            self._copy_context.__exit__(exc_type, exc, traceback)
            return
        self._sender.send(pgcopy.TRAILER)
        try:
            self._sender.finish()
        except BaseException as error:
            self._copy_context.__exit__(type(error), error, error.__traceback__)
            raise
        self._copy_context.__exit__(None, None, None)
        partitions.attach(self.connection, self.run_id)
        if self._any_nan_second:
            # Binary COPY writes NaN as a float NaN; "no second centre" (a single segment) is NULL.
            self.connection.execute(
                sa.update(schema.assignment)
                .where(schema.assignment.c.run_id == self.run_id, schema.assignment.c.second_distance == float("nan"))
                .values(second_distance=None)
            )


def publish_score(
    engine: sa.Engine,
    run_id: int,
    input_fingerprint: str,
    prepared: PreparedData,
    model_run_id: int,
    segment_ids: np.ndarray,
    distance: np.ndarray,
    second_distance: np.ndarray,
) -> None:
    """Write a score run and mark it succeeded, in one transaction.

    The model's features and centroids are copied from the model run; its segments keep their
    ids and labels, with size and share among the scored customers.
    """
    segment = schema.segment
    with engine.begin() as connection:
        _copy_run_rows(connection, schema.run_feature, model_run_id, run_id, cleared={"psi"})
        _copy_run_rows(connection, schema.segment_centroid, model_run_id, run_id)
        ids, counts = np.unique(segment_ids, return_counts=True)
        sizes = dict(zip(ids.tolist(), counts.tolist()))
        model_segments = connection.execute(
            sa.select(segment).where(segment.c.run_id == model_run_id).order_by(segment.c.segment_id)
        ).all()
        if not model_segments:
            raise UsageError(f"model run {model_run_id} was deleted (segjob prune?) while scoring; score again")
        rows = []
        for row in model_segments:
            size = sizes.get(row.segment_id, 0)
            values = {**row._mapping, "run_id": run_id, "size": size, "share": size / len(segment_ids)}
            if "centroid_shift" in values:
                values["centroid_shift"] = None  # a score run does not move the centroids
            values.update(
                validation.segment_columns(None, row.segment_id)
            )  # the model run's next period, not this run's
            rows.append(values)
        _insert_many(connection, segment, rows)
        write_assignments(connection, run_id, prepared.keys, segment_ids, distance, second_distance, None)
        lineage.record(connection, run_id, prepared.features, prepared.original)  # drift vs the previous run
        run = schema.run
        model = connection.execute(
            sa.select(run.c.k, run.c.algorithm, run.c.k_criterion).where(run.c.run_id == model_run_id)
        ).one()
        _mark_succeeded(
            connection,
            run_id,
            input_fingerprint,
            prepared,
            k=model.k,
            k_reason=f"scored with the model of run {model_run_id} (no refit)",
            algorithm=model.algorithm,
            k_criterion=model.k_criterion,
        )


def _copy_run_rows(
    connection: sa.Connection, table: sa.Table, from_run: int, to_run: int, cleared: Container[str] = frozenset()
) -> None:
    """INSERT ... SELECT a run's rows of `table` under another run id (columns in `cleared` NULL)."""
    columns = [column for column in table.columns if column.name != "run_id"]
    values = [sa.null().label(c.name) if c.name in cleared else c for c in columns]
    connection.execute(
        sa.insert(table).from_select(
            ["run_id", *(c.name for c in columns)],
            sa.select(sa.literal(to_run, sa.Integer), *values).where(table.c.run_id == from_run),
        )
    )
