"""Every algorithm on generated blobs with known centres, through fit(), without a database."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from segjob.errors import DataError
from segjob.model import algorithms
from segjob.model.algorithms import ALGORITHMS
from segjob.model.fit import fit

CENTRES = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
SIZES = [200, 150, 100, 50]


@pytest.fixture(scope="module")
def blobs():
    X, truth = make_blobs(n_samples=SIZES, centers=CENTRES, cluster_std=1.0, random_state=5)
    return X, truth


@pytest.fixture(scope="module")
def fitted(blobs):
    """Each algorithm's result on the blobs: k chosen automatically (DBSCAN finds it)."""
    return {algorithm: fit(blobs[0], None, k_min=2, k_max=7, algorithm=algorithm) for algorithm in ALGORITHMS}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_recovers_the_blobs(blobs, fitted, algorithm):
    X, truth = blobs
    result = fitted[algorithm]
    assert result.k == 4
    assert result.algorithm == algorithm
    assert adjusted_rand_score(truth, result.labels) > 0.9
    # label 0 is the largest segment, so the centres come out in the order of the blob sizes
    np.testing.assert_allclose(result.centers, CENTRES, atol=0.5)
    members = result.labels >= 0
    assert np.isfinite(result.distance).all() and (result.distance >= 0).all()
    assert (result.second_distance[members] >= result.distance[members]).all()


@pytest.mark.parametrize("algorithm", ["minibatch-kmeans", "gmm", "agglomerative"])
def test_fixed_k_for_every_k_algorithm(blobs, algorithm):
    X, truth = blobs
    result = fit(X, 4, algorithm=algorithm, seed=3)
    assert result.k == 4 and result.criterion == "fixed"
    assert adjusted_rand_score(truth, result.labels) > 0.9


def test_agglomerative_and_dbscan_centres_are_member_means(blobs, fitted):
    X = blobs[0]
    for algorithm in ("agglomerative", "dbscan"):
        result = fitted[algorithm]
        for label in range(result.k):
            np.testing.assert_allclose(result.centers[label], X[result.labels == label].mean(axis=0))


def test_gmm_membership_probabilities(blobs, fitted):
    result = fitted["gmm"]
    assert result.probability is not None and result.probability.shape == (len(blobs[0]),)
    assert ((result.probability >= 0) & (result.probability <= 1)).all()
    # the probability of the own component is the largest of k probabilities, so at least 1/k
    assert result.probability.min() >= 1 / result.k
    assert np.median(result.probability) > 0.99  # well separated blobs
    assert all(fitted[name].probability is None for name in ALGORITHMS if name != "gmm")


def test_dbscan_marks_noise_and_reports_eps(blobs):
    X, truth = blobs
    far = np.array([[30.0, -30.0], [-30.0, 30.0], [40.0, 40.0]])  # three lonely customers
    rows = np.vstack([X, far])
    result = fit(rows, None, algorithm="dbscan")
    assert result.k == 4 and result.criterion == "dbscan"
    assert (result.labels[-3:] == -1).all()
    assert adjusted_rand_score(truth, result.labels[:-3]) > 0.9
    np.testing.assert_allclose(result.noise_center, rows[result.labels == -1].mean(axis=0))
    metrics = {m.name: m.value for m in result.metrics if m.k is None}
    assert metrics["min_samples"] == 5 and metrics["eps"] > 0
    noise = int((result.labels == -1).sum())
    assert result.k_reason.startswith(f"k=4: found by DBSCAN (eps {metrics['eps']:.4g} from the k-distance knee")
    assert result.k_reason.endswith(f"{noise} rows are noise (segment 0, Outliers)")
    # a noise row's second distance is to the nearest real segment
    to_centres = np.linalg.norm(far[:, None, :] - result.centers[None], axis=2)
    np.testing.assert_allclose(result.second_distance[-3:], to_centres.min(axis=1))


def test_dbscan_with_given_eps(blobs):
    X = blobs[0]
    result = fit(X, None, algorithm="dbscan", eps=0.9)
    assert "eps 0.9 from --eps" in result.k_reason
    with pytest.raises(DataError, match="DBSCAN found no segments: all 500 rows are noise at eps 1e-06"):
        fit(X, None, algorithm="dbscan", eps=1e-6)


def test_agglomerative_samples_above_its_row_limit(blobs, monkeypatch):
    X, truth = blobs
    monkeypatch.setattr(algorithms, "AGGLOMERATIVE_MAX_ROWS", 200)
    monkeypatch.setattr("segjob.model.fit.AGGLOMERATIVE_MAX_ROWS", 200)
    result = fit(X, 4, algorithm="agglomerative")
    assert adjusted_rand_score(truth, result.labels) > 0.9
    assert "Ward tree built on a random sample of 200 rows" in result.k_reason
    for label in range(result.k):  # every row, sampled or not, counts in the member means
        np.testing.assert_allclose(result.centers[label], X[result.labels == label].mean(axis=0))


@pytest.mark.parametrize("bend", [3, 5, 8])
def test_knee_of_a_bent_line_is_the_bend(bend):
    """Two straight pieces, steep then shallow, meet at `bend`: Kneedle's knee is that point,
    whatever the units of either axis."""
    x = np.arange(2, 13)
    falling = np.where(x <= bend, 100 - 30 * (x - bend), 100 - 2 * (x - bend))
    assert x[algorithms.knee_index(x, falling, increasing=False)] == bend
    assert x[algorithms.knee_index(x * 7.0 + 1, falling * 1e6 - 5, increasing=False)] == bend
    # The same curve turned to rise (a sorted k-distance curve's shape): the mirrored point.
    rising = falling[::-1]
    assert algorithms.knee_index(x, rising, increasing=True) == len(x) - 1 - list(x).index(bend)


def test_knee_needs_a_bend():
    x = np.arange(10)
    assert algorithms.knee_index(x, 50 - 3.0 * x, increasing=False) is None  # a straight line
    assert algorithms.knee_index(x, np.full(10, 4.0), increasing=False) is None  # flat
    assert algorithms.knee_index(x[:2], np.array([5.0, 1.0]), increasing=False) is None  # two points


@pytest.mark.parametrize("k", [1, 2, 5])
def test_nearest_two_matches_sorting_every_distance(k):
    rng = np.random.default_rng(k)
    X = rng.integers(0, 4, size=(3_000, 3)).astype(float)  # small integers: many exact ties
    centers = rng.integers(0, 4, size=(k, 3)).astype(float)
    centers[-1] = centers[0]  # two equal centres when k > 1
    every = np.sqrt(((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2))
    labels, own, second = algorithms.nearest_two(np.asfortranarray(X), centers)
    assert np.array_equal(labels, every.argmin(axis=1))  # ties to the lower index
    assert np.array_equal(own, np.sort(every, axis=1)[:, 0])
    expected_second = np.sort(every, axis=1)[:, 1] if k > 1 else np.full(len(X), np.nan)
    assert np.array_equal(second, expected_second, equal_nan=True)
