"""Model stage: choose K, fit K-Means, assign every row. No database here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from segjob.errors import DataError, UsageError


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
    """Fit K-Means with a fixed k, or choose k in k_min..k_max by silhouette when k is None.

    With k None every candidate k is fitted and scored; the best silhouette wins (ties go to the
    smaller k) and the whole sweep is returned in `metrics`. Labels are renumbered so that 0 is
    the largest segment. The same X and seed always give the same result.

    Raises UsageError for impossible k options and DataError when X has too few (distinct) rows.
    """
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    if k is not None:
        if k < 2:
            raise UsageError(f"--k must be at least 2, got {k}")
        if n < k:
            raise DataError(f"only {n} usable rows, fewer than k={k}; lower --k or check the input")
        distinct = _count_distinct(X)
        if distinct < k:
            raise DataError(
                f"only {distinct} distinct rows (customers with different feature values) among"
                f" {n} usable rows, fewer than k={k}; lower --k or choose features that vary more"
            )
        model = _kmeans(X, k, seed)
        scores = _scores(X, model, seed, silhouette_sample, k)
        chosen = _chosen_metrics(scores)
        return _result(X, model, scores + chosen, f"k={k}: fixed by --k")

    if k_min < 2:
        raise UsageError(f"--k-min must be at least 2, got {k_min}")
    if k_min > k_max:
        raise UsageError(f"--k-min ({k_min}) must not be greater than --k-max ({k_max})")
    distinct = _count_distinct(X)
    if distinct < 3:
        raise DataError(
            f"choosing k needs at least 3 distinct rows, but the {n} usable rows hold only"
            f" {distinct}; set --k or check the input"
        )
    # Silhouette is only defined for fewer clusters than points, so stop one below the count.
    top = min(k_max, distinct - 1)
    if top < k_min:
        raise DataError(
            f"only {distinct} distinct rows, too few to try k={k_min}..{k_max}"
            f" (k must be below the number of distinct rows); lower --k-min or set --k"
        )

    sweep: list[Metric] = []
    best = None  # (silhouette, model); only the best model is kept, each holds n labels
    for candidate in range(k_min, top + 1):
        model = _kmeans(X, candidate, seed)
        scores = _scores(X, model, seed, silhouette_sample, candidate)
        sweep += scores
        silhouette = next((m.value for m in scores if m.name == "silhouette"), None)
        # Strictly greater: on a tie the smaller k, seen first, stays.
        if silhouette is not None and (best is None or silhouette > best[0]):
            best = (silhouette, model)
    if best is None:
        raise DataError(
            f"silhouette could not be computed for any k in {k_min}..{top}; set --k"
            " or raise the silhouette sample size"
        )
    silhouette, model = best
    k = model.n_clusters
    chosen = _chosen_metrics([m for m in sweep if m.k == k])
    reason = f"k={k}: best silhouette ({silhouette:.3f}) over k={k_min}..{top}"
    if top < k_max:
        reason += f" (k_max lowered to {top}: only {distinct} distinct rows)"
    return _result(X, model, sweep + chosen, reason)


def _count_distinct(X: np.ndarray) -> int:
    return len(np.unique(X, axis=0)) if len(X) else 0


def _kmeans(X: np.ndarray, k: int, seed: int) -> KMeans:
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit(X)


def _scores(
    X: np.ndarray, model: KMeans, seed: int, silhouette_sample: int, k: int | None
) -> list[Metric]:
    """Inertia and, where they are defined, the three cluster-quality scores of one fit."""
    metrics = [Metric("inertia", float(model.inertia_), k)]
    labels = model.labels_
    n_labels = len(np.unique(labels))
    # The scores need at least 2 clusters, and fewer clusters than rows.
    if not 2 <= n_labels < len(X):
        return metrics
    sample_size = silhouette_sample if len(X) > silhouette_sample else None
    try:
        silhouette = silhouette_score(X, labels, sample_size=sample_size, random_state=seed)
        metrics.append(Metric("silhouette", float(silhouette), k, sample_size))
    except ValueError:
        pass  # a small sample can hold fewer than 2 clusters; leave silhouette out
    metrics.append(Metric("davies_bouldin", float(davies_bouldin_score(X, labels)), k))
    metrics.append(Metric("calinski_harabasz", float(calinski_harabasz_score(X, labels)), k))
    return metrics


def _chosen_metrics(scores: list[Metric]) -> list[Metric]:
    """The chosen model's metrics: its sweep entries again with k=None."""
    return [Metric(m.name, m.value, None, m.sample_size) for m in scores]


def _result(X: np.ndarray, model: KMeans, metrics: list[Metric], k_reason: str) -> ModelResult:
    """Renumber the clusters (0 = largest, ties by centre coordinates) and measure distances."""
    k = model.n_clusters
    centers = model.cluster_centers_
    sizes = np.bincount(model.labels_, minlength=k)
    # np.lexsort sorts by its last key first: size descending, then centre coordinates.
    order = np.lexsort([*centers.T[::-1], -sizes])
    new_label = np.empty(k, dtype=np.int64)
    new_label[order] = np.arange(k)

    distances = model.transform(X)[:, order]
    labels = new_label[model.labels_]
    rows = np.arange(len(X))
    own = distances[rows, labels]
    distances[rows, labels] = np.inf
    return ModelResult(
        k=k,
        labels=labels,
        centers=centers[order].astype(np.float64),
        distance=own,
        second_distance=distances.min(axis=1),
        metrics=metrics,
        k_reason=k_reason,
    )
