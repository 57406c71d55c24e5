"""A succeeded run's frozen model, read back from its tables: spec, feature parameters, centroids.

Everything needed to rebuild model columns for rows (prepare.apply_params) and to assign them to
the run's segments, with no refit and no pickles.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import sqlalchemy as sa

from segjob.config import JobSpec
from segjob.errors import UsageError
from segjob.prepare.columns import FeatureParams
from segjob.store import schema


@dataclass
class StoredModel:
    run_id: int
    job: str
    spec: JobSpec
    features: list[FeatureParams]  # in model column order
    segment_ids: np.ndarray  # (k,) segment id of each centroid row
    centroids: np.ndarray  # (k, n_features) scaled model units
    labels: dict[int, str]  # segment id -> label
    algorithm: str = "kmeans"  # kmeans, minibatch-kmeans, gmm, agglomerative or dbscan


@dataclass
class StoredCentroids:
    features: list[FeatureParams]  # in model column order
    segment_ids: np.ndarray  # (k,) segment id of each centroid row, ascending
    centroids: np.ndarray  # (k, n_features) scaled model units


def read_centroids(connection: sa.Connection, run_id: int) -> StoredCentroids:
    """A run's feature parameters and its centroids in scaled units, as stored."""
    run_feature, centroid = schema.run_feature, schema.segment_centroid
    names = {f.name for f in fields(FeatureParams)}
    features = [
        FeatureParams(name=r.feature, **{key: value for key, value in r._mapping.items() if key in names})
        for r in connection.execute(
            sa.select(run_feature).where(run_feature.c.run_id == run_id).order_by(run_feature.c.position)
        )
    ]
    rows = connection.execute(
        sa.select(centroid.c.segment_id, centroid.c.feature, centroid.c.centroid_scaled).where(
            centroid.c.run_id == run_id
        )
    ).all()
    segment_ids = np.array(sorted({r.segment_id for r in rows}), dtype=np.int64)
    position = {segment_id: i for i, segment_id in enumerate(segment_ids.tolist())}
    column = {feature.name: j for j, feature in enumerate(features)}
    centroids = np.zeros((len(segment_ids), len(features)))
    for r in rows:
        centroids[position[r.segment_id], column[r.feature]] = r.centroid_scaled
    return StoredCentroids(features, segment_ids, centroids)


def load_model(engine: sa.Engine, run_id: int) -> StoredModel:
    """The model of succeeded run `run_id`; UsageError when there is no such run."""
    run, segment = schema.run, schema.segment
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(run.c.run_id, run.c.job, run.c.status, run.c.spec, run.c.algorithm).where(run.c.run_id == run_id)
        ).first()
        if row is None:
            raise UsageError(f"run {run_id} not found; 'segjob runs list' shows the runs")
        if row.status != "succeeded":
            raise UsageError(f"run {run_id} has status {row.status}; only a succeeded run has a model")
        stored = read_centroids(connection, run_id)
        labels = dict(
            connection.execute(sa.select(segment.c.segment_id, segment.c.label).where(segment.c.run_id == run_id)).all()
        )
    return StoredModel(
        run_id=row.run_id,
        job=row.job,
        spec=spec_from_json(row.spec),
        features=stored.features,
        segment_ids=stored.segment_ids,
        centroids=stored.centroids,
        labels=labels,
        algorithm=row.algorithm or "kmeans",
    )


def spec_from_json(stored: dict[str, Any]) -> JobSpec:
    """The JobSpec stored with a run (keys from older segjob versions that no longer exist are ignored)."""
    names = {f.name for f in fields(JobSpec)}
    return JobSpec(**{key: value for key, value in stored.items() if key in names})
