"""segjob's own engine: every row through this process, in memory or streaming.

`engine_for` picks one of two ways from the input's size:

- In memory (`InMemory`): inputs up to `--fit-sample` rows, and every algorithm but K-Means. The
  whole input is read once; the sample is every row, so the fit's own labels are the assignments.
- Streaming (`Streaming`): K-Means on more rows than `--fit-sample` (default 200,000), so memory
  does not grow with the table.

  1. Sample: each source row is kept with probability fit_sample / rows (a seeded Bernoulli
     sample, drawn by PostgreSQL itself); the pipeline prepares it, which fixes imputation
     values, clipping bounds, log1p choices, one-hot levels and the scaler's centre and scale,
     and fits on it (K sweep included; every K-Means fit keeps the best of several k-means++
     initialisations, see segjob.model.algorithms).
  2. `--full-fit` only: exact Lloyd iterations over all rows, one streaming pass each, starting
     from the sampled centres, until the centres move less than scikit-learn's default tolerance.
  3. Assign: one more streaming pass, inside the publish transaction. Each chunk is rebuilt with
     `prepare.columns.apply_params` from the sample's parameters, assigned to the nearest centre,
     written to the assignment COPY, and added to per-segment totals (exact sizes and means) and
     to exact population statistics (mean, std, min, max in original units). Segment medians and
     the stored decile bins come from the sample. On PostgreSQL the reading of the next chunk and
     the sending of the previous one run in threads of their own (segjob.background).

  A duplicate customer id anywhere in the source surfaces as the assignment primary key's
  violation (PostgreSQL: when the run's partition is indexed after the load) and becomes a
  DataError, described by one grouping query over the source, so the run fails and nothing of it
  is visible.
"""

from __future__ import annotations

import hashlib
import sys
from contextlib import closing

import numpy as np
import pandas as pd
import sqlalchemy as sa

from segjob.arrow_text import text_buffers
from segjob.config import JobSpec
from segjob.engines.base import (
    FULL_FIT_MAX_ITERATIONS,
    Assigned,
    Engine,
    Fitted,
    Sample,
    full_fit_tolerance,
    lloyd_update,
    stable_id_lookup,
)
from segjob.engines.totals import Totals
from segjob.errors import DataError
from segjob.model.algorithms import KMEANS, distances, label_sums, nearest_two
from segjob.model.choose_k import Metric
from segjob.model.fit import ModelResult, refitted
from segjob.prepare.columns import PreparedData, apply_params, duplicate_ids_error
from segjob.progress import Progress
from segjob.results.publish import AssignmentWriter, write_assignments
from segjob.source.tables import Source, count_rows, input_fingerprint, iter_source, read_source, repeated_ids


def engine_for(engine: sa.Engine, spec: JobSpec, source: Source) -> Engine:
    """Streaming when K-Means meets more rows than the fit sample; otherwise in memory (other
    algorithms always: their labels come from the fit itself, not from the nearest centre)."""
    if spec.algorithm == KMEANS:
        rows = count_rows(engine, source)
        if rows > spec.fit_sample:
            return Streaming(engine, spec, source, rows)
    return InMemory(engine, spec, source)


class InMemory:
    """The whole input in memory: the sample is every row, and the fit's labels are the assignments."""

    def __init__(self, engine: sa.Engine, spec: JobSpec, source: Source) -> None:
        self.engine, self.spec, self.source = engine, spec, source
        self.fingerprint = ""

    def read_sample(self, progress: Progress) -> Sample:
        progress.stage(f"reading {self.source.description}")
        frame = read_source(self.engine, self.spec, self.source, progress.rows)
        progress.done(f"{len(frame):,} rows")
        self.fingerprint = input_fingerprint(frame)
        return Sample(frame, rows=len(frame), every_row=True)

    def refine(self, sample: PreparedData, model: ModelResult, progress: Progress) -> ModelResult:
        return model  # fitted on every row already

    def assign(self, connection: sa.Connection, run_id: int, fitted: Fitted, progress: Progress) -> Assigned:
        sample, model = fitted.sample, fitted.model
        stable = stable_id_lookup(fitted)
        write_assignments(
            connection,
            run_id,
            sample.keys,
            stable[model.labels + 1],
            model.distance,
            model.second_distance,
            model.probability,
        )
        return Assigned(
            self.fingerprint, sample.features, sample.original, sample.rows_read, sample.dropped, sample.rows_used
        )


