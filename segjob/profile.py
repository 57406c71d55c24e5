"""Profile stage: describe each segment in original units and give it a readable label."""

from __future__ import annotations

from dataclasses import dataclass

from segjob.model import ModelResult
from segjob.prepare import PreparedData


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
    """Sizes, original-unit centroids and labels of the segments of `model`."""
    raise NotImplementedError
