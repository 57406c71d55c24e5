"""Score runs: assign customers to the segments of a stored fit run, without refitting.

The model is read back from the fit run's tables (segjob.results.stored): imputation values, clip bounds,
transforms, scaler parameters and centroids. New rows are rebuilt into model columns with exactly
those parameters (prepare.apply_params) and each goes to the nearest stored centroid (Euclidean
distance in scaled units; a tie goes to the lowest segment id, like numpy's argmin). The score
run shares the fit run's lifecycle (pipeline.run_lifecycle): lock, run key, failure marking.

Rules for the algorithms whose own assignment is not "nearest centroid":
- gmm: nearest component mean; the membership probability needs the covariances and weights,
  which segjob does not store, so `probability` is NULL.
- agglomerative: nearest segment mean (the Ward tree cannot place new rows).
- dbscan: nearest segment centroid among the real segments; the "Outliers" segment (0) is never
  given to a scored customer, since the core points that define DBSCAN's neighbourhoods are not
  stored. It is published with size 0 so the run's segments match the model's.

A purchase-history job rebuilds its features with the stored definitions from a transactions
table (default: the one the model was fitted on). The as-of date is `--as-of`, or by default the
day after the latest transaction of the scored table, the same rule as a fit run; the fit run's
`--since` is kept. So scoring the model's own table without `--as-of` reproduces its features
whenever the fit run used the default as-of date.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from segjob.config import JobSpec, as_date
from segjob.errors import DataError, UsageError
from segjob.model.algorithms import DBSCAN_NAME, nearest_two
from segjob.model.profile import NOISE_SEGMENT_ID
from segjob.pipeline import RunOutcome, run_lifecycle
from segjob.prepare.columns import MISSING_LEVEL, apply_params, as_text, is_blank
from segjob.progress import Progress, Silent
from segjob.results import promotion, publish
from segjob.results.stored import StoredModel, load_model
from segjob.source.purchases import transaction_source
from segjob.source.tables import Source, describe_source, input_fingerprint, read_source
from segjob.store import db, schema


@dataclass(frozen=True)
class ScoreInput:
    """Where the customers to score come from; None keeps what the model run used."""

    source: str | None = None
    query: str | None = None
    id: str | None = None
    transactions: str | None = None
    customer: str | None = None
    date: str | None = None
    amount: str | None = None
    customers: str | None = None
    as_of: str | None = None


@dataclass
class Assignment:
    segment_ids: np.ndarray  # (n,) stored segment id of the nearest centroid
    distance: np.ndarray  # (n,) to that centroid, scaled units
    second_distance: np.ndarray  # (n,) to the nearest other centroid; NaN with a single segment


def score_job(
    engine: sa.Engine,
    job: str,
    scored: ScoreInput,
    model_run_id: int | None = None,
    run_key: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    candidate: bool = False,
) -> RunOutcome:
    """Score customers with the model of `model_run_id` (default: the current run's model) and
    publish a run of kind `score`, which becomes current unless it is a `candidate`. UsageError
    (exit 2) for an unknown job or model run, missing tables or columns; DataError (exit 3) for
    unusable rows or categorical levels the model never saw."""
    progress = progress or Silent()
    db.check_at_head(engine)
    with db.translate_errors(engine):
        model_run_id = resolve_model_run(engine, job, model_run_id)
        model = load_model(engine, model_run_id)
    spec = score_spec(model.spec, scored, job, run_key, candidate)

    def setup():
        if spec.transactions:
            checked, source = transaction_source(engine, spec, progress)
        else:
            checked, source = spec, describe_source(engine, spec)
        return checked, lambda run_id: _score_and_publish(engine, checked, source, model, run_id, progress)

    return run_lifecycle(engine, spec, setup, force=force, kind="score", model_run_id=model.run_id)


def resolve_model_run(engine: sa.Engine, job: str, model_run_id: int | None) -> int:
    """The fit run whose model scores `job`: the one given (checked), or the current run's model
    (the current run itself when it is a fit run)."""
    run = schema.run
    with engine.connect() as connection:
        if model_run_id is not None:
            row = connection.execute(
                sa.select(run.c.job, run.c.kind, run.c.status).where(run.c.run_id == model_run_id)
            ).first()
            if row is None:
                raise UsageError(f"run {model_run_id} not found; 'segjob runs list --job {job}' shows the runs")
            if row.job != job:
                raise UsageError(f"run {model_run_id} belongs to job {row.job!r}, not {job!r}")
            if row.kind != "fit" or row.status != "succeeded":
                raise UsageError(
                    f"run {model_run_id} is a {row.status} {row.kind} run; --model-run needs a succeeded fit run"
                )
            return model_run_id
        current = promotion.current_run_id(connection, job)
        if current is None:
            known = connection.execute(sa.select(sa.func.count()).where(run.c.job == job)).scalar()
            if not known:
                raise UsageError(f"job {job!r} has no runs; 'segjob runs list' shows the jobs")
            candidates = connection.execute(
                sa.select(sa.func.count()).where(run.c.job == job, run.c.status == "succeeded")
            ).scalar()
            if not candidates:
                raise UsageError(f"job {job!r} has no succeeded fit run to score with; run 'segjob run' first")
            raise UsageError(
                f"job {job!r} has only candidate runs, none current: 'segjob promote RUN_ID' one,"
                " or give --model-run RUN_ID"
            )
        kind, model_of_current = connection.execute(
            sa.select(run.c.kind, run.c.model_run_id).where(run.c.run_id == current)
        ).one()
        return current if kind == "fit" else int(model_of_current)


def score_spec(
    model_spec: JobSpec, scored: ScoreInput, job: str, run_key: str | None, candidate: bool = False
) -> JobSpec:
    """The spec stored with the score run: the model's settings, this run's input and run key."""
    common: dict[str, Any] = dict(
        job=job, run_key=run_key, labels={}, transaction_features=None, validate_days=None, candidate=candidate
    )
    if model_spec.transactions:
        if scored.source or scored.query or scored.id:
            raise UsageError(
                f"job {job!r} builds its features from transactions: give --transactions TABLE"
                " (default: the model's table) and --customer COLUMN, not --source, --query or --id"
            )
        customer = scored.customer or model_spec.customer
        assert customer is not None  # a --transactions spec always names its customer column (build_spec)
        return dataclasses.replace(
            model_spec,
            **common,
            transactions=scored.transactions or model_spec.transactions,
            customer=customer,
            id=customer,
            date=scored.date or model_spec.date,
            amount=scored.amount or model_spec.amount,
            customers=scored.customers or model_spec.customers,
            as_of=as_date(scored.as_of, "as-of"),
        )
    transaction_options = (
        scored.transactions,
        scored.customer,
        scored.date,
        scored.amount,
        scored.customers,
        scored.as_of,
    )
    if any(transaction_options):
        raise UsageError(
            f"job {job!r} reads a table, not transactions: give --source or --query, not --transactions"
            " or its options (--customer, --date, --amount, --customers, --as-of)"
        )
    if bool(scored.source) == bool(scored.query):
        raise UsageError("give exactly one of --source TABLE or --query SQL: the customers to score")
    return dataclasses.replace(
        model_spec, **common, source=scored.source, query=scored.query, id=scored.id or model_spec.id
    )


def _score_and_publish(
    engine: sa.Engine, spec: JobSpec, source: Source, model: StoredModel, run_id: int, progress: Progress
) -> None:
    progress.stage(f"reading {source.description}")
    frame = read_source(engine, spec, source, progress.rows)
    progress.done(f"{len(frame):,} rows")
    fingerprint = input_fingerprint(frame)

    progress.stage(f"scoring with the model of run {model.run_id}")
    _check_levels(frame, model)
    prepared = apply_params(frame, spec.id, model.features)
    del frame
    if prepared.rows_used == 0:
        counts = ", ".join(f"{reason}: {count:,}" for reason, count in prepared.dropped.items())
        raise DataError(f"no usable rows to score: 0 of {prepared.rows_read:,} rows remain ({counts or 'no rows'})")
    assignment = assign(model, prepared.X)
    progress.done(f"{prepared.rows_used:,} customers scored")

    progress.stage("publishing")
    publish.publish_score(
        engine,
        run_id,
        fingerprint,
        prepared,
        model.run_id,
        assignment.segment_ids,
        assignment.distance,
        assignment.second_distance,
    )
    progress.done(f"run {run_id}: {prepared.rows_used:,} assignments with the model of run {model.run_id}")


def assign(model: StoredModel, X: np.ndarray) -> Assignment:
    """Nearest stored centroid of each row of X, computed the way the fit run measured distances."""
    segment_ids, centroids = model.segment_ids, model.centroids
    if model.algorithm == DBSCAN_NAME:
        real = segment_ids != NOISE_SEGMENT_ID
        segment_ids, centroids = segment_ids[real], centroids[real]
    nearest, own, second = nearest_two(X, centroids)
    return Assignment(segment_ids[nearest], own, second)


def _check_levels(frame: pd.DataFrame, model: StoredModel) -> None:
    """A categorical value the model never saw has no one-hot column: refuse it rather than
    silently scoring it as 'none of the known levels'."""
    known: dict[str, set[str]] = {}
    for feature in model.features:
        if feature.kind == "categorical":
            assert feature.level is not None  # a one-hot column always encodes a level
            known.setdefault(feature.source_column, set()).add(feature.level)
    for column, levels in known.items():
        if column not in frame.columns:
            continue  # apply_params reports the missing column
        text = as_text(frame[column])
        text = text.where(~is_blank(text), MISSING_LEVEL)
        unseen = ~text.isin(levels).to_numpy(dtype=bool)
        if unseen.any():
            new = sorted(set(text[unseen]))
            shown = ", ".join(f'"{level}"' for level in new[:5]) + (", ..." if len(new) > 5 else "")
            raise DataError(
                f'column "{column}" has {len(new)} level(s) the model of run {model.run_id} never saw'
                f" ({shown}; {int(unseen.sum()):,} rows); known levels: {', '.join(sorted(levels))};"
                " fit a new model with 'segjob run' or map them to known levels in a --query"
            )
