"""Segments checked against later behaviour: next-period figures per segment and per run.

A purchase-history fit run whose as-of date leaves a "next period" of later transactions
(--validate-days N, or a given --as-of before the latest transaction) stores what each segment's
customers did in it (segjob.validation), so a marketer sees whether the segments mean anything:

- segment: next_purchase_rate, next_spend_mean, next_revenue_share;
- run: validation_start, validation_end (the next period's first and last day) and
  next_spend_explained (eta squared of next-period spend per customer by segment);
- views: run_summary gains the three run columns at its end; new segment_validation, one row per
  segment of every succeeded run. All NULL for runs without a next period, existing runs included.

Columns and view SQL are frozen here (see 0002). run_summary is re-created, so its SELECT grants
are saved and restored; roles that read run_summary also get segment_validation. SQLite drops
columns with ALTER TABLE ... DROP COLUMN, never a batch copy of `run` (foreign keys would
cascade-delete).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Double = sa.Float(precision=53)


def _new_columns() -> dict[str, list[sa.Column]]:
    return {
        "run": [
            sa.Column("validation_start", sa.Date),
            sa.Column("validation_end", sa.Date),
            sa.Column("next_spend_explained", Double),
        ],
        "segment": [
            sa.Column("next_purchase_rate", Double),
            sa.Column("next_spend_mean", Double),
            sa.Column("next_revenue_share", Double),
        ],
    }


def _schema() -> str | None:
    return "segjob" if op.get_bind().dialect.name == "postgresql" else None


def upgrade() -> None:
    bind = op.get_bind()
    readers = _readers(bind, "run_summary")
    _drop_view(bind, "run_summary")
    for table, columns in _new_columns().items():
        with op.batch_alter_table(table, schema=_schema(), recreate="never") as batch:
            for column in columns:
                batch.add_column(column)
    _create_views(bind, [RUN_SUMMARY_0006, SEGMENT_VALIDATION])
    _grant(bind, ["run_summary", "segment_validation"], readers)


def downgrade() -> None:
    bind = op.get_bind()
    readers = _readers(bind, "run_summary")
    _drop_view(bind, "segment_validation")
    _drop_view(bind, "run_summary")
    for table, columns in _new_columns().items():
        with op.batch_alter_table(table, schema=_schema(), recreate="never") as batch:
            for column in reversed(columns):
                batch.drop_column(column.name)
    _create_views(bind, [RUN_SUMMARY_0003])
    _grant(bind, ["run_summary"], readers)


def _readers(bind, view: str) -> list[str]:
    """Roles other than the owner with SELECT on a view (PostgreSQL), to restore after re-creating it."""
    if bind.dialect.name != "postgresql":
        return []
    return bind.exec_driver_sql(
        "SELECT grantee FROM information_schema.role_table_grants WHERE table_schema = 'segjob'"
        " AND privilege_type = 'SELECT' AND grantee <> current_user AND table_name = %(view)s",
        {"view": view},
    ).scalars().all()


def _grant(bind, views: list[str], roles: list[str]) -> None:
    quote = bind.dialect.identifier_preparer.quote
    for view in views:
        for role in roles:
            bind.exec_driver_sql(f"GRANT SELECT ON segjob.{quote(view)} TO {quote(role)}")


def _drop_view(bind, name: str) -> None:
    prefix = "segjob." if bind.dialect.name == "postgresql" else ""
    bind.exec_driver_sql(f"DROP VIEW IF EXISTS {prefix}{name}")


def _create_views(bind, definitions: list[str]) -> None:
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        bind.exec_driver_sql("SET LOCAL search_path TO segjob")
    for sql in definitions:
        bind.exec_driver_sql(sql)
    if postgres:
        bind.exec_driver_sql("SET LOCAL search_path TO DEFAULT")


# The views as this revision defines them (sql/views/ holds the newest definitions).
RUN_SUMMARY_0006 = """\
-- run_summary: one row per run of every job, whatever its status (a job-health dashboard).
-- The quality metrics are those of the chosen model (run_metric rows with k IS NULL);
-- the whole K sweep is in run_metric. algorithm is the clustering algorithm; k_criterion says
-- what decided k (silhouette, elbow, davies-bouldin, calinski-harabasz, stability, fixed, dbscan).
-- model_run_id: the fit run whose model a score run used (NULL for fit runs).
-- Drift against compared_run_id, the job's previous succeeded run: common_customers (in both
-- runs), changed_share (share of them in another segment), ari (adjusted Rand index on them),
-- max_psi (largest population stability index of a feature), max_centroid_shift (largest
-- distance a segment's centroid moved, in the compared run's scaled units).
-- Purchase-history runs checked against later behaviour (see segment_validation):
-- validation_start / validation_end, the first and last day of the next period (NULL without
-- one); next_spend_explained, the share of the variance of next-period spend per customer that
-- the segments explain (eta squared, 0 to 1).
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
    MAX(CASE WHEN m.name = 'stability' THEN m.value END) AS stability,
    r.model_run_id,
    r.compared_run_id,
    r.common_customers,
    r.changed_share,
    r.ari,
    (SELECT MAX(f.psi) FROM run_feature AS f WHERE f.run_id = r.run_id) AS max_psi,
    (SELECT MAX(g.centroid_shift) FROM segment AS g WHERE g.run_id = r.run_id) AS max_centroid_shift,
    r.validation_start,
    r.validation_end,
    r.next_spend_explained
