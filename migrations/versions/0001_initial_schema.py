"""Initial schema: runs, per-feature parameters, segments, centroids, metrics, assignments, BI views.

Table definitions and view SQL are frozen here (not imported from segjob.schema or read from
sql/views/, which holds the newest views) so this migration keeps meaning what it meant when later
migrations change the models and views.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from segjob.store.db import drop_views

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

VIEWS = ("run_summary", "current_segment", "segment_profile", "customer_segment_history", "segment_migration")

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)
Double = sa.Float(precision=53)


def _schema() -> str | None:
    return "segjob" if op.get_bind().dialect.name == "postgresql" else None


def _run_fk(schema: str | None, table: str) -> sa.ForeignKeyConstraint:
    referred = f"{schema}.run.run_id" if schema else "run.run_id"
    return sa.ForeignKeyConstraint(["run_id"], [referred], name=f"fk_{table}_run_id_run", ondelete="CASCADE")


def upgrade() -> None:
    schema = _schema()
    op.create_table(
        "run",
        sa.Column("run_id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("job", sa.String(200), nullable=False),
        sa.Column("run_key", sa.String(200)),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("heartbeat_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp),
        sa.Column("spec", Json, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("input_fingerprint", sa.String(64)),
        sa.Column("rows_read", sa.BigInteger),
        sa.Column("rows_used", sa.BigInteger),
        sa.Column("rows_dropped", sa.BigInteger),
        sa.Column("dropped_by_reason", Json),
        sa.Column("k", sa.Integer),
        sa.Column("k_reason", sa.Text),
        sa.Column("seed", sa.Integer),
        sa.Column("segjob_version", sa.String(40), nullable=False),
        sa.Column("sklearn_version", sa.String(40), nullable=False),
        sa.Column("numpy_version", sa.String(40), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_run"),
        sa.CheckConstraint("kind IN ('fit', 'score')", name="ck_run_kind"),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed', 'abandoned')", name="ck_run_status"),
        schema=schema,
    )
    op.create_index("ix_run_job_status", "run", ["job", "status"], schema=schema)
    op.create_index("ix_run_job_run_key", "run", ["job", "run_key"], schema=schema)

    op.create_table(
        "run_feature",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("feature", sa.Text, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("source_column", sa.Text, nullable=False),
        sa.Column("level", sa.Text),
        sa.Column("impute_value", Double),
        sa.Column("missing_count", sa.BigInteger, nullable=False),
        sa.Column("center", Double, nullable=False),
        sa.Column("scale", Double, nullable=False),
        sa.Column("mean", Double, nullable=False),
        sa.Column("std", Double, nullable=False),
        sa.Column("min", Double, nullable=False),
        sa.Column("max", Double, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "feature", name="pk_run_feature"),
        sa.CheckConstraint("kind IN ('numeric', 'categorical')", name="ck_run_feature_kind"),
        _run_fk(schema, "run_feature"),
        schema=schema,
    )

    op.create_table(
        "segment",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("segment_id", sa.Integer, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("share", Double, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "segment_id", name="pk_segment"),
        _run_fk(schema, "segment"),
        schema=schema,
    )

    op.create_table(
        "segment_centroid",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("segment_id", sa.Integer, nullable=False),
        sa.Column("feature", sa.Text, nullable=False),
        sa.Column("centroid", Double, nullable=False),
        sa.Column("centroid_scaled", Double, nullable=False),
        sa.Column("mean", Double, nullable=False),
        sa.Column("median", Double, nullable=False),
        sa.Column("z_score", Double, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "segment_id", "feature", name="pk_segment_centroid"),
        _run_fk(schema, "segment_centroid"),
        schema=schema,
    )

    op.create_table(
        "run_metric",
        sa.Column("metric_id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("k", sa.Integer),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("value", Double),
        sa.Column("sample_size", sa.BigInteger),
        sa.PrimaryKeyConstraint("metric_id", name="pk_run_metric"),
        _run_fk(schema, "run_metric"),
        schema=schema,
    )
    op.create_index("ix_run_metric_run_id", "run_metric", ["run_id"], schema=schema)

    op.create_table(
        "assignment",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("customer_key", sa.Text, nullable=False),
        sa.Column("segment_id", sa.Integer, nullable=False),
        sa.Column("distance", Double, nullable=False),
        sa.Column("second_distance", Double),
        sa.PrimaryKeyConstraint("run_id", "customer_key", name="pk_assignment"),
        schema=schema,
    )

    _create_views(op.get_bind())


def downgrade() -> None:
    schema = _schema()
    drop_views(op.get_bind(), VIEWS)
    for table in ("assignment", "run_metric", "segment_centroid", "segment", "run_feature", "run"):
        op.drop_table(table, schema=schema)


def _create_views(bind) -> None:
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        # The SQL names tables without a schema (it reads the same on SQLite); views bind their
        # tables when created, so the search path matters only in this transaction.
        bind.exec_driver_sql("SET LOCAL search_path TO segjob")
    for name in VIEWS:
        bind.exec_driver_sql(VIEW_SQL[name])
    if postgres:
        bind.exec_driver_sql("SET LOCAL search_path TO DEFAULT")


# The views as this revision defines them.
VIEW_SQL = {
    "run_summary": """\
