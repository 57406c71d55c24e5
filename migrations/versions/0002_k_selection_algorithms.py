"""K selection, more algorithms, transforms and richer profiles.

- run: algorithm, k_criterion (what decided k); existing runs were K-Means, chosen by silhouette
  unless k was fixed.
- run_feature: transform (log1p), skewness, clip_low/clip_high/clipped_count (--clip-outliers).
- segment: top_features (JSON list of the features that set the segment apart).
- assignment: probability (Gaussian mixture membership probability).
- k_rejection: candidate k the sweep refused, and why.
- views: current_segment gains probability; run_summary gains algorithm, k_criterion, stability.

Column definitions and view SQL are frozen here, not imported from segjob.schema or read from
sql/views/, so this migration keeps meaning what it meant when later revisions change them.
Downgrade drops columns with SQLite's own ALTER TABLE ... DROP COLUMN (SQLite 3.35+) rather than
a batch copy-and-rename: dropping the old `run` table while foreign keys are on would cascade-
delete every run's segments, centroids and metrics.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Double = sa.Float(precision=53)
Json = sa.JSON().with_variant(JSONB(), "postgresql")

# Views in the order 0001 created them; every one reads `run`.
VIEW_ORDER = ("run_summary", "current_segment", "segment_profile", "customer_segment_history", "segment_migration")


def _new_columns() -> dict[str, list[sa.Column]]:
    """The columns this revision adds, per table (fresh objects: a Column belongs to one table)."""
    return {
        "run": [sa.Column("algorithm", sa.String(30)), sa.Column("k_criterion", sa.String(30))],
        "run_feature": [
            sa.Column("transform", sa.String(10)),
            sa.Column("skewness", Double),
            sa.Column("clip_low", Double),
            sa.Column("clip_high", Double),
            sa.Column("clipped_count", sa.BigInteger),
        ],
        "segment": [sa.Column("top_features", Json)],
        "assignment": [sa.Column("probability", Double)],
    }


def _schema() -> str | None:
    return "segjob" if op.get_bind().dialect.name == "postgresql" else None


def upgrade() -> None:
    schema = _schema()
    for table, columns in _new_columns().items():
        with op.batch_alter_table(table, schema=schema) as batch:
            for column in columns:
                batch.add_column(column)
    op.create_table(
        "k_rejection",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("k", sa.Integer, nullable=False),
        sa.Column("smallest_share", Double),
        sa.Column("reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "k", name="pk_k_rejection"),
        sa.ForeignKeyConstraint(
            ["run_id"], [f"{schema}.run.run_id" if schema else "run.run_id"],
            name="fk_k_rejection_run_id_run", ondelete="CASCADE",
        ),
        schema=schema,
    )
    run = f"{schema}.run" if schema else "run"
    op.execute(
        sa.text(
            f"UPDATE {run} SET algorithm = 'kmeans', k_criterion = CASE"
            " WHEN k_reason LIKE :fixed THEN 'fixed' WHEN k_reason IS NOT NULL THEN 'silhouette' END"
        ).bindparams(fixed="%fixed by --k%")
    )
    _replace_views(VIEWS_0002)


def downgrade() -> None:
    schema = _schema()
    bind = op.get_bind()
    readers = _view_readers(bind)
    _drop_views(bind, VIEW_ORDER)  # SQLite will not drop a column that a view reads
    op.drop_table("k_rejection", schema=schema)
    for table, columns in _new_columns().items():
        with op.batch_alter_table(table, schema=schema, recreate="never") as batch:
            for column in reversed(columns):
                batch.drop_column(column.name)
    _create_views(bind, {name: VIEWS_0001[name] for name in VIEW_ORDER})
    _grant(bind, readers)


def _replace_views(views: dict[str, str]) -> None:
    """Swap in new view definitions. PostgreSQL: CREATE OR REPLACE keeps the views' grants (the new
    columns are at the end, as it requires); SQLite has no OR REPLACE, so drop and create."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        views = {name: sql.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1) for name, sql in views.items()}
    else:
        _drop_views(bind, list(views))
    _create_views(bind, views)


def _create_views(bind, views: dict[str, str]) -> None:
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        # The SQL names tables without a schema (it reads the same on SQLite); views bind their
        # tables when created, so the search path matters only in this transaction.
        bind.exec_driver_sql("SET LOCAL search_path TO segjob")
    for sql in views.values():
        bind.exec_driver_sql(sql)
    if postgres:
        bind.exec_driver_sql("SET LOCAL search_path TO DEFAULT")


def _drop_views(bind, names) -> None:
    prefix = "segjob." if bind.dialect.name == "postgresql" else ""
    for name in names:
        bind.exec_driver_sql(f"DROP VIEW IF EXISTS {prefix}{name}")


def _view_readers(bind) -> list[tuple[str, str]]:
    """(view, role) pairs with SELECT on segjob's views (PostgreSQL), to restore after re-creating."""
    if bind.dialect.name != "postgresql":
        return []
    rows = bind.exec_driver_sql(
        "SELECT table_name, grantee FROM information_schema.role_table_grants"
        " WHERE table_schema = 'segjob' AND privilege_type = 'SELECT'"
        " AND grantee <> current_user AND table_name IN (SELECT table_name FROM information_schema.views"
        " WHERE table_schema = 'segjob')"
    )
    return [(view, role) for view, role in rows]


def _grant(bind, readers: list[tuple[str, str]]) -> None:
    quote = bind.dialect.identifier_preparer.quote
    for view, role in readers:
        bind.exec_driver_sql(f"GRANT SELECT ON segjob.{quote(view)} TO {quote(role)}")


# The views as revision 0001 created them (restored by downgrade).
VIEWS_0001 = {
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

# The views this revision changes, as it defines them (sql/views/ holds the newest definitions).
VIEWS_0002 = {
    "run_summary": """\
-- run_summary: one row per run of every job, whatever its status (a job-health dashboard).
-- The quality metrics are those of the chosen model (run_metric rows with k IS NULL);
-- the whole K sweep is in run_metric. algorithm is the clustering algorithm; k_criterion says
-- what decided k (silhouette, elbow, davies-bouldin, calinski-harabasz, stability, fixed, dbscan).
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
    r.error,
    r.algorithm,
    r.k_criterion,
    MAX(CASE WHEN m.name = 'stability' THEN m.value END) AS stability
FROM run AS r
LEFT JOIN run_metric AS m
    ON m.run_id = r.run_id AND m.k IS NULL
GROUP BY
    r.run_id, r.job, r.kind, r.status, r.started_at, r.finished_at, r.k,
    r.rows_read, r.rows_used, r.rows_dropped, r.run_key, r.error, r.algorithm, r.k_criterion;
""",
    "current_segment": """\
-- current_segment: every customer's segment in the latest succeeded run of each job.
-- distance is the Euclidean distance to the segment's centroid in scaled units. Segment 0,
-- labelled "Outliers", holds the customers DBSCAN counts as noise. probability is a Gaussian
-- mixture's membership probability of the customer's segment (NULL for other algorithms).
CREATE VIEW current_segment AS
SELECT
    r.job,
    a.run_id,
    a.customer_key,
    a.segment_id,
    s.label AS segment_label,
    a.distance,
    a.probability
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
}
