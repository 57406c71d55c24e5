"""Initial schema: runs, per-feature parameters, segments, centroids, metrics, assignments, BI views.

Table definitions are frozen here (not imported from segjob.schema) so this migration keeps
meaning what it meant when later migrations change the models.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from segjob.db import create_views, drop_views

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

    create_views(op.get_bind(), VIEWS)


def downgrade() -> None:
    schema = _schema()
    drop_views(op.get_bind(), VIEWS)
    for table in ("assignment", "run_metric", "segment_centroid", "segment", "run_feature", "run"):
        op.drop_table(table, schema=schema)
