"""PostgreSQL: one partition of `assignment` per run (LIST on run_id), created without blocking
BI readers and dropped when the run is pruned.

A run's partition starts as a standalone table, created with a CHECK matching the partition
bound, that the publish transaction fills with COPY; then it gets its primary key and is
attached. ATTACH PARTITION takes only SHARE UPDATE EXCLUSIVE on `assignment` (PostgreSQL 12+),
which does not conflict with the ACCESS SHARE lock of readers' SELECTs, and the CHECK spares it
the validation scan. The work is done by SECURITY DEFINER functions (migrations 0003 and 0004),
so a writer role that does not own the schema can publish too.
"""

from __future__ import annotations

import sqlalchemy as sa


def partition_name(run_id: int) -> str:
    return f"assignment_r{int(run_id)}"


def create(connection: sa.Connection, run_id: int) -> str:
    """Create the run's standalone assignment table; returns its schema-qualified, quoted name."""
    name = connection.execute(
        sa.text("SELECT segjob.create_assignment_partition(:run_id)"), {"run_id": run_id}
    ).scalar_one()
    return f"segjob.{connection.dialect.identifier_preparer.quote(name)}"


def attach(connection: sa.Connection, run_id: int) -> None:
    """Index the filled table and attach it to `assignment` as the run's partition."""
    connection.execute(sa.text("SELECT segjob.attach_assignment_partition(:run_id)"), {"run_id": run_id})


def drop(connection: sa.Connection, run_id: int) -> bool:
    """Drop the run's partition (its assignments); False if it has none."""
    return bool(
        connection.execute(sa.text("SELECT segjob.drop_assignment_partition(:run_id)"), {"run_id": run_id}).scalar_one()
    )


def existing(connection: sa.Connection) -> set[int]:
    """Run ids that have an attached assignment partition."""
    names = connection.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'segjob.assignment'::regclass"
        )
    ).scalars()
    return {int(name.removeprefix("assignment_r")) for name in names if name.startswith("assignment_r")}


def drop_orphans(connection: sa.Connection) -> int:
    """Drop every standalone assignment table whose run is no longer running (one the Spark
    engine's executors filled before the run failed or its driver died); returns how many."""
    return int(connection.execute(sa.text("SELECT segjob.drop_orphan_assignment_tables()")).scalar_one())
