"""Choosing k: fit every candidate, score it, reject candidates with tiny segments, let a criterion pick.

Every candidate k gets inertia, silhouette, Davies-Bouldin, Calinski-Harabasz, stability and the
share of its smallest segment. Each criterion names the k it would choose among the candidates
that were not rejected; the one given by --select decides, and all of them are kept for audit.

Stability is the mean adjusted Rand index between refits on random subsamples: STABILITY_PAIRS
pairs of subsamples, each STABILITY_FRACTION of the rows (drawn from at most `stability_sample`
rows), are clustered independently and compared on the rows the two share. The same pairs serve
every k, so the scores are comparable across k. 1 means the segments come out the same whatever
subsample they are fitted on; values near 0 mean they are an accident of the sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from segjob.algorithms import Clustering, Fitter, knee_index
from segjob.errors import DataError
from segjob.progress import Progress

SILHOUETTE, ELBOW, DAVIES_BOULDIN, CALINSKI_HARABASZ, STABILITY = (
    "silhouette", "elbow", "davies-bouldin", "calinski-harabasz", "stability",
)
CRITERIA = (SILHOUETTE, ELBOW, DAVIES_BOULDIN, CALINSKI_HARABASZ, STABILITY)

STABILITY_PAIRS = 3
# Distances held at once by `silhouette` (8 bytes each): 2M cells are 16 MB.
SILHOUETTE_BLOCK_CELLS = 2_000_000
STABILITY_FRACTION = 0.8
# Splitting customers in two is nearly always reproducible, so the most stable k is often the
# smallest. The stability criterion therefore takes the largest k whose stability is within this
# much of the best: the most detailed segmentation that is (about) as reproducible as any.
STABILITY_TOLERANCE = 0.02
# A segment of fewer than 1% of customers is too small to act on; candidates that leave one are
# rejected (--min-segment-share).
DEFAULT_MIN_SEGMENT_SHARE = 0.01


@dataclass(frozen=True)
class Metric:
    name: str  # inertia, silhouette, davies_bouldin, calinski_harabasz, stability, ...
    value: float
    k: int | None  # candidate k of the sweep; None for the chosen model
    sample_size: int | None = None  # rows the metric was computed on, when a sample


@dataclass
class Candidate:
    k: int
    clustering: Clustering
    metrics: list[Metric]
    rejected: str | None = None  # why this k may not be chosen; None when it may

    def value(self, name: str) -> float | None:
        return next((m.value for m in self.metrics if m.name == name), None)


@dataclass(frozen=True)
class Rejection:
    k: int
    smallest_share: float
    reason: str


@dataclass
class Choice:
    candidate: Candidate
    criterion: str  # the criterion that decided (the requested one, unless it had no answer)
    chosen_by: dict[str, int | None]  # k each criterion would choose; None: it has no answer
    rejected: list[Rejection]
    reason: str  # human-readable


class Stability:
    """Stability of a clustering procedure on fixed pairs of subsamples of X."""

    def __init__(self, X: np.ndarray, make_fitter: Callable[[np.ndarray, int], Fitter], seed: int, sample: int):
        rng = np.random.default_rng(seed)
        n = len(X)
        base = np.arange(n) if n <= sample else rng.choice(n, sample, replace=False)
        self.size = int(round(STABILITY_FRACTION * len(base)))
        self.pairs = []
        for i in range(STABILITY_PAIRS):
            a, b = (np.sort(rng.choice(base, self.size, replace=False)) for _ in range(2))
            # Each side gets a seed of its own, so the refits differ in initialisation as well.
            self.pairs.append(((a, make_fitter(X[a], seed + 2 * i + 1)), (b, make_fitter(X[b], seed + 2 * i + 2))))

    def measure(self, k: int) -> Metric | None:
        """Mean adjusted Rand index of the k-segment refits over the pairs; None if too few rows."""
        if self.size < 2 or self.size <= k:
            return None
        from sklearn.metrics import adjusted_rand_score

        scores = []
        for (a, fit_a), (b, fit_b) in self.pairs:
            _, in_a, in_b = np.intersect1d(a, b, assume_unique=True, return_indices=True)
            labels_a, labels_b = fit_a(k).labels[in_a], fit_b(k).labels[in_b]
            scores.append(adjusted_rand_score(labels_a, labels_b))
        return Metric("stability", float(np.mean(scores)), k, self.size)


def score(X: np.ndarray, clustering: Clustering, k: int | None, seed: int, silhouette_sample: int) -> list[Metric]:
    """Inertia, smallest segment share and, where defined, the three cluster-quality scores.

    Noise rows (label -1) are left out of every score but count in the smallest-segment share's
    denominator.
    """
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

    members = clustering.labels >= 0
    Xm, labels = X[members], clustering.labels[members]
    inertia = float(((Xm - clustering.centers[labels]) ** 2).sum())
    sizes = np.bincount(labels, minlength=clustering.k)
    metrics = [
        Metric("inertia", inertia, k),
        Metric("smallest_segment_share", float(sizes.min() / len(X)) if len(sizes) else 0.0, k),
    ]
    # The scores need at least 2 clusters, and fewer clusters than rows.
    if not 2 <= clustering.k < len(Xm):
        return metrics
    sample_size = silhouette_sample if len(Xm) > silhouette_sample else None
    value = silhouette(Xm, labels, sample_size, seed)
    if value is not None:  # a small sample can hold fewer than 2 clusters; then leave it out
        metrics.append(Metric("silhouette", value, k, sample_size))
    metrics.append(Metric("davies_bouldin", float(davies_bouldin_score(Xm, labels)), k))
    metrics.append(Metric("calinski_harabasz", float(calinski_harabasz_score(Xm, labels)), k))
    return metrics


def silhouette(X: np.ndarray, labels: np.ndarray, sample_size: int | None, seed: int) -> float | None:
    """Mean silhouette coefficient over `sample_size` rows (all when None): the value and the
    sample of scikit-learn's silhouette_score for the same seed, 2 to 4 times faster here.

    scikit-learn sums each row's distances per cluster with one bincount per row; here blocks of
    the distance matrix are multiplied by the rows' one-hot cluster matrix instead, and each
    distance is computed once, not twice. None when the rows hold fewer than 2 clusters, or a
    cluster per row.
    """
    from sklearn.metrics.pairwise import euclidean_distances

    if sample_size is not None:
        rows = np.random.RandomState(seed).permutation(len(X))[:sample_size]
        X, labels = X[rows], labels[rows]
    _, labels = np.unique(labels, return_inverse=True)
    n, k = len(X), int(labels.max(initial=-1)) + 1
    if not 2 <= k <= n - 1:
        return None
    members = np.zeros((n, k))
    members[np.arange(n), labels] = 1.0
    sums = np.zeros((n, k))  # row i: the sum of its distances to the rows of each cluster
    block = max(1, SILHOUETTE_BLOCK_CELLS // n)
    for start in range(0, n, block):
        end = min(start + block, n)
        # Distances are symmetric: a block of rows is measured against itself and later rows
        # only, and the later rows' sums take the transposed part.
        to_later = euclidean_distances(X[start:end], X[start:])
        to_later[np.arange(end - start), np.arange(end - start)] = 0.0  # exactly 0 to itself
        sums[start:end] += to_later @ members[start:]
        sums[end:] += to_later[:, end - start :].T @ members[start:end]
    sizes = members.sum(axis=0)
    own_size = sizes[labels]
    with np.errstate(invalid="ignore", divide="ignore"):
        within = sums[np.arange(n), labels] / (own_size - 1)
        to_cluster = sums / sizes
        to_cluster[np.arange(n), labels] = np.inf
        nearest = to_cluster.min(axis=1)
        coefficient = np.nan_to_num((nearest - within) / np.maximum(within, nearest))
    coefficient[own_size == 1] = 0.0  # a row alone in its cluster scores 0 by definition
    return float(coefficient.mean())


def sweep(
    X: np.ndarray,
    fit: Fitter,
    ks: range,
    seed: int,
    silhouette_sample: int,
    stability: Stability | None,
    min_segment_share: float,
    progress: Progress,
    algorithm: str,
) -> list[Candidate]:
    """Fit and score every k in `ks`; mark candidates with empty or too small segments rejected."""
    candidates = []
    for k in ks:
        progress.stage(f"fitting {algorithm} k={k}")
        clustering = fit(k)
        metrics = score(X, clustering, k, seed, silhouette_sample)
        if stability is not None and (measured := stability.measure(k)) is not None:
            metrics.append(measured)
        candidate = Candidate(k, clustering, metrics)
        candidate.rejected = _rejection(candidate, len(X), min_segment_share)
        candidates.append(candidate)
        progress.done(_summary(candidate))
    return candidates


def _rejection(candidate: Candidate, n: int, min_segment_share: float) -> str | None:
    if candidate.clustering.k < candidate.k:
        return f"only {candidate.clustering.k} of {candidate.k} segments have members"
    share = candidate.value("smallest_segment_share")
    if share < min_segment_share:
        size = int(round(share * n))
        return (
            f"smallest segment has {size:,} customers ({share:.1%}),"
            f" below --min-segment-share {min_segment_share:.1%}"
        )
    return None


def _summary(candidate: Candidate) -> str:
    parts = [
        f"{name} {value:.3f}"
        for name in ("silhouette", "stability")
        if (value := candidate.value(name)) is not None
    ]
    parts.append(f"smallest segment {candidate.value('smallest_segment_share'):.1%}")
    if candidate.rejected:
        parts.append("rejected")
    return ", ".join(parts)


# Why a criterion may name no k (then silhouette decides).
_NO_ANSWER = {
    ELBOW: "the inertia curve has no elbow",
    STABILITY: "stability could not be measured",
    DAVIES_BOULDIN: "Davies-Bouldin could not be computed",
    CALINSKI_HARABASZ: "Calinski-Harabasz could not be computed",
    SILHOUETTE: "silhouette could not be computed",
}


def choose(candidates: list[Candidate], criterion: str, min_segment_share: float, lowered_note: str = "") -> Choice:
    """Pick k among the candidates that were not rejected, by `criterion`.

    Raises DataError when every candidate was rejected, or when no criterion can decide.
    """
    ks = f"k={candidates[0].k}..{candidates[-1].k}"
    rejected = [
        Rejection(c.k, c.value("smallest_segment_share"), c.rejected) for c in candidates if c.rejected
    ]
    accepted = [c for c in candidates if not c.rejected]
    if not accepted:
        smallest = ", ".join(f"k={r.k}: {r.smallest_share:.1%}" for r in rejected)
        raise DataError(
            f"every candidate {ks} leaves a segment smaller than --min-segment-share"
            f" {min_segment_share:.1%} of customers or an empty segment (smallest segment share: {smallest});"
            " lower --min-segment-share or --k-min"
        )
    chosen_by = {name: _choose_by(name, accepted) for name in CRITERIA}
    used = criterion
    if chosen_by[used] is None:
        used = SILHOUETTE
    if chosen_by[used] is None:
        raise DataError(
            f"silhouette could not be computed for any k in {ks}; set --k or raise the silhouette sample size"
        )
    k = chosen_by[used]
    candidate = next(c for c in accepted if c.k == k)
    reason = f"k={k}: {_why(used, candidate)} over {ks}"
    if used != criterion:
        reason += f" ({criterion} had no answer: {_NO_ANSWER[criterion]})"
    if rejected:
        reason += f", rejecting k={', '.join(str(r.k) for r in rejected)}"
    return Choice(candidate, used, chosen_by, rejected, reason + lowered_note)


def _why(criterion: str, candidate: Candidate) -> str:
    if criterion == SILHOUETTE:
        return f"best silhouette ({candidate.value('silhouette'):.3f})"
    if criterion == ELBOW:
        return "elbow of the inertia curve (Kneedle)"
    if criterion == DAVIES_BOULDIN:
        return f"lowest Davies-Bouldin ({candidate.value('davies_bouldin'):.3f})"
    if criterion == CALINSKI_HARABASZ:
        return f"highest Calinski-Harabasz ({candidate.value('calinski_harabasz'):.1f})"
    return f"most detailed stable segmentation (stability {candidate.value('stability'):.3f})"


def _choose_by(criterion: str, accepted: list[Candidate]) -> int | None:
    """The k `criterion` would choose among `accepted` (ascending k), or None."""
    if criterion == ELBOW:
        return _elbow(accepted)
    metric = {SILHOUETTE: "silhouette", DAVIES_BOULDIN: "davies_bouldin",
              CALINSKI_HARABASZ: "calinski_harabasz", STABILITY: "stability"}[criterion]
    scored = [(c.k, value) for c in accepted if (value := c.value(metric)) is not None and np.isfinite(value)]
    if not scored:
        return None
    if criterion == STABILITY:
        best = max(value for _, value in scored)
        return max(k for k, value in scored if value >= best - STABILITY_TOLERANCE)
    sign = -1.0 if criterion == DAVIES_BOULDIN else 1.0  # lower Davies-Bouldin is better
    # max() keeps the first of equal values: on a tie the smaller k wins.
    return max(scored, key=lambda item: sign * item[1])[0]


def _elbow(accepted: list[Candidate]) -> int | None:
    """Kneedle's knee of inertia against k (a convex, decreasing curve); None without one."""
    ks = [c.k for c in accepted]
    inertia = [c.value("inertia") for c in accepted]
    if len(ks) < 3:
        return None
    knee = knee_index(np.array(ks), np.array(inertia), increasing=False)
    return None if knee is None else ks[knee]
