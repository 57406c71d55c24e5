"""Candidate runs and promotion; run_summary names the features; segment_profile gains position and kind.

A run made with --candidate is complete and queryable by its run id, but does not become what
dashboards show: the current run of a job is now recorded, not inferred from "latest succeeded".

- promotion (new, append-only): one row each time a job's current run changes: an ordinary run
  when it succeeds ("succeeded"), `segjob promote RUN_ID` ("promoted"), `segjob promote --job J
  --previous` ("rolled back"). previous_promotion_id points at the row that was current before,
  so rolling back walks back like a stack. Existing succeeded runs become a chain of
  "succeeded" rows, oldest first, so today's current runs stay current and can be rolled back.
- run: candidate (false for every existing run) and features (the source columns used, as a
  JSON array in text, filled from each run's stored spec).
- views: current_segment shows each job's current run; customer_segment_history,
  segment_migration and segment_size_history follow the runs that became current; run_summary
  gains candidate, is_current, current_since, current_reason and features at its end;
  segment_profile gains position, kind and is_current and is ordered by run, segment, position.

Columns and view SQL are frozen here (see 0002). The six views are re-created, so their SELECT
grants are saved and restored. SQLite drops columns with ALTER TABLE ... DROP COLUMN, never a
batch copy of `run` (foreign keys would cascade-delete).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

VIEWS = (
    "run_summary",
    "current_segment",
    "segment_profile",
    "customer_segment_history",
    "segment_migration",
    "segment_size_history",
)


def _schema() -> str | None:
    return "segjob" if op.get_bind().dialect.name == "postgresql" else None


def _qualified(name: str) -> str:
    schema = _schema()
    return f"{schema}.{name}" if schema else name


def upgrade() -> None:
    bind = op.get_bind()
    readers = {view: _readers(bind, view) for view in VIEWS}
    for view in reversed(VIEWS):
        _drop_view(bind, view)
    with op.batch_alter_table("run", schema=_schema(), recreate="never") as batch:
        batch.add_column(sa.Column("candidate", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("features", sa.Text))
    op.create_table(
        "promotion",
        sa.Column("promotion_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(200), nullable=False),
        sa.Column(
            "run_id",
            sa.Integer,
            sa.ForeignKey(f"{_qualified('run')}.run_id", ondelete="CASCADE", name="fk_promotion_run_id_run"),
            nullable=False,
        ),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column(
            "previous_promotion_id",
            sa.Integer,
            sa.ForeignKey(
                f"{_qualified('promotion')}.promotion_id",
                ondelete="SET NULL",
                name="fk_promotion_previous_promotion_id_promotion",
            ),
        ),
        sa.CheckConstraint("reason IN ('succeeded', 'promoted', 'rolled back')", name="ck_promotion_reason"),
        sa.PrimaryKeyConstraint("promotion_id", name="pk_promotion"),
        schema=_schema(),
    )
    op.create_index("ix_promotion_job_promotion_id", "promotion", ["job", "promotion_id"], schema=_schema())
    _fill(bind)
    _create_views(bind, [globals()[f"{view.upper()}_0007"] for view in VIEWS])
    for view, roles in readers.items():
        _grant(bind, [view], roles)


def downgrade() -> None:
    bind = op.get_bind()
    readers = {view: _readers(bind, view) for view in VIEWS}
    for view in reversed(VIEWS):
        _drop_view(bind, view)
    op.drop_index("ix_promotion_job_promotion_id", "promotion", schema=_schema())
    op.drop_table("promotion", schema=_schema())
    with op.batch_alter_table("run", schema=_schema(), recreate="never") as batch:
        batch.drop_column("features")
        batch.drop_column("candidate")
    _create_views(bind, [globals()[f"{view.upper()}_0006"] for view in VIEWS])
    for view, roles in readers.items():
        _grant(bind, [view], roles)


def _fill(bind) -> None:
    """run.features from each run's spec; a promotion chain of every job's succeeded runs."""
    run = sa.table(
        "run",
        sa.column("run_id", sa.Integer),
        sa.column("job", sa.String),
        sa.column("status", sa.String),
        sa.column("finished_at", sa.DateTime(timezone=True)),
        sa.column("spec", sa.JSON),
        sa.column("features", sa.Text),
        schema=_schema(),
    )
    promotion = sa.table(
        "promotion",
        sa.column("promotion_id", sa.Integer),
        sa.column("job", sa.String),
        sa.column("run_id", sa.Integer),
        sa.column("promoted_at", sa.DateTime(timezone=True)),
        sa.column("reason", sa.String),
        sa.column("previous_promotion_id", sa.Integer),
        schema=_schema(),
    )
    rows = bind.execute(sa.select(run.c.run_id, run.c.job, run.c.status, run.c.finished_at, run.c.spec).order_by(run.c.run_id)).all()
    last: dict[str, int] = {}
    for row in rows:
        spec = row.spec if isinstance(row.spec, dict) else json.loads(row.spec or "{}")
        used = list(spec.get("features") or []) + list(spec.get("categorical") or [])
        bind.execute(sa.update(run).where(run.c.run_id == row.run_id).values(features=json.dumps(used)))
        if row.status != "succeeded":
            continue
        last[row.job] = bind.execute(
            sa.insert(promotion)
            .values(
                job=row.job, run_id=row.run_id, promoted_at=row.finished_at, reason="succeeded",
                previous_promotion_id=last.get(row.job),
            )
            .returning(promotion.c.promotion_id)
        ).scalar_one()


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
    bind.exec_driver_sql(f"DROP VIEW IF EXISTS {_qualified(name)}")


def _create_views(bind, definitions: list[str]) -> None:
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        bind.exec_driver_sql("SET LOCAL search_path TO segjob")
    for sql in definitions:
        bind.exec_driver_sql(sql)
    if postgres:
        bind.exec_driver_sql("SET LOCAL search_path TO DEFAULT")


# The views as this revision defines them (sql/views/ holds the newest) and as 0006 left them.

RUN_SUMMARY_0007 = """\
-- run_summary: one row per run of every job, whatever its status (a job-health dashboard).
-- The quality metrics are those of the chosen model (run_metric rows with k IS NULL);
-- the whole K sweep is in run_metric. algorithm is the clustering algorithm; k_criterion says
-- what decided k (silhouette, elbow, davies-bouldin, calinski-harabasz, stability, fixed, dbscan).
-- model_run_id: the fit run whose model a score run used (NULL for fit runs).
-- Drift against compared_run_id, the job's current run when this run published: common_customers
-- (in both runs), changed_share (share of them in another segment), ari (adjusted Rand index on them),
-- max_psi (largest population stability index of a feature), max_centroid_shift (largest
-- distance a segment's centroid moved, in the compared run's scaled units).
-- Purchase-history runs checked against later behaviour (see segment_validation):
-- validation_start / validation_end, the first and last day of the next period (NULL without
-- one); next_spend_explained, the share of the variance of next-period spend per customer that
-- the segments explain (eta squared, 0 to 1).
-- Which run is current (the one current_segment shows): is_current, since current_since, and
-- current_reason: "succeeded" (an ordinary run becomes current when it succeeds), "promoted"
-- (segjob promote RUN_ID) or "rolled back" (segjob promote --job J --previous). candidate is true
-- for a run made with --candidate, which becomes current only when promoted. features: the
-- source columns the run used (numeric, then categorical), as a JSON array in text.
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
    r.next_spend_explained,
    r.candidate,
    (cur.promotion_id IS NOT NULL) AS is_current,
    cur.promoted_at AS current_since,
    cur.reason AS current_reason,
    r.features
