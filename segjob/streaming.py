"""Large inputs: fit on a uniform sample, then stream every row from the source through
assignment into the results, so memory does not grow with the table.

Used for K-Means runs whose source holds more rows than `--fit-sample` (default 200,000):

1. Sample: each source row is kept with probability fit_sample / rows (a seeded Bernoulli
   sample, drawn by PostgreSQL itself). `prepare` on the sample fixes imputation values,
   clipping bounds, log1p choices, one-hot levels and the scaler's centre and scale.
2. Fit: `model.fit` on the sample's model columns, K sweep included; every K-Means fit keeps the
   best of several k-means++ initialisations (algorithms.KMEANS_N_INIT, tried on a subsample of
   algorithms.KMEANS_INIT_SAMPLE rows, the best iterated on the whole sample).
3. `--full-fit` only: exact Lloyd iterations over all rows, one streaming pass each, starting
   from the sampled centres, until the centres move less than scikit-learn's default tolerance.
4. Assign and publish: one more streaming pass, inside the publish transaction. Each chunk is
   rebuilt with `prepare.apply_params` from the sample's parameters, assigned to the nearest
   centre, written to the assignment COPY, and added to per-segment totals (exact sizes and
   means) and to exact population statistics (mean, std, min, max in original units). Segment
   medians and the stored decile bins come from the sample. On PostgreSQL the reading of the
   next chunk and the sending of the previous one run in threads of their own (background.py).

A duplicate customer id anywhere in the source surfaces as the assignment primary key's
violation (PostgreSQL: when the run's partition is indexed after the load) and becomes a
DataError, described by one grouping query over the source, so the run fails and nothing of it
is visible.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa

from segjob import lineage, results
from segjob.arrow_text import text_buffers
from segjob.algorithms import KMEANS, distances, label_sums, nearest_two
from segjob.choose_k import Metric
from segjob.config import JobSpec
from segjob.errors import DataError
from segjob.model import ModelResult, fit, refitted
from segjob.prepare import (
    FeatureParams, PreparedData, PrepareOptions, apply_params, duplicate_ids_error, prepare,
)
from segjob.profile import Vocabulary, profile
from segjob.progress import Progress
from segjob.source import Source, iter_source, repeated_ids
from segjob.validation import Validation

# scikit-learn's KMeans default: stop when the centres move less than this times the mean
# variance of the (scaled) features, summed over centres as squared distances.
FULL_FIT_TOLERANCE = 1e-4
FULL_FIT_MAX_ITERATIONS = 100


@dataclass
class StreamedRows:
    """What publish needs of a streamed run's rows (see results.Published)."""

    features: list[FeatureParams]
    original: np.ndarray  # the fit sample in original units: stored decile bins come from it
    rows_read: int
    dropped: dict[str, int]
    rows_used: int

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())


