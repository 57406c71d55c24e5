"""What `runs show`, the report, `--json` and `segjob.run_details` tell about one run, as typed
objects (segjob.results.history.show_run builds them from the run's tables).

`as_dict()` is the one JSON shape of each: plain values in a fixed key order, which the CLI prints
with json.dumps. Only the stored job spec stays free-form: it is the JSON of the spec the run ran with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True)
class RunSummary:
    """One row of the run_summary view, the BI contract (`runs list` prints these)."""

    run_id: int
    job: str
    kind: str  # fit or score
    status: str  # running, succeeded, failed or abandoned
    started_at: datetime
    finished_at: datetime | None
    k: int | None
    rows_read: int | None
    rows_used: int | None
    rows_dropped: int | None
    silhouette: float | None
    davies_bouldin: float | None
    calinski_harabasz: float | None
    inertia: float | None
    run_key: str | None
    error: str | None
    algorithm: str | None
    k_criterion: str | None  # what decided k: a criterion's name, "fixed" (--k) or "dbscan"
    stability: float | None
    model_run_id: int | None  # score runs: the fit run whose model they used
    compared_run_id: int | None  # drift: the job's previous succeeded run
    common_customers: int | None
    changed_share: float | None
    ari: float | None
    max_psi: float | None
    max_centroid_shift: float | None
    validation_start: date | None  # purchase histories: the next period that checked the segments
    validation_end: date | None
    next_spend_explained: float | None
    candidate: bool
    is_current: bool
    current_since: datetime | None
    current_reason: str | None
    features: list[str] | None  # the source columns used

    def as_dict(self) -> dict[str, object]:
        return _fields(self)


@dataclass(frozen=True)
class FeatureDetail:
    """A model column of the run (run_feature): how it was prepared and its population statistics."""

    feature: str
    position: int
    kind: str  # numeric or categorical
    source_column: str
    level: str | None  # a categorical column's one-hot level
    impute_value: float | None
    missing_count: int
    center: float
    scale: float
    mean: float
    std: float
    min: float
    max: float
    transform: str | None  # None or "log1p"
    skewness: float | None
    clip_low: float | None
    clip_high: float | None
    clipped_count: int | None
    psi: float | None  # population stability index against the compared run

    def as_dict(self) -> dict[str, object]:
        return _fields(self)


@dataclass(frozen=True)
class CentroidStats:
    """A segment's centroid, mean and median of one feature in original units, and the mean's z-score."""

    centroid: float
    mean: float
    median: float
    z_score: float

    def as_dict(self) -> dict[str, object]:
        return _fields(self)


@dataclass(frozen=True)
class SegmentDetail:
    segment_id: int  # stable across the job's runs
    label: str
    size: int
    share: float
    top_features: list[str]  # the features that set it apart, largest |z| first
    features: Mapping[str, CentroidStats]  # feature -> stats, in model-column order
    cluster_index: int | None  # the algorithm's own index
    centroid_shift: float | None  # from the same segment in the compared run, its scaled units
    next_purchase_rate: float | None  # purchase histories with a next period: what the customers did
    next_spend_mean: float | None
    next_revenue_share: float | None

    def as_dict(self) -> dict[str, object]:
        plain = _fields(self)
        plain["features"] = {name: stats.as_dict() for name, stats in self.features.items()}
        return plain

    def as_brief_dict(self) -> dict[str, object]:
        """What `run --json` and `score --json` print of a segment: its centroid, not all the statistics."""
        return {
            "segment_id": self.segment_id,
            "label": self.label,
            "size": self.size,
            "share": self.share,
            "centroid": {name: stats.centroid for name, stats in self.features.items()},
        }


@dataclass(frozen=True)
class SweepRow:
    """One k of the K sweep: each metric measured for it (and `<metric>_sample_size` where sampled)."""

    k: int
    metrics: Mapping[str, float | None]

    def as_dict(self) -> dict[str, object]:
        return {"k": self.k, **self.metrics}


@dataclass(frozen=True)
class RejectedK:
    """A k of the sweep that could not be chosen (e.g. a segment below --min-segment-share)."""

    k: int
    smallest_share: float | None
    reason: str

    def as_dict(self) -> dict[str, object]:
        return _fields(self)


@dataclass(frozen=True)
class Backtest:
    """A purchase-history run's backtest of later behaviour (segjob.model.backtest): its period and
    each k's figures."""

    as_of: str
    start: str
    end: str
    days: int
    rule: str
    by_k: Mapping[int, Mapping[str, float | None]]  # k -> backtest_score, ..._spend_explained, ..._rate_spread

    def as_dict(self) -> dict[str, object]:
        return _fields(self)


