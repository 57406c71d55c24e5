"""Profile stage: describe each segment in original units and give it a readable label."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from segjob.errors import UsageError
from segjob.model.fit import ModelResult
from segjob.model.labels import COMPARED, VERY, persona
from segjob.prepare.columns import FeatureParams, PreparedData, to_original_units

# A numeric feature describes a segment when the segment mean is at least this many population
# standard deviations from the overall mean ("High ..." / "Low ..."); closer, it is named only to
# tell apart segments that share a label, and then comparatively ("Higher ...", "Lower ...").
STANDOUT_Z = 0.5
# A one-hot level describes a segment ("Gender: Female") only when clearly over-represented.
STANDOUT_Z_LEVEL = 1.0
LABEL_FEATURES = 2  # features in a label at first
TOP_FEATURES = 3  # distinguishing features stored per segment
NOISE_SEGMENT_ID = 0  # DBSCAN noise; real segments are 1..k
NOISE_LABEL = "Outliers"


# (feature name, "High"/"Low"/"Higher"/"Lower", segment mean in original units) -> words for the label, or
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
    spread_x = prepared.X.std(axis=0) if len(prepared.X) else np.ones(scaled.shape[1])
    positions = (
        (scaled - prepared.X.mean(axis=0)) / np.where(spread_x > 0, spread_x, 1.0) if len(prepared.X) else scaled
    )
    auto = ([NOISE_LABEL] if noise else []) + _labels(features, z[real], means[real], vocabulary, positions[real])
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
    positions: np.ndarray,
) -> list[str]:
    """A short label per segment, distinct within the run, never numbered.

    With a vocabulary and recency and frequency among the features, a segment starts from its
    recency/frequency/monetary persona (segjob.model.labels.persona: "Champions", "At risk", ...);
    otherwise from its (up to) LABEL_FEATURES most distinctive features ("High income, low spend";
    "Average" when none stands out). Segments that share a label get the numeric feature on which
    their centres lie furthest apart (`positions`: centres against the population in model-column
    standard deviations): the highest of them "High ..." (or "Higher ..." when it does not stand
    out in the population), the lowest "Low ..." ("Lower ..."), until every label differs.
    Segments with identical profiles, which no feature tells apart, end with "(group A)", "(group B)".
    """
    k, n_features = z.shape
    names = [f.name for f in features]
    numeric = [j for j, f in enumerate(features) if f.kind == "numeric"]
    bases: list[str | None] = []
    chosen: list[list[tuple[int, str]]] = []
    for s in range(k):
        base = None
        if vocabulary is not None:
            frequency = float(means[s, names.index("frequency")]) if "frequency" in names else None
            base = persona({names[j]: float(positions[s, j]) for j in numeric}, frequency)
        standouts = [] if base else [j for j in range(n_features) if _stands_out(features[j], z[s, j])]
        standouts.sort(key=lambda j: -abs(z[s, j]))
        bases.append(base)
        chosen.append([(j, _word(z[s, j])) for j in standouts[:LABEL_FEATURES]])

    generic = [False] * k  # the feature names instead of words two features share ("Frequent")

    def render(s: int) -> str:
        return _render(features, means[s], bases[s], chosen[s], None if generic[s] else vocabulary)

    for _ in range(k * len(numeric) + 1):  # each round names one more feature in a colliding group
        labels = [render(s) for s in range(k)]
        groups = _collisions(labels)
        extended = False
        for group in groups:
            names_differ = len({_render(features, means[s], bases[s], chosen[s], None) for s in group}) == len(group)
            if vocabulary and names_differ and not any(generic[s] for s in group):
                for s in group:
                    generic[s] = True
                extended = True
            elif _tell_apart(group, chosen, numeric, positions, z):
                extended = True
        if not extended:
            break
    labels = [render(s) for s in range(k)]
    for group in _collisions(labels):
        for rank, s in enumerate(group):
            labels[s] += f" (group {chr(ord('A') + rank)})"
    return labels


def _tell_apart(
    group: list[int], chosen: list[list[tuple[int, str]]], numeric: list[int], positions: np.ndarray, z: np.ndarray
) -> bool:
    """Word one more feature for the segments of `group`, which share a label; False when no
    feature tells them apart. A feature their labels do not name yet comes first: the highest
    segment gets "High" ("Higher" when it does not stand out), the lowest "Low" ("Lower"). Else
    the extreme one of a feature they all call "High" (or "Low") becomes "Very high" ("Very low")."""
    used = {j for s in group for j, _ in chosen[s]}
    spread = {j: float(np.ptp(positions[group, j])) for j in numeric if j not in used}
    if spread and max(spread.values()) > 0:
        j = max(spread, key=lambda j: spread[j])
        order = sorted(group, key=lambda s: positions[s, j])
        low, high = order[0], order[-1]
        chosen[high].append((j, "High" if z[high, j] >= STANDOUT_Z else COMPARED["High"]))
        chosen[low].append((j, "Low" if z[low, j] <= -STANDOUT_Z else COMPARED["Low"]))
        return True
    shared = {}
    for j in used & set(numeric):
        words = {dict(chosen[s]).get(j) for s in group}
        if len(words) == 1 and (word := words.pop()) in VERY and np.ptp(positions[group, j]) > 0:
            shared[j] = word
    if not shared:
        return False
    j = max(shared, key=lambda j: float(np.ptp(positions[group, j])))
    order = sorted(group, key=lambda s: positions[s, j])
    extreme = order[-1] if shared[j] == "High" else order[0]
    chosen[extreme] = [(i, VERY[word] if i == j else word) for i, word in chosen[extreme]]
    return True


def _stands_out(feature: FeatureParams, z: float) -> bool:
    if feature.kind == "numeric":
        return abs(z) >= STANDOUT_Z
    # A one-hot level counts only when it is much more common in the segment than overall.
    return z >= STANDOUT_Z_LEVEL


def _word(z: float) -> str:
    """The direction of a standout feature (only standouts are worded this way)."""
    return "High" if z >= 0 else "Low"


def _render(
    features: list[FeatureParams],
    means: np.ndarray,
    base: str | None,
    chosen: list[tuple[int, str]],
    vocabulary: Vocabulary | None,
) -> str:
    if not base and not chosen:
        return "Average"
    parts = [base] if base else []
    for j, word in sorted(chosen):  # feature order reads the same way in every label
        feature = features[j]
        if feature.kind == "categorical":
            parts.append(f"{feature.source_column}: {feature.level}")
            continue
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
