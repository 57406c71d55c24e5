"""Profile stage: describe each segment in original units and give it a readable label."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from segjob.errors import UsageError
from segjob.model.fit import ModelResult
from segjob.prepare.columns import FeatureParams, PreparedData, to_original_units

# A numeric feature describes a segment when the segment mean is at least this many population
# standard deviations from the overall mean ("High ..." / "Low ..."); closer is "Mid ...".
STANDOUT_Z = 0.5
# A one-hot level describes a segment ("Gender: Female") only when clearly over-represented.
STANDOUT_Z_LEVEL = 1.0
LABEL_FEATURES = 2  # features in a label at first
MAX_LABEL_FEATURES = 3  # features a label may grow to when two labels collide
TOP_FEATURES = 3  # distinguishing features stored per segment
NOISE_SEGMENT_ID = 0  # DBSCAN noise; real segments are 1..k
NOISE_LABEL = "Outliers"


# (feature name, "High"/"Low"/"Mid", segment mean in original units) -> words for the label, or
# None for the generic "High <feature>"; see segjob.model.labels (marketer_words, column_words).
Vocabulary = Callable[[str, str, float | None], str | None]


@dataclass
class Segment:
    segment_id: int  # stable id (see segjob.results.lineage); 0 = DBSCAN noise ("Outliers")
    label: str  # unique within the run, e.g. "High Annual Income (k$), Low Spending Score (1-100)"
    size: int
    share: float
    top_features: list[str]  # up to TOP_FEATURES that stand out most (largest |z| first)
    cluster_index: int | None = None  # the algorithm's own index (model label); -1 = DBSCAN noise


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


def profile(
    prepared: PreparedData,
    model: ModelResult,
    labels: dict[int, str] | None = None,
    vocabulary: Vocabulary | None = None,
    segment_ids: dict[int, int] | None = None,
    totals: tuple[np.ndarray, np.ndarray] | None = None,
) -> Profile:
    """Sizes, original-unit centroids, distinguishing features and labels of the segments of `model`.

    Centroids are the model's centres taken back to original units (unscaled, log1p undone);
    for a one-hot column the centroid is the share of members with that level. Member means and
    medians are of the original values; z-scores compare a segment's mean with the whole
    population. DBSCAN noise becomes segment 0, labelled "Outliers".

    `labels` (segment id -> label, e.g. from --labels FILE) replaces automatic labels; raises
    UsageError for a segment id the run does not have or when two segments would share a label.
    `vocabulary` puts features that stand out into domain words ("Recent, frequent, high spend").
    `segment_ids` maps each model label (-1: noise) to its stable segment id (default label + 1).
    `totals` (sizes, means), indexed by model label + 1, replaces the sizes and member means
    counted from `prepared` (a streamed run passes exact totals over all rows; `prepared` is then
    its fit sample, which still gives the medians).
    """
    features = prepared.features
    noise = model.noise_center is not None
    # Model label of each output row: noise (-1) first when present, then segments 0..k-1.
    order = ([-1] if noise else []) + list(range(model.k))
    ids = [segment_ids[label] if segment_ids else label + 1 for label in order]
    sizes = np.bincount(model.labels + 1, minlength=model.k + 1)[[label + 1 for label in order]]
    members = pd.DataFrame(prepared.original).groupby(model.labels)
    means = members.mean().reindex(order).to_numpy()
    medians = members.median().reindex(order).to_numpy()
    rows_used = prepared.rows_used
    if totals is not None:
        sizes, means = totals[0][[label + 1 for label in order]], totals[1][[label + 1 for label in order]]
        rows_used = int(totals[0].sum())

    scaled = np.vstack([model.noise_center, model.centers]) if model.noise_center is not None else model.centers
    centroids = to_original_units(features, scaled)
    categorical = np.array([f.kind == "categorical" for f in features], dtype=bool)
    centroids[:, categorical] = means[:, categorical]  # GMM means are soft; shares must be exact
    population_mean = np.array([f.mean for f in features])
    population_std = np.array([f.std for f in features])
    spread = np.where(population_std > 0, population_std, 1.0)
    z = np.where(population_std > 0, (means - population_mean) / spread, 0.0)

    real = slice(1, None) if noise else slice(None)
    auto = ([NOISE_LABEL] if noise else []) + _labels(features, z[real], means[real], vocabulary, ids[real])
    final = _override(dict(zip(ids, auto)), labels or {})
    segments = [
        Segment(
            segment_id=segment_id,
            label=final[segment_id],
            size=int(sizes[row]),
            share=float(sizes[row] / rows_used),
            top_features=_top_features(features, z[row]),
            cluster_index=order[row],
        )
        for row, segment_id in enumerate(ids)
    ]
    centroid_values = [
        CentroidValue(
            segment_id=segment_id,
            feature=feature.name,
            centroid=float(centroids[row, j]),
            centroid_scaled=float(scaled[row, j]),
            mean=float(means[row, j]),
            median=float(medians[row, j]),
            z_score=float(z[row, j]),
        )
        for row, segment_id in enumerate(ids)
        for j, feature in enumerate(features)
    ]
    return Profile(segments=segments, centroids=centroid_values)


def _top_features(features: list[FeatureParams], z: np.ndarray) -> list[str]:
    """The features that stand out in a segment, largest |z| first, at most TOP_FEATURES."""
    standouts = [j for j in range(len(features)) if _stands_out(features[j], z[j])]
    standouts.sort(key=lambda j: -abs(z[j]))
    return [features[j].name for j in standouts[:TOP_FEATURES]]


def _override(auto: dict[int, str], given: dict[int, str]) -> dict[int, str]:
    """Automatic labels with the user's labels applied; they must name existing segments and stay unique."""
    unknown = sorted(set(given) - set(auto))
    if unknown:
        raise UsageError(
            f"--labels names segment {', '.join(map(str, unknown))}, but this run has segments"
            f" {', '.join(map(str, sorted(auto)))}; see 'segjob runs show' for the segment ids"
        )
    final = {**auto, **given}
    seen: dict[str, int] = {}
    for segment_id, label in sorted(final.items()):
        if label in seen:
            raise UsageError(
                f"with --labels, segments {seen[label]} and {segment_id} would both be labelled"
                f" {label!r}; labels must be unique within a run"
            )
        seen[label] = segment_id
    return final


