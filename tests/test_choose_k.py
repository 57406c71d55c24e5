"""Choosing k: the criteria, the stability score, rejection of tiny segments, progress per k."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score

from segjob.model import choose_k
from segjob.model.algorithms import Clustering
from segjob.model.choose_k import CRITERIA as ALL_CRITERIA
from segjob.model.choose_k import NEXT_PERIOD, STABILITY_TOLERANCE, Candidate, Metric, choose, silhouette
from segjob.model.fit import fit

# The criteria that need no backtest (next-period: tests/test_backtest.py).
CRITERIA = tuple(c for c in ALL_CRITERIA if c != NEXT_PERIOD)
REASONS = {
    "silhouette-gain": "k=5: largest silhouette gain over structureless data (",
    "silhouette": "k=5: best silhouette (",
    "macro-silhouette": "k=5: best silhouette averaged over segments (",
    "gap": "k=5: gap statistic (",
    "elbow": "k=5: elbow of the inertia curve (Kneedle)",
    "davies-bouldin": "k=5: lowest Davies-Bouldin (",
    "calinski-harabasz": "k=5: highest Calinski-Harabasz (",
    "stability": "k=5: most detailed stable segmentation (stability ",
}


@pytest.fixture(scope="module")
def five_blobs():
    centres = [[0, 0], [6, 0], [0, 6], [6, 6], [3, 11]]
    return make_blobs(n_samples=500, centers=centres, cluster_std=0.8, random_state=1)


@pytest.fixture(scope="module")
def with_a_handful_far_away():
    """Four big blobs and five customers far from everyone (0.6% of the rows)."""
    centres = [[0, 0], [10, 0], [0, 10], [10, 10], [30, 30]]
    return make_blobs(n_samples=[200, 200, 200, 200, 5], centers=centres, cluster_std=1.0, random_state=5)


@pytest.mark.parametrize("criterion", CRITERIA)
def test_each_criterion_finds_the_blobs(five_blobs, criterion):
    X, _ = five_blobs
    result = fit(X, None, k_min=2, k_max=8, select=criterion)
    assert result.k == 5
    assert result.criterion == criterion
    assert result.k_reason.startswith(REASONS[criterion]) and " over k=2..8" in result.k_reason
    assert result.chosen_by == {**dict.fromkeys(CRITERIA, 5), NEXT_PERIOD: None}
    chosen_by = {m.name: m.value for m in result.metrics if m.name.startswith("chosen_k_by_")}
    assert chosen_by == {f"chosen_k_by_{name.replace('-', '_')}": 5.0 for name in CRITERIA}


def test_stability_is_the_mean_ari_of_subsample_refits(five_blobs):
    X, _ = five_blobs
    result = fit(X, None, k_min=2, k_max=8)
    stability = {m.k: m for m in result.metrics if m.name == "stability" and m.k is not None}
    assert stability[5].value > 0.99  # the true blobs come back whatever the subsample
    assert stability[8].value < 0.95  # splitting a blob in arbitrary places does not
    assert {m.sample_size for m in stability.values()} == {400}  # 80% of 500 rows
    small_sample = fit(X, 5, stability_sample=200)
    assert {m.sample_size for m in small_sample.metrics if m.name == "stability"} == {160}


def test_a_handful_of_far_customers_does_not_cost_a_k(with_a_handful_far_away):
    X, _ = with_a_handful_far_away
    unguarded = fit(X, None, k_min=2, k_max=6, min_segment_share=0)
    assert unguarded.k == 5 and unguarded.rejected == []  # the five far customers get a segment
    result = fit(X, None, k_min=2, k_max=6)  # default 1%
    assert result.k == 4 and result.rejected == []
    # k=5 and 6 were refitted without the five, who then joined the nearest segment
    without = {m.k: m.value for m in result.metrics if m.name == "fitted_without_rows"}
    assert without == {5: 5.0, 6: 5.0}
    shares = {m.k: m.value for m in result.metrics if m.name == "smallest_segment_share" and m.k}
    assert shares[5] >= 0.01 and shares[6] >= 0.01 and shares[4] > 0.2
    assert np.bincount(result.labels).min() >= 0.01 * len(X)


def test_a_k_still_too_small_after_the_refit_is_rejected_naming_its_customers():
    """A raw log-normal blob has a long tail: without the members of the tiny segments a new tail
    segment forms, so the k is rejected and the most extreme customers are named."""
    X = np.random.default_rng(1).lognormal(0.0, 1.3, size=(3000, 2))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    named = []

    def describe(rows):
        named.append(rows)
        return ", ".join(f"C{row}" for row in rows)

    result = fit(X, None, k_min=6, k_max=10, describe_rows=describe)
    assert result.rejected, "the long tail leaves a too-small segment at some k"
    rejection = result.rejected[0]
    rows = named[0]
    assert rejection.reason.startswith("smallest segment has ")
    assert "; refitted without those " in rejection.reason and ", ".join(f"C{row}" for row in rows) in rejection.reason
    assert "the smallest segment still has" in rejection.reason
    assert rejection.reason.endswith("lower --min-segment-share, or pull extreme values in with --clip-outliers Z")
    # the named customers are the furthest from the middle of all customers
    distance = np.linalg.norm(X - X.mean(axis=0), axis=1)
    assert distance[rows].min() >= np.quantile(distance, 0.99)


def test_one_customer_reads_in_the_singular():
    X = np.vstack([np.random.default_rng(0).normal(size=(300, 2)), [[40.0, 40.0]]])
    candidates = choose_k.Sweep(
        X,
        lambda data, seed: (
            lambda k: Clustering(
                (np.linalg.norm(data - [40.0, 40.0], axis=1) < 1).astype(np.int32), np.array([[0.0, 0.0], [40.0, 40.0]])
            )
        ),
        0,
        1000,
        None,
        None,
        0.01,
        "gmm",
    ).run(range(2, 3), Recorder())
    assert candidates[0].rejected == "smallest segment has 1 customer (0.3%), below --min-segment-share 1.0%"


def test_fixed_k_is_never_rejected(with_a_handful_far_away):
    X, _ = with_a_handful_far_away
    result = fit(X, 5)
    assert result.k == 5 and result.rejected == []


class Recorder:
    def __init__(self):
        self.events = []

    def stage(self, name):
        self.events.append(("stage", name))

    def rows(self, done):
        self.events.append(("rows", done))

    def done(self, summary):
        self.events.append(("done", summary))


def test_sweep_reports_every_k(five_blobs):
    recorder = Recorder()
    result = fit(five_blobs[0], None, k_min=2, k_max=4, progress=recorder)
    stages = [name for kind, name in recorder.events if kind == "stage"]
    assert stages == ["fitting kmeans k=2", "fitting kmeans k=3", "fitting kmeans k=4", "choosing k"]
    summaries = [summary for kind, summary in recorder.events if kind == "done"]
    assert summaries[0].startswith("silhouette ") and ", stability " in summaries[0]
    assert summaries[-1] == result.k_reason


# choose() on hand-made scores: the rules themselves


def candidate(k: int, **scores: float) -> Candidate:
    metrics = [Metric("smallest_segment_share", 0.1, k)] + [Metric(name, value, k) for name, value in scores.items()]
    return Candidate(k, Clustering(np.zeros(1, dtype=np.int32), np.zeros((k, 1))), metrics)


def test_stability_takes_the_largest_k_near_the_best():
    # k=2 and k=3 are perfectly stable (as splitting in two usually is); k=4 is nearly so.
    scores = {2: 1.0, 3: 1.0, 4: 1.0 - STABILITY_TOLERANCE / 2, 5: 0.9}
    candidates = [candidate(k, stability=value, silhouette=0.5, inertia=10.0 / k) for k, value in scores.items()]
    assert choose(candidates, "stability", 0.01).candidate.k == 4


def test_ties_go_to_the_smaller_k_and_davies_bouldin_is_minimised():
    candidates = [
        candidate(2, silhouette=0.6, davies_bouldin=0.9, calinski_harabasz=50.0, inertia=9.0),
        candidate(3, silhouette=0.6, davies_bouldin=0.4, calinski_harabasz=80.0, inertia=4.0),
        candidate(4, silhouette=0.5, davies_bouldin=0.7, calinski_harabasz=80.0, inertia=3.0),
    ]
    choice = choose(candidates, "silhouette", 0.01)
    assert choice.candidate.k == 2
    assert choice.chosen_by["davies-bouldin"] == 3
    assert choice.chosen_by["calinski-harabasz"] == 3
    assert choice.chosen_by["stability"] is None  # not measured


def test_a_criterion_without_an_answer_falls_back_to_silhouette():
    # a straight inertia line has no elbow
    candidates = [candidate(k, silhouette=0.1 * k, inertia=100.0 - 10 * k) for k in range(2, 7)]
    choice = choose(candidates, "elbow", 0.01)
    assert choice.chosen_by["elbow"] is None
    assert choice.criterion == "silhouette" and choice.candidate.k == 6
    assert choice.reason.startswith(
        "k=6: best silhouette (0.600) over k=2..6 (elbow had no answer: the inertia curve has no elbow);"
        " runner-up k=5 (silhouette 0.500, 0.100 behind)"
    )


def test_rejected_candidates_are_out_of_every_criterion():
    candidates = [candidate(k, silhouette=0.1 * k, inertia=100.0 / k, stability=1.0) for k in range(2, 6)]
    candidates[-1].rejected = "too small"
    choice = choose(candidates, "silhouette", 0.01)
    assert choice.candidate.k == 4
    assert all(k is None or k <= 4 for k in choice.chosen_by.values())
    assert [(r.k, r.reason) for r in choice.rejected] == [(5, "too small")]


@pytest.mark.parametrize("case", range(12))
def test_silhouette_equals_scikit_learns(case, monkeypatch):
    """Same value and same sample as silhouette_score, with singletons, repeated points and
    distance blocks smaller than the rows."""
    monkeypatch.setattr(choose_k, "SILHOUETTE_BLOCK_CELLS", 5_000)
    rng = np.random.default_rng(case)
    n, k = int(rng.integers(20, 300)), int(rng.integers(2, 9))
    X = rng.normal(size=(n, int(rng.integers(1, 7)))) * 40
    if case % 3 == 0:
        X = np.round(X / 20)  # many identical rows
    labels = rng.integers(0, k, n)
    labels[0] = 99  # a cluster of one
    sample = None if case % 2 else int(rng.integers(10, n))
    expected = silhouette_score(X, labels, sample_size=sample, random_state=case)
    assert silhouette(X, labels, sample, case) == pytest.approx(expected, abs=1e-12)


def test_silhouette_needs_two_clusters_and_fewer_than_rows():
    X = np.arange(8.0).reshape(4, 2)
    assert silhouette(X, np.zeros(4, dtype=int), None, 0) is None
    assert silhouette(X, np.arange(4), None, 0) is None
    assert silhouette(X, np.array([0, 0, 1, 1]), None, 0) is not None


def test_a_dominant_segment_is_swept_on_its_own():
    """Far away from everyone, a quarter of the customers make k=2 the clear choice; the other
    three quarters are two groups of their own, and the reason says so."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal([0, 0], 1, (700, 2)), rng.normal([6, 0], 1, (800, 2)), rng.normal([40, 40], 1, (500, 2))])
    result = fit(X, None, k_max=6)
    assert result.k == 2
    inner = {m.name: m.value for m in result.metrics if m.name.startswith("dominant_inner_")}
    assert inner["dominant_inner_k"] == 2 and inner["dominant_inner_gain"] > 0.1
    assert result.k_reason.endswith(
        f"the largest segment holds 75% of customers and 2 groups of its own (silhouette gain"
        f" {inner['dominant_inner_gain']:.3f}): segment its customers on their own (--query) to split it"
    )


def test_a_dominant_segment_that_is_one_group_is_called_one():
    rng = np.random.default_rng(1)
    X = np.vstack(
        [rng.normal([0, 0], 1, (1500, 2)), rng.normal([12, 0], 1, (250, 2)), rng.normal([0, 12], 1, (250, 2))]
    )
    result = fit(X, None, k_max=6)
    assert result.k == 3
    assert "the largest segment holds 75% of customers and little structure of its own" in result.k_reason
    assert result.k_reason.endswith("it is one group")
    gain = next(m.value for m in result.metrics if m.name == "dominant_inner_gain")
    assert gain < 0.05


def test_no_dominant_segment_no_inner_sweep(five_blobs):
    result = fit(five_blobs[0], None, k_min=2, k_max=8)
    assert not [m for m in result.metrics if m.name.startswith("dominant_inner_")]
    assert "largest segment" not in result.k_reason