@dataclass
class _Totals:
    """Running sums over every assigned row, in original units."""

    k: int
    n_features: int
    rows_read: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    inertia: float = 0.0

    def __post_init__(self) -> None:
        self.sizes = np.zeros(self.k + 1, dtype=np.int64)  # by model label + 1 (0: noise, unused here)
        self.sums = np.zeros((self.k + 1, self.n_features))
        self.shifted_sum = np.zeros(self.n_features)
        self.shifted_squares = np.zeros(self.n_features)
        self.low = np.full(self.n_features, np.inf)
        self.high = np.full(self.n_features, -np.inf)
        self.missing = np.zeros(self.n_features, dtype=np.int64)

    def add(self, chunk: PreparedData, labels: np.ndarray, own: np.ndarray, shift: np.ndarray) -> None:
        self.rows_read += chunk.rows_read
        for reason, count in chunk.dropped.items():
            self.dropped[reason] = self.dropped.get(reason, 0) + count
        self.sizes += np.bincount(labels + 1, minlength=self.k + 1)
        self.sums += label_sums(chunk.original, labels + 1, self.k + 1)
        # Sums of values shifted by the sample mean keep the variance free of cancellation.
        shifted = chunk.original - shift
        self.shifted_sum += shifted.sum(axis=0)
        self.shifted_squares += (shifted**2).sum(axis=0)
        if len(chunk.original):
            self.low = np.minimum(self.low, chunk.original.min(axis=0))
            self.high = np.maximum(self.high, chunk.original.max(axis=0))
        self.inertia += float((own**2).sum())

    @property
    def rows_used(self) -> int:
        return int(self.sizes.sum())

    def member_means(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sums / self.sizes[:, None]

    def population(self, features: list[FeatureParams], shift: np.ndarray) -> list[FeatureParams]:
        """`features` with exact mean/std/min/max over all rows used (scaler parameters unchanged)."""
        n = max(self.rows_used, 1)
        mean_shift = self.shifted_sum / n
        variance = np.maximum(self.shifted_squares / n - mean_shift**2, 0.0)
        constant = self.low == self.high
        mean = np.where(constant, self.low, shift + mean_shift)
        std = np.where(constant, 0.0, np.sqrt(variance))
        return [
            dataclasses.replace(
                f, mean=float(mean[j]), std=float(std[j]), min=float(self.low[j]), max=float(self.high[j]),
                missing_count=int(self.missing[j]),
            )
            for j, f in enumerate(features)
        ]


def should_stream(spec: JobSpec, rows: int) -> bool:
    """Stream when K-Means meets more rows than the fit sample; other algorithms stay in memory."""
    return spec.algorithm == KMEANS and rows > spec.fit_sample


def fit_and_publish(
    engine: sa.Engine,
    spec: JobSpec,
    source: Source,
    run_id: int,
    rows: int,
    progress: Progress,
    fit_progress: Progress,
    vocabulary: Vocabulary | None = None,
    validate: Callable[[sa.Connection], Validation] | None = None,
) -> None:
    """Sample, fit, (refine,) then assign and publish every row of `source` in one streaming pass.

    `validate` checks the segments against later behaviour in the publish transaction, joining
    the assignment rows just written (segjob.validation)."""
    fraction = min(1.0, spec.fit_sample / rows)
    progress.stage(f"sampling {source.description}")
    with closing(iter_source(engine, spec, source, sample_fraction=fraction, seed=spec.seed)) as chunks:
        frame = pd.concat(list(chunks), ignore_index=True)
    progress.done(f"{len(frame):,} of {rows:,} rows ({fraction:.2%} uniform sample)")

    progress.stage("preparing")
    options = PrepareOptions.from_spec(spec)
    sample = prepare(frame, spec.id, options)
    del frame
    progress.done(f"{sample.rows_used:,} sample rows used, {sample.X.shape[1]} model columns (fitted on the sample)")
    results.heartbeat(engine, run_id)

    model = fit(
        sample.X, spec.k, spec.k_min, spec.k_max, spec.seed, spec.silhouette_sample,
        algorithm=spec.algorithm, select=spec.select, min_segment_share=spec.min_segment_share,
        eps=spec.eps, stability_sample=spec.stability_sample, progress=fit_progress,
        describe_rows=sample.describe_rows,
    )
    model.k_reason += f" (fitted on a uniform sample of {sample.rows_used:,} of {rows:,} rows)"
    if spec.full_fit:
        model = _refine(engine, spec, source, rows, sample, model, progress)
        results.heartbeat(engine, run_id)
    model.metrics.append(Metric("sample_size", float(sample.rows_used), None))
    _release_freed_memory()

    stable_ids = lineage.stable_segment_ids(engine, spec.job, sample.features, model)
    stable = np.zeros(model.k + 1, dtype=np.int64)
    for label, segment_id in stable_ids.items():
        stable[label + 1] = segment_id
    shift = np.array([f.mean for f in sample.features])

    def assign_all(connection: sa.Connection):
        progress.stage("assigning and writing", total=rows)
        totals = _Totals(model.k, len(sample.features))
        digest = hashlib.sha256(",".join([spec.id, *spec.features, *spec.categorical]).encode())
        try:
            with results.AssignmentWriter(connection, run_id, with_probability=False) as writer:
                with closing(iter_source(engine, spec, source)) as chunks:
                    for frame in chunks:
                        _add_to_digest(digest, frame)
                        _count_missing(totals, frame, sample.features)
                        # Duplicate ids across all chunks surface at the primary key instead.
                        chunk = apply_params(frame, spec.id, sample.features, check_unique=False)
                        labels, own, second = nearest_two(chunk.X, model.centers)
                        totals.add(chunk, labels, own, shift)
                        writer.write(chunk.keys, stable[labels + 1], own, second)
                        progress.rows(totals.rows_read)
        except sa.exc.IntegrityError as exc:
            raise _duplicate_ids(engine, spec, source, exc) from None
        if totals.rows_used == 0:
            raise DataError(f"no usable rows: 0 of {totals.rows_read:,} rows remain after dropping rows")
        progress.done(f"{totals.rows_used:,} assignments, inertia {totals.inertia:,.1f}")
        progress.stage("publishing")
        model.metrics.append(Metric("full_inertia", totals.inertia, None, totals.rows_used))
        features = totals.population(sample.features, shift)
        described = dataclasses.replace(sample, features=features)
        segments = profile(
            described, model, spec.segment_labels, vocabulary, segment_ids=stable_ids,
            totals=(totals.sizes, totals.member_means()),
        )
        rows_published = StreamedRows(
            features=features, original=sample.original, rows_read=totals.rows_read,
            dropped={reason: count for reason, count in totals.dropped.items() if count},
            rows_used=totals.rows_used,
        )
        return digest.hexdigest(), rows_published, model, segments

    results.publish_streamed(engine, run_id, assign_all, validate)
    progress.done(f"run {run_id}: {model.k} segments")


def _refine(
    engine: sa.Engine, spec: JobSpec, source: Source, rows: int, sample: PreparedData, model: ModelResult,
    progress: Progress,
) -> ModelResult:
    """Exact Lloyd iterations over all rows (one streaming pass each) from the model's centres."""
    centers = model.centers.copy()
    tolerance = FULL_FIT_TOLERANCE * float(np.var(sample.X, axis=0).mean())
    iterations = 0
    for iterations in range(1, FULL_FIT_MAX_ITERATIONS + 1):
        progress.stage(f"full fit: Lloyd iteration {iterations}", total=rows)
        sums = np.zeros_like(centers)
        counts = np.zeros(len(centers), dtype=np.int64)
        read = 0
        with closing(iter_source(engine, spec, source)) as chunks:
            for frame in chunks:
                chunk = apply_params(frame, spec.id, sample.features, check_unique=False)
                labels = distances(chunk.X, centers).argmin(axis=1)
                counts += np.bincount(labels, minlength=len(centers))
                sums += label_sums(chunk.X, labels, len(centers))
                read += chunk.rows_read
                progress.rows(read)
        # An empty centre stays where it was, so k does not change under the user's feet.
        updated = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers)
        shift = float(((updated - centers) ** 2).sum())
        centers = updated
        progress.done(f"centres moved {shift:.3g} (tolerance {tolerance:.3g})")
        if shift <= tolerance:
            break
    note = f"; refined by {iterations} exact Lloyd iterations over all rows (--full-fit)"
    return refitted(sample.X, model, centers, note)


