"""fit(): choosing k, K-Means, label order, distances and metrics, on arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from segjob.errors import DataError, UsageError
from segjob.model.choose_k import CRITERIA
from segjob.model.fit import fit
from segjob.prepare.columns import PrepareOptions, prepare

METRIC_NAMES = [
    "inertia",
    "smallest_segment_share",
    "silhouette",
    "macro_silhouette",
    "davies_bouldin",
    "calinski_harabasz",
    "null_silhouette",
    "silhouette_gain",
    "gap",
    "gap_sd",
    "stability",
]
CHOSEN_BY = [f"chosen_k_by_{name.replace('-', '_')}" for name in CRITERIA]


@pytest.fixture(scope="module")
def blobs():
    # Four well separated groups of different sizes around known centres.
    centres = [[0, 0, 0], [8, 0, 0], [0, 8, 0], [0, 0, 8]]
    X, truth = make_blobs(n_samples=[120, 90, 60, 30], centers=centres, cluster_std=0.7, random_state=3)
    return X, truth, np.array(centres, dtype=float)


@pytest.fixture(scope="module")
def blobs_auto(blobs):
    return fit(blobs[0], None, k_min=2, k_max=7, seed=0)


def test_auto_k_finds_the_true_clusters(blobs, blobs_auto):
    X, truth, centres = blobs
    result = blobs_auto
    assert result.k == 4
    assert adjusted_rand_score(truth, result.labels) == pytest.approx(1.0)
    # label 0 is the largest group, and centres come out in that order
    assert np.bincount(result.labels).tolist() == [120, 90, 60, 30]
    np.testing.assert_allclose(result.centers, centres, atol=0.25)
    sweep = {(m.name, m.k): m.value for m in result.metrics if m.k is not None}
    gain, silhouette, null = (sweep[name, 4] for name in ("silhouette_gain", "silhouette", "null_silhouette"))
    assert gain == pytest.approx(silhouette - null)
    runner_up = max((k for k in range(2, 8) if k != 4), key=lambda k: sweep["silhouette_gain", k])
    assert result.runner_up == runner_up
    assert result.k_reason == (
        f"k=4: largest silhouette gain over structureless data ({gain:.3f}: silhouette {silhouette:.3f},"
        f" one blob {null:.3f}) over k=2..7; runner-up k={runner_up} (silhouette gain"
        f" {sweep['silhouette_gain', runner_up]:.3f}, {gain - sweep['silhouette_gain', runner_up]:.3f} behind)"
    )
    assert max((k for k in range(2, 8)), key=lambda k: sweep["silhouette", k]) == 4
    assert result.warning is None


def test_fixed_k(blobs):
    X, truth, _ = blobs
    result = fit(X, 4, seed=1)
    assert result.k == 4
    assert result.k_reason == "k=4: fixed by --k"
    assert adjusted_rand_score(truth, result.labels) == pytest.approx(1.0)
    assert [(m.name, m.k) for m in result.metrics] == [(name, 4) for name in METRIC_NAMES] + [
        (name, None) for name in METRIC_NAMES
    ]


def test_same_seed_same_result(blobs):
    X = blobs[0]
    first, second = fit(X, 3, seed=7), fit(X, 3, seed=7)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.centers, second.centers)
    assert first.metrics == second.metrics


def test_labels_do_not_depend_on_row_order(blobs):
    X = blobs[0]
    order = np.random.default_rng(0).permutation(len(X))
    shuffled = fit(X[order], 4, seed=0)
    original = fit(X, 4, seed=0)
    np.testing.assert_array_equal(shuffled.labels, original.labels[order])


def test_equal_sizes_are_ordered_by_centre_coordinates():
    X = np.array([[5.0, 0.0], [5.0, 0.2], [0.0, 1.0], [0.0, 1.2], [0.0, -1.0], [0.0, -1.2]])
    result = fit(X, 3)
    assert result.labels.tolist() == [2, 2, 1, 1, 0, 0]
    np.testing.assert_allclose(result.centers, [[0.0, -1.1], [0.0, 1.1], [5.0, 0.1]])


def test_distances_are_to_own_and_second_nearest_centre(blobs, blobs_auto):
    X, result = blobs[0], blobs_auto
    to_centres = np.linalg.norm(X[:, None, :] - result.centers[None, :, :], axis=2)
    np.testing.assert_allclose(result.distance, to_centres[np.arange(len(X)), result.labels])
    np.testing.assert_allclose(result.distance, to_centres.min(axis=1))
    np.testing.assert_allclose(result.second_distance, np.sort(to_centres, axis=1)[:, 1])
    # each centre is the mean of its members
    for label in range(result.k):
        np.testing.assert_allclose(result.centers[label], X[result.labels == label].mean(axis=0))


def test_sweep_metrics_are_all_kept(blobs_auto):
    metrics = blobs_auto.metrics
    assert [(m.name, m.k) for m in metrics if m.k is not None] == [
        (name, k) for k in range(2, 8) for name in METRIC_NAMES
    ]
    chosen = {m.name: m for m in metrics if m.k is None}
    # blobs carry no purchase history, so no backtest: next-period names no k and is not recorded
    chosen_by = [name for name in CHOSEN_BY if name != "chosen_k_by_next_period"]
    assert list(chosen) == METRIC_NAMES + chosen_by + ["runner_up_k", "runner_up_margin"]
    sweep_entry = {m.name: m.value for m in metrics if m.k == 4}
    assert {name: m.value for name, m in chosen.items() if name in METRIC_NAMES} == sweep_entry
    assert {name: m.value for name, m in chosen.items() if name in CHOSEN_BY} == dict.fromkeys(chosen_by, 4.0)
    # 300 rows: no sampling, but stability always refits on 80% subsamples, and the blobs have all rows
    assert {m.sample_size for m in metrics if m.name not in ("stability", "null_silhouette")} == {None}
    assert {m.sample_size for m in metrics if m.name == "null_silhouette"} == {300}
    assert {m.sample_size for m in metrics if m.name == "stability"} == {240}
    inertia = [m.value for m in metrics if m.name == "inertia" and m.k is not None]
    assert inertia == sorted(inertia, reverse=True)


def test_silhouette_on_a_sample_records_its_size(blobs):
    X, truth, _ = blobs
    result = fit(X, None, k_min=3, k_max=5, silhouette_sample=150)
    assert result.k == 4
    for m in result.metrics:
        expected = {"silhouette": 150, "macro_silhouette": 150, "stability": 240, "null_silhouette": 300}
        assert m.sample_size == expected.get(m.name)


def test_k_max_is_lowered_to_the_distinct_rows():
    X = np.repeat([[0.0, 0.0], [0.0, 5.0], [5.0, 0.0], [5.0, 5.0]], 10, axis=0)
    result = fit(X, None, k_min=2, k_max=10)
    assert result.k == 3  # candidates 2..3: silhouette needs fewer clusters than distinct rows
    assert "over k=2..3 (k_max lowered to 3: only 4 distinct rows); runner-up k=2" in result.k_reason
    assert sorted({m.k for m in result.metrics if m.k is not None}) == [2, 3]


def test_fixed_k_equal_to_rows_has_only_inertia():
    result = fit(np.array([[0.0], [1.0], [5.0]]), 3)
    # silhouette needs fewer clusters than rows; stability needs subsamples larger than k
    assert [(m.name, m.k) for m in result.metrics] == [
        ("inertia", 3),
        ("smallest_segment_share", 3),
        ("inertia", None),
        ("smallest_segment_share", None),
    ]
    assert result.distance.tolist() == [0.0, 0.0, 0.0]


# errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(k=1), "--k must be at least 2, got 1"),
        (dict(k=None, k_min=1), "--k-min must be at least 2, got 1"),
        (dict(k=None, k_min=6, k_max=5), "--k-min (6) must not be greater than --k-max (5)"),
    ],
)
def test_impossible_k_options_are_usage_errors(blobs, kwargs, message):
    with pytest.raises(UsageError) as info:
        fit(blobs[0], **kwargs)
    assert str(info.value) == message


def test_fewer_rows_than_k():
    with pytest.raises(DataError) as info:
        fit(np.array([[0.0], [1.0], [2.0]]), 5)
    assert str(info.value) == "only 3 usable rows, fewer than k=5; lower --k or check the input"


def test_fewer_distinct_rows_than_k():
    X = np.repeat([[0.0, 1.0], [2.0, 3.0]], 5, axis=0)
    with pytest.raises(DataError) as info:
        fit(X, 3)
    assert str(info.value) == (
        "only 2 distinct rows (customers with different feature values) among 10 usable rows,"
        " fewer than k=3; lower --k or choose features that vary more"
    )


def test_auto_k_needs_three_distinct_rows():
    X = np.repeat([[0.0], [1.0]], 4, axis=0)
    with pytest.raises(DataError) as info:
        fit(X, None)
    assert str(info.value) == (
        "choosing k needs at least 3 distinct rows, but the 8 usable rows hold only 2; set --k or check the input"
    )


def test_auto_k_range_above_the_distinct_rows():
    X = np.repeat([[0.0], [1.0], [2.0], [3.0]], 3, axis=0)
    with pytest.raises(DataError) as info:
        fit(X, None, k_min=5, k_max=8)
    assert str(info.value) == (
        "only 4 distinct rows, too few to try k=5..8 (k must be below the number of distinct"
        " rows); lower --k-min or set --k"
    )


# real data


def test_mall_customers_published_answer(data_dir):
    mall = pd.read_csv(data_dir / "mall_customers.csv")
    options = PrepareOptions(features=["Annual Income (k$)", "Spending Score (1-100)"])
    result = fit(prepare(mall, "CustomerID", options).X, None, k_min=2, k_max=10, seed=0)
    assert result.k == 5
    assert np.bincount(result.labels).tolist() == [81, 39, 35, 23, 22]
    silhouette = next(m for m in result.metrics if m.name == "silhouette" and m.k is None)
    assert silhouette.value == pytest.approx(0.554, abs=0.002)
    assert result.k_reason.startswith(
        "k=5: largest silhouette gain over structureless data (0.216: silhouette 0.555, one blob 0.338) over k=2..10;"
        " runner-up k=6 (silhouette gain 0.186, 0.031 behind)"
    )
    assert result.chosen_by["silhouette"] == 5 and result.warning is None
