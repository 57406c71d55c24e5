"""History views follow every change of the current run, rollbacks included.

0007 made the current run a recorded fact (the `promotion` table), but customer_segment_history
and segment_migration still walked the runs that had ever been promoted in run_id order, so after
`segjob promote --job J --previous` they kept the rolled-back run's rows open (valid_to IS NULL)
while current_segment showed the run rolled back to. Both views now walk `promotion` in order:

- customer_segment_history: one row per customer and change of the current run (a run that
  became current twice appears twice), with type-2 validity per row: valid_from is when the row's
  run became current, valid_to when the next one did (NULL: still current), so valid_to IS NULL
  selects exactly current_segment's rows (before, every row of a customer's unbroken stretch in
  one segment was open). New columns at the end: promotion_id (the change) and segment_since
  (when the customer's stretch in this segment began: what valid_from used to say).
- segment_migration: one group of rows per change of the current run, from the run current
  before it to the run current after it; new column at the end: promotion_id.

On PostgreSQL the views are replaced in place (CREATE OR REPLACE VIEW keeps their grants and
takes its lock only for the swap); SQLite drops and creates them. The view SQL is frozen here.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    _replace(
        bind, {"customer_segment_history": CUSTOMER_SEGMENT_HISTORY_0009, "segment_migration": SEGMENT_MIGRATION_0009}
    )


def downgrade() -> None:
    bind = op.get_bind()
    # Columns cannot be taken off a view in place: drop and create, keeping readers' grants.
    for name, sql in {
        "customer_segment_history": CUSTOMER_SEGMENT_HISTORY_0007,
        "segment_migration": SEGMENT_MIGRATION_0007,
    }.items():
        readers = _readers(bind, name)
        bind.exec_driver_sql(f"DROP VIEW {_qualified(bind, name)}")
        _create(bind, sql)
        quote = bind.dialect.identifier_preparer.quote
        for role in readers:
            bind.exec_driver_sql(f"GRANT SELECT ON segjob.{quote(name)} TO {quote(role)}")


def _replace(bind, views: dict[str, str]) -> None:
    for name, sql in views.items():
        if bind.dialect.name == "postgresql":
            _create(bind, sql.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
        else:
            bind.exec_driver_sql(f"DROP VIEW {name}")
            _create(bind, sql)


def _create(bind, sql: str) -> None:
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        bind.exec_driver_sql("SET LOCAL search_path TO segjob")
    bind.exec_driver_sql(sql)
    if postgres:
        bind.exec_driver_sql("SET LOCAL search_path TO DEFAULT")


def _qualified(bind, name: str) -> str:
    return f"segjob.{name}" if bind.dialect.name == "postgresql" else name


def _readers(bind, view: str) -> list[str]:
    """Roles other than the owner with SELECT on a view (PostgreSQL), to restore after re-creating it."""
    if bind.dialect.name != "postgresql":
        return []
    return (
        bind.exec_driver_sql(
            "SELECT grantee FROM information_schema.role_table_grants WHERE table_schema = 'segjob'"
            " AND privilege_type = 'SELECT' AND grantee <> current_user AND table_name = %(view)s",
            {"view": view},
        )
        .scalars()
        .all()
    )


# The views as this revision defines them (sql/views/ holds the newest) and as 0007 left them.

CUSTOMER_SEGMENT_HISTORY_0009 = """\
CREATE VIEW customer_segment_history AS
WITH steps AS (
    SELECT
        p.job,
        p.promotion_id,
        p.run_id,
        p.promoted_at,
        ROW_NUMBER() OVER (PARTITION BY p.job ORDER BY p.promotion_id) AS step
    FROM promotion AS p
    JOIN run AS r
        ON r.run_id = p.run_id
    WHERE r.status = 'succeeded'
),
placed AS (
    SELECT
        s.job,
        a.customer_key,
        a.run_id,
        r.started_at AS run_started_at,
        s.promotion_id,
        s.promoted_at,
        s.step,
        a.segment_id,
        g.label AS segment_label,
        LAG(a.segment_id) OVER (PARTITION BY s.job, a.customer_key ORDER BY s.step) AS previous_segment_id,
        s.step - ROW_NUMBER() OVER (
            PARTITION BY s.job, a.customer_key, a.segment_id ORDER BY s.step
        ) AS stretch
    FROM steps AS s
    JOIN run AS r
        ON r.run_id = s.run_id
    JOIN assignment AS a
        ON a.run_id = s.run_id
    JOIN segment AS g
        ON g.run_id = a.run_id AND g.segment_id = a.segment_id
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
    h.promoted_at AS valid_from,
    next_step.promoted_at AS valid_to,
    h.promotion_id,
    MIN(h.promoted_at) OVER (PARTITION BY h.job, h.customer_key, h.segment_id, h.stretch) AS segment_since
FROM placed AS h
LEFT JOIN steps AS next_step
    ON next_step.job = h.job AND next_step.step = h.step + 1;
"""

SEGMENT_MIGRATION_0009 = """\
CREATE VIEW segment_migration AS
WITH steps AS (
    SELECT
        p.job,
        p.promotion_id,
        p.run_id,
        LAG(p.run_id) OVER (PARTITION BY p.job ORDER BY p.promotion_id) AS previous_run_id
    FROM promotion AS p
    JOIN run AS r
        ON r.run_id = p.run_id
    WHERE r.status = 'succeeded'
)
SELECT
    s.job,
    s.previous_run_id AS from_run_id,
    s.run_id AS to_run_id,
    earlier.segment_id AS from_segment_id,
    later.segment_id AS to_segment_id,
    COUNT(*) AS customers,
    s.promotion_id
FROM steps AS s
JOIN assignment AS later
    ON later.run_id = s.run_id
JOIN assignment AS earlier
    ON earlier.run_id = s.previous_run_id AND earlier.customer_key = later.customer_key
WHERE s.previous_run_id <> s.run_id
GROUP BY s.job, s.promotion_id, s.previous_run_id, s.run_id, earlier.segment_id, later.segment_id;
"""

CUSTOMER_SEGMENT_HISTORY_0007 = """\
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

SEGMENT_MIGRATION_0007 = """\
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
