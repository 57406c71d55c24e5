"""Model stage: choose K, fit the chosen algorithm, assign every row. No database here.

The algorithms are in `segjob.model.algorithms`, the K sweep and its criteria in `segjob.model.choose_k`;
this module validates k, runs them, and numbers the segments in a stable order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from segjob.errors import DataError, UsageError
from segjob.model.algorithms import (
    AGGLOMERATIVE,
    AGGLOMERATIVE_MAX_ROWS,
    DBSCAN_NAME,
    KMEANS,
    MINIBATCH,
    Clustering,
    dbscan,
    dbscan_min_samples,
    distances,
    estimate_eps,
    fitter,
    kmeans_from,
    wait_for_preload,
)
from segjob.model.backtest import Backtest, curve
from segjob.model.choose_k import (
    DEFAULT_CRITERION,
    DEFAULT_MIN_SEGMENT_SHARE,
    DOMINANT_SHARE,
    SILHOUETTE_GAIN,
    Metric,
    NullReference,
    Rejection,
    RowDescriber,
    Stability,
    Sweep,
    choose,
    describe_row_numbers,
    evaluate,
    score,
)
from segjob.model.explain import little_structure_warning
from segjob.progress import Progress, Silent

__all__ = ["Metric", "ModelResult", "Rejection", "fit"]

# Stability refits run on subsamples of at most this many rows (80% each), like the silhouette.
DEFAULT_STABILITY_SAMPLE = 10_000
FIT_THREADS = 1
# K-Means sweeps on more rows run on a seeded sample of this many (the restarts already use
# KMEANS_INIT_SAMPLE rows), and only the chosen k is finished on all rows: the criteria are
# settled long before 50,000 rows, and the sweep then costs the same at 200,000 rows as at 50,000.
SWEEP_ROWS = 50_000
FIXED, FOUND_BY_DBSCAN = "fixed", "dbscan"  # ModelResult.criterion when k was not chosen by a sweep


@dataclass
class ModelResult:
    k: int  # segments found, not counting DBSCAN noise
    labels: np.ndarray  # (n,) int, 0..k-1, 0 = largest segment; -1 = DBSCAN noise
    centers: np.ndarray  # (k, n_features) float64, scaled units, row i = label i
    distance: np.ndarray  # (n,) distance to own centre (scaled units); noise: to the noise mean
    second_distance: np.ndarray  # (n,) distance to the nearest other segment centre; NaN if none
    metrics: list[Metric]
    k_reason: str  # human-readable: how k was chosen
    algorithm: str = KMEANS
    criterion: str = FIXED  # the --select criterion that chose k, or "fixed" / "dbscan"
    chosen_by: dict[str, int | None] = field(default_factory=dict)  # k each criterion would pick
    rejected: list[Rejection] = field(default_factory=list)  # candidate k refused, and why
    runner_up: int | None = None  # second-best k by the deciding criterion
    warning: str | None = None  # little cluster structure (see segjob.model.explain)
    probability: np.ndarray | None = None  # (n,) GMM membership probability of the own segment
    noise_center: np.ndarray | None = None  # scaled mean of the noise rows (DBSCAN), if any


def fit(
    X: np.ndarray,
    k: int | None,
    k_min: int = 2,
    k_max: int = 10,
    seed: int = 0,
    silhouette_sample: int = 10_000,
    *,
    algorithm: str = KMEANS,
    select: str = DEFAULT_CRITERION,
    min_segment_share: float = DEFAULT_MIN_SEGMENT_SHARE,
    eps: float | None = None,
    stability_sample: int = DEFAULT_STABILITY_SAMPLE,
    progress: Progress | None = None,
    describe_rows: RowDescriber = describe_row_numbers,
    backtest: Backtest | None = None,
    no_backtest: str = "",
) -> ModelResult:
    """Cluster X with `algorithm`, for a fixed k or choosing k in k_min..k_max when k is None.

    With k None every candidate k is fitted and scored (see `segjob.model.choose_k`); candidates whose
    smallest segment holds less than `min_segment_share` of the rows are rejected, and `select`
    picks among the rest; `describe_rows` names the customers of rows of X in the reasons for
    rejected candidates. `backtest` (purchase histories) scores every candidate k by later
    behaviour for the next-period criterion (segjob.model.backtest); `no_backtest` says why a
    purchase-history run has none. DBSCAN ignores k and finds the number of segments itself. Labels are
    renumbered so that 0 is the largest segment. The same X and seed always give the same result.
    Each fit is reported to `progress`.

    Raises UsageError for impossible k options and DataError when X has too few (distinct) rows
    or every candidate k is rejected.
    """
    # One thread for scikit-learn's OpenMP/BLAS loops: on the shared 2-core machine two threads
    # made K-Means up to 20x slower whenever other processes competed for the cores (50k x 6,
    # 10 restarts: 2.7 s with two threads, 0.12 s with one), and one thread costs little when idle.
    wait_for_preload()
    with threadpool_limits(limits=FIT_THREADS):
        return _fit(
            np.asarray(X, dtype=np.float64),
            k,
            k_min,
            k_max,
            seed,
            silhouette_sample,
            algorithm,
            select,
            min_segment_share,
            eps,
            stability_sample,
            progress or Silent(),
            describe_rows,
            backtest,
            no_backtest,
        )


def _fit(
    X: np.ndarray,
    k: int | None,
    k_min: int,
    k_max: int,
    seed: int,
    silhouette_sample: int,
    algorithm: str,
    select: str,
    min_segment_share: float,
    eps: float | None,
    stability_sample: int,
    progress: Progress,
    describe_rows: RowDescriber,
    backtest: Backtest | None = None,
    no_backtest: str = "",
) -> ModelResult:
    if algorithm == DBSCAN_NAME:
        return _fit_dbscan(X, eps, seed, silhouette_sample, stability_sample, progress)

    def make_fitter(data: np.ndarray, data_seed: int):
        return fitter(algorithm, data, data_seed)

    n = len(X)
    if k is not None:
        _check_fixed_k(X, k)
        progress.stage("fitting")
        clustering = make_fitter(X, seed)(k)
        metrics = evaluate(X, clustering, k, seed, silhouette_sample, NullReference(X, make_fitter, seed))
        stability = Stability(X, make_fitter, seed, stability_sample).measure(k)
        metrics += [stability] if stability else []
        reason = f"k={k}: fixed by --k"
        if clustering.k < k:
            reason += f" (only {clustering.k} segments have members)"
        progress.done(reason)
        return _result(
            X,
            clustering,
            metrics + _as_chosen(metrics),
            reason + _sample_note(algorithm, n),
            algorithm=algorithm,
            criterion=FIXED,
            warning=little_structure_warning(clustering.k, {m.name: m.value for m in metrics}),
        )

    top, lowered_note = _candidate_range(X, k_min, k_max)
    swept, sweep_note, describe_swept = X, "", describe_rows
    if algorithm == KMEANS and n > SWEEP_ROWS:
        rows = np.sort(np.random.default_rng([seed, 2]).choice(n, SWEEP_ROWS, replace=False))
        swept, describe_swept = X[rows], lambda sweep_rows: describe_rows(rows[sweep_rows])
        sweep_note = f" (k sweep on a random {SWEEP_ROWS:,} of the {n:,} rows)"
    candidates = Sweep(
        swept,
        make_fitter,
        seed,
        silhouette_sample,
        Stability(swept, make_fitter, seed, stability_sample),
        NullReference(swept, make_fitter, seed),
        min_segment_share,
        algorithm,
        describe_swept,
    ).run(range(k_min, top + 1), progress)
    if backtest is not None:
        progress.stage(f"backtest: k={k_min}..{top} fitted {backtest.period}")
        scores = curve(backtest, make_fitter, seed, range(k_min, top + 1))
        for candidate in candidates:
            candidate.metrics += [
                Metric(name, value, candidate.k) for name, value in scores.get(candidate.k, {}).items()
            ]
        progress.done(", ".join(f"k={k} {s['backtest_score']:.3f}" for k, s in scores.items()))
    progress.stage("choosing k")
    choice = choose(
        candidates,
        select,
        min_segment_share,
        lowered_note,
        backtest_period=backtest.period if backtest else "",
        no_backtest=no_backtest,
    )
    progress.done(choice.reason)
    chosen = choice.candidate
    inside_note, inside_metrics = _inside_dominant_segment(
        swept,
        chosen.clustering,
        make_fitter,
        seed,
        silhouette_sample,
        stability_sample,
        min_segment_share,
        k_max,
        algorithm,
        progress,
    )
    clustering, chosen_metrics = chosen.clustering, _as_chosen(chosen.metrics)
    if swept is not X:
        progress.stage(f"fitting kmeans k={chosen.k} on all {n:,} rows")
        clustering = kmeans_from(X, chosen.clustering.centers, seed)
        on_all = score(X, clustering, None, seed, silhouette_sample)
        names = {m.name for m in on_all}
        chosen_metrics = on_all + [m for m in chosen_metrics if m.name not in names]
        progress.done(f"k={clustering.k}")
    chosen_by = [
        Metric(f"chosen_k_by_{name.replace('-', '_')}", float(value), None)
        for name, value in choice.chosen_by.items()
        if value is not None
    ]
    metrics = [m for c in candidates for m in c.metrics] + chosen_metrics + chosen_by + choice.metrics + inside_metrics
    return _result(
        X,
        clustering,
        metrics,
        choice.reason + inside_note + sweep_note + _sample_note(algorithm, n),
        algorithm=algorithm,
        criterion=choice.criterion,
        chosen_by=choice.chosen_by,
        rejected=choice.rejected,
        runner_up=choice.runner_up,
        warning=choice.warning,
    )


def _inside_dominant_segment(
    X: np.ndarray,
    clustering: Clustering,
    make_fitter,
    seed: int,
    silhouette_sample: int,
    stability_sample: int,
    min_segment_share: float,
    k_max: int,
    algorithm: str,
    progress: Progress,
) -> tuple[str, list[Metric]]:
    """When one segment holds DOMINANT_SHARE of the rows or more, sweep it on its own with the
    default rule and say whether it is one group or holds groups of its own: a note that continues
    the reason's "the largest segment holds N% of customers", and the metrics `dominant_inner_k`
    and `dominant_inner_gain`; ("", []) otherwise."""
    sizes = np.bincount(clustering.labels[clustering.labels >= 0], minlength=clustering.k)
    largest = int(sizes.argmax())
    share = sizes[largest] / len(X)
    if algorithm not in (KMEANS, MINIBATCH) or share < DOMINANT_SHARE:
        return "", []
    inside = X[clustering.labels == largest]
    top = min(k_max, _count_distinct(inside, enough=k_max + 1) - 1)  # silhouette: fewer k than distinct rows
    if top < 2:
        return "", []
    progress.stage("sweeping the largest segment on its own")
    candidates = Sweep(
        inside,
        make_fitter,
        seed,
        silhouette_sample,
        Stability(inside, make_fitter, seed, stability_sample),
        NullReference(inside, make_fitter, seed),
        min_segment_share,
        algorithm,
    ).run(range(2, top + 1), Silent())
    try:
        choice = choose(candidates, SILHOUETTE_GAIN, min_segment_share)
    except DataError:
        progress.done("no k fits inside it")
        return "", []
    gain = choice.candidate.value("silhouette_gain")
    if gain is None:
        progress.done("not measured")
        return "", []
    inner_k = choice.candidate.k
    if choice.warning:
        note = f" and little structure of its own (best silhouette gain {gain:.3f}, at k={inner_k}): it is one group"
    else:
        note = (
            f" and {inner_k} groups of its own (silhouette gain {gain:.3f}):"
            " segment its customers on their own (--query) to split it"
        )
    progress.done(f"the largest segment ({share:.0%} of customers) has{note.removeprefix(' and')}")
    return note, [Metric("dominant_inner_k", float(inner_k), None), Metric("dominant_inner_gain", gain, None)]


def _check_fixed_k(X: np.ndarray, k: int) -> None:
    n = len(X)
    if k < 2:
        raise UsageError(f"--k must be at least 2, got {k}")
    if n < k:
        raise DataError(f"only {n} usable rows, fewer than k={k}; lower --k or check the input")
    distinct = _count_distinct(X, enough=k)
    if distinct < k:
        raise DataError(
            f"only {distinct} distinct rows (customers with different feature values) among"
            f" {n} usable rows, fewer than k={k}; lower --k or choose features that vary more"
        )


def _candidate_range(X: np.ndarray, k_min: int, k_max: int) -> tuple[int, str]:
    """The largest candidate k, and a note for the reason when it is below k_max."""
    if k_min < 2:
        raise UsageError(f"--k-min must be at least 2, got {k_min}")
    if k_min > k_max:
        raise UsageError(f"--k-min ({k_min}) must not be greater than --k-max ({k_max})")
    n = len(X)
    distinct = _count_distinct(X, enough=k_max + 1)
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
    note = f" (k_max lowered to {top}: only {distinct} distinct rows)" if top < k_max else ""
    return top, note


def _fit_dbscan(
    X: np.ndarray, eps: float | None, seed: int, silhouette_sample: int, stability_sample: int, progress: Progress
) -> ModelResult:
    min_samples = dbscan_min_samples(X.shape[1])
    progress.stage("fitting dbscan")
    source = "--eps"
    if eps is None:
        eps, source = estimate_eps(X, min_samples, seed), "the k-distance knee"
    clustering = dbscan(X, eps, min_samples)
    if clustering.k == 0:
        raise DataError(
            f"DBSCAN found no segments: all {len(X):,} rows are noise at eps {eps:.4g}"
            f" (min_samples {min_samples}); give a larger --eps"
        )
    noise = int((clustering.labels < 0).sum())
    metrics = score(X, clustering, None, seed, silhouette_sample)
    refit = Stability(X, lambda data, _seed: lambda _k: dbscan(data, eps, min_samples), seed, stability_sample)
    stability = refit.measure(clustering.k)
    if stability:
        metrics.append(Metric(stability.name, stability.value, None, stability.sample_size))
    metrics += [Metric("eps", float(eps), None), Metric("min_samples", float(min_samples), None)]
    reason = (
        f"k={clustering.k}: found by DBSCAN (eps {eps:.4g} from {source}, min_samples {min_samples});"
        f" {noise:,} rows are noise (segment 0, Outliers)"
    )
    progress.done(reason)
    return _result(X, clustering, metrics, reason, algorithm=DBSCAN_NAME, criterion=FOUND_BY_DBSCAN)


def _count_distinct(X: np.ndarray, enough: int) -> int:
    """Distinct rows of X, exact below `enough`; at or above it, any count >= `enough` (the first
    rows usually hold that many, which spares sorting a large X)."""
    head = X[: 100 * enough]
    distinct = len(np.unique(head, axis=0)) if len(head) else 0
    if distinct >= enough or len(head) == len(X):
        return distinct
    return len(np.unique(X, axis=0))


def _as_chosen(scores: list[Metric]) -> list[Metric]:
    """The chosen model's metrics: its sweep entries again with k=None."""
    return [Metric(m.name, m.value, None, m.sample_size) for m in scores]