FROM run AS r
LEFT JOIN run_metric AS m
    ON m.run_id = r.run_id AND m.k IS NULL
LEFT JOIN promotion AS cur
    ON cur.run_id = r.run_id
    AND cur.promotion_id = (SELECT MAX(q.promotion_id) FROM promotion AS q WHERE q.job = r.job)
GROUP BY
    r.run_id, r.job, r.kind, r.status, r.started_at, r.finished_at, r.k,
    r.rows_read, r.rows_used, r.rows_dropped, r.run_key, r.error, r.algorithm, r.k_criterion,
    r.model_run_id, r.compared_run_id, r.common_customers, r.changed_share, r.ari,
    r.validation_start, r.validation_end, r.next_spend_explained,
    r.candidate, cur.promotion_id, cur.promoted_at, cur.reason, r.features;
"""

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

CURRENT_SEGMENT_0007 = """\
-- current_segment: every customer's segment in the current run of each job: the latest run that
-- became current (an ordinary run when it succeeds, a candidate run only once `segjob promote`
-- makes it current; `segjob promote --previous` goes back). run_summary.is_current marks it.
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
    SELECT p.run_id
    FROM promotion AS p
    WHERE p.promotion_id = (SELECT MAX(q.promotion_id) FROM promotion AS q WHERE q.job = r.job)
);
"""

CURRENT_SEGMENT_0006 = """\
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
"""

SEGMENT_PROFILE_0007 = """\
-- segment_profile: one row per segment and feature of every succeeded run, in original units
-- (dollars, years, ...). A one-hot feature is named "column=level"; its centroid and mean are
-- the share of the segment's customers at that level. z_score compares the segment mean with
-- the whole population of the run, in population standard deviations. position is the feature's
-- place among the run's model columns (0 first) and kind is "numeric" or "categorical" (one level
-- of a one-hot column); rows come in run, segment and position order. is_current marks the rows of
-- each job's current run (what current_segment shows): dashboards filter on it, so a candidate
-- run (segjob run --candidate) stays out of sight until it is promoted.
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
    c.z_score,
    f.position,
    f.kind,
    COALESCE(r.run_id = (
        SELECT p.run_id
        FROM promotion AS p
        WHERE p.promotion_id = (SELECT MAX(q.promotion_id) FROM promotion AS q WHERE q.job = r.job)
    ), FALSE) AS is_current
