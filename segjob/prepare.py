"""Prepare stage: raw customer rows -> clean, scaled feature matrix plus the parameters to redo it.

No database here: takes a DataFrame, returns arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from segjob.errors import DataError

MissingPolicy = Literal["drop", "median", "mean"]
ScalerName = Literal["standard", "robust", "minmax", "none"]


@dataclass(frozen=True)
class PrepareOptions:
    features: list[str]
    categorical: list[str] = field(default_factory=list)
    missing: MissingPolicy = "drop"
    scaler: ScalerName = "standard"


@dataclass
class FeatureParams:
    """How one model column was built; enough to rebuild it for new rows without refitting."""

    name: str  # model column name: the source column, or "column=level" for a one-hot level
    kind: Literal["numeric", "categorical"]
    source_column: str
    level: str | None  # categorical level this one-hot column encodes
    impute_value: float | None  # value that replaced missing cells (None: rows were dropped instead)
    missing_count: int  # cells that were missing among the rows read
    center: float  # scaled = (original - center) / scale
    scale: float
    mean: float  # population statistics over the rows used, original units
    std: float
    min: float
    max: float


@dataclass
class PreparedData:
    keys: np.ndarray  # customer keys as str, one per used row
    X: np.ndarray  # (rows_used, n_features) float64, scaled
    original: np.ndarray  # (rows_used, n_features) float64, original units (one-hot as 0/1)
    features: list[FeatureParams]
    rows_read: int
    dropped: dict[str, int]  # reason -> rows dropped

    @property
    def rows_used(self) -> int:
        return len(self.keys)

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())


def prepare(frame: pd.DataFrame, id_column: str, options: PrepareOptions) -> PreparedData:
    """Clean and scale the rows of `frame` (the id column, numeric features, categorical columns)."""
    raise NotImplementedError
