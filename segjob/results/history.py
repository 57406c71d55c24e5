"""Read side: run history, metrics and segment profiles for `segjob runs` and the demo."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from segjob.errors import UsageError
from segjob.model.criteria import CRITERIA, Rule
from segjob.model.explain import little_structure_warning, small_segments_warning
from segjob.results.details import (
    Backtest,
    CentroidStats,
    FeatureDetail,
    KExplanation,
    NoBacktest,
    RejectedK,
    RunDetails,
    RunSummary,
    SegmentDetail,
    SweepRow,
)
from segjob.store import db, schema

_Number = sa.Float(precision=53)
# Views are not in schema.metadata (Alembic would try to create them as tables); a Table of their
# own still gets the SQLite schema translation that a lightweight sa.table() would not, and its
# types turn SQLite's text timestamps into datetimes.
run_summary_view = sa.Table(
    "run_summary",
    sa.MetaData(schema=schema.SCHEMA),
    sa.Column("run_id", sa.Integer),
    sa.Column("job", sa.Text),
    sa.Column("kind", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("started_at", schema.Timestamp),
    sa.Column("finished_at", schema.Timestamp),
    sa.Column("k", sa.Integer),
    sa.Column("rows_read", sa.BigInteger),
    sa.Column("rows_used", sa.BigInteger),
    sa.Column("rows_dropped", sa.BigInteger),
    sa.Column("silhouette", _Number),
    sa.Column("davies_bouldin", _Number),
    sa.Column("calinski_harabasz", _Number),
    sa.Column("inertia", _Number),
    sa.Column("run_key", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("algorithm", sa.Text),
    sa.Column("k_criterion", sa.Text),
    sa.Column("stability", _Number),
    sa.Column("model_run_id", sa.Integer),
    sa.Column("compared_run_id", sa.Integer),
    sa.Column("common_customers", sa.BigInteger),
    sa.Column("changed_share", _Number),
    sa.Column("ari", _Number),
    sa.Column("max_psi", _Number),
    sa.Column("max_centroid_shift", _Number),
    sa.Column("validation_start", sa.Date),
    sa.Column("validation_end", sa.Date),
    sa.Column("next_spend_explained", _Number),
    sa.Column("candidate", sa.Boolean),
    sa.Column("is_current", sa.Boolean),
    sa.Column("current_since", schema.Timestamp),
    sa.Column("current_reason", sa.Text),
    sa.Column("features", sa.Text),  # a JSON array in text; the dicts below hold the list
)

CHOSEN_BY_PREFIX = "chosen_k_by_"
CRITERION_METRICS = {name: criterion.metric for name, criterion in CRITERIA.items()}


def _plain(row: sa.Row) -> dict[str, Any]:
    plain = dict(row._mapping)
    if isinstance(plain.get("features"), str):
        plain["features"] = json.loads(plain["features"])
    return plain


def list_runs(engine: sa.Engine, job: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest runs (all statuses), newest first."""
    query = sa.select(run_summary_view).order_by(run_summary_view.c.run_id.desc()).limit(limit)
    if job is not None:
        query = query.where(run_summary_view.c.job == job)
    with db.translate_errors(engine), engine.connect() as connection:
        return [_plain(row) for row in connection.execute(query)]


def run_summary(engine: sa.Engine, run_id: int) -> RunSummary:
    with db.translate_errors(engine), engine.connect() as connection:
        row = connection.execute(sa.select(run_summary_view).where(run_summary_view.c.run_id == run_id)).first()
    if row is None:
        raise UsageError(f"run {run_id} not found; 'segjob runs list' shows the runs")
    return RunSummary(**_plain(row))


def _warning(summary: RunSummary, model_metrics: dict[str, float], sizes: list[int]) -> str | None:
    """The warnings re-derived from what is stored: little structure (the silhouette gain), small
    segments (sizes)."""
    warnings = [
        little_structure_warning(summary.k, model_metrics) if summary.k else None,
        small_segments_warning(sizes, summary.rows_used),
    ]
    return "; ".join(text for text in warnings if text) or None


