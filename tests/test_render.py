"""`segjob runs show` stays readable with many model columns: nothing wider than the terminal,
no header cut short, "stands out on" whole, every centroid shown (80 and 200 columns)."""

from __future__ import annotations

import io
import re

import pytest
from helpers import invoke, run_json
from rich.console import Console

from segjob.cli.render import run_details
from segjob.results import history
from segjob.results.details import RunDetails
from segjob.store import db

FIFTEEN = [
    "Income", "Recency", "MntWines", "MntFruits", "MntMeatProducts", "MntFishProducts", "MntSweetProducts",
    "MntGoldProds", "NumDealsPurchases", "NumWebPurchases", "NumCatalogPurchases", "NumStorePurchases",
    "NumWebVisitsMonth", "Kidhome", "Teenhome",
]  # fmt: skip


@pytest.fixture
def marketing_run(migrated_db_url, data_dir):
    loaded = invoke(migrated_db_url, "load-csv", str(data_dir / "marketing_campaign.csv"), "--table", "marketing")
    assert loaded.exit_code == 0, loaded.stderr
    run = run_json(
        migrated_db_url, "--source", "marketing", "--id", "ID", "--features", ",".join(FIFTEEN), "--k", "4",
        "--missing", "median", "--quiet",
    )  # fmt: skip
    engine = db.make_engine(migrated_db_url)
    try:
        yield history.show_run(engine, run["run_id"])
    finally:
        engine.dispose()


def _render(details: RunDetails, width: int) -> str:
    out = io.StringIO()
    run_details(details, Console(file=out, width=width, highlight=False, color_system=None))
    return out.getvalue()


@pytest.mark.parametrize("width", [80, 200])
def test_fifteen_model_columns_fit_the_terminal(marketing_run, width):
    text = _render(marketing_run, width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in text  # no header or cell cut short
    for segment in marketing_run.segments:
        for name in segment.top_features:  # "stands out on", each item on one line
            z = segment.features[name].z_score
            assert f"{name} ({z:+.1f} sd)" in text
        for name in FIFTEEN:  # every centroid shown on its feature's row (or in its column)
            value = segment.features[name].centroid
            assert re.search(rf"\b{re.escape(f'{value:,.2f}')}\b", text), (name, value)
    for name in FIFTEEN:
        assert re.search(rf"(^|[│ ]){re.escape(name)}([│ ]|$)", text, re.M), name


def test_few_features_keep_one_table_with_a_column_per_feature(migrated_db_url):
    from helpers import INCOME, MALL_ID, SPENDING, load_mall

    load_mall(migrated_db_url)
    run = run_json(
        migrated_db_url, "--source", "mall", "--id", MALL_ID, "--features", f"{INCOME},{SPENDING}", "--k", "5"
    )
    engine = db.make_engine(migrated_db_url)
    try:
        details = history.show_run(engine, run["run_id"])
    finally:
        engine.dispose()
    text = _render(details, 120)
    header = next(line for line in text.splitlines() if "stands out on" in line)
    assert INCOME in header and SPENDING in header  # features as columns: they fit
    assert "Centroids in original units" not in text
    narrow = _render(details, 60)
    assert "Centroids in original units" in narrow and max(len(line) for line in narrow.splitlines()) <= 60


def test_piped_output_never_wraps_a_line_of_text(migrated_db_url):
    """Redirected to a file or a log, a line of text stays one line however long (issue 26)."""
    from helpers import INCOME, MALL_ID, SPENDING, load_mall

    load_mall(migrated_db_url)
    job = "a job whose name is long enough " * 6
    run = run_json(
        migrated_db_url, "--source", "mall", "--id", MALL_ID, "--features", f"{INCOME},{SPENDING}", "--job", job
    )
    shown = invoke(migrated_db_url, "runs", "show", str(run["run_id"]))
    assert shown.exit_code == 0, shown.stderr
    engine = db.make_engine(migrated_db_url)
    try:
        details = history.show_run(engine, run["run_id"])
    finally:
        engine.dispose()
    line = f"algorithm {details.summary.algorithm or 'kmeans'}; {details.k_reason}"
    assert len(line) > 200
    assert line in shown.stdout.splitlines()
