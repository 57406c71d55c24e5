"""Drift between two runs of a job: how many customers changed segment, how similar the two
partitions are, and how far each feature's distribution moved (population stability index)."""

from __future__ import annotations

import numpy as np

PSI_BINS = 10
# Empty bins would make the PSI infinite; a tiny floor keeps it finite and still large.
_PSI_FLOOR = 1e-4


def _pairs(counts: np.ndarray) -> float:
    return float((counts * (counts - 1) / 2).sum())


def partition_change(from_ids: np.ndarray, to_ids: np.ndarray, customers: np.ndarray) -> tuple[float, float]:
    """From a migration table (one row per from/to segment pair with its customer count) of the
    customers common to both runs: (share that changed segment, adjusted Rand index)."""
    total = customers.sum()
    if total == 0:
        return float("nan"), float("nan")
    changed = customers[from_ids != to_ids].sum() / total
    rows = np.bincount(np.unique(from_ids, return_inverse=True)[1], weights=customers)
    columns = np.bincount(np.unique(to_ids, return_inverse=True)[1], weights=customers)
    index = _pairs(customers)
    expected = _pairs(rows) * _pairs(columns) / _pairs(np.array([total]))
    maximum = (_pairs(rows) + _pairs(columns)) / 2
    ari = 1.0 if maximum == expected else (index - expected) / (maximum - expected)
    return float(changed), float(ari)


def decile_bins(values: np.ndarray) -> dict[str, list[float]]:
    """Bin edges at the deciles of `values` and the share of values in each bin, stored with the
    run so the next run can measure its PSI against it."""
    finite = values[np.isfinite(values)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, PSI_BINS + 1)[1:-1])) if finite.size else np.array([])
    return {"edges": edges.tolist(), "shares": bin_shares(finite, edges).tolist()}


def bin_shares(values: np.ndarray, edges: np.ndarray | list[float]) -> np.ndarray:
    counts = np.bincount(np.searchsorted(np.asarray(edges), values, side="left"), minlength=len(edges) + 1)
    return counts / max(counts.sum(), 1)


def population_stability_index(previous: dict[str, list[float]], values: np.ndarray) -> float:
    """PSI of `values` against a previous run's decile bins: sum((new - old) * ln(new / old)).

    Common reading: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 a major shift.
    """
    old = np.maximum(np.asarray(previous["shares"], dtype=float), _PSI_FLOOR)
    new = np.maximum(bin_shares(values[np.isfinite(values)], previous["edges"]), _PSI_FLOOR)
    return float(((new - old) * np.log(new / old)).sum())
