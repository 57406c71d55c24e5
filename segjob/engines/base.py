"""The seam between the pipeline and an engine.

The pipeline owns a run's lifecycle and every decision made on the driver: prepare the sample,
choose k and fit, match segment ids to the last run, profile, publish in one transaction. An
engine owns how rows move, in three steps the pipeline calls in this order:

1. `read_sample`: the rows the driver fits on (every row when the input is small).
2. `refine` (only with --full-fit): improve the sampled centres with passes over every row.
3. `assign`, inside the publish transaction: assign every row to its segment, write the
   assignments into the run's own table, and return what the profile and the run's record need
   (exact sizes and means, population statistics, row counts, the input's fingerprint).

An engine never writes anything but assignment rows and never commits; a new engine (Spark)
implements these three methods and the published tables and views stay the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
import sqlalchemy as sa

from segjob.model.choose_k import Metric
from segjob.model.fit import ModelResult
from segjob.prepare.columns import FeatureParams, PreparedData
from segjob.progress import Progress


@dataclass
class Sample:
    """The rows the driver prepares and fits on."""

    frame: pd.DataFrame
    rows: int  # rows of the whole input
    every_row: bool  # the sample is the whole input: the fit's own labels are the assignments


@dataclass
class Fitted:
    """What the driver decided, handed to `Engine.assign`."""

    sample: PreparedData  # the prepared sample: its feature parameters rebuild every row
    model: ModelResult
    segment_ids: dict[int, int]  # model label (-1: noise) -> stable segment id


@dataclass
class Assigned:
    """What every row added up to, once assigned and written (see results.publish.Published)."""

    fingerprint: str  # digest of every row read
    features: list[FeatureParams]  # the sample's parameters with population statistics over every row
    original: np.ndarray  # original-unit rows the stored decile bins come from (all, or the sample)
    rows_read: int
    dropped: dict[str, int]
    rows_used: int
    # Exact sizes and member means by model label + 1 (0: noise); None when they are the sample's own.
    totals: tuple[np.ndarray, np.ndarray] | None = None
    metrics: list[Metric] = field(default_factory=list)  # measured over every row (e.g. full_inertia)

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())


class Engine(Protocol):
    """How one fit run's rows are read, assigned and written."""

    def read_sample(self, progress: Progress) -> Sample:
        """The rows to fit on."""
        ...

    def refine(self, sample: PreparedData, model: ModelResult, progress: Progress) -> ModelResult:
        """`model` with its centres refined over every row (--full-fit), or `model` itself."""
        ...

    def assign(self, connection: sa.Connection, run_id: int, fitted: Fitted, progress: Progress) -> Assigned:
        """Assign every row and write run `run_id`'s assignments on `connection` (not committed)."""
        ...


# --full-fit stops as scikit-learn's KMeans does by default: when the centres move less than this
# times the mean variance of the (scaled) features, summed over centres as squared distances.
FULL_FIT_TOLERANCE = 1e-4
FULL_FIT_MAX_ITERATIONS = 100


def full_fit_tolerance(X: np.ndarray) -> float:
    return FULL_FIT_TOLERANCE * float(np.var(X, axis=0).mean())


def lloyd_update(centers: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, float]:
    """One Lloyd step from the sums and counts of the rows nearest each centre: the new centres
    and how far they moved (summed squared distance). An empty centre stays where it was, so k
    does not change under the user's feet."""
    updated = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers)
    return updated, float(((updated - centers) ** 2).sum())


def stable_id_lookup(fitted: Fitted) -> np.ndarray:
    """Model label + 1 (0: noise) -> stable segment id, as an array to index with labels + 1."""
    stable = np.zeros(fitted.model.k + 1, dtype=np.int64)
    for label, segment_id in fitted.segment_ids.items():
        stable[label + 1] = segment_id
    return stable
