"""Segment history: stable ids, scoring runs, drift, bins for PSI, history views, partitioning.

- run: model_run_id (the fit run a score run used; NULL for fit runs), and drift against
  compared_run_id, the job's previous succeeded run: common_customers, changed_share, ari;
  last_segment_id, the largest segment id the job had used when the run published (so new
  segments get ids never used before, even after older runs are pruned).
- segment: cluster_index (the algorithm's raw cluster index, -1 for DBSCAN noise; segment_id is
  the stable id) and centroid_shift (distance from the same segment in the compared run).
  Existing segments get cluster_index = segment_id - 1, which is how ids were made before.
- run_feature: psi (population stability index against the compared run).
- feature_bin: each numeric feature's decile bins (upper edge, share) so later runs can measure
  their PSI against this one.
- views: run_summary gains model_run_id and the headline drift columns; customer_segment_history
  gains valid_from / valid_to; new segment_size_history. All views are re-created.
- PostgreSQL: assignment becomes LIST-partitioned on run_id, one partition per run (existing
  rows are moved), so pruning a run drops its partition. Three SECURITY DEFINER functions let a
  writer role that does not own the schema create, attach and drop a run's partition.

Column definitions and view SQL are frozen here (see 0002). SQLite downgrades drop columns with
ALTER TABLE ... DROP COLUMN, never a batch copy of `run` (foreign keys would cascade-delete).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Double = sa.Float(precision=53)

VIEWS_BEFORE = ("run_summary", "current_segment", "segment_profile", "customer_segment_history", "segment_migration")
VIEWS_AFTER = VIEWS_BEFORE + ("segment_size_history",)


def _new_columns() -> dict[str, list[sa.Column]]:
    return {
        "run": [
            sa.Column("model_run_id", sa.Integer),
            sa.Column("compared_run_id", sa.Integer),
            sa.Column("common_customers", sa.BigInteger),
            sa.Column("changed_share", Double),
            sa.Column("ari", Double),
            sa.Column("last_segment_id", sa.Integer),
        ],
        "segment": [sa.Column("cluster_index", sa.Integer), sa.Column("centroid_shift", Double)],
        "run_feature": [sa.Column("psi", Double)],
    }


def _schema() -> str | None:
    return "segjob" if op.get_bind().dialect.name == "postgresql" else None


def upgrade() -> None:
    schema = _schema()
    bind = op.get_bind()
    readers = _view_readers(bind)
    _drop_views(bind, VIEWS_BEFORE)
    for table, columns in _new_columns().items():
        with op.batch_alter_table(table, schema=schema, recreate="never") as batch:
            for column in columns:
                batch.add_column(column)
    segment = f"{schema}.segment" if schema else "segment"
    run = f"{schema}.run" if schema else "run"
    op.execute(f"UPDATE {segment} SET cluster_index = segment_id - 1")
    op.execute(
        f"UPDATE {run} SET last_segment_id = (SELECT MAX(g.segment_id) FROM {segment} AS g"
        f" JOIN {run} AS e ON e.run_id = g.run_id WHERE e.job = run.job AND e.run_id <= run.run_id)"
    )
    op.create_table(
        "feature_bin",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("feature", sa.Text, nullable=False),
        sa.Column("bin", sa.Integer, nullable=False),
        sa.Column("upper_edge", Double),
        sa.Column("share", Double, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "feature", "bin", name="pk_feature_bin"),
        sa.ForeignKeyConstraint(
            ["run_id"], [f"{schema}.run.run_id" if schema else "run.run_id"],
            name="fk_feature_bin_run_id_run", ondelete="CASCADE",
        ),
        schema=schema,
    )
    if schema:
        _partition_assignment(bind)
    _create_views(bind, VIEWS_0003)
    _grant_views(bind, readers)


def downgrade() -> None:
    schema = _schema()
    bind = op.get_bind()
    readers = _view_readers(bind)
    _drop_views(bind, VIEWS_AFTER)
    if schema:
        _unpartition_assignment(bind)
    op.drop_table("feature_bin", schema=schema)
    for table, columns in _new_columns().items():
        with op.batch_alter_table(table, schema=schema, recreate="never") as batch:
            for column in reversed(columns):
                batch.drop_column(column.name)
    _create_views(bind, VIEWS_0002)
    _grant_views(bind, [(view, role) for view, role in readers if view in VIEWS_BEFORE])


# --- PostgreSQL: assignment partitioned by run ----------------------------------------------

_ASSIGNMENT_COLUMNS = """
    run_id integer NOT NULL,
    customer_key text NOT NULL,
    segment_id integer NOT NULL,
    distance double precision NOT NULL,
    second_distance double precision,
    probability double precision"""
_COLUMN_LIST = "run_id, customer_key, segment_id, distance, second_distance, probability"


def _partition_assignment(bind) -> None:
    grants = _table_grants(bind, "assignment")
    bind.exec_driver_sql("ALTER TABLE segjob.assignment RENAME TO assignment_unpartitioned")
    bind.exec_driver_sql(
        "ALTER TABLE segjob.assignment_unpartitioned RENAME CONSTRAINT pk_assignment TO pk_assignment_unpartitioned"
    )
    bind.exec_driver_sql(
        f"CREATE TABLE segjob.assignment ({_ASSIGNMENT_COLUMNS},"
        " CONSTRAINT pk_assignment PRIMARY KEY (run_id, customer_key)) PARTITION BY LIST (run_id)"
    )
    run_ids = bind.exec_driver_sql("SELECT DISTINCT run_id FROM segjob.assignment_unpartitioned").scalars().all()
    for run_id in run_ids:
        bind.exec_driver_sql(
            f"CREATE TABLE segjob.assignment_r{int(run_id)} PARTITION OF segjob.assignment FOR VALUES IN ({int(run_id)})"
        )
    bind.exec_driver_sql(
        f"INSERT INTO segjob.assignment ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM segjob.assignment_unpartitioned"
    )
    bind.exec_driver_sql("DROP TABLE segjob.assignment_unpartitioned")
    _grant_table(bind, "assignment", grants)
    cursor = bind.connection.driver_connection.cursor()
    for statement in PARTITION_FUNCTIONS:
        cursor.execute(statement)  # no parameters: the bodies' % signs are format() and RAISE's own
    quote = bind.dialect.identifier_preparer.quote
    writers = [role for privilege, role in _table_grants(bind, "run") if privilege == "INSERT"]
    for name in _FUNCTION_SIGNATURES:
        bind.exec_driver_sql(f"REVOKE ALL ON FUNCTION segjob.{name} FROM PUBLIC")
        for role in writers:  # roles that already run jobs keep publishing
            bind.exec_driver_sql(f"GRANT EXECUTE ON FUNCTION segjob.{name} TO {quote(role)}")


def _unpartition_assignment(bind) -> None:
    for name in _FUNCTION_SIGNATURES:
        bind.exec_driver_sql(f"DROP FUNCTION IF EXISTS segjob.{name}")
    grants = _table_grants(bind, "assignment")
    bind.exec_driver_sql(
        f"CREATE TABLE segjob.assignment_unpartitioned ({_ASSIGNMENT_COLUMNS},"
        " CONSTRAINT pk_assignment_unpartitioned PRIMARY KEY (run_id, customer_key))"
    )
    bind.exec_driver_sql(
        f"INSERT INTO segjob.assignment_unpartitioned ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM segjob.assignment"
    )
    bind.exec_driver_sql("DROP TABLE segjob.assignment")  # and its partitions
    bind.exec_driver_sql("ALTER TABLE segjob.assignment_unpartitioned RENAME TO assignment")
    bind.exec_driver_sql("ALTER TABLE segjob.assignment RENAME CONSTRAINT pk_assignment_unpartitioned TO pk_assignment")
    _grant_table(bind, "assignment", grants)


def _table_grants(bind, table: str) -> list[tuple[str, str]]:
    """(privilege, role) pairs other roles hold on a segjob table, to carry over to its successor."""
    rows = bind.exec_driver_sql(
        "SELECT privilege_type, grantee FROM information_schema.role_table_grants"
        " WHERE table_schema = 'segjob' AND table_name = %(table)s AND grantee <> current_user",
        {"table": table},
    )
    return [(privilege, role) for privilege, role in rows]


def _grant_table(bind, table: str, grants: list[tuple[str, str]]) -> None:
    quote = bind.dialect.identifier_preparer.quote
    allowed = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}
    for privilege, role in grants:
        if privilege in allowed:
            bind.exec_driver_sql(f"GRANT {privilege} ON segjob.{quote(table)} TO {quote(role)}")


_FUNCTION_SIGNATURES = (
    "create_assignment_partition(integer)",
    "attach_assignment_partition(integer)",
    "drop_assignment_partition(integer)",
)

# They run as the schema's owner, so a writer role that may not create or alter tables can still
# publish (a partition is created for a `running` run only) and prune.
PARTITION_FUNCTIONS = (
    """
