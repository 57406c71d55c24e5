"""A uniform sample of a run's customers for the report's customer pictures.

The run's source is read again with the stored job spec; a uniform sample of at most `sample`
rows (fixed seed: the run's) gets its model columns rebuilt from the stored parameters
(prepare.columns.apply_params), and each sampled customer is coloured by the segment the run
assigned it (assignment table, joined on customer_key). Customers the run did not assign (new
since, or dropped by it) are left out and counted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from segjob.errors import DataError
from segjob.prepare.columns import apply_params
from segjob.progress import Progress
from segjob.results.stored import StoredModel
from segjob.source.purchases import transaction_source
from segjob.source.tables import describe_source, iter_source
from segjob.store import db, schema

DEFAULT_SAMPLE = 5_000  # customers drawn for the scatter and per-customer silhouette plots
# Customer keys per IN (...) lookup: far below SQLite's bound-variable limit (999 on old builds).
_LOOKUP_BATCH = 500


class EmptySource(DataError):
    """The run's source holds no rows any more."""


@dataclass
class CustomerSample:
    """Sampled customers that the run assigned: model columns, original values, stored segment."""

    X: np.ndarray  # (n, model columns) scaled as the run scaled them
    original: np.ndarray  # (n, model columns) original units
    segment: np.ndarray  # (n,) segment id from the assignment table
    source_rows: int  # rows the source holds now
    sampled: int  # rows drawn from them
    usable: int  # sampled rows whose model columns could be rebuilt
    source_description: str

    @property
    def matched(self) -> int:
        return len(self.segment)


def customer_sample(engine: sa.Engine, model: StoredModel, sample: int, progress: Progress) -> CustomerSample:
    """At most `sample` customers of the run's source, rebuilt as the run built them, with their segments."""
    spec = model.spec
    frame, source_rows, description = _read_sample(engine, model, sample, progress)
    rows = apply_params(frame, spec.id, model.features)
    segment_of = _assigned_segments(engine, model.run_id, rows.keys.tolist())
    matched = np.array([key in segment_of for key in rows.keys], dtype=bool)
    segment = np.array([segment_of[key] for key in rows.keys[matched]], dtype=np.int64)
    return CustomerSample(
        X=rows.X[matched],
        original=rows.original[matched],
        segment=segment,
        source_rows=source_rows,
        sampled=len(frame),
        usable=len(rows.keys),
        source_description=description,
    )


def _read_sample(engine: sa.Engine, model: StoredModel, sample: int, progress: Progress) -> tuple[Any, int, str]:
    """(a uniform sample of at most `sample` source rows, rows in the source, its description)."""
    spec = model.spec
    progress.stage(f"reading customers from {spec.source_description}")
    if spec.transactions:
        # The features as the run built them: the as-of date it resolved, not "the latest day now".
        as_of = (spec.transaction_features or {}).get("as_of") or spec.as_of
        spec, source = transaction_source(engine, dataclasses.replace(spec, as_of=as_of))
    else:
        source = describe_source(engine, spec)
    with db.translate_errors(engine), closing(iter_source(engine, spec, source)) as chunks:
        frame, rows = uniform_sample(chunks, sample, spec.seed, progress.rows)
    if not rows:
        raise EmptySource(f"{source.description} holds no rows now")
    assert frame is not None  # uniform_sample returns None only when it saw no rows
    progress.done(f"{rows:,} rows, {len(frame):,} sampled")
    return frame, rows, source.description


def uniform_sample(
    chunks: Iterable[pd.DataFrame], size: int, seed: int, progress: Callable[[int], None] | None = None
) -> tuple[pd.DataFrame | None, int]:
    """A uniform sample without replacement of at most `size` rows of all `chunks`, in source order,
    and the number of rows seen (None when there were none). Memory: `size` rows plus one chunk.

    Every row draws a random key from a generator seeded with `seed`; the `size` smallest keys win,
    so each subset of `size` rows is equally likely and the same rows in the same order give the
    same sample.
    """
    rng = np.random.default_rng(seed)
    kept: pd.DataFrame | None = None
    keys = np.empty(0)
    rows = 0
    for chunk in chunks:
        rows += len(chunk)
        if progress:
            progress(rows)
        frame = chunk if kept is None else pd.concat([kept, chunk], ignore_index=True)
        keys = np.concatenate([keys, rng.random(len(chunk))])
        if len(frame) > size:
            smallest = np.sort(np.argpartition(keys, size)[:size])
            frame, keys = frame.iloc[smallest].reset_index(drop=True), keys[smallest]
        kept = frame
    return kept, rows


def _assigned_segments(engine: sa.Engine, run_id: int, keys: list[str]) -> dict[str, int]:
    assignment = schema.assignment
    found: dict[str, int] = {}
    with db.translate_errors(engine), engine.connect() as connection:
        for start in range(0, len(keys), _LOOKUP_BATCH):
            batch = keys[start : start + _LOOKUP_BATCH]
            rows = connection.execute(
                sa.select(assignment.c.customer_key, assignment.c.segment_id).where(
                    assignment.c.run_id == run_id, assignment.c.customer_key.in_(batch)
                )
            )
            found.update((row.customer_key, row.segment_id) for row in rows)
    return found