def _no_answer(
    spec: dict[str, Any] | None, chosen_by: dict[str, int], sweep: list[dict[str, Any]], rejected: set[int]
) -> dict[str, str]:
    """Each criterion for k that named no k in a run's K sweep, and why, from the stored sweep; {}
    without a sweep. next-period counts only for purchase histories (only they have a backtest)."""
    if not chosen_by:
        return {}
    definitions = (spec or {}).get("transaction_features")
    plan = (definitions or {}).get("backtest") or {}
    reasons = {}
    for name, criterion in CRITERIA.items():
        backtest = criterion.rule is Rule.FEWEST_PAYING
        if name in chosen_by or (backtest and not definitions):
            continue
        metric = criterion.metric
        measured = [row for row in sweep if row.get(metric) is not None and row["k"] not in rejected]
        if backtest and "none" in plan:
            reasons[name] = plan["none"]
        elif not measured:
            reasons[name] = f"{metric.replace('_', ' ')} was not measured"
        elif criterion.rule is Rule.GAP and len(measured) < 2:
            reasons[name] = f"its rule compares each k with the next; the sweep holds only {_ks(measured)}"
        elif criterion.rule is Rule.KNEE and len(measured) < 3:
            reasons[name] = f"an elbow needs three k or more; the sweep holds only {_ks(measured)}"
        elif criterion.rule is Rule.GAP:
            rising = all(map(_gap_rises, measured, measured[1:]))
            reasons[name] = f"gap keeps rising up to k={measured[-1]['k']}" if rising else "no k meets its rule"
        elif criterion.rule is Rule.KNEE:
            reasons[name] = "the inertia curve has no elbow"
        else:
            reasons[name] = f"{metric.replace('_', ' ')} ranks no k"
    return reasons


def _ks(rows: list[dict[str, Any]]) -> str:
    return "k=" + ", ".join(str(row["k"]) for row in rows)


def _gap_rises(row: dict[str, Any], after: dict[str, Any]) -> bool:
    """The gap statistic's rule does not stop at row's k: the next k's gap is higher beyond its noise."""
    return row["gap"] < after["gap"] - (after.get("gap_sd") or 0.0)


def _backtest(spec: dict[str, Any] | None, sweep: dict[int, dict[str, Any]]) -> Backtest | NoBacktest | None:
    """A purchase-history run's backtest of later behaviour (segjob.model.backtest): its period and
    each k's figures; NoBacktest when the history was too short; None without one."""
    plan = ((spec or {}).get("transaction_features") or {}).get("backtest")
    if not plan:
        return None
    if "none" in plan:
        return NoBacktest(plan["none"])
    names = ("backtest_score", "backtest_spend_explained", "backtest_rate_spread")
    return Backtest(
        **{key: plan[key] for key in ("as_of", "start", "end", "days", "rule")},
        by_k={k: {name: row[name] for name in names if name in row} for k, row in sweep.items() if names[0] in row},
    )


