"""Stable segment ids: pure matching of centroids between two runs."""

from __future__ import annotations

import numpy as np

from segjob.model.align import align

PREVIOUS = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])


def _ids(matches):
    return {new: match.new_id for new, match in matches.items()}


def test_permuted_segments_keep_their_previous_ids():
    new = PREVIOUS[[2, 0, 1]] + 0.1  # fitted order differs, centres moved a little
    matches = align([1, 2, 3], new, [7, 8, 9], PREVIOUS, next_unused_id=10)
    assert _ids(matches) == {1: 9, 2: 7, 3: 8}
    assert all(m.distance is not None and m.distance < 0.2 for m in matches.values())


def test_a_far_new_segment_gets_a_never_used_id():
    new = np.array([[0.1, 0.0], [4.0, 0.1], [10.0, 10.0]])
    matches = align([1, 2, 3], new, [1, 2, 3], PREVIOUS, next_unused_id=6)
    assert _ids(matches) == {1: 1, 2: 2, 3: 6}
    assert matches[3].previous_id is None


def test_a_centroid_between_two_old_ones_matches_neither():
    new = np.array([[2.0, 0.0], [0.0, 4.0]])  # half-way between segments 1 and 2
    matches = align([1, 2], new, [1, 2, 3], PREVIOUS, next_unused_id=4)
    assert _ids(matches) == {1: 4, 2: 3}


def test_more_segments_than_before_and_fewer():
    grown = np.vstack([PREVIOUS, [[4.0, 4.0]]])
    assert _ids(align([1, 2, 3, 4], grown, [1, 2, 3], PREVIOUS, 4)) == {1: 1, 2: 2, 3: 3, 4: 4}
    shrunk = PREVIOUS[[1]]
    assert _ids(align([1], shrunk, [1, 2, 3], PREVIOUS, 4)) == {1: 2}


def test_outlier_segment_stays_zero():
    new = np.array([[9.0, 9.0], [0.0, 0.0]])
    matches = align([0, 1], new, [0, 1, 2, 3], np.vstack([[[9.0, 9.0]], PREVIOUS]), next_unused_id=5)
    assert _ids(matches) == {0: 0, 1: 1}
