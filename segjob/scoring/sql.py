"""`segjob sql score`: one standalone PostgreSQL SELECT that scores a job's source with a stored model.

A BI tool can run it to segment brand-new customers live, with no segjob process. The model's
parameters (impute values, clip bounds, transforms, scaler parameters, centroids) are written into
the statement as exact float literals (Python's repr, which round-trips a double). Each model
column is its stored list of preparation steps (prepare.columns.pipeline), the list
prepare.apply_params walks, and each step writes its own SQL (segjob.prepare.steps) for
a database's dialect (segjob.store.dialect: `render` writes PostgreSQL's or SQLite's; `segjob sql
score` prints PostgreSQL's):

- id: CAST(id AS TEXT); rows with a NULL or blank id are left out.
- numeric feature: a NULL, infinite or NaN value gets the stored impute value (CASE), or
  leaves its row out when the model dropped such rows; then LEAST/GREATEST to the clip bounds,
  LN(1 + x) for log1p, and (x - center) / scale.
- categorical level: CASE WHEN the text (blank: "(missing)") equals the level THEN 1 ELSE 0; rows
  with a level the model never saw are left out (`segjob score` refuses them).
- the squared distance to every centroid, summed feature by feature; the nearest wins, a tie
  going to the lowest segment id (numpy's argmin in `segjob score`); DBSCAN's "Outliers" segment
  is never chosen.

User identifiers are quoted by SQLAlchemy's PostgreSQL identifier preparer and text literals by
psycopg, never pasted in raw. A purchase-history job embeds its aggregation SQL rebuilt from
the definitions stored with the model run, as of `--as-of` (default: the day after the latest
transaction, the rule of `segjob score`), so print it again to move the as-of date on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container

import sqlalchemy as sa

from segjob.config import as_date
from segjob.errors import UsageError
from segjob.model.algorithms import DBSCAN_NAME
from segjob.model.profile import NOISE_SEGMENT_ID
from segjob.prepare.columns import MISSING_LEVEL, FeatureParams, pipeline
from segjob.results.stored import StoredModel, load_model
from segjob.scoring.score import resolve_model_run
from segjob.source.purchases import transaction_source
from segjob.source.tables import describe_source
from segjob.store import db
from segjob.store.dialect import POSTGRES, Dialect, dialect_of


def score_sql(engine: sa.Engine, job: str, model_run_id: int | None = None, as_of: str | None = None) -> str:
    """The SELECT that assigns every row of `job`'s source to the nearest centroid of its model
    (default: the current run's model). A purchase-history job's features are as of
    `as_of` (default: the day after the latest transaction). UsageError (exit 2) on SQLite."""
    if not dialect_of(engine).postgres:
        raise UsageError(
            "segjob sql score writes PostgreSQL SQL and this database is SQLite;"
            " use 'segjob score' to score customers here"
        )
    db.check_at_head(engine)
    with db.translate_errors(engine):
        model = load_model(engine, resolve_model_run(engine, job, model_run_id))
        if as_of is not None and not model.spec.transactions:
            raise UsageError(f"--as-of is for purchase-history jobs; job {job!r} reads a table")
        return render(model, *_source(engine, model, as_of))


def _source(engine: sa.Engine, model: StoredModel, as_of: str | None) -> tuple[str, set[str]]:
    """The FROM clause of the job's source and its columns the database types as numbers."""
    spec = model.spec
    if spec.transactions:
        # The aggregation rebuilt from the stored definitions, as of the date asked for: the SQL
        # the model run stored would leave out every transaction since its own as-of date.
        rebuilt = dataclasses.replace(spec, as_of=as_date(as_of, "as-of"), transaction_features=None)
        rebuilt, _ = transaction_source(engine, rebuilt)
        features = rebuilt.transaction_features
        assert features is not None  # transaction_source fills them in
        return f"(\n{features['sql']}\n) AS segjob_source", set(features["features"])
    # Checks that the table (or query) and its columns still exist; the FROM clause is quoted.
    source = describe_source(engine, spec)
    return source.from_clause, {name for name, column in source.columns.items() if column.numeric}


def render(
    model: StoredModel,
    from_clause: str,
    numeric_columns: Container[str] = frozenset(),
    dialect: Dialect = POSTGRES,
) -> str:
    """The scoring SELECT for `model` over the rows of `from_clause` (see the module docstring),
    in PostgreSQL's SQL unless another `dialect` is given.

    A column in `numeric_columns` is cast to DOUBLE PRECISION as is; any other is read as text,
    blank meaning missing, as `segjob score` parses it. Each model column is its stored pipeline
    of preparation steps (prepare.columns.pipeline), each step writing its own SQL: the cleaning
    steps (impute, or drop the row) in segjob_clean, the others in segjob_scaled."""
    w = dialect
    spec = model.spec
    pipelines = [pipeline(feature) for feature in model.features]
    numeric = [i for i, feature in enumerate(model.features) if feature.kind == "numeric"]
    categorical = list(dict.fromkeys(f.source_column for f in model.features if f.kind == "categorical"))

    inputs = [f"CAST({w.identifier(spec.id)} AS TEXT) AS customer_key"]
    for j, i in enumerate(numeric):
        column = w.identifier(model.features[i].source_column)
        if model.features[i].source_column in numeric_columns:
            raw = f"CAST({column} AS DOUBLE PRECISION)"
        else:
            raw = f"CAST(NULLIF(TRIM(CAST({column} AS TEXT)), '') AS DOUBLE PRECISION)"
        inputs.append(f"{raw} AS n{j}")
    for j, column in enumerate(categorical):
        inputs.append(
            f"COALESCE(NULLIF(TRIM(CAST({w.identifier(column)} AS TEXT)), ''), {w.text(MISSING_LEVEL)}) AS c{j}"
        )

    conditions = ["customer_key IS NOT NULL", "TRIM(customer_key) <> ''"]
    cleaned = ["customer_key"]
    for j, i in enumerate(numeric):
        value = f"n{j}"
        for step in pipelines[i]:
            if step.cleans:
                keeps = step.sql_keeps(value, w)
                conditions += [keeps] if keeps is not None else []
                value = step.sql(value, w)
        cleaned.append(value if value == f"n{j}" else f"{value} AS n{j}")
    for j, column in enumerate(categorical):
        # `segjob score` refuses a level the model never saw; here such rows are left out.
        levels = [_level(f) for f in model.features if f.kind == "categorical" and f.source_column == column]
        conditions.append(f"c{j} IN ({', '.join(w.text(level) for level in levels)})")
        cleaned.append(f"c{j}")

    scaled = ["customer_key"]
    inputs_of = {i: f"n{j}" for j, i in enumerate(numeric)}
    inputs_of |= {
        i: f"c{categorical.index(feature.source_column)}"
        for i, feature in enumerate(model.features)
        if feature.kind == "categorical"
    }
    for i, feature in enumerate(model.features):
        value = inputs_of[i]
        for step in pipelines[i]:
            if not step.cleans:
                value = step.sql(value, w)
        scaled.append(f"{value} AS x{i}  -- {_comment(feature.name)}")

    segments = [
        (int(segment_id), centroid)
        for segment_id, centroid in zip(model.segment_ids, model.centroids)
        if not (model.algorithm == DBSCAN_NAME and segment_id == NOISE_SEGMENT_ID)
    ]
    squared = ["customer_key"]
    for segment_id, centroid in segments:
        terms = " + ".join(f"(x{p} - {w.number(c)}) * (x{p} - {w.number(c)})" for p, c in enumerate(centroid))
        squared.append(f"{terms} AS d{segment_id}")
    nearest = w.least(*(f"d{s}" for s, _ in segments)) if len(segments) > 1 else f"d{segments[0][0]}"
    choose = "CASE " + " ".join(f"WHEN d{s} = {nearest} THEN {s}" for s, _ in segments) + " END"
    labels = "CASE segment_id " + " ".join(f"WHEN {s} THEN {w.text(model.labels[s])}" for s, _ in segments) + " END"

    def block(items: list[str]) -> str:
        out = []
        for i, item in enumerate(items):
            code, _, comment = item.partition("  -- ")
            comma = "," if i < len(items) - 1 else ""
            out.append(f"        {code}{comma}" + (f"  -- {comment}" if comment else ""))
        return "\n".join(out)

    return f"""-- segjob sql score: job {_comment(model.job)}, model of run {model.run_id} ({model.algorithm}).
-- Assigns every row of the job's source to the nearest stored centroid; generated, do not edit.
WITH segjob_input AS (
    SELECT
{block(inputs)}
    FROM {from_clause}
),
segjob_clean AS (
    SELECT
{block(cleaned)}
    FROM segjob_input
    WHERE {" AND ".join(conditions)}
),
segjob_scaled AS (
    SELECT
{block(scaled)}
    FROM segjob_clean
),
segjob_squared AS (
    SELECT
{block(squared)}
    FROM segjob_scaled
),
segjob_nearest AS (
    SELECT customer_key, {choose} AS segment_id, SQRT({nearest}) AS distance
    FROM segjob_squared
)
SELECT customer_key, segment_id, {labels} AS segment_label, distance
FROM segjob_nearest
"""


def _level(feature: FeatureParams) -> str:
    """The level a one-hot column encodes; every categorical feature has one."""
    assert feature.level is not None
    return feature.level


def _comment(text: str) -> str:
    """Text safe inside a -- comment (no line breaks)."""
    return " ".join(str(text).split())