CREATE FUNCTION segjob.create_assignment_partition(p_run_id integer) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    partition_name text := 'assignment_r' || p_run_id;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM segjob.run WHERE run_id = p_run_id AND status = 'running') THEN
        RAISE EXCEPTION 'run % is not running', p_run_id;
    END IF;
    EXECUTE format('CREATE TABLE segjob.%I (LIKE segjob.assignment INCLUDING DEFAULTS)', partition_name);
    IF session_user <> current_user THEN
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON segjob.%I TO %I', partition_name, session_user);
    END IF;
    RETURN partition_name;
END
$$""",
    """
CREATE FUNCTION segjob.attach_assignment_partition(p_run_id integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    partition_name text := 'assignment_r' || p_run_id;
BEGIN
    EXECUTE format('ALTER TABLE segjob.%I ADD CONSTRAINT %I PRIMARY KEY (run_id, customer_key)',
                   partition_name, 'pk_' || partition_name);
    -- A CHECK matching the partition bound lets ATTACH skip its validation scan.
    EXECUTE format('ALTER TABLE segjob.%I ADD CONSTRAINT %I CHECK (run_id = %s)',
                   partition_name, 'ck_' || partition_name || '_run', p_run_id);
    EXECUTE format('ALTER TABLE segjob.assignment ATTACH PARTITION segjob.%I FOR VALUES IN (%s)',
                   partition_name, p_run_id);
    -- Now redundant with the partition bound.
    EXECUTE format('ALTER TABLE segjob.%I DROP CONSTRAINT %I', partition_name, 'ck_' || partition_name || '_run');
END
$$""",
    """
CREATE FUNCTION segjob.drop_assignment_partition(p_run_id integer) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    partition_name text := 'assignment_r' || p_run_id;
BEGIN
    IF EXISTS (SELECT 1 FROM segjob.run WHERE run_id = p_run_id AND status = 'running') THEN
        RAISE EXCEPTION 'run % is running', p_run_id;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_inherits
        WHERE inhparent = 'segjob.assignment'::regclass
          AND inhrelid = to_regclass(format('segjob.%I', partition_name))
    ) THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP TABLE segjob.%I', partition_name);
    RETURN true;
END
$$""",
)


# --- views -----------------------------------------------------------------------------------


def _create_views(bind, views: dict[str, str]) -> None:
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        bind.exec_driver_sql("SET LOCAL search_path TO segjob")
    for sql in views.values():
        bind.exec_driver_sql(sql)
    if postgres:
        bind.exec_driver_sql("SET LOCAL search_path TO DEFAULT")


def _drop_views(bind, names) -> None:
    prefix = "segjob." if bind.dialect.name == "postgresql" else ""
    for name in reversed(names):
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


def _grant_views(bind, readers: list[tuple[str, str]]) -> None:
    quote = bind.dialect.identifier_preparer.quote
    for view, role in readers:
        bind.exec_driver_sql(f"GRANT SELECT ON segjob.{quote(view)} TO {quote(role)}")


# The views as this revision defines them (sql/views/ holds the newest definitions).
VIEWS_0003 = {
    "run_summary": """\
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
""",
    "segment_migration": """\
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
""",
    "segment_size_history": """\
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
""",
}

# The views as revision 0002 left them (restored by downgrade).
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
