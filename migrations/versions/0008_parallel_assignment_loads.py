"""Assignments written in parallel by the Spark engine's executors, and their cleanup.

The local engine writes a run's assignments inside its publish transaction. Spark's executors
cannot share that transaction: each one COPYs its partition's rows into the run's standalone
assignment table (not yet attached, so no reader sees it) in a transaction of its own, which also
records the partition here. A retried or speculative attempt of a partition that is already
recorded writes nothing, so every customer has exactly one row. The publish transaction then
indexes and attaches the table and deletes the run's rows here.

- assignment_load (new): run_id, part (the Spark partition), attempt, rows, loaded_at.
- segjob.drop_orphan_assignment_tables() (PostgreSQL): drops every standalone assignment table
  whose run is no longer running (a failed run, or one whose driver was killed and which the next
  run marked abandoned), so none outlives its run, and deletes those runs' load records.
  SECURITY DEFINER like the other partition functions (0003), so the writer role may call it;
  PUBLIC may not.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

DROP_ORPHANS = """
CREATE FUNCTION segjob.drop_orphan_assignment_tables() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    orphan record;
    dropped integer := 0;
BEGIN
    FOR orphan IN
        SELECT c.relname
        FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = 'segjob'
        WHERE c.relkind = 'r'
          AND c.relname ~ '^assignment_r[0-9]+$'
          AND NOT c.relispartition
          AND NOT EXISTS (
              SELECT 1 FROM segjob.run AS r
              WHERE r.run_id = substr(c.relname, 13)::integer AND r.status = 'running'
          )
    LOOP
        EXECUTE format('DROP TABLE segjob.%I', orphan.relname);
        dropped := dropped + 1;
    END LOOP;
    DELETE FROM segjob.assignment_load AS l
    WHERE NOT EXISTS (SELECT 1 FROM segjob.run AS r WHERE r.run_id = l.run_id AND r.status = 'running');
    RETURN dropped;
END
$$"""


def _schema() -> str | None:
    return "segjob" if op.get_bind().dialect.name == "postgresql" else None


def upgrade() -> None:
    schema = _schema()
    run = f"{schema}.run.run_id" if schema else "run.run_id"
    op.create_table(
        "assignment_load",
        sa.Column(
            "run_id",
            sa.Integer,
            sa.ForeignKey(run, ondelete="CASCADE", name="fk_assignment_load_run_id_run"),
            nullable=False,
        ),
        sa.Column("part", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "part", name="pk_assignment_load"),
        schema=schema,
    )
    if schema:
        op.execute(DROP_ORPHANS)
        # Functions are executable by PUBLIC by default; only writers get it (segjob db grant),
        # and roles that already run jobs (INSERT on run) keep running them.
        op.execute("REVOKE ALL ON FUNCTION segjob.drop_orphan_assignment_tables() FROM PUBLIC")
        bind = op.get_bind()
        writers = bind.exec_driver_sql(
            "SELECT grantee FROM information_schema.role_table_grants WHERE table_schema = 'segjob'"
            " AND table_name = 'run' AND privilege_type = 'INSERT' AND grantee <> current_user"
        ).scalars()
        quote = bind.dialect.identifier_preparer.quote
        for role in writers:
            op.execute(f"GRANT EXECUTE ON FUNCTION segjob.drop_orphan_assignment_tables() TO {quote(role)}")


def downgrade() -> None:
    schema = _schema()
    if schema:
        op.execute("DROP FUNCTION segjob.drop_orphan_assignment_tables()")
    op.drop_table("assignment_load", schema=schema)