class Streaming:
    """A sampled fit, then every row streamed from the source through assignment into the results."""

    def __init__(self, engine: sa.Engine, spec: JobSpec, source: Source, rows: int) -> None:
        self.engine, self.spec, self.source, self.rows = engine, spec, source, rows

    def read_sample(self, progress: Progress) -> Sample:
        fraction = min(1.0, self.spec.fit_sample / self.rows)
        progress.stage(f"sampling {self.source.description}")
        with closing(
            iter_source(self.engine, self.spec, self.source, sample_fraction=fraction, seed=self.spec.seed)
        ) as chunks:
            frame = pd.concat(list(chunks), ignore_index=True)
        progress.done(f"{len(frame):,} of {self.rows:,} rows ({fraction:.2%} uniform sample)")
        return Sample(frame, rows=self.rows, every_row=False)

    def refine(self, sample: PreparedData, model: ModelResult, progress: Progress) -> ModelResult:
        """Exact Lloyd iterations over all rows (one streaming pass each) from the model's centres."""
        centers = model.centers.copy()
        tolerance = full_fit_tolerance(sample.X)
        iterations = 0
        for iterations in range(1, FULL_FIT_MAX_ITERATIONS + 1):
            progress.stage(f"full fit: Lloyd iteration {iterations}", total=self.rows)
            sums = np.zeros_like(centers)
            counts = np.zeros(len(centers), dtype=np.int64)
            read = 0
            with closing(iter_source(self.engine, self.spec, self.source)) as chunks:
                for frame in chunks:
                    chunk = apply_params(frame, self.spec.id, sample.features, check_unique=False)
                    labels = distances(chunk.X, centers).argmin(axis=1)
                    counts += np.bincount(labels, minlength=len(centers))
                    sums += label_sums(chunk.X, labels, len(centers))
                    read += chunk.rows_read
                    progress.rows(read)
            centers, shift = lloyd_update(centers, sums, counts)
            progress.done(f"centres moved {shift:.3g} (tolerance {tolerance:.3g})")
            if shift <= tolerance:
                break
        note = f"; refined by {iterations} exact Lloyd iterations over all rows (--full-fit)"
        return refitted(sample.X, model, centers, note)

    def assign(self, connection: sa.Connection, run_id: int, fitted: Fitted, progress: Progress) -> Assigned:
        spec, sample, model = self.spec, fitted.sample, fitted.model
        _release_freed_memory()
        stable = stable_id_lookup(fitted)
        shift = np.array([f.mean for f in sample.features])
        progress.stage("assigning and writing", total=self.rows)
        totals = Totals(model.k, len(sample.features))
        digest = hashlib.sha256(",".join([spec.id, *spec.features, *spec.categorical]).encode())
        try:
            with AssignmentWriter(connection, run_id, with_probability=False) as writer:
                with closing(iter_source(self.engine, spec, self.source)) as chunks:
                    for frame in chunks:
                        _add_to_digest(digest, frame)
                        totals.count_missing(frame, sample.features)
                        # Duplicate ids across all chunks surface at the primary key instead.
                        chunk = apply_params(frame, spec.id, sample.features, check_unique=False)
                        labels, own, second = nearest_two(chunk.X, model.centers)
                        totals.add(chunk, labels, own, shift)
                        writer.write(chunk.keys, stable[labels + 1], own, second)
                        progress.rows(totals.rows_read)
        except sa.exc.IntegrityError as exc:
            raise _duplicate_ids(self.engine, spec, self.source, exc) from None
        if totals.rows_used == 0:
            raise DataError(f"no usable rows: 0 of {totals.rows_read:,} rows remain after dropping rows")
        progress.done(f"{totals.rows_used:,} assignments, inertia {totals.inertia:,.1f}")
        return Assigned(
            digest.hexdigest(),
            totals.population(sample.features, shift),
            sample.original,
            totals.rows_read,
            {reason: count for reason, count in totals.dropped.items() if count},
            totals.rows_used,
            totals=(totals.sizes, totals.member_means()),
            metrics=[Metric("full_inertia", totals.inertia, None, totals.rows_used)],
        )


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
