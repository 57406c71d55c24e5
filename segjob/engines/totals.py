"""Running sums over every assigned row: exact segment sizes and means, population statistics.

An engine adds each chunk it assigns; engines that assign in parallel (Spark) add per partition
and merge the partitions' totals on the driver.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from segjob.model.algorithms import label_sums
from segjob.prepare.columns import FeatureParams, PreparedData


@dataclass
class Totals:
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
                f,
                mean=float(mean[j]),
                std=float(std[j]),
                min=float(self.low[j]),
                max=float(self.high[j]),
                missing_count=int(self.missing[j]),
            )
            for j, f in enumerate(features)
        ]

    def count_missing(self, frame: pd.DataFrame, features: list[FeatureParams]) -> None:
        """Add the NULL cells of each model column's source column in `frame` (all rows read)."""
        missing = {name: _missing_cells(frame[name]) for name in dict.fromkeys(f.source_column for f in features)}
        self.missing += np.array([missing[f.source_column] for f in features], dtype=np.int64)

    def merge(self, other: Totals) -> None:
        """Add another part's totals (the same k and features) to these."""
        self.rows_read += other.rows_read
        for reason, count in other.dropped.items():
            self.dropped[reason] = self.dropped.get(reason, 0) + count
        self.inertia += other.inertia
        self.sizes += other.sizes
        self.sums += other.sums
        self.shifted_sum += other.shifted_sum
        self.shifted_squares += other.shifted_squares
        self.low = np.minimum(self.low, other.low)
        self.high = np.maximum(self.high, other.high)
        self.missing += other.missing


def _missing_cells(column: pd.Series) -> int:
    if column.dtype == np.float64:  # what the read casts numeric columns to
        return int(np.count_nonzero(np.isnan(column.to_numpy())))
    return int(column.isna().sum())
