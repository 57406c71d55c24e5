"""Stable segment ids: match a new run's segments to the job's previous run, by centroid and by
the customers they share.

Both runs' centroids are compared in the previous run's scaled space (so "far" means the same
as it did when the previous model was fit). An optimal one-to-one assignment (Hungarian
algorithm) pairs them, and a pair counts only when the new centroid is clearly closer to its
previous centroid than that centroid is to any other previous centroid: closer than
MATCH_FRACTION of the gap to its nearest neighbour. When the runs have no shared feature space
(a feature added or dropped), or a segment found no centroid match, a segment continues a
previous one that holds mostly the same customers: their overlap (Jaccard index over customers
in both runs) is above OVERLAP_TO_MATCH, which no other pair can then reach. Unmatched segments
get ids never used before in the job. Segment 0 (DBSCAN's outliers) always keeps id 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OUTLIER_SEGMENT = 0
# A new centroid matches a previous one if it lies within this fraction of the distance from
# that previous centroid to its nearest other previous centroid: half-way means it is closer to
# this segment than to any neighbour, and then some.
MATCH_FRACTION = 0.5
# Above one half, a segment shares most of its customers with exactly one previous segment.
OVERLAP_TO_MATCH = 0.5


@dataclass(frozen=True)
class Match:
    new_id: int  # the id the segment gets in the new run
    previous_id: int | None  # the previous run's segment it continues, if any
    distance: float | None  # centroid distance to that segment, previous run's scaled units


def align(
    new_ids: list[int],
    new_centroids: np.ndarray,
    previous_ids: list[int],
    previous_centroids: np.ndarray,
    next_unused_id: int,
    overlap: dict[tuple[int, int], float] | None = None,
) -> dict[int, Match]:
    """Map each new segment id (as fitted) to its stable id.

    `new_centroids` and `previous_centroids` are (segments, features) in the previous run's
    scaled space, rows in the order of `new_ids` / `previous_ids` (no rows: no shared space).
    `overlap` maps (new id, previous id) to the Jaccard index of their customers. `next_unused_id`
    is one more than the largest segment id the job has ever used.
    """
    from scipy.optimize import linear_sum_assignment

    matches: dict[int, Match] = {}
    fitted = [i for i, segment in enumerate(new_ids) if segment != OUTLIER_SEGMENT]
    known = [j for j, segment in enumerate(previous_ids) if segment != OUTLIER_SEGMENT]
    if OUTLIER_SEGMENT in new_ids:
        matches[OUTLIER_SEGMENT] = Match(
            OUTLIER_SEGMENT, OUTLIER_SEGMENT if OUTLIER_SEGMENT in previous_ids else None, None
        )

    if fitted and known:
        distances = np.linalg.norm(new_centroids[fitted][:, None, :] - previous_centroids[known][None, :, :], axis=2)
        reach = MATCH_FRACTION * _nearest_neighbour_gap(previous_centroids[known])
        for row, column in zip(*linear_sum_assignment(distances)):
            if distances[row, column] < reach[column]:
                new_index, previous_index = fitted[row], known[column]
                previous_id = previous_ids[previous_index]
                matches[new_ids[new_index]] = Match(previous_id, previous_id, float(distances[row, column]))

    taken = {match.previous_id for match in matches.values()}
    for (new_id, previous_id), share in sorted((overlap or {}).items(), key=lambda item: -item[1]):
        if share > OVERLAP_TO_MATCH and new_id not in matches and previous_id not in taken:
            if new_id != OUTLIER_SEGMENT and previous_id != OUTLIER_SEGMENT:
                matches[new_id] = Match(previous_id, previous_id, None)
                taken.add(previous_id)

    for i in fitted:  # fresh ids, in fitted order (largest segment first)
        if new_ids[i] not in matches:
            matches[new_ids[i]] = Match(next_unused_id, None, None)
            next_unused_id += 1
    return matches


def _nearest_neighbour_gap(centroids: np.ndarray) -> np.ndarray:
    """For each centroid, the distance to the nearest other one (inf when it is alone)."""
    gaps = np.linalg.norm(centroids[:, None, :] - centroids[None, :, :], axis=2)
    np.fill_diagonal(gaps, np.inf)
    return gaps.min(axis=1)
