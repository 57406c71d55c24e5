"""Profile stage: describe each segment in original units and give it a readable label."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from segjob.model import ModelResult
from segjob.prepare import FeatureParams, PreparedData

# A numeric feature describes a segment when the segment mean is at least this many population
# standard deviations from the overall mean ("High ..." / "Low ..."); closer is "Mid ...".
STANDOUT_Z = 0.5
# A one-hot level describes a segment ("Gender: Female") only when clearly over-represented.
STANDOUT_Z_LEVEL = 1.0
LABEL_FEATURES = 2  # features in a label at first
MAX_LABEL_FEATURES = 3  # features a label may grow to when two labels collide


@dataclass
class Segment:
    segment_id: int  # 1-based; label index + 1
    label: str  # unique within the run, e.g. "High Annual Income (k$), Low Spending Score (1-100)"
    size: int
    share: float


@dataclass
class CentroidValue:
    segment_id: int
    feature: str
    centroid: float  # original units (one-hot: share of the level)
    centroid_scaled: float
    mean: float  # mean of the segment's members, original units
    median: float
    z_score: float  # (segment mean - population mean) / population std


@dataclass
class Profile:
    segments: list[Segment]
    centroids: list[CentroidValue]


def profile(prepared: PreparedData, model: ModelResult) -> Profile:
    """Sizes, original-unit centroids and labels of the segments of `model`.

    Centroids and member means/medians are in original units (a one-hot column gives the share
    of members with that level); z-scores compare a segment's mean with the whole population.
    """
    k = model.k
    sizes = np.bincount(model.labels, minlength=k)
    members = pd.DataFrame(prepared.original).groupby(model.labels)
    means = members.mean().reindex(range(k)).to_numpy()
    medians = members.median().reindex(range(k)).to_numpy()

    center = np.array([f.center for f in prepared.features])
    scale = np.array([f.scale for f in prepared.features])
    population_mean = np.array([f.mean for f in prepared.features])
    population_std = np.array([f.std for f in prepared.features])
    centroids = center + scale * model.centers
    spread = np.where(population_std > 0, population_std, 1.0)
    z = np.where(population_std > 0, (means - population_mean) / spread, 0.0)

    labels = _labels(prepared.features, z)
    segments = [
        Segment(
            segment_id=s + 1,
            label=labels[s],
            size=int(sizes[s]),
            share=float(sizes[s] / prepared.rows_used),
        )
        for s in range(k)
    ]
    centroid_values = [
        CentroidValue(
            segment_id=s + 1,
            feature=feature.name,
            centroid=float(centroids[s, j]),
            centroid_scaled=float(model.centers[s, j]),
            mean=float(means[s, j]),
            median=float(medians[s, j]),
            z_score=float(z[s, j]),
        )
        for s in range(k)
        for j, feature in enumerate(prepared.features)
    ]
    return Profile(segments=segments, centroids=centroid_values)


def _labels(features: list[FeatureParams], z: np.ndarray) -> list[str]:
    """A short, unique label per segment from the features where it differs most.

    Each segment starts with its (up to) LABEL_FEATURES most distinctive features. Segments whose
    labels collide get one more numeric feature, the one that best tells them apart (possibly
    "Mid ..."), up to MAX_LABEL_FEATURES; any collision left is settled with " (segment N)".
    """
    k, n_features = z.shape
    chosen = []
    for s in range(k):
        standouts = [j for j in range(n_features) if _stands_out(features[j], z[s, j])]
        standouts.sort(key=lambda j: -abs(z[s, j]))
        chosen.append(standouts[:LABEL_FEATURES])

    numeric = [j for j, f in enumerate(features) if f.kind == "numeric"]
    while True:
        labels = [_render(features, z[s], chosen[s]) for s in range(k)]
        groups = _collisions(labels)
        extended = False
        for group in groups:
            used = set(chosen[group[0]])
            if len(used) >= MAX_LABEL_FEATURES:
                continue
            split = _best_split([j for j in numeric if j not in used], z[group])
            if split is not None:
                for s in group:
                    chosen[s].append(split)
                extended = True
        if not extended:
            break
    for group in groups:
        for s in group:
            labels[s] += f" (segment {s + 1})"
    return labels


def _stands_out(feature: FeatureParams, z: float) -> bool:
    if feature.kind == "numeric":
        return abs(z) >= STANDOUT_Z
    # A one-hot level counts only when it is much more common in the segment than overall.
    return z >= STANDOUT_Z_LEVEL


def _word(z: float) -> str:
    if z >= STANDOUT_Z:
        return "High"
    if z <= -STANDOUT_Z:
        return "Low"
    return "Mid"


def _render(features: list[FeatureParams], z: np.ndarray, chosen: list[int]) -> str:
    if not chosen:
        return "Average"
    parts = []
    for j in sorted(chosen):  # feature order reads the same way in every label
        feature = features[j]
        if feature.kind == "numeric":
            parts.append(f"{_word(z[j])} {feature.name}")
        else:
            parts.append(f"{feature.source_column}: {feature.level}")
    return ", ".join(parts)


def _collisions(labels: list[str]) -> list[list[int]]:
    """Groups of segment indexes that share a label."""
    by_label: dict[str, list[int]] = {}
    for s, label in enumerate(labels):
        by_label.setdefault(label, []).append(s)
    return [group for group in by_label.values() if len(group) > 1]


def _best_split(candidates: list[int], z: np.ndarray) -> int | None:
    """The candidate feature whose words differ most across the rows of `z` (one per segment).

    Ties go to the larger spread of z, then to the earlier feature; None when no candidate
    gives the segments different words.
    """
    best, best_key = None, (1, 0.0)
    for j in candidates:
        words = len({_word(value) for value in z[:, j]})
        key = (words, float(np.ptp(z[:, j])))
        if key > best_key:
            best, best_key = j, key
    return best