-- run_summary: one row per run of every job, whatever its status (a job-health dashboard).
-- The quality metrics are those of the chosen model (run_metric rows with k IS NULL);
-- the whole K sweep is in run_metric.
CREATE VIEW run_summary AS
SELECT
    r.run_id,
    r.job,
    r.kind,
    r.status,
    r.started_at,
    r.finished_at,
    r.k,
    r.rows_read,
    r.rows_used,
    r.rows_dropped,
    MAX(CASE WHEN m.name = 'silhouette' THEN m.value END) AS silhouette,
    MAX(CASE WHEN m.name = 'davies_bouldin' THEN m.value END) AS davies_bouldin,
    MAX(CASE WHEN m.name = 'calinski_harabasz' THEN m.value END) AS calinski_harabasz,
    MAX(CASE WHEN m.name = 'inertia' THEN m.value END) AS inertia,
    r.run_key,
    r.error
FROM run AS r
LEFT JOIN run_metric AS m
    ON m.run_id = r.run_id AND m.k IS NULL
GROUP BY
    r.run_id, r.job, r.kind, r.status, r.started_at, r.finished_at, r.k,
    r.rows_read, r.rows_used, r.rows_dropped, r.run_key, r.error;
""",
    "current_segment": """\
-- current_segment: every customer's segment in the latest succeeded run of each job.
-- distance is the Euclidean distance to the segment's centroid in scaled units.
CREATE VIEW current_segment AS
SELECT
    r.job,
    a.run_id,
    a.customer_key,
    a.segment_id,
    s.label AS segment_label,
    a.distance
FROM run AS r
JOIN assignment AS a
    ON a.run_id = r.run_id
JOIN segment AS s
    ON s.run_id = a.run_id AND s.segment_id = a.segment_id
WHERE r.run_id = (
    SELECT MAX(latest.run_id)
    FROM run AS latest
    WHERE latest.job = r.job AND latest.status = 'succeeded'
);
""",
    "segment_profile": """\
-- segment_profile: one row per segment and feature of every succeeded run, in original units
-- (dollars, years, ...). A one-hot feature is named "column=level"; its centroid and mean are
-- the share of the segment's customers at that level. z_score compares the segment mean with
-- the whole population of the run, in population standard deviations.
CREATE VIEW segment_profile AS
SELECT
    r.job,
    s.run_id,
    s.segment_id,
    s.label AS segment_label,
    s.size,
    s.share,
    c.feature,
    c.centroid,
    c.mean,
    c.median,
    c.z_score
FROM run AS r
JOIN segment AS s
    ON s.run_id = r.run_id
JOIN segment_centroid AS c
    ON c.run_id = s.run_id AND c.segment_id = s.segment_id
WHERE r.status = 'succeeded';
""",
    "customer_segment_history": """\
-- customer_segment_history: each customer's segment in every succeeded run of a job, with the
-- segment the customer had in the previous succeeded run it appeared in (NULL the first time).
CREATE VIEW customer_segment_history AS
SELECT
    h.job,
    h.customer_key,
    h.run_id,
    h.run_started_at,
    h.segment_id,
    h.segment_label,
    h.previous_segment_id,
    (h.previous_segment_id IS NOT NULL AND h.previous_segment_id <> h.segment_id) AS changed
FROM (
    SELECT
        r.job,
        a.customer_key,
        a.run_id,
        r.started_at AS run_started_at,
        a.segment_id,
        s.label AS segment_label,
        LAG(a.segment_id) OVER (PARTITION BY r.job, a.customer_key ORDER BY a.run_id) AS previous_segment_id
    FROM run AS r
    JOIN assignment AS a
        ON a.run_id = r.run_id
    JOIN segment AS s
        ON s.run_id = a.run_id AND s.segment_id = a.segment_id
    WHERE r.status = 'succeeded'
) AS h;
""",
    "segment_migration": """\
-- segment_migration: how many customers went from each segment to each segment between two
-- consecutive succeeded runs of a job. Only customers present in both runs are counted.
CREATE VIEW segment_migration AS
WITH succeeded AS (
    SELECT
        run_id,
        job,
        LAG(run_id) OVER (PARTITION BY job ORDER BY run_id) AS previous_run_id
    FROM run
    WHERE status = 'succeeded'
)
SELECT
    s.job,
    s.previous_run_id AS from_run_id,
    s.run_id AS to_run_id,
    earlier.segment_id AS from_segment_id,
    later.segment_id AS to_segment_id,
    COUNT(*) AS customers
FROM succeeded AS s
JOIN assignment AS later
    ON later.run_id = s.run_id
JOIN assignment AS earlier
    ON earlier.run_id = s.previous_run_id AND earlier.customer_key = later.customer_key
GROUP BY s.job, s.previous_run_id, s.run_id, earlier.segment_id, later.segment_id;
""",
}
