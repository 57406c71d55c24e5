"""The demo job: the bundled Mall Customers sample, end to end, on any database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segjob import db, history
from segjob.config import build_spec
from segjob.csvload import load_csv
from segjob.pipeline import run_job
from segjob.progress import Progress

SAMPLE = Path(__file__).resolve().parent / "data" / "mall_customers.csv"
TABLE = "mall_customers"
FEATURES = ["Age", "Annual Income (k$)", "Spending Score (1-100)"]


def run_demo(database_url: str | None, progress: Progress) -> dict[str, Any]:
    """Upgrade the database, (re)load the sample into `mall_customers`, run the job; return the run."""
    url = db.resolve_url(database_url)
    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        progress.stage(f"loading {SAMPLE.name} into {TABLE}")
        loaded = load_csv(engine, SAMPLE, TABLE, if_exists="replace")
        progress.done(f"{loaded.rows:,} rows")
        spec = build_spec(source=TABLE, id="CustomerID", features=FEATURES, job="mall_customers_demo")
        outcome = run_job(engine, spec, progress)
        return history.show_run(engine, outcome.run_id)
    finally:
        engine.dispose()