FROM run AS r
LEFT JOIN run_metric AS m
    ON m.run_id = r.run_id AND m.k IS NULL
GROUP BY
    r.run_id, r.job, r.kind, r.status, r.started_at, r.finished_at, r.k,
    r.rows_read, r.rows_used, r.rows_dropped, r.run_key, r.error, r.algorithm, r.k_criterion,
    r.model_run_id, r.compared_run_id, r.common_customers, r.changed_share, r.ari,
    r.validation_start, r.validation_end, r.next_spend_explained;
"""

SEGMENT_VALIDATION = """\
-- segment_validation: segments checked against later behaviour, one row per segment of every
-- succeeded run. A purchase-history fit run has a "next period" when --validate-days N moved its
-- as-of date back N days (the next period is those N days), or when --as-of was given and later
-- transactions exist (the next period runs to the latest transaction); validation_start and
-- validation_end are its first and last day. For the segment's customers in that period:
--   next_purchase_rate: share with at least one purchase (amount > 0);
--   next_spend_mean: net spend (returns included) per customer, customers who bought nothing as 0;
--   next_revenue_share: the segment's part of the net next-period spend of all the run's customers.
-- next_spend_explained (the same on every row of a run): share of the variance of per-customer
-- next-period spend explained by the segments (eta squared, 0 to 1). Customers who first bought in
-- the next period belong to no segment and are not counted. All NULL when the run has no next
-- period (other runs, score runs).
CREATE VIEW segment_validation AS
SELECT
    r.job,
    s.run_id,
    s.segment_id,
    s.label AS segment_label,
    s.size,
    s.share,
    r.validation_start,
    r.validation_end,
    s.next_purchase_rate,
    s.next_spend_mean,
    s.next_revenue_share,
    r.next_spend_explained
FROM run AS r
JOIN segment AS s
    ON s.run_id = r.run_id
WHERE r.status = 'succeeded';
"""

# run_summary as revision 0003 left it (restored by downgrade).
RUN_SUMMARY_0003 = """\
-- run_summary: one row per run of every job, whatever its status (a job-health dashboard).
-- The quality metrics are those of the chosen model (run_metric rows with k IS NULL);
-- the whole K sweep is in run_metric. algorithm is the clustering algorithm; k_criterion says
-- what decided k (silhouette, elbow, davies-bouldin, calinski-harabasz, stability, fixed, dbscan).
-- model_run_id: the fit run whose model a score run used (NULL for fit runs).
-- Drift against compared_run_id, the job's previous succeeded run: common_customers (in both
-- runs), changed_share (share of them in another segment), ari (adjusted Rand index on them),
-- max_psi (largest population stability index of a feature), max_centroid_shift (largest
-- distance a segment's centroid moved, in the compared run's scaled units).
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
    MAX(CASE WHEN m.name = 'stability' THEN m.value END) AS stability,
    r.model_run_id,
    r.compared_run_id,
    r.common_customers,
    r.changed_share,
    r.ari,
    (SELECT MAX(f.psi) FROM run_feature AS f WHERE f.run_id = r.run_id) AS max_psi,
    (SELECT MAX(g.centroid_shift) FROM segment AS g WHERE g.run_id = r.run_id) AS max_centroid_shift
FROM run AS r
LEFT JOIN run_metric AS m
    ON m.run_id = r.run_id AND m.k IS NULL
GROUP BY
    r.run_id, r.job, r.kind, r.status, r.started_at, r.finished_at, r.k,
    r.rows_read, r.rows_used, r.rows_dropped, r.run_key, r.error, r.algorithm, r.k_criterion,
    r.model_run_id, r.compared_run_id, r.common_customers, r.changed_share, r.ari;
"""
