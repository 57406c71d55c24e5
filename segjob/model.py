"""Model stage: choose K, fit K-Means, assign every row. No database here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Metric:
    name: str  # inertia, silhouette, davies_bouldin, calinski_harabasz
    value: float
    k: int | None  # candidate k of the sweep; None for the chosen model
    sample_size: int | None = None  # rows the metric was computed on, when a sample


@dataclass
class ModelResult:
    k: int
    labels: np.ndarray  # (n,) int, 0..k-1, 0 = largest segment
    centers: np.ndarray  # (k, n_features) float64, scaled units, row i = label i
    distance: np.ndarray  # (n,) distance to own centre (scaled units)
    second_distance: np.ndarray  # (n,) distance to the second-nearest centre
    metrics: list[Metric]
    k_reason: str  # human-readable: how k was chosen


def fit(
    X: np.ndarray,
    k: int | None,
    k_min: int = 2,
    k_max: int = 10,
    seed: int = 0,
    silhouette_sample: int = 10_000,
) -> ModelResult:
    """Fit K-Means with a fixed k, or choose k in k_min..k_max by silhouette when k is None."""
    raise NotImplementedError
