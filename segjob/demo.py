"""The demo jobs: a bundled sample (Mall Customers, or a purchase history), end to end, on any database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segjob.config import build_spec
from segjob.pipeline import run_job
from segjob.progress import Progress
from segjob.report.write import Report, write_report
from segjob.results import history
from segjob.results.details import RunDetails
from segjob.source.csvload import load_csv
from segjob.store import db, migrate

SAMPLE = Path(__file__).resolve().parent / "data" / "mall_customers.csv"
TABLE = "mall_customers"
FEATURES = ["Age", "Annual Income (k$)", "Spending Score (1-100)"]


# Purchase history made by scripts/make_transactions_sample.py (fixed seed): ~2,000 customers.
TRANSACTIONS_SAMPLE = Path(__file__).resolve().parent / "data" / "transactions.csv"
TRANSACTIONS_TABLE = "demo_transactions"


@dataclass
class DemoOutcome:
    details: RunDetails  # history.show_run of the demo's run
    report: Report


def run_demo(
    database_url: str | None, progress: Progress, transactions: bool = False, report_dir: Path = Path("segjob-report")
) -> DemoOutcome:
    """Upgrade the database, (re)load the sample into `mall_customers`, run the job, write its report.

    With `transactions`, the purchase-history sample goes into `demo_transactions` instead and is
    segmented on recency, frequency and monetary_total built from it.
    """
    url = db.resolve_url(database_url)
    migrate.upgrade(url)
    engine = db.make_engine(url)
    sample, table = (TRANSACTIONS_SAMPLE, TRANSACTIONS_TABLE) if transactions else (SAMPLE, TABLE)
    try:
        progress.stage(f"loading {sample.name} into {table}")
        loaded = load_csv(engine, sample, table, if_exists="replace")
        progress.done(f"{loaded.rows:,} rows")
        if transactions:
            spec = build_spec(
                transactions=table,
                customer="customer_id",
                date="order_date",
                amount="amount",
                job="transactions_demo",
            )
        else:
            spec = build_spec(source=TABLE, id="CustomerID", features=FEATURES, job="mall_customers_demo")
        outcome = run_job(engine, spec, progress)
        report = write_report(engine, outcome.run_id, report_dir, progress=progress)
        return DemoOutcome(history.show_run(engine, outcome.run_id), report)
    finally:
        engine.dispose()
