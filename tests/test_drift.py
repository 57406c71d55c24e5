"""Drift measures against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from segjob.model.drift import decile_bins, partition_change, population_stability_index


def _migration_table(before: np.ndarray, after: np.ndarray):
    pairs, counts = np.unique(np.column_stack([before, after]), axis=0, return_counts=True)
    return pairs[:, 0], pairs[:, 1], counts


def test_partition_change_matches_sklearn_on_random_labels():
    rng = np.random.default_rng(3)
    before = rng.integers(1, 5, 2_000)
    after = np.where(rng.random(2_000) < 0.8, before, rng.integers(1, 6, 2_000))
    changed, ari = partition_change(*_migration_table(before, after))
    assert changed == pytest.approx(np.mean(before != after))
    assert ari == pytest.approx(adjusted_rand_score(before, after))


def test_identical_partitions():
    labels = np.repeat([1, 2, 3], 50)
    assert partition_change(*_migration_table(labels, labels)) == (0.0, 1.0)


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    reference = decile_bins(rng.normal(50, 10, 20_000))
    assert len(reference["edges"]) == 9 and sum(reference["shares"]) == pytest.approx(1.0)
    assert population_stability_index(reference, rng.normal(50, 10, 20_000)) < 0.01
    assert population_stability_index(reference, rng.normal(60, 10, 20_000)) > 0.25


def test_psi_of_a_constant_feature():
    reference = decile_bins(np.full(100, 3.0))
    assert population_stability_index(reference, np.full(50, 3.0)) == pytest.approx(0.0)
    assert population_stability_index(reference, np.full(50, 9.0)) > 1
