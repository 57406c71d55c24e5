"""A run whose segments hold only a handful of customers says so (issue 26: a 3-row table was
split 2 + 1 and published with a confident label, no warning)."""

from __future__ import annotations

import json

import sqlalchemy as sa
from helpers import INCOME, MALL_ID, SPENDING, invoke, load_mall, run_json

from segjob.model.explain import MIN_SEGMENT_CUSTOMERS, small_segments_warning


def test_a_three_row_table_is_published_with_a_small_segments_warning(migrated_db_url):
    engine = sa.create_engine(migrated_db_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE tiny (id TEXT, income DOUBLE PRECISION, spend DOUBLE PRECISION)")
        connection.exec_driver_sql("INSERT INTO tiny VALUES ('a', 16, 80), ('b', 17, 75), ('c', 90, 10)")
    engine.dispose()
    run = run_json(migrated_db_url, "--source", "tiny", "--id", "id", "--features", "income,spend", "--k", "2")
    warning = run["k_explanation"]["warning"]
    assert warning.startswith("small segments: 2 segments of fewer than 10 customers (1, 2);"), warning
    assert "among 3 customers" in warning
    shown = invoke(migrated_db_url, "runs", "show", str(run["run_id"]))
    assert f"warning: {warning}" in shown.stdout.splitlines()
    as_json = json.loads(invoke(migrated_db_url, "runs", "show", str(run["run_id"]), "--json").stdout)
    assert as_json["k_explanation"]["warning"] == warning


def test_the_textbook_answer_carries_no_warning(migrated_db_url):
    load_mall(migrated_db_url)
    run = run_json(migrated_db_url, "--source", "mall", "--id", MALL_ID, "--features", f"{INCOME},{SPENDING}")
    assert run["k"] == 5 and run["k_explanation"]["warning"] is None


def test_the_threshold():
    assert small_segments_warning([MIN_SEGMENT_CUSTOMERS, 500], 510) is None
    assert "1 segment of fewer than" in small_segments_warning([MIN_SEGMENT_CUSTOMERS - 1, 500], 509)
