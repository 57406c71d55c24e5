"""segjob's tables: the single source of truth that Alembic migrations are checked against.

On PostgreSQL they live in the schema `segjob`; on SQLite the engine maps that schema away
(see `db.make_engine`), so the table names are the same without a schema.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA = "segjob"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


Json = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def _build(schema: str | None) -> sa.MetaData:
    metadata = sa.MetaData(schema=schema, naming_convention=NAMING_CONVENTION)

    def run_fk() -> sa.ForeignKey:
        return sa.ForeignKey(f"{schema}.run.run_id" if schema else "run.run_id", ondelete="CASCADE")

    sa.Table(
        "run",
        metadata,
        sa.Column("run_id", sa.Integer, primary_key=True, autoincrement=True),
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
        sa.Column("algorithm", sa.String(30)),  # kmeans, minibatch-kmeans, gmm, agglomerative, dbscan
        # What decided k: the --select criterion (silhouette, elbow, ...), "fixed" (--k) or "dbscan".
        sa.Column("k_criterion", sa.String(30)),
        sa.Column("model_run_id", sa.Integer),  # score runs: the fit run whose model they used
        # Drift against compared_run_id, the job's previous succeeded run (no FK: it may be pruned).
        sa.Column("compared_run_id", sa.Integer),
        sa.Column("common_customers", sa.BigInteger),
        sa.Column("changed_share", sa.Float(precision=53)),
        sa.Column("ari", sa.Float(precision=53)),
        # Largest segment id the job had ever used when this run published: fresh ids start above
        # it, even after the runs that used them are pruned.
        sa.Column("last_segment_id", sa.Integer),
        # Purchase-history runs with a next period (segjob.results.validation): its first and last day, and
        # the share of the variance of next-period spend per customer that the segments explain.
        sa.Column("validation_start", sa.Date),
        sa.Column("validation_end", sa.Date),
        sa.Column("next_spend_explained", sa.Float(precision=53)),
        # Made with --candidate: becomes current only when promoted (segjob.results.promotion).
        sa.Column("candidate", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("features", sa.Text),  # the source columns used, as a JSON array (run_summary shows it)
        sa.CheckConstraint("kind IN ('fit', 'score')", name="kind"),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed', 'abandoned')", name="status"),
        sa.Index(None, "job", "status"),
        sa.Index(None, "job", "run_key"),
    )

    sa.Table(
        "run_feature",
        metadata,
        sa.Column("run_id", sa.Integer, run_fk(), primary_key=True),
        sa.Column("feature", sa.Text, primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("source_column", sa.Text, nullable=False),
        sa.Column("level", sa.Text),
        sa.Column("impute_value", sa.Float(precision=53)),
        sa.Column("missing_count", sa.BigInteger, nullable=False),
        sa.Column("center", sa.Float(precision=53), nullable=False),
        sa.Column("scale", sa.Float(precision=53), nullable=False),
        sa.Column("mean", sa.Float(precision=53), nullable=False),
        sa.Column("std", sa.Float(precision=53), nullable=False),
        sa.Column("min", sa.Float(precision=53), nullable=False),
        sa.Column("max", sa.Float(precision=53), nullable=False),
        # Numeric features: clip to [clip_low, clip_high] (original units), then `transform`
        # (NULL or 'log1p'), then (value - center) / scale.
        sa.Column("transform", sa.String(10)),
        sa.Column("skewness", sa.Float(precision=53)),
        sa.Column("clip_low", sa.Float(precision=53)),
        sa.Column("clip_high", sa.Float(precision=53)),
        sa.Column("clipped_count", sa.BigInteger),
        sa.Column("psi", sa.Float(precision=53)),  # population stability index vs the compared run
        sa.CheckConstraint("kind IN ('numeric', 'categorical')", name="kind"),
    )

    # Decile bins of each numeric feature (original units, after imputation): bin i holds values
    # in (upper_edge of bin i-1, upper_edge]; the last bin's upper_edge is NULL (no limit).
    # A later run measures its PSI against them.
    sa.Table(
        "feature_bin",
        metadata,
        sa.Column("run_id", sa.Integer, run_fk(), primary_key=True),
        sa.Column("feature", sa.Text, primary_key=True),
        sa.Column("bin", sa.Integer, primary_key=True),
        sa.Column("upper_edge", sa.Float(precision=53)),
        sa.Column("share", sa.Float(precision=53), nullable=False),
    )

    sa.Table(
        "segment",
        metadata,
        sa.Column("run_id", sa.Integer, run_fk(), primary_key=True),
        sa.Column("segment_id", sa.Integer, primary_key=True),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("share", sa.Float(precision=53), nullable=False),
        sa.Column("top_features", Json),  # JSON list of the features that set it apart, largest |z| first
        # segment_id is stable across a job's runs; cluster_index is the algorithm's own index.
        sa.Column("cluster_index", sa.Integer),
        # Distance from the same segment's centroid in the compared run, in that run's scaled units.
        sa.Column("centroid_shift", sa.Float(precision=53)),
        # What the segment's customers did in the run's next period (NULL without one).
        sa.Column("next_purchase_rate", sa.Float(precision=53)),
        sa.Column("next_spend_mean", sa.Float(precision=53)),
        sa.Column("next_revenue_share", sa.Float(precision=53)),
    )

    sa.Table(
        "segment_centroid",
        metadata,
        sa.Column("run_id", sa.Integer, run_fk(), primary_key=True),
        sa.Column("segment_id", sa.Integer, primary_key=True),
        sa.Column("feature", sa.Text, primary_key=True),
        sa.Column("centroid", sa.Float(precision=53), nullable=False),
        sa.Column("centroid_scaled", sa.Float(precision=53), nullable=False),
        sa.Column("mean", sa.Float(precision=53), nullable=False),
        sa.Column("median", sa.Float(precision=53), nullable=False),
        sa.Column("z_score", sa.Float(precision=53), nullable=False),
    )

    sa.Table(
        "run_metric",
        metadata,
        sa.Column("metric_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, run_fk(), nullable=False, index=True),
        sa.Column("k", sa.Integer),  # NULL: the chosen model; otherwise a candidate of the K sweep
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("value", sa.Float(precision=53)),
        sa.Column("sample_size", sa.BigInteger),
    )

    # Candidate k of the K sweep that could not be chosen, and why (e.g. a segment smaller than
    # --min-segment-share).
    sa.Table(
        "k_rejection",
        metadata,
        sa.Column("run_id", sa.Integer, run_fk(), primary_key=True),
        sa.Column("k", sa.Integer, primary_key=True),
        sa.Column("smallest_share", sa.Float(precision=53)),
        sa.Column("reason", sa.Text, nullable=False),
    )

    # The big table. No foreign key: a per-row FK check would slow bulk loads, and runs are only
    # deleted through segjob, which deletes assignments first. On PostgreSQL it is partitioned by
    # LIST (run_id), one partition per run (see migration 0003 and segjob.results.lineage).
    # PostgreSQL keys it customer first, in byte order (migration 0005): faster to build per run
    # and usable for one customer's history; SQLite keeps every run's rows together.
    postgres = schema is not None
    # Every change of a job's current run (the one current_segment shows), newest last; each row
    # points at the row that was current before it, so a rollback pops like a stack.
    sa.Table(
        "promotion",
        metadata,
        sa.Column("promotion_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(200), nullable=False),
        sa.Column("run_id", sa.Integer, run_fk(), nullable=False),
        sa.Column("promoted_at", Timestamp, nullable=False),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column(
            "previous_promotion_id",
            sa.Integer,
            sa.ForeignKey(
                f"{schema}.promotion.promotion_id" if schema else "promotion.promotion_id", ondelete="SET NULL"
            ),
        ),
        sa.CheckConstraint("reason IN ('succeeded', 'promoted', 'rolled back')", name="reason"),
        sa.Index(None, "job", "promotion_id"),
    )

    # Partitions of a run's assignments that Spark executors have committed (migration 0008).
    sa.Table(
        "assignment_load",
        metadata,
        sa.Column("run_id", sa.Integer, run_fk(), nullable=False),
        sa.Column("part", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("loaded_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "part"),
    )

    sa.Table(
        "assignment",
        metadata,
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("customer_key", sa.Text(collation="C") if postgres else sa.Text, nullable=False),
        sa.Column("segment_id", sa.Integer, nullable=False),
        sa.Column("distance", sa.Float(precision=53), nullable=False),
        sa.Column("second_distance", sa.Float(precision=53)),
        sa.Column("probability", sa.Float(precision=53)),  # GMM membership probability; NULL otherwise
        sa.PrimaryKeyConstraint(*(("customer_key", "run_id") if postgres else ("run_id", "customer_key"))),
    )
    return metadata


metadata = _build(SCHEMA)
(
    run,
    run_feature,
    segment,
    segment_centroid,
    run_metric,
    k_rejection,
    assignment,
    feature_bin,
    promotion,
    assignment_load,
) = (
    metadata.tables[f"{SCHEMA}.{name}"]
    for name in (
        "run",
        "run_feature",
        "segment",
        "segment_centroid",
        "run_metric",
        "k_rejection",
        "assignment",
        "feature_bin",
        "promotion",
        "assignment_load",
    )
)

VIEW_NAMES = (
    "run_summary",
    "current_segment",
    "segment_profile",
    "customer_segment_history",
    "segment_migration",
    "segment_size_history",
    "segment_validation",
)


@functools.cache
def metadata_for(dialect_name: str) -> sa.MetaData:
    """The metadata as it exists in a database of this dialect (no schema on SQLite)."""
    return metadata if dialect_name == "postgresql" else _build(None)