def show_run(engine: sa.Engine, run_id: int) -> RunDetails:
    """Everything about one run: summary, spec, how k was chosen (the k each criterion would choose,
    rejected candidates), the K sweep, features with their transforms, segments."""
    summary = run_summary(engine, run_id)
    run, metric, feature = schema.run, schema.run_metric, schema.run_feature
    segment, centroid, rejection = schema.segment, schema.segment_centroid, schema.k_rejection
    with db.translate_errors(engine), engine.connect() as connection:
        details = connection.execute(
            sa.select(
                run.c.spec,
                run.c.source,
                run.c.k_reason,
                run.c.dropped_by_reason,
                run.c.seed,
                run.c.input_fingerprint,
                run.c.host,
                run.c.pid,
                run.c.segjob_version,
                run.c.sklearn_version,
                run.c.numpy_version,
            ).where(run.c.run_id == run_id)
        ).one()
        sweep_rows = connection.execute(
            sa.select(metric.c.k, metric.c.name, metric.c.value, metric.c.sample_size)
            .where(metric.c.run_id == run_id, metric.c.k.is_not(None))
            .order_by(metric.c.k, metric.c.name)
        ).all()
        model_rows = connection.execute(
            sa.select(metric.c.name, metric.c.value, metric.c.sample_size)
            .where(metric.c.run_id == run_id, metric.c.k.is_(None))
            .order_by(metric.c.metric_id)
        ).all()
        rejected = connection.execute(
            sa.select(rejection.c.k, rejection.c.smallest_share, rejection.c.reason)
            .where(rejection.c.run_id == run_id)
            .order_by(rejection.c.k)
        ).all()
        features = connection.execute(
            sa.select(feature).where(feature.c.run_id == run_id).order_by(feature.c.position)
        ).all()
        segments = connection.execute(
            sa.select(segment).where(segment.c.run_id == run_id).order_by(segment.c.segment_id)
        ).all()
        centroids = connection.execute(
            sa.select(centroid)
            .join(feature, sa.and_(feature.c.run_id == centroid.c.run_id, feature.c.feature == centroid.c.feature))
            .where(centroid.c.run_id == run_id)
            .order_by(centroid.c.segment_id, feature.c.position)
        ).all()

    sweep: dict[int, dict[str, Any]] = {}
    for row in sweep_rows:
        sweep.setdefault(row.k, {"k": row.k})[row.name] = row.value
        if row.sample_size is not None:
            sweep[row.k][f"{row.name}_sample_size"] = row.sample_size
    chosen_by = {
        row.name.removeprefix(CHOSEN_BY_PREFIX).replace("_", "-"): int(row.value)
        for row in model_rows
        if row.name.startswith(CHOSEN_BY_PREFIX)
    }
    model_metrics = {row.name: row.value for row in model_rows if not row.name.startswith(CHOSEN_BY_PREFIX)}
    by_segment: dict[int, dict[str, CentroidStats]] = {}
    for row in centroids:
        by_segment.setdefault(row.segment_id, {})[row.feature] = CentroidStats(
            row.centroid, row.mean, row.median, row.z_score
        )
    runner_up = model_metrics.get("runner_up_k")
    explanation = KExplanation(
        k=summary.k,
        rule=summary.k_criterion,
        reason=details.k_reason,
        runner_up_k=None if runner_up is None else int(runner_up),
        runner_up_margin=model_metrics.get("runner_up_margin"),
        chosen_k_by=chosen_by,
        silhouette_gain=model_metrics.get("silhouette_gain"),
        null_silhouette=model_metrics.get("null_silhouette"),
        warning=_warning(summary, model_metrics, [row.size for row in segments]),
        backtest=_backtest(details.spec, sweep),
        no_answer=_no_answer(details.spec, chosen_by, list(sweep.values()), {row.k for row in rejected}),
    )
    return RunDetails(
        summary=summary,
        spec=details.spec,
        source=details.source,
        k_reason=details.k_reason,
        dropped_by_reason=details.dropped_by_reason,
        seed=details.seed,
        input_fingerprint=details.input_fingerprint,
        host=details.host,
        pid=details.pid,
        segjob_version=details.segjob_version,
        sklearn_version=details.sklearn_version,
        numpy_version=details.numpy_version,
        k_sweep=[SweepRow(k, {name: value for name, value in row.items() if name != "k"}) for k, row in sweep.items()],
        k_explanation=explanation,
        rejected_k=[RejectedK(row.k, row.smallest_share, row.reason) for row in rejected],
        model_metrics=model_metrics,
        features=[
            FeatureDetail(**{key: value for key, value in row._mapping.items() if key != "run_id"}) for row in features
        ],
        segments=[
            SegmentDetail(
                segment_id=row.segment_id,
                label=row.label,
                size=row.size,
                share=row.share,
                top_features=row.top_features or [],
                features=by_segment.get(row.segment_id, {}),
                cluster_index=row.cluster_index,
                centroid_shift=row.centroid_shift,
                next_purchase_rate=row.next_purchase_rate,
                next_spend_mean=row.next_spend_mean,
                next_revenue_share=row.next_revenue_share,
            )
            for row in segments
        ],
    )


def validation_summary(details: RunDetails) -> str | None:
    """One sentence on the next period that checked the segments (segjob.results.validation), or None
    for a run without one; `runs show` and the report use it."""
    summary, definitions = details.summary, details.transaction_features or {}
    if summary.kind == "score" or not definitions:
        return None
    period = definitions.get("validation")
    if not period or summary.validation_start is None:
        return "next period: none (the as-of date leaves no later transactions; --validate-days N checks the segments)"
    explained = summary.next_spend_explained
    share = "not measurable (every customer spent the same)" if explained is None else f"{explained:.1%}"
    return (
        f"next period {summary.validation_start} to {summary.validation_end} ({period['rule']}):"
        f" the segments explain {share} of the variance of next-period spend per customer"
    )
