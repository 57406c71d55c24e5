"""Revision 0002: frozen view SQL matches sql/views at head, and a downgrade keeps the data."""

from __future__ import annotations

import re

import sqlalchemy as sa
from helpers import INCOME, MALL_ID, SPENDING, load_mall, query, run_json

from segjob.store import db, migrate
from segjob.store.dialect import dialect_of
from segjob.store.schema import VIEW_NAMES


def _sql_body(text: str) -> str:
    """The statement without its comment lines, trailing semicolon and spacing differences."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return re.sub(r"\s+", " ", "\n".join(lines)).strip().rstrip(";").strip()


def test_views_at_head_are_the_sql_files(sqlite_url):
    """Migrations freeze their view SQL; sql/views/ must say what the newest revision created."""
    migrate.upgrade(sqlite_url)
    engine = db.make_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            stored = dict(connection.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'view'").all())
    finally:
        engine.dispose()
    assert set(stored) == set(VIEW_NAMES)
    for name in VIEW_NAMES:
        assert _sql_body(stored[name]) == _sql_body((db.sql_dir() / "views" / f"{name}.sql").read_text()), name


def test_downgrade_to_0001_keeps_runs_and_restores_old_views(migrated_db_url):
    load_mall(migrated_db_url)
    run_id = run_json(
        migrated_db_url, "--source", "mall", "--id", MALL_ID, "--features", f"{INCOME},{SPENDING}", "--k", "3"
    )["run_id"]
    migrate.downgrade(migrated_db_url, "0001")
    counts = query(
        migrated_db_url,
        "SELECT (SELECT COUNT(*) FROM segment WHERE run_id = :r) AS segments,"
        " (SELECT COUNT(*) FROM run_metric WHERE run_id = :r) AS metrics,"
        " (SELECT COUNT(*) FROM current_segment) AS current",
        r=run_id,
    )[0]
    assert (counts["segments"], counts["current"]) == (3, 200) and counts["metrics"] > 0
    engine = db.make_engine(migrated_db_url)
    try:
        schema = "segjob" if dialect_of(engine).postgres else None
        inspector = sa.inspect(engine)
        assert "probability" not in {c["name"] for c in inspector.get_columns("assignment", schema=schema)}
        assert "algorithm" not in {c["name"] for c in inspector.get_columns("run", schema=schema)}
        assert "k_rejection" not in inspector.get_table_names(schema=schema)
        assert [c["name"] for c in inspector.get_columns("current_segment", schema=schema)][-1] == "distance"
    finally:
        engine.dispose()
    migrate.upgrade(migrated_db_url)
    backfilled = query(migrated_db_url, "SELECT algorithm, k_criterion FROM run_summary WHERE run_id = :r", r=run_id)
    assert backfilled == [{"algorithm": "kmeans", "k_criterion": "fixed"}]