def _labels(
    features: list[FeatureParams],
    z: np.ndarray,
    means: np.ndarray,
    vocabulary: Vocabulary | None,
    ids: list[int] | None = None,
) -> list[str]:
    """A short, unique label per segment from the features where it differs most.

    Each segment starts with its (up to) LABEL_FEATURES most distinctive features. Segments whose
    labels collide get one more numeric feature, the one that best tells them apart (possibly
    "Mid ..."), up to MAX_LABEL_FEATURES; any collision left is settled with " (segment N)",
    N being the segment's id (`ids`, in row order; default row + 1). Before numbering, segments
    whose labels collide only because the vocabulary gives two features the same words
    ("Frequent" for orders and for num_orders) take the generic feature names instead.
    """
    k, n_features = z.shape
    chosen = []
    for s in range(k):
        standouts = [j for j in range(n_features) if _stands_out(features[j], z[s, j])]
        standouts.sort(key=lambda j: -abs(z[s, j]))
        chosen.append(standouts[:LABEL_FEATURES])

    numeric = [j for j, f in enumerate(features) if f.kind == "numeric"]
    while True:
        labels = [_render(features, z[s], means[s], chosen[s], vocabulary) for s in range(k)]
        groups = _collisions(labels)
        extended = False
        for group in groups:
            # with a vocabulary, colliding labels may come from different features
            used = set().union(*(chosen[s] for s in group))
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
        generic = [_render(features, z[s], means[s], chosen[s], None) for s in group]
        others = {label for s, label in enumerate(labels) if s not in group}
        if vocabulary and len(set(generic)) == len(group) and not others & set(generic):
            for s, label in zip(group, generic):
                labels[s] = label
            continue
        for s in group:
            labels[s] += f" (segment {ids[s] if ids else s + 1})"
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


def _render(
    features: list[FeatureParams], z: np.ndarray, means: np.ndarray, chosen: list[int], vocabulary: Vocabulary | None
) -> str:
    if not chosen:
        return "Average"
    parts = []
    for j in sorted(chosen):  # feature order reads the same way in every label
        feature = features[j]
        if feature.kind == "categorical":
            parts.append(f"{feature.source_column}: {feature.level}")
            continue
        word = _word(z[j])
        words = vocabulary(feature.name, word, float(means[j])) if vocabulary else None
        if words is not None and words.lower() in (part.lower() for part in parts):
            words = None  # two features with the same words ("High spend") keep their names
        if words is None:
            parts.append(f"{word} {feature.name}")
        else:  # domain words read as one phrase: "Recent, frequent, high spend"
            parts.append(words if not parts else words[0].lower() + words[1:])
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