@dataclass(frozen=True)
class NoBacktest:
    """A purchase-history run whose history was too short for a backtest, and why."""

    why: str

    def as_dict(self) -> dict[str, object]:
        return {"none": self.why}


@dataclass(frozen=True)
class KExplanation:
    """How k was chosen: the rule, its runner-up, each criterion's k (or why it names none) and the
    warnings re-derived from what is stored."""

    k: int | None
    rule: str | None
    reason: str | None
    runner_up_k: int | None
    runner_up_margin: float | None
    chosen_k_by: Mapping[str, int]  # criterion -> the k it would choose
    silhouette_gain: float | None
    null_silhouette: float | None
    warning: str | None  # little structure, small segments
    backtest: Backtest | NoBacktest | None
    no_answer: Mapping[str, str]  # criterion -> why it names no k

    @property
    def criteria_disagree(self) -> bool:
        return len(set(self.chosen_k_by.values())) > 1

    def as_dict(self) -> dict[str, object]:
        return {
            "k": self.k,
            "rule": self.rule,
            "reason": self.reason,
            "runner_up_k": self.runner_up_k,
            "runner_up_margin": self.runner_up_margin,
            "chosen_k_by": dict(self.chosen_k_by),
            "criteria_disagree": self.criteria_disagree,
            "silhouette_gain": self.silhouette_gain,
            "null_silhouette": self.null_silhouette,
            "warning": self.warning,
            "backtest": None if self.backtest is None else self.backtest.as_dict(),
            "no_answer": dict(self.no_answer),
        }


@dataclass(frozen=True)
class RunDetails:
    """Everything about one run: its summary, spec and provenance, how k was chosen, the K sweep,
    features with their transforms, segments."""

    summary: RunSummary
    spec: dict[str, Any]  # the stored job spec (free-form JSON)
    source: str  # the table or query it read, as a person reads it
    k_reason: str | None
    dropped_by_reason: Mapping[str, int] | None
    seed: int | None
    input_fingerprint: str | None
    host: str
    pid: int
    segjob_version: str
    sklearn_version: str
    numpy_version: str
    k_sweep: list[SweepRow]
    k_explanation: KExplanation
    rejected_k: list[RejectedK]
    model_metrics: Mapping[str, float | None]  # the chosen model's metrics
    features: list[FeatureDetail]  # in model-column order
    segments: list[SegmentDetail]

    @property
    def transaction_features(self) -> dict[str, Any] | None:
        """A purchase-history run's stored feature definitions (window, counts, backtest plan)."""
        return self.spec.get("transaction_features")

    def brief_segments(self) -> list[dict[str, object]]:
        """The segments as `run --json` and `score --json` print them (SegmentDetail.as_brief_dict)."""
        return [segment.as_brief_dict() for segment in self.segments]

    def as_dict(self) -> dict[str, object]:
        """What `runs show --json` prints: the summary's keys (its feature names replaced by the
        features' details), the provenance, then how k was chosen, the sweep and the segments."""
        plain = self.summary.as_dict()
        plain["features"] = [feature.as_dict() for feature in self.features]
        plain.update(
            spec=self.spec,
            source=self.source,
            k_reason=self.k_reason,
            dropped_by_reason=self.dropped_by_reason,
            seed=self.seed,
            input_fingerprint=self.input_fingerprint,
            host=self.host,
            pid=self.pid,
            segjob_version=self.segjob_version,
            sklearn_version=self.sklearn_version,
            numpy_version=self.numpy_version,
            k_sweep=[row.as_dict() for row in self.k_sweep],
            chosen_k_by=dict(self.k_explanation.chosen_k_by),
            criteria_disagree=self.k_explanation.criteria_disagree,
            k_explanation=self.k_explanation.as_dict(),
            rejected_k=[row.as_dict() for row in self.rejected_k],
            model_metrics=dict(self.model_metrics),
            segments=[segment.as_dict() for segment in self.segments],
        )
        return plain


def _fields(value: Any) -> dict[str, object]:
    """A dataclass's fields in their declared order, not copied (dataclasses.asdict would deep-copy)."""
    return {field.name: getattr(value, field.name) for field in fields(value)}