FROM run AS r
JOIN segment AS s
    ON s.run_id = r.run_id
JOIN segment_centroid AS c
    ON c.run_id = s.run_id AND c.segment_id = s.segment_id
LEFT JOIN run_feature AS f
    ON f.run_id = c.run_id AND f.feature = c.feature
WHERE r.status = 'succeeded'
ORDER BY s.run_id, s.segment_id, f.position;
"""

SEGMENT_PROFILE_0006 = """\
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
"""

CUSTOMER_SEGMENT_HISTORY_0007 = """\
-- customer_segment_history: each customer's segment in every run (fit or score) of a job that
-- became current (every ordinary succeeded run; a candidate run only once promoted), with the
-- segment the customer had in the previous such run it appeared in (NULL the first time).
-- valid_from / valid_to bound the contiguous stretch of runs in which the customer stayed in this
-- segment (slowly-changing-dimension type 2): valid_from is the start of the stretch's first run,
-- valid_to the start of the first later run in which the customer was not in this segment (moved,
-- or not segmented at all); valid_to is NULL while the stretch reaches the job's latest such run.
CREATE VIEW customer_segment_history AS
WITH succeeded AS (
    SELECT
        run_id,
        job,
        started_at,
        ROW_NUMBER() OVER (PARTITION BY job ORDER BY run_id) AS run_seq
    FROM run
    WHERE status = 'succeeded' AND run_id IN (SELECT run_id FROM promotion)
),
placed AS (
    SELECT
        r.job,
        a.customer_key,
        a.run_id,
        r.started_at AS run_started_at,
        r.run_seq,
        a.segment_id,
        s.label AS segment_label,
        LAG(a.segment_id) OVER (PARTITION BY r.job, a.customer_key ORDER BY r.run_seq) AS previous_segment_id,
        r.run_seq - ROW_NUMBER() OVER (
            PARTITION BY r.job, a.customer_key, a.segment_id ORDER BY r.run_seq
        ) AS stretch
    FROM succeeded AS r
    JOIN assignment AS a
        ON a.run_id = r.run_id
    JOIN segment AS s
        ON s.run_id = a.run_id AND s.segment_id = a.segment_id
),
stretched AS (
    SELECT
        job,
        customer_key,
        run_id,
        run_started_at,
        segment_id,
        segment_label,
        previous_segment_id,
        MIN(run_started_at) OVER (PARTITION BY job, customer_key, segment_id, stretch) AS valid_from,
        MAX(run_seq) OVER (PARTITION BY job, customer_key, segment_id, stretch) AS last_seq
    FROM placed
)
SELECT
    h.job,
    h.customer_key,
    h.run_id,
    h.run_started_at,
    h.segment_id,
    h.segment_label,
    h.previous_segment_id,
    (h.previous_segment_id IS NOT NULL AND h.previous_segment_id <> h.segment_id) AS changed,
    h.valid_from,
    after_stretch.started_at AS valid_to
FROM stretched AS h
LEFT JOIN succeeded AS after_stretch
    ON after_stretch.job = h.job AND after_stretch.run_seq = h.last_seq + 1;