def _release_freed_memory() -> None:
    """Hand the memory that sampling and fitting freed back to the system before streaming.

    glibc keeps freed blocks for reuse, and the streaming pass's threads allocate from arenas of
    their own, so without this the pass's working set comes on top of the fit's: ~40 MB more
    peak memory. Capping the arenas keeps the threads' blocks reusable by each other.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None)  # the symbols already loaded, the C library's among them
    if not hasattr(libc, "malloc_trim"):  # not glibc: nothing to do
        return
    m_arena_max = -8  # from glibc's malloc.h
    libc.mallopt(m_arena_max, 2)
    libc.malloc_trim(0)


def _add_to_digest(digest, frame: pd.DataFrame) -> None:
    """Feed a chunk's values to the input fingerprint straight from their buffers (hashing them
    with pandas costs about as much as assigning them)."""
    for name in frame.columns:
        column = frame[name]
        if column.dtype == np.float64:
            digest.update(np.ascontiguousarray(column.to_numpy()))
            continue
        buffers = text_buffers(column.astype("string").array)
        if buffers is None:  # no Arrow: text without pyarrow behind it
            digest.update(pd.util.hash_pandas_object(column, index=False).to_numpy())
            continue
        offsets, data, valid = buffers
        digest.update(np.diff(offsets))
        digest.update(data[offsets[0] : offsets[-1]])
        if valid is not None:
            digest.update(np.packbits(valid))


def _count_missing(totals: _Totals, frame: pd.DataFrame, features: list[FeatureParams]) -> None:
    """NULL cells per model column's source column, over all rows read."""
    missing = {name: _missing_cells(frame[name]) for name in dict.fromkeys(f.source_column for f in features)}
    totals.missing += np.array([missing[f.source_column] for f in features], dtype=np.int64)


def _missing_cells(column: pd.Series) -> int:
    if column.dtype == np.float64:  # what the read casts numeric columns to
        return int(np.count_nonzero(np.isnan(column.to_numpy())))
    return int(column.isna().sum())


def _duplicate_ids(engine: sa.Engine, spec: JobSpec, source: Source, exc: sa.exc.IntegrityError) -> DataError:
    """The assignment primary key's complaint, described as `prepare` describes duplicate ids."""
    repeated = repeated_ids(engine, source, spec.id)
    if repeated is not None:
        return duplicate_ids_error(spec.id, *repeated)
    # The source changed since it was read: say what the primary key saw.
    detail = getattr(getattr(exc.orig, "diag", None), "message_detail", None) or ""
    # PostgreSQL: "Key (customer_key, run_id)=(00042, 7) is duplicated."
    example = detail.partition(")=(")[2].rpartition(")")[0].rpartition(", ")[0]
    shown = f' (for example "{example}")' if example else ""
    return DataError(
        f'duplicate customer ids in column "{spec.id}": some ids appear more than once{shown}; ids must be unique'
    )
