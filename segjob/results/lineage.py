"""Segment lineage across a job's runs: stable segment ids, and drift against the current run.

Both compare a new run with its job's current run (segjob.results.promotion: the run
current_segment shows; a candidate run is current only once promoted), so an experiment does
not become the reference of the next nightly run.

Stable ids: a fit run's segments are matched to the current run's segments (a score run's are
its model's) by centroid (segjob.model.align: optimal one-to-one matching in the current run's
scaled space, within align.MATCH_FRACTION of the gap to the nearest other centroid of that run),
provided both runs have the same model columns. A segment with no match gets an id above every
id the job has used (run.last_segment_id survives pruning). DBSCAN's outliers are always segment 0.

Drift (`record`, inside the publish transaction) compares a run with the job's current run, of
either kind: the share of common customers that changed segment and the adjusted Rand index
(from a migration table the database counts, so memory stays bounded), each segment's centroid
shift and each feature's population stability index. Every run also stores its own decile bins
per feature, so the next run can measure its PSI against them.
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa

from segjob.model import align, drift
from segjob.model.fit import ModelResult
from segjob.prepare.columns import FeatureParams, to_original_units
from segjob.prepare.transform import LOG1P
from segjob.results import promotion
from segjob.results.stored import StoredCentroids, read_centroids
from segjob.store import schema


def stable_segment_ids(
    engine: sa.Engine, job: str, features: list[FeatureParams], model: ModelResult, keys
) -> dict[int, int]:
    """Stable segment id of each of `model`'s clusters (raw index; -1 is DBSCAN noise), matched to
    the job's current run by centroid and by the customers they share (`keys`: the customer key
    of each row `model` was fitted on)."""
    raw = ([-1] if model.noise_center is not None else []) + list(range(model.k))
    scaled = np.vstack([model.noise_center, model.centers]) if model.noise_center is not None else model.centers
    with engine.connect() as connection:
        last_used = _last_segment_id(connection, job)
        current_id = promotion.current_run_id(connection, job)
        previous = read_centroids(connection, current_id) if current_id is not None else None
        overlap = _overlap(connection, current_id, keys, model.labels + 1) if current_id is not None else {}
    if previous is not None and _names(previous.features) == _names(features):
        new_centroids = _to_scaled(previous.features, to_original_units(features, scaled))
        previous_ids, previous_centroids = previous.segment_ids.tolist(), previous.centroids
    else:  # no shared feature space: only the customers they share can match segments
        new_centroids, previous_ids, previous_centroids = scaled, [], np.empty((0, scaled.shape[1]))
    new_ids = [index + 1 for index in raw]
    matches = align.align(new_ids, new_centroids, previous_ids, previous_centroids, last_used + 1, overlap)
    return {index: matches[index + 1].new_id for index in raw}


# Customers whose previous segment is looked up to measure overlap: a seeded subset of the fit
# sample, enough to tell "most of the same customers" apart from a coincidence, read in batches
# small enough for SQLite's limit on bound parameters.
_OVERLAP_SAMPLE = 20_000
_OVERLAP_BATCH = 5_000


def _overlap(connection: sa.Connection, previous_run: int, keys, labels: np.ndarray) -> dict[tuple[int, int], float]:
    """Jaccard index of each (new segment, previous segment) pair over customers in both runs."""
    keys = np.asarray(keys, dtype=object)
    if len(keys) > _OVERLAP_SAMPLE:
        chosen = np.sort(np.random.default_rng(0).choice(len(keys), _OVERLAP_SAMPLE, replace=False))
        keys, labels = keys[chosen], labels[chosen]
    new_segment = dict(zip(keys.tolist(), labels.tolist()))
    assignment = schema.assignment
    pairs: dict[tuple[int, int], int] = {}
    for start in range(0, len(keys), _OVERLAP_BATCH):
        batch = keys[start : start + _OVERLAP_BATCH].tolist()
        for key, previous_segment in connection.execute(
            sa.select(assignment.c.customer_key, assignment.c.segment_id).where(
                assignment.c.run_id == previous_run, assignment.c.customer_key.in_(batch)
            )
        ):
            pair = (new_segment[key], previous_segment)
            pairs[pair] = pairs.get(pair, 0) + 1
    new_sizes: dict[int, int] = {}
    previous_sizes: dict[int, int] = {}
    for (new, previous), count in pairs.items():
        new_sizes[new] = new_sizes.get(new, 0) + count
        previous_sizes[previous] = previous_sizes.get(previous, 0) + count
    return {
        (new, previous): count / (new_sizes[new] + previous_sizes[previous] - count)
        for (new, previous), count in pairs.items()
    }


def record(connection: sa.Connection, run_id: int, features: list[FeatureParams], original: np.ndarray) -> None:
    """Store the run's feature bins and its drift against the job's current run.

    Call inside the publish transaction, after the run's segments, centroids and assignments are
    written. `original` holds the rows used, in original units, one column per feature.
    """
    run, segment, run_feature = schema.run, schema.segment, schema.run_feature
    job = connection.execute(sa.select(run.c.job).where(run.c.run_id == run_id)).scalar_one()
    bins = {f.name: drift.decile_bins(original[:, j]) for j, f in enumerate(features)}
    rows = [
        dict(
            run_id=run_id, feature=name, bin=i, upper_edge=(b["edges"][i] if i < len(b["edges"]) else None), share=share
        )
        for name, b in bins.items()
        for i, share in enumerate(b["shares"])
    ]
    if rows:
        connection.execute(sa.insert(schema.feature_bin), rows)

    own_largest = connection.execute(
        sa.select(sa.func.max(segment.c.segment_id)).where(segment.c.run_id == run_id)
    ).scalar()
    values: dict = {"last_segment_id": max(_last_segment_id(connection, job, exclude=run_id), own_largest or 0)}
    previous_id = promotion.current_run_id(connection, job)  # still the one before: this run is not current yet
    if previous_id is not None:
        common, changed, ari = _partition_change(connection, previous_id, run_id)
        values.update(compared_run_id=previous_id, common_customers=common, changed_share=changed, ari=ari)
        previous_bins = _bins(connection, previous_id)
        for j, f in enumerate(features):
            if f.name in previous_bins:
                psi = drift.population_stability_index(previous_bins[f.name], original[:, j])
                connection.execute(
                    sa.update(run_feature)
                    .where(run_feature.c.run_id == run_id, run_feature.c.feature == f.name)
                    .values(psi=psi)
                )
        for segment_id, shift in _centroid_shifts(
            connection, read_centroids(connection, previous_id), run_id, features
        ):
            connection.execute(
                sa.update(segment)
                .where(segment.c.run_id == run_id, segment.c.segment_id == segment_id)
                .values(centroid_shift=shift)
            )
    connection.execute(sa.update(run).where(run.c.run_id == run_id).values(**values))


def _names(features: list[FeatureParams]) -> list[str]:
    return [f.name for f in features]


def _to_scaled(features: list[FeatureParams], original: np.ndarray) -> np.ndarray:
    """Points in original units -> the scaled units of the run whose `features` these are."""
    values = np.array(original, dtype=np.float64, copy=True)
    for j, f in enumerate(features):
        column = values[:, j]
        if f.clip_low is not None and f.clip_high is not None:
            column = np.clip(column, f.clip_low, f.clip_high)
        if f.transform == LOG1P:
            column = np.log1p(np.maximum(column, 0.0))
        values[:, j] = (column - f.center) / (f.scale if f.scale else 1.0)
    return values


def _last_segment_id(connection: sa.Connection, job: str, exclude: int | None = None) -> int:
    """The largest segment id the job has used so far (0 when none)."""
    run, segment = schema.run, schema.segment
    recorded = sa.select(sa.func.max(run.c.last_segment_id)).where(run.c.job == job)
    stored = (
        sa.select(sa.func.max(segment.c.segment_id)).join(run, run.c.run_id == segment.c.run_id).where(run.c.job == job)
    )
    if exclude is not None:
        recorded = recorded.where(run.c.run_id != exclude)
        stored = stored.where(run.c.run_id != exclude)
    return max(connection.execute(recorded).scalar() or 0, connection.execute(stored).scalar() or 0)


def _partition_change(connection: sa.Connection, earlier: int, later: int) -> tuple[int, float | None, float | None]:
    """(common customers, share that changed segment, ARI) between two runs, from a migration
    table the database counts."""
    a, b = schema.assignment.alias("earlier"), schema.assignment.alias("later")
    table = connection.execute(
        sa.select(a.c.segment_id, b.c.segment_id, sa.func.count())
        .select_from(a.join(b, a.c.customer_key == b.c.customer_key))
        .where(a.c.run_id == earlier, b.c.run_id == later)
        .group_by(a.c.segment_id, b.c.segment_id)
    ).all()
    if not table:
        return 0, None, None
    counts = np.array(table, dtype=np.float64)
    changed, ari = drift.partition_change(counts[:, 0], counts[:, 1], counts[:, 2])
    return int(counts[:, 2].sum()), changed, ari


def _bins(connection: sa.Connection, run_id: int) -> dict[str, dict[str, list[float]]]:
    """A run's stored decile bins per feature, as drift.decile_bins returns them."""
    feature_bin = schema.feature_bin
    bins: dict[str, dict[str, list[float]]] = {}
    for r in connection.execute(
        sa.select(feature_bin).where(feature_bin.c.run_id == run_id).order_by(feature_bin.c.feature, feature_bin.c.bin)
    ):
        entry = bins.setdefault(r.feature, {"edges": [], "shares": []})
        entry["shares"].append(r.share)
        if r.upper_edge is not None:
            entry["edges"].append(r.upper_edge)
    return bins


def _centroid_shifts(
    connection: sa.Connection, previous: StoredCentroids, run_id: int, features: list[FeatureParams]
) -> list[tuple[int, float]]:
    """(segment id, distance its centroid moved) for segments in both runs, in the previous run's
    scaled units; none when the runs have different model columns."""
    if _names(previous.features) != _names(features):
        return []
    centroid = schema.segment_centroid
    column = {f.name: j for j, f in enumerate(features)}
    current: dict[int, np.ndarray] = {}
    for r in connection.execute(
        sa.select(centroid.c.segment_id, centroid.c.feature, centroid.c.centroid).where(centroid.c.run_id == run_id)
    ):
        current.setdefault(r.segment_id, np.zeros(len(features)))[column[r.feature]] = r.centroid
    shifts = []
    for i, segment_id in enumerate(previous.segment_ids.tolist()):
        if segment_id in current:
            moved = _to_scaled(previous.features, current[segment_id][None, :])[0] - previous.centroids[i]
            shifts.append((segment_id, float(np.linalg.norm(moved))))
    return shifts