"""

CUSTOMER_SEGMENT_HISTORY_0006 = """\
-- customer_segment_history: each customer's segment in every succeeded run (fit or score) of a
-- job, with the segment the customer had in the previous succeeded run it appeared in (NULL the
-- first time). valid_from / valid_to bound the contiguous stretch of runs in which the customer
-- stayed in this segment (slowly-changing-dimension type 2): valid_from is the start of the
-- stretch's first run, valid_to the start of the first later run in which the customer was not
-- in this segment (moved, or not segmented at all); valid_to is NULL while the stretch reaches
-- the job's latest succeeded run.
CREATE VIEW customer_segment_history AS
WITH succeeded AS (
    SELECT
        run_id,
        job,
        started_at,
        ROW_NUMBER() OVER (PARTITION BY job ORDER BY run_id) AS run_seq
    FROM run
    WHERE status = 'succeeded'
),
placed AS (
    SELECT
        r.job,
        a.customer_key,
        a.run_id,
        r.started_at AS run_started_at,
        r.run_seq,
        a.segment_id,
        s.label AS segment_label,
        LAG(a.segment_id) OVER (PARTITION BY r.job, a.customer_key ORDER BY r.run_seq) AS previous_segment_id,
        r.run_seq - ROW_NUMBER() OVER (
            PARTITION BY r.job, a.customer_key, a.segment_id ORDER BY r.run_seq
        ) AS stretch
    FROM succeeded AS r
    JOIN assignment AS a
        ON a.run_id = r.run_id
    JOIN segment AS s
        ON s.run_id = a.run_id AND s.segment_id = a.segment_id
),
stretched AS (
    SELECT
        job,
        customer_key,
        run_id,
        run_started_at,
        segment_id,
        segment_label,
        previous_segment_id,
        MIN(run_started_at) OVER (PARTITION BY job, customer_key, segment_id, stretch) AS valid_from,
        MAX(run_seq) OVER (PARTITION BY job, customer_key, segment_id, stretch) AS last_seq
    FROM placed
)
SELECT
    h.job,
    h.customer_key,
    h.run_id,
    h.run_started_at,
    h.segment_id,
    h.segment_label,
    h.previous_segment_id,
    (h.previous_segment_id IS NOT NULL AND h.previous_segment_id <> h.segment_id) AS changed,
    h.valid_from,
    after_stretch.started_at AS valid_to
FROM stretched AS h
LEFT JOIN succeeded AS after_stretch
    ON after_stretch.job = h.job AND after_stretch.run_seq = h.last_seq + 1;
"""

SEGMENT_MIGRATION_0007 = """\
-- segment_migration: how many customers went from each segment to each segment between two
-- consecutive runs (fit or score) of a job that became current (a candidate run only once
-- promoted). Only customers present in both runs are counted.
CREATE VIEW segment_migration AS
WITH succeeded AS (
    SELECT
        run_id,
        job,
        LAG(run_id) OVER (PARTITION BY job ORDER BY run_id) AS previous_run_id
    FROM run
    WHERE status = 'succeeded' AND run_id IN (SELECT run_id FROM promotion)
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
"""

SEGMENT_MIGRATION_0006 = """\
-- segment_migration: how many customers went from each segment to each segment between two
-- consecutive succeeded runs (fit or score) of a job. Only customers present in both runs are
-- counted.
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
"""

SEGMENT_SIZE_HISTORY_0007 = """\
-- segment_size_history: the size and share of each segment in every run (fit or score) of a job
-- that became current (a candidate run only once promoted), over time. Segment ids are stable
-- across fit runs (matched by centroid), so one segment_id is one segment's trajectory.
CREATE VIEW segment_size_history AS
SELECT
    r.job,
    s.run_id,
    r.started_at AS run_started_at,
    s.segment_id,
    s.label AS segment_label,
    s.size,
    s.share
FROM run AS r
JOIN segment AS s
    ON s.run_id = r.run_id
WHERE r.status = 'succeeded' AND r.run_id IN (SELECT run_id FROM promotion);
"""

SEGMENT_SIZE_HISTORY_0006 = """\
-- segment_size_history: the size and share of each segment in every succeeded run (fit or
-- score) of a job, over time. Segment ids are stable across fit runs (matched by centroid), so
-- one segment_id is one segment's trajectory.
CREATE VIEW segment_size_history AS
SELECT
    r.job,
    s.run_id,
    r.started_at AS run_started_at,
    s.segment_id,
    s.label AS segment_label,
    s.size,
    s.share
FROM run AS r
JOIN segment AS s
    ON s.run_id = r.run_id
WHERE r.status = 'succeeded';
"""