def _sample_note(algorithm: str, n: int) -> str:
    if algorithm == AGGLOMERATIVE and n > AGGLOMERATIVE_MAX_ROWS:
        return (
            f" (Ward tree built on a random sample of {AGGLOMERATIVE_MAX_ROWS:,} rows;"
            " the other rows joined the segment with the nearest member mean)"
        )
    return ""


def _result(X: np.ndarray, clustering: Clustering, metrics: list[Metric], k_reason: str, **details) -> ModelResult:
    """Renumber the segments (0 = largest, ties by centre coordinates) and measure distances."""
    k = clustering.k
    members = clustering.labels >= 0
    sizes = np.bincount(clustering.labels[members], minlength=k)
    # np.lexsort sorts by its last key first: size descending, then centre coordinates.
    order = np.lexsort([*clustering.centers.T[::-1], -sizes])
    new_label = np.empty(k, dtype=np.int64)
    new_label[order] = np.arange(k)
    centers = clustering.centers[order]
    labels = np.where(members, new_label[np.maximum(clustering.labels, 0)], -1)

    to_centres = distances(X, centers)
    rows = np.flatnonzero(members)
    own = np.full(len(X), np.nan)
    own[rows] = to_centres[rows, labels[rows]]
    to_centres[rows, labels[rows]] = np.inf
    second = to_centres.min(axis=1) if k else np.full(len(X), np.inf)
    noise_center = None
    if not members.all():
        noise_center = X[~members].mean(axis=0)
        own[~members] = np.sqrt(((X[~members] - noise_center) ** 2).sum(axis=1))
    return ModelResult(
        k=k,
        labels=labels,
        centers=centers,
        distance=own,
        second_distance=np.where(np.isfinite(second), second, np.nan),
        metrics=metrics,
        k_reason=k_reason,
        probability=clustering.probability,
        noise_center=noise_center,
        **details,
    )


def refitted(X: np.ndarray, model: ModelResult, centers: np.ndarray, note: str) -> ModelResult:
    """`model` with its centres replaced (e.g. refined on more rows than X), rows of X reassigned
    to the nearest new centre and renumbered (0 = largest on X); metrics are kept, `note` is
    added to the reason."""
    labels = distances(X, centers).argmin(axis=1)
    details = dict(
        algorithm=model.algorithm,
        criterion=model.criterion,
        chosen_by=model.chosen_by,
        rejected=model.rejected,
        runner_up=model.runner_up,
        warning=model.warning,
    )
    return _result(X, Clustering(labels, centers), model.metrics, model.k_reason + note, **details)
