"""Clustering algorithms behind one shape: scaled rows in, labels and centres out. No database.

Every algorithm returns a `Clustering` whose labels are 0..k-1 (-1 marks DBSCAN noise) and whose
centres are in scaled units: the algorithm's own centres for K-Means, mini-batch K-Means and the
Gaussian mixture, member means for Ward agglomerative clustering and DBSCAN. Segments that end up
empty are dropped, so `k` counts the segments that have members.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from segjob.errors import DataError

KMEANS, MINIBATCH, GMM, AGGLOMERATIVE, DBSCAN_NAME = (
    "kmeans",
    "minibatch-kmeans",
    "gmm",
    "agglomerative",
    "dbscan",
)
ALGORITHMS = (KMEANS, MINIBATCH, GMM, AGGLOMERATIVE, DBSCAN_NAME)

# Ward linkage needs the condensed distance matrix: n^2/2 float64. At 5,000 rows that peaks near
# 200 MB (10,000 rows: 830 MB measured), so larger inputs build the tree on a random sample of
# this many rows and every other row joins the segment with the nearest member mean.
AGGLOMERATIVE_MAX_ROWS = 5_000
# Rows whose k-distance is measured to place the DBSCAN eps knee; the curve's shape is settled
# long before this, and each row costs a nearest-neighbour query.
DBSCAN_KNEE_SAMPLE = 10_000
# Restarts: K-Means' 10 is scikit-learn's classic default; the others are cheaper per init or
# used on large inputs where fewer restarts matter less.
KMEANS_N_INIT = 10
KMEANS_INIT_SAMPLE = 50_000
MINIBATCH_N_INIT = 3
GMM_N_INIT = 3


@dataclass
class Clustering:
    labels: np.ndarray  # (n,) int32, 0..k-1; -1 = noise (DBSCAN only)
    centers: np.ndarray  # (k, n_features) float64, scaled units
    probability: np.ndarray | None = None  # (n,) membership probability of the own segment (GMM)

    @property
    def k(self) -> int:
        return len(self.centers)


Fitter = Callable[[int], Clustering]

_preloading: threading.Thread | None = None


def preload_in_background() -> None:
    """Start importing scikit-learn and SciPy (about 2 s) in a thread of its own, so that what a
    run does before fitting, mostly waiting for the database (checks, row count, sample read),
    hides it. `wait_for_preload` before the first fit; this module imports them lazily."""
    global _preloading
    if _preloading is None:
        _preloading = threading.Thread(target=_import_numeric_libraries, name="segjob-preload")
        _preloading.start()


def wait_for_preload() -> None:
    if _preloading is not None:
        _preloading.join()


def _import_numeric_libraries() -> None:
    try:
        import scipy.cluster.hierarchy  # noqa: F401
        import scipy.optimize  # noqa: F401
        import sklearn.cluster  # noqa: F401
        import sklearn.metrics  # noqa: F401
        import sklearn.mixture  # noqa: F401
        import sklearn.neighbors  # noqa: F401
    except Exception:
        pass  # the fit's own import raises it again, where it can be reported


def fitter(algorithm: str, X: np.ndarray, seed: int) -> Fitter:
    """A function that clusters X into k segments with `algorithm` (not DBSCAN, which finds k).

    The agglomerative fitter builds the Ward tree once and cuts it for every k it is asked for.
    """
    if algorithm == KMEANS:
        return lambda k: _kmeans(X, k, seed)
    if algorithm == MINIBATCH:
        from sklearn.cluster import MiniBatchKMeans

        return lambda k: _centroid_model(MiniBatchKMeans(n_clusters=k, n_init=MINIBATCH_N_INIT, random_state=seed), X)
    if algorithm == GMM:
        return lambda k: _gmm(X, k, seed)
    if algorithm == AGGLOMERATIVE:
        return _ward_fitter(X, seed)
    raise ValueError(f"no k-based fitter for algorithm {algorithm!r}")


def _centroid_model(model, X: np.ndarray) -> Clustering:
    """Fit a scikit-learn K-Means-like model."""
    model.fit(X)
    return _from_labels_and_centers(model.labels_, model.cluster_centers_)


def _kmeans(X: np.ndarray, k: int, seed: int) -> Clustering:
    """K-Means, best of KMEANS_N_INIT k-means++ restarts. On more than KMEANS_INIT_SAMPLE rows the
    restarts run on a seeded subsample of that size and only the best one's centres are iterated
    on all rows: the restarts choose among local optima, which the subsample shows as well as
    the full data, at a fraction of the cost (200k x 6: 0.5 s instead of 2 s)."""
    from sklearn.cluster import KMeans

    if len(X) <= KMEANS_INIT_SAMPLE:
        return _centroid_model(KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed), X)
    rows = np.random.default_rng(seed).choice(len(X), KMEANS_INIT_SAMPLE, replace=False)
    best = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed).fit(X[rows])
    return kmeans_from(X, best.cluster_centers_, seed)


def kmeans_from(X: np.ndarray, centers: np.ndarray, seed: int) -> Clustering:
    """K-Means on X started from `centers` (one start): a fit found on a sample, finished on all rows."""
    from sklearn.cluster import KMeans

    return _centroid_model(KMeans(n_clusters=len(centers), init=centers, n_init=1, random_state=seed), X)


def _gmm(X: np.ndarray, k: int, seed: int) -> Clustering:
    from sklearn.mixture import GaussianMixture

    model = GaussianMixture(n_components=k, n_init=GMM_N_INIT, random_state=seed).fit(X)
    probabilities = model.predict_proba(X)
    labels = probabilities.argmax(axis=1)
    probability = probabilities[np.arange(len(X)), labels]
    return _from_labels_and_centers(labels, model.means_, probability)


def _ward_fitter(X: np.ndarray, seed: int) -> Fitter:
    from scipy.cluster.hierarchy import fcluster, ward

    n = len(X)
    sample = None
    if n > AGGLOMERATIVE_MAX_ROWS:
        sample = np.sort(np.random.default_rng(seed).choice(n, AGGLOMERATIVE_MAX_ROWS, replace=False))
    tree = ward(X if sample is None else X[sample])

    def fit(k: int) -> Clustering:
        # fcluster numbers clusters from 1; "maxclust" gives at most k (fewer only on exact ties).
        tree_labels = fcluster(tree, k, criterion="maxclust") - 1
        if sample is None:
            return _with_member_means(X, tree_labels)
        centers = _member_means(X[sample], tree_labels, tree_labels.max() + 1)
        labels = _nearest(X, centers)
        labels[sample] = tree_labels  # rows in the tree keep their cluster
        return _with_member_means(X, labels)

    return fit


def dbscan(X: np.ndarray, eps: float, min_samples: int) -> Clustering:
    """DBSCAN with member means as centres; noise rows get label -1."""
    from sklearn.cluster import DBSCAN

    labels = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(X)
    return _with_member_means(X, labels)


def dbscan_min_samples(n_features: int) -> int:
    """Neighbours (including the point) that make a core point: 2 x dimensions, at least 5.

    The 2 x dimensions rule is from Sander et al. (1998) and Schubert et al. (2017, "DBSCAN
    revisited"); 5 is scikit-learn's default and keeps low-dimensional data from fragmenting.
    """
    return max(5, 2 * n_features)


def estimate_eps(X: np.ndarray, min_samples: int, seed: int) -> float:
    """eps at the knee of the sorted k-distance curve (distance to the min_samples-th neighbour).

    Uses Kneedle on up to DBSCAN_KNEE_SAMPLE rows, each measured against all rows. Raises
    DataError when the curve has no knee (then --eps must be given).
    """
    from sklearn.neighbors import NearestNeighbors

    n = len(X)
    if n <= min_samples:
        raise DataError(f"DBSCAN needs more than {min_samples} rows (min_samples) to estimate eps, got {n}")
    rows = X
    if n > DBSCAN_KNEE_SAMPLE:
        rows = X[np.random.default_rng(seed).choice(n, DBSCAN_KNEE_SAMPLE, replace=False)]
    # The query point itself is its own nearest neighbour at distance 0, as DBSCAN counts it too.
    distances = NearestNeighbors(n_neighbors=min_samples).fit(X).kneighbors(rows)[0][:, -1]
    curve = np.sort(distances)
    knee = knee_index(np.arange(len(curve)), curve, increasing=True)
    eps = float(curve[knee]) if knee is not None else 0.0
    if knee is None or eps <= 0:
        raise DataError(
            "DBSCAN could not choose eps: the k-distance curve has no knee (the data has no clear"
            " density step); give --eps"
        )
    return eps


def knee_index(x: np.ndarray, y: np.ndarray, increasing: bool) -> int | None:
    """Index of the knee of a convex curve y(x) (x ascending) by Kneedle (Satopää et al., 2011,
    sensitivity S=1, no smoothing, the first knee found); None when the curve has none.

    Both axes are scaled to [0, 1] and the curve is turned so that it falls from (0, 1) to
    (1, 0); the knee is where it lies furthest below the straight line between those points:
    the first local maximum of the difference curve after which the difference drops below
    that maximum minus S times the mean x step, before a local minimum comes.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    u, v = (x - x.min()) / np.ptp(x), (y - y.min()) / np.ptp(y)
    if increasing:  # mirror x so that the curve falls
        u, v = (1 - u)[::-1], v[::-1]
    difference = (1 - v) - u
    # Local extrema, each end compared with its one neighbour (plateaus count, as in Kneedle).
    before, after = np.r_[difference[0], difference[:-1]], np.r_[difference[1:], difference[-1]]
    is_max = (difference >= before) & (difference >= after)
    is_min = (difference <= before) & (difference <= after)
    step = 1 / (len(x) - 1)  # the mean step of u, which spans [0, 1]
    maxima = np.flatnonzero(is_max)
    if not maxima.size:
        return None
    threshold, threshold_at, active = 0.0, None, False
    for i in range(maxima[0], len(x) - 1):
        if is_max[i]:
            threshold, threshold_at, active = difference[i] - step, i, True
        if is_min[i]:
            threshold, active = 0.0, False
        if active and difference[i + 1] < threshold:
            assert threshold_at is not None  # active is only set together with threshold_at
            return len(x) - 1 - threshold_at if increasing else threshold_at
    return None


def _from_labels_and_centers(
    labels: np.ndarray, centers: np.ndarray, probability: np.ndarray | None = None
) -> Clustering:
    """Drop centres without members and number the remaining ones 0..k-1."""
    used = np.bincount(labels, minlength=len(centers)) > 0
    new_label = np.cumsum(used) - 1
    return Clustering(
        labels=new_label[labels].astype(np.int32),
        centers=np.asarray(centers, dtype=np.float64)[used],
        probability=probability,
    )


def _with_member_means(X: np.ndarray, labels: np.ndarray) -> Clustering:
    """Label -1 stays noise; other labels are renumbered densely and get their member means."""
    members = labels >= 0
    present, dense = np.unique(labels[members], return_inverse=True)
    new_labels = np.full(len(labels), -1, dtype=np.int32)
    new_labels[members] = dense
    return Clustering(new_labels, _member_means(X[members], dense, len(present)))


def _member_means(X: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    return label_sums(X, labels, k) / np.bincount(labels, minlength=k)[:, None]


def label_sums(X: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(k, n_features) column sums of the rows of X with each label 0..k-1."""
    return np.column_stack([np.bincount(labels, weights=X[:, j], minlength=k) for j in range(X.shape[1])])


def _nearest(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    return np.argmin(distances(X, centers), axis=1).astype(np.int32)


def nearest_two(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index of each row's nearest centre, the distance to it, and to the second nearest (NaN if one centre)."""
    squared = _squared_distances(X, centers)
    labels = np.zeros(len(X), dtype=np.intp)
    nearest = squared[0].copy()
    second = np.full(len(X), np.inf if len(centers) > 1 else np.nan)
    # One pass per centre over whole columns (ties go to the lower index, as argmin's do).
    for index in range(1, len(centers)):
        to_centre = squared[index]
        np.minimum(second, np.maximum(nearest, to_centre), out=second)
        labels[to_centre < nearest] = index
        np.minimum(nearest, to_centre, out=nearest)
    return labels, np.sqrt(nearest, out=nearest), np.sqrt(second, out=second)


def distances(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """(n, k) Euclidean distances from every row to every centre."""
    return np.sqrt(_squared_distances(X, centers)).T


def _squared_distances(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """(k, n) squared distances, summed column by column over X transposed: whole contiguous
    columns make this ~5 times faster than differences of rows, whose few values each are too
    short for numpy's loops (column-major X, as apply_params makes it, needs no transposed copy)."""
    columns = np.ascontiguousarray(X.T)
    out = np.zeros((len(centers), len(X)))
    step = np.empty(len(X))
    for total, center in zip(out, centers):
        for column, value in zip(columns, center):
            np.subtract(column, value, out=step)
            np.square(step, out=step)
            total += step
    return out
