"""Choosing k: fit every candidate, score it, reject candidates with tiny segments, let a criterion pick.

Every candidate k gets inertia, silhouette (mean over customers and "macro": mean over segments),
Davies-Bouldin, Calinski-Harabasz, stability, the share of its smallest segment and a comparison
with structureless data (below). Each criterion names the k it would choose among the candidates
that were not rejected; the one given by --select decides, and all of them are kept for audit.

The default criterion, silhouette gain, is each k's silhouette minus the silhouette the same
algorithm reaches at the same k on one Gaussian blob with the data's spread (NULL_DRAWS draws of
NULL_ROWS rows along the data's principal axes). The plain silhouette favours a coarse split even
where there is no structure at all: on such a blob k=2 scores highest, so a big tight block
against everything else wins on real, skewed customer data. Subtracting what a blob gives removes
that bias (the idea of the gap statistic, Tibshirani, Walther & Hastie 2001, applied to the
silhouette; a Gaussian rather than their uniform reference, since a uniform box calls a single
Gaussian or log-normal blob structured). The gain at the chosen k is also the structure test:
below segjob.model.explain.LITTLE_STRUCTURE_GAIN the run says that its segments are cuts through one blob. The same
draws give the gap statistic (the `gap` criterion). Unstable k (stability below STABILITY_FLOOR)
are set aside before the default rule picks: stability filters, it does not select, because the
most reproducible answer is usually the coarsest (von Luxburg 2010).

Purchase histories choose by later behaviour instead (`next-period`, the default of --transactions
jobs): each candidate k is also fitted on the same features as of an earlier date and scored by how
well its segments separate what customers did afterwards (segjob.model.backtest); the fewest
segments that reach most of the gain win, among the stable candidates. Without a backtest (a short
history) the run falls back to silhouette gain and says why.

Stability is the mean adjusted Rand index between refits on random subsamples: STABILITY_PAIRS
pairs of subsamples, each STABILITY_FRACTION of the rows (drawn from at most `stability_sample`
rows), are clustered independently and compared on the rows the two share. The same pairs serve
every k, so the scores are comparable across k. 1 means the segments come out the same whatever
subsample they are fitted on; values near 0 mean they are an accident of the sample.

A candidate of the K-Means family whose smallest segments are below --min-segment-share and hold
at most MAX_LEFT_OUT_SHARE of the rows is fitted once more without their members, who are then
assigned to the nearest centre,
so a handful of extreme customers cannot cost a k by taking a centroid; it is rejected only when
a segment stays too small.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from segjob.errors import DataError
from segjob.model.algorithms import KMEANS, MINIBATCH, Clustering, Fitter, distances, knee_index
from segjob.model.backtest import PAYING_SHARE, paying_k
from segjob.model.criteria import CRITERIA, Criterion, Rule
from segjob.model.criteria import DEFAULT_CRITERION as DEFAULT_CRITERION  # re-exported: fit, tests
from segjob.model.criteria import NEXT_PERIOD as NEXT_PERIOD  # re-exported: source.purchases, tests
from segjob.model.criteria import SILHOUETTE_GAIN as SILHOUETTE_GAIN  # re-exported: fit, tests
from segjob.model.explain import little_structure_warning, plural
from segjob.progress import Progress

STABILITY_PAIRS = 3
# Distances held at once by `silhouette` (8 bytes each): 2M cells are 16 MB.
SILHOUETTE_BLOCK_CELLS = 2_000_000
STABILITY_FRACTION = 0.8
# Splitting customers in two is nearly always reproducible, so the most stable k is often the
# smallest. The stability criterion therefore takes the largest k whose stability is within this
# much of the best: the most detailed segmentation that is (about) as reproducible as any.
STABILITY_TOLERANCE = 0.02
# Below this mean adjusted Rand index between refits a k is set aside by the default rule: on
# Hennig's (2007) scale for bootstrap agreement, below 0.6 the segments are not a reliable pattern.
STABILITY_FLOOR = 0.6
# Structureless reference: with three draws of 2,000 rows the gain of structureless data stays
# within +/-0.01 (measured on log-normal blobs: -0.008 to +0.005), well below
# segjob.model.explain.LITTLE_STRUCTURE_GAIN, at ~0.04 s per draw and k (4,000 rows cost 0.1 s and chose the same k
# on every validation case).
NULL_DRAWS = 3
NULL_ROWS = 2_000
# A runner-up closer than this (in silhouette units) is called a close call in the reason: about
# the spread of the gain between repeated draws of the reference.
CLOSE_CALL = 0.01
# A segment holding at least this share of customers is called dominant: the reason says so, and
# with K-Means the segment is swept on its own to say whether it holds groups of its own.
DOMINANT_SHARE = 0.6
# A segment of fewer than 1% of customers is too small to act on; candidates that leave one are
# rejected (--min-segment-share).
DEFAULT_MIN_SEGMENT_SHARE = 0.01
# Algorithms whose segments are "nearest centre", so rows left out of a fit can be assigned later.
_CENTRE_BASED = (KMEANS, MINIBATCH)
# Customers named when a k is rejected for a tiny segment.
NAMED_CUSTOMERS = 3
# At most this share of the rows is left out of a refit: "a handful of extreme customers", not
# whole small groups that a high --min-segment-share refuses.
MAX_LEFT_OUT_SHARE = 0.02

RowDescriber = Callable[[np.ndarray], str]  # row indices of X -> "C17 (Income 666,666), ..."


def describe_row_numbers(rows: np.ndarray) -> str:
    """The default RowDescriber: row numbers, for callers that know nothing better."""
    return ", ".join(f"row {int(row)}" for row in rows)


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
    runner_up: int | None = None  # the second-best k by the deciding criterion, if it ranks them
    warning: str | None = None  # little cluster structure
    metrics: list[Metric] = field(default_factory=list)  # the above as chosen-model metrics


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


class NullReference:
    """What the clustering procedure finds in structureless data shaped like X: NULL_DRAWS
    Gaussian blobs with X's mean spread along each of X's principal axes."""

    def __init__(self, X: np.ndarray, make_fitter: Callable[[np.ndarray, int], Fitter], seed: int):
        rng = np.random.default_rng([seed, 1])  # a stream of its own, apart from the fits' seeds
        sample = X if len(X) <= NULL_ROWS else X[rng.choice(len(X), NULL_ROWS, replace=False)]
        _, spread, axes = np.linalg.svd(sample - sample.mean(axis=0), full_matrices=False)
        spread = spread / np.sqrt(max(len(sample), 1))
        self.draws = []
        for i in range(NULL_DRAWS):
            blob = (rng.standard_normal((len(sample), len(spread))) * spread) @ axes
            self.draws.append((blob, make_fitter(blob, seed + 1000 + i)))

    def measure(self, k: int, silhouette_value: float | None, inertia_per_row: float) -> list[Metric]:
        """null_silhouette and silhouette_gain (when the silhouette is known), gap and gap_sd."""
        if not self.draws or len(self.draws[0][0]) <= k:
            return []
        null_silhouettes, null_log_inertia = [], []
        for blob, fit in self.draws:
            clustering = fit(k)
            null_log_inertia.append(np.log(_inertia(blob, clustering) / len(blob)))
            value = silhouette(blob, clustering.labels, None, 0)
            if value is not None:
                null_silhouettes.append(value)
        metrics = []
        if null_silhouettes and silhouette_value is not None:
            null = float(np.mean(null_silhouettes))
            metrics += [
                Metric("null_silhouette", null, k, len(self.draws[0][0])),
                Metric("silhouette_gain", silhouette_value - null, k),
            ]
        if inertia_per_row > 0:
            gap = float(np.mean(null_log_inertia) - np.log(inertia_per_row))
            gap_sd = float(np.std(null_log_inertia) * np.sqrt(1 + 1 / len(null_log_inertia)))
            metrics += [Metric("gap", gap, k), Metric("gap_sd", gap_sd, k)]
        return metrics


def _inertia(X: np.ndarray, clustering: Clustering) -> float:
    members = clustering.labels >= 0
    return float(((X[members] - clustering.centers[clustering.labels[members]]) ** 2).sum())


def score(X: np.ndarray, clustering: Clustering, k: int | None, seed: int, silhouette_sample: int) -> list[Metric]:
    """Inertia, smallest segment share and, where defined, the cluster-quality scores (silhouette,
    macro silhouette, Davies-Bouldin, Calinski-Harabasz).

    Noise rows (label -1) are left out of every score but count in the smallest-segment share's
    denominator.
    """
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

    members = clustering.labels >= 0
    Xm, labels = X[members], clustering.labels[members]
    sizes = np.bincount(labels, minlength=clustering.k)
    metrics = [
        Metric("inertia", _inertia(X, clustering), k),
        Metric("smallest_segment_share", float(sizes.min() / len(X)) if len(sizes) else 0.0, k),
    ]
    # The scores need at least 2 clusters, and fewer clusters than rows.
    if not 2 <= clustering.k < len(Xm):
        return metrics
    sample_size = silhouette_sample if len(Xm) > silhouette_sample else None
    coefficients = silhouette_coefficients(Xm, labels, sample_size, seed)
    if coefficients is not None:  # a small sample can hold fewer than 2 clusters; then leave it out
        values, sampled_labels = coefficients
        per_segment = np.bincount(sampled_labels, weights=values) / np.bincount(sampled_labels)
        metrics.append(Metric("silhouette", float(values.mean()), k, sample_size))
        metrics.append(Metric("macro_silhouette", float(per_segment.mean()), k, sample_size))
    metrics.append(Metric("davies_bouldin", float(davies_bouldin_score(Xm, labels)), k))
    metrics.append(Metric("calinski_harabasz", float(calinski_harabasz_score(Xm, labels)), k))
    return metrics


def silhouette(X: np.ndarray, labels: np.ndarray, sample_size: int | None, seed: int) -> float | None:
    """Mean silhouette coefficient over `sample_size` rows (all when None): the value and the
    sample of scikit-learn's silhouette_score for the same seed. None when the rows hold fewer
    than 2 clusters, or a cluster per row."""
    coefficients = silhouette_coefficients(X, labels, sample_size, seed)
    return None if coefficients is None else float(coefficients[0].mean())


def silhouette_coefficients(
    X: np.ndarray, labels: np.ndarray, sample_size: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Each sampled row's silhouette coefficient and its cluster (renumbered 0..), for the rows of
    scikit-learn's silhouette_score sample, 2 to 4 times faster here; None as for `silhouette`.

    scikit-learn sums each row's distances per cluster with one bincount per row; here blocks of
    the distance matrix are multiplied by the rows' one-hot cluster matrix instead, and each
    distance is computed once, not twice.
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
    return coefficient, labels


def evaluate(
    X: np.ndarray, clustering: Clustering, k: int | None, seed: int, silhouette_sample: int, null: NullReference | None
) -> list[Metric]:
    """`score` plus, when a null reference is given, the comparison with structureless data."""
    metrics = score(X, clustering, k, seed, silhouette_sample)
    if null is not None and clustering.k >= 2:
        scored = {m.name: m.value for m in metrics}
        measured = null.measure(clustering.k, scored.get("silhouette"), scored["inertia"] / len(X))
        metrics += [Metric(m.name, m.value, k, m.sample_size) for m in measured]
    return metrics


@dataclass
class Sweep:
    """What every candidate of one K sweep is fitted and measured with."""

    X: np.ndarray
    make_fitter: Callable[[np.ndarray, int], Fitter]
    seed: int
    silhouette_sample: int
    stability: Stability | None
    null: NullReference | None
    min_segment_share: float
    algorithm: str
    describe_rows: RowDescriber = describe_row_numbers

    def run(self, ks: range, progress: Progress) -> list[Candidate]:
        """Fit and score every k in `ks`; mark candidates with empty or too small segments rejected."""
        fit = self.make_fitter(self.X, self.seed)
        candidates = []
        for k in ks:
            progress.stage(f"fitting {self.algorithm} k={k}")
            stability = self.stability.measure(k) if self.stability is not None else None
            candidate = self._candidate(k, fit(k), [stability] if stability else [])
            if candidate.rejected and self.algorithm in _CENTRE_BASED:
                candidate = self._without_tiny_segments(candidate)
            candidates.append(candidate)
            progress.done(_summary(candidate))
        return candidates

    def _candidate(self, k: int, clustering: Clustering, extra: list[Metric]) -> Candidate:
        metrics = evaluate(self.X, clustering, k, self.seed, self.silhouette_sample, self.null) + extra
        candidate = Candidate(k, clustering, metrics)
        candidate.rejected = _rejection(candidate, len(self.X), self.min_segment_share)
        return candidate

    def _without_tiny_segments(self, candidate: Candidate) -> Candidate:
        """Refit `candidate` without the members of its too-small segments, then assign them to
        the nearest centre; the refit if it is acceptable, else `candidate` rejected with the
        customers named."""
        n, k = len(self.X), candidate.k
        sizes = np.bincount(candidate.clustering.labels, minlength=candidate.clustering.k)
        tiny = np.flatnonzero(np.isin(candidate.clustering.labels, np.flatnonzero(sizes < self.min_segment_share * n)))
        if len(tiny) == 0 or len(tiny) > MAX_LEFT_OUT_SHARE * n:
            return candidate
        keep = np.ones(n, dtype=bool)
        keep[tiny] = False
        centres = self.make_fitter(self.X[keep], self.seed)(k).centers
        refit = Clustering(distances(self.X, centres).argmin(axis=1), centres)
        extra = [m for m in candidate.metrics if m.name == "stability"] + [
            Metric("fitted_without_rows", float(len(tiny)), k)
        ]
        trimmed = self._candidate(k, refit, extra)
        if trimmed.rejected is None:
            return trimmed
        # The customers furthest from the centre of all customers are the ones that took centroids.
        extreme = tiny[np.argsort(-((self.X[tiny] - self.X.mean(axis=0)) ** 2).sum(axis=1))][:NAMED_CUSTOMERS]
        named = self.describe_rows(extreme) + (", ..." if len(tiny) > len(extreme) else "")
        candidate.rejected = (
            f"{candidate.rejected}; refitted without those {plural(len(tiny), 'customer')} ({named}),"
            f" {trimmed.rejected.replace('smallest segment has', 'the smallest segment still has')};"
            " lower --min-segment-share, or pull extreme values in with --clip-outliers Z"
        )
        return candidate


def _smallest_share(candidate: Candidate) -> float:
    share = candidate.value("smallest_segment_share")
    assert share is not None  # evaluate() measures it for every candidate
    return share


def _rejection(candidate: Candidate, n: int, min_segment_share: float) -> str | None:
    if candidate.clustering.k < candidate.k:
        return f"only {candidate.clustering.k} of {candidate.k} segments have members"
    share = _smallest_share(candidate)
    if share < min_segment_share:
        size = int(round(share * n))
        shown = f"{share:.1%}" if round(share, 3) < min_segment_share else f"{share:.2%}"  # never "1.0% below 1.0%"
        return (
            f"smallest segment has {plural(size, 'customer')} ({shown}),"
            f" below --min-segment-share {min_segment_share:.1%}"
        )
    return None


def _summary(candidate: Candidate) -> str:
    parts = [
        f"{name.replace('_', ' ')} {value:.3f}"
        for name in ("silhouette", "silhouette_gain", "stability")
        if (value := candidate.value(name)) is not None
    ]
    parts.append(f"smallest segment {candidate.value('smallest_segment_share'):.1%}")
    if fitted_without := candidate.value("fitted_without_rows"):
        parts.append(f"fitted without {plural(int(fitted_without), 'extreme customer')}")
    if candidate.rejected:
        parts.append("rejected")
    return ", ".join(parts)


def choose(
    candidates: list[Candidate],
    criterion: str,
    min_segment_share: float,
    lowered_note: str = "",
    backtest_period: str = "",
    no_backtest: str = "",
) -> Choice:
    """Pick k among the candidates that were not rejected, by `criterion`, and explain the pick.

    `backtest_period` describes the backtest whose `backtest_score` metrics the candidates carry;
    `no_backtest` says why there is none (the next-period rule then falls back to silhouette gain).
    A criterion that names no k hands over to its fallback (segjob.model.criteria).
    Raises DataError when every candidate was rejected, or when no criterion can decide.
    """
    ks = f"k={candidates[0].k}..{candidates[-1].k}"
    rejected = [Rejection(c.k, _smallest_share(c), c.rejected) for c in candidates if c.rejected]
    accepted = [c for c in candidates if not c.rejected]
    if not accepted:
        smallest = ", ".join(f"k={r.k}: {r.smallest_share:.1%}" for r in rejected)
        raise DataError(
            f"every candidate {ks} leaves a segment smaller than --min-segment-share"
            f" {min_segment_share:.1%} of customers or an empty segment (smallest segment share: {smallest});"
            " lower --min-segment-share or --k-min"
        )
    chosen_by = {name: _choose_by(each, accepted) for name, each in CRITERIA.items()}
    used = CRITERIA[criterion]
    while chosen_by[used.name] is None and used.fallback is not None:
        used = CRITERIA[used.fallback]
    k = chosen_by[used.name]
    if k is None:
        raise DataError(
            f"silhouette could not be computed for any k in {ks}; set --k or raise the silhouette sample size"
        )
    candidate = next(c for c in accepted if c.k == k)
    scores = _scores(used, accepted)
    reason = f"k={k}: {_why(used, candidate)} over {ks}{lowered_note}"
    if used.rule is Rule.FEWEST_PAYING:
        listed = ", ".join(f"{c_k} {value:.3f}" for c_k, value in scores.items())
        reason += f"; backtest {backtest_period}: score by k {listed}"
    if used.name != criterion:
        reason += f" ({criterion} had no answer: {no_backtest or CRITERIA[criterion].no_answer})"
    runner_up = margin = None
    measure = used.metric.replace("_", " ")
    if used.rule is Rule.FEWEST_PAYING:
        others = [(c_k, value) for c_k, value in scores.items() if c_k != k]
        if others:
            runner_up, second = max(others, key=lambda item: (item[1], -item[0]))
            own = candidate.value(used.metric) or 0.0
            margin = abs(second - own)
            ahead = "ahead: more segments that add little" if second > own else "behind"
            reason += f"; runner-up k={runner_up} ({measure} {second:.3f}, {margin:.3f} {ahead})"
    elif used.rule is Rule.BEST and len(scores) > 1:
        (_, best), (runner_up, second) = _ranking(used, scores)[:2]
        margin = abs(best - second)
        reason += f"; runner-up k={runner_up} ({measure} {second:.3f}, {margin:.3f} behind"
        reason += ": a close call)" if margin < CLOSE_CALL else ")"
    unstable = [c.k for c in _unstable(accepted)]
    if used.stable_only and unstable and len(unstable) < len(accepted):
        reason += f"; set aside as unstable (stability below {STABILITY_FLOOR}): k={', '.join(map(str, unstable))}"
    if rejected:
        reason += f"; rejected k={', '.join(str(r.k) for r in rejected)}"
    if fitted_without := candidate.value("fitted_without_rows"):
        count = int(fitted_without)
        reason += f"; fitted without {plural(count, 'extreme customer')}, then assigned to the nearest segment"
    largest = np.bincount(candidate.clustering.labels[candidate.clustering.labels >= 0]).max() / len(
        candidate.clustering.labels
    )
    if largest >= DOMINANT_SHARE:
        reason += f"; the largest segment holds {largest:.0%} of customers"
    metrics = []
    if runner_up is not None:
        assert margin is not None  # set together with runner_up
        metrics += [Metric("runner_up_k", float(runner_up), None), Metric("runner_up_margin", float(margin), None)]
    warning = little_structure_warning(k, {m.name: m.value for m in candidate.metrics})
    return Choice(candidate, used.name, chosen_by, rejected, reason, runner_up, warning, metrics)


def _why(criterion: Criterion, candidate: Candidate) -> str:
    measured = {m.name: m.value for m in reversed(candidate.metrics)}  # the first of each name, as Candidate.value
    return criterion.explain({**measured, "paying_share": PAYING_SHARE})


def _unstable(accepted: list[Candidate]) -> list[Candidate]:
    return [c for c in accepted if (s := c.value("stability")) is not None and s < STABILITY_FLOOR]


def _scores(criterion: Criterion, accepted: list[Candidate]) -> dict[int, float]:
    """k -> the finite values of the criterion's metric, ascending k; for a criterion that
    considers stable candidates only, of those (all of them when none is stable)."""
    if criterion.stable_only:
        unstable = _unstable(accepted)
        accepted = [c for c in accepted if c not in unstable] or accepted
    return {c.k: value for c in accepted if (value := c.value(criterion.metric)) is not None and np.isfinite(value)}


def _ranking(criterion: Criterion, scores: dict[int, float]) -> list[tuple[int, float]]:
    """(k, value) best first; on a tie the smaller k comes first."""
    sign = 1.0 if criterion.higher_is_better else -1.0
    return sorted(scores.items(), key=lambda item: (-sign * item[1], item[0]))


def _choose_by(criterion: Criterion, accepted: list[Candidate]) -> int | None:
    """The k `criterion` would choose among `accepted` (ascending k), or None."""
    match criterion.rule:
        case Rule.KNEE:
            return _elbow(accepted)
        case Rule.GAP:
            return _gap(accepted)
        case Rule.FEWEST_PAYING:
            return paying_k(_scores(criterion, accepted))
        case Rule.MOST_DETAILED_NEAR_BEST:
            scores = _scores(criterion, accepted)
            if not scores:
                return None
            best = max(scores.values())
            return max(k for k, value in scores.items() if value >= best - STABILITY_TOLERANCE)
        case Rule.BEST:
            ranking = _ranking(criterion, _scores(criterion, accepted))
            return ranking[0][0] if ranking else None


def _gap(accepted: list[Candidate]) -> int | None:
    """Tibshirani, Walther & Hastie's rule: the smallest k with gap(k) >= gap(k+1) - sd(k+1)."""
    scored = [(c.k, gap, c.value("gap_sd")) for c in accepted if (gap := c.value("gap")) is not None]
    for (k, gap, _), (_, next_gap, next_sd) in zip(scored, scored[1:]):
        assert next_sd is not None  # gap_sd is measured together with gap
        if gap >= next_gap - next_sd:
            return k
    return None


def _elbow(accepted: list[Candidate]) -> int | None:
    """Kneedle's knee of inertia against k (a convex, decreasing curve); None without one."""
    ks = [c.k for c in accepted]
    inertia = [c.value("inertia") for c in accepted]
    if len(ks) < 3:
        return None
    knee = knee_index(np.array(ks), np.array(inertia), increasing=False)
    return None if knee is None else ks[knee]
