"""`segjob run --transactions` and `segjob demo --transactions` through the CLI, on SQLite and
PostgreSQL: a run publishes the feature definitions with its spec; bad input publishes nothing."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa
from helpers import invoke, one_error_line, query, run_json
from test_transactions import amount_type, create_table, load_tables, make_transactions

from segjob.config import JobSpec
from segjob.source.purchases import transaction_source
from segjob.source.tables import read_source
from segjob.store import db
from segjob.store.dialect import dialect_of

TX_RUN = ("--transactions", "tx", "--customer", "customer_id", "--date", "ordered_at", "--amount", "amount")


def stored_spec(url: str, run_id: int) -> dict:
    spec = query(url, "SELECT spec FROM run WHERE run_id = :r", r=run_id)[0]["spec"]
    return json.loads(spec) if isinstance(spec, str) else spec


def test_run_from_transactions_publishes_features_and_definitions(migrated_db_url):
    engine = db.make_engine(migrated_db_url)
    try:
        load_tables(engine, make_transactions())
    finally:
        engine.dispose()

    summary = run_json(
        migrated_db_url,
        *TX_RUN,
        "--customers",
        "customers",
        "--features",
        "recency,frequency,monetary_total,age",
        "--since",
        "2024-01-01",
        "--as-of",
        "2024-07-01",
        "--k",
        "3",
        "--missing",
        "median",
    )
    assert summary["status"] == "succeeded" and summary["job"] == "tx" and summary["k"] == 3
    run_id = summary["run_id"]

    spec = stored_spec(migrated_db_url, run_id)
    options = (spec["transactions"], spec["customer"], spec["date"], spec["amount"])
    assert options == ("tx", "customer_id", "ordered_at", "amount")
    definitions = spec["transaction_features"]
    assert definitions["as_of"] == "2024-07-01" and definitions["since"] == "2024-01-01"
    assert set(definitions["features"]) == {"recency", "frequency", "monetary_total"}
    assert definitions["features"]["recency"]["unit"] == "days"
    assert "amount" in definitions["rules"] and "purchase" in definitions["rules"]
    assert definitions["counts"]["customers_without_purchase"] >= 1
    assert definitions["counts"]["customers_with_purchase"] == summary["rows_read"]
    assert "customer_days" in definitions["sql"] and "2024-07-01" in definitions["sql"]

    assignments = query(migrated_db_url, "SELECT customer_key FROM assignment WHERE run_id = :r", r=run_id)
    keys = {row["customer_key"] for row in assignments}
    assert len(keys) == summary["rows_used"] and "0001" in keys and "R001" not in keys
    features = query(migrated_db_url, "SELECT feature FROM run_feature WHERE run_id = :r ORDER BY position", r=run_id)
    assert [row["feature"] for row in features] == ["recency", "frequency", "monetary_total", "age"]

    # The stored spec alone rebuilds the same features (what `segjob score` will do).
    fields = {f.name for f in dataclasses.fields(JobSpec)}
    rebuilt = JobSpec(**{key: value for key, value in spec.items() if key in fields and key != "transaction_features"})
    engine = db.make_engine(migrated_db_url)
    try:
        rebuilt = dataclasses.replace(rebuilt, as_of=definitions["as_of"])
        rebuilt, source = transaction_source(engine, rebuilt)
        assert rebuilt.transaction_features["sql"] == definitions["sql"]
        assert len(read_source(engine, rebuilt, source)) == summary["rows_read"]
    finally:
        engine.dispose()


def test_config_file_with_transactions_keys(migrated_db_url, tmp_path):
    engine = db.make_engine(migrated_db_url)
    try:
        load_tables(engine, make_transactions())
    finally:
        engine.dispose()
    config = tmp_path / "job.toml"
    config.write_text(
        'transactions = "tx"\ncustomer = "customer_id"\ndate = "ordered_at"\namount = "amount"\n'
        'as_of = 2024-07-01\nfeatures = ["recency", "frequency", "tenure", "interval_std"]\n'
        'k = 2\njob = "rfm"\n'
    )
    summary = run_json(migrated_db_url, "--config", str(config))
    assert summary["job"] == "rfm" and summary["k"] == 2
    definitions = stored_spec(migrated_db_url, summary["run_id"])["transaction_features"]
    assert definitions["as_of"] == "2024-07-01" and definitions["as_of_rule"] == "given"
    # JSONB keeps no key order
    assert set(definitions["features"]) == {"recency", "frequency", "tenure", "interval_std"}


def _rows(*rows) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["customer_id", "ordered_at", "amount"])


GOOD = _rows(("a", datetime(2024, 1, 1), 10.0), ("b", datetime(2024, 1, 5), 20.0))


def bad_inputs(postgres: bool) -> list[tuple[str, pd.DataFrame, dict, tuple[str, ...], int, str]]:
    """(case, rows, column types, extra options, exit code, error line)."""
    typed = {"customer_id": sa.Text(), "ordered_at": sa.DateTime(), "amount": sa.Double()}
    cases = [
        (
            "unknown column",
            GOOD,
            typed,
            ("--date", "orderd_at"),
            2,
            'Error: --date column "orderd_at" not found in table tx (columns: customer_id, ordered_at, amount);'
            ' did you mean "ordered_at"?',
        ),
        (
            "unknown feature",
            GOOD,
            typed,
            ("--features", "recency,age"),
            2,
            'Error: feature "age" is not a purchase-history feature (recency, frequency, monetary_total, monetary_avg,'
            " tenure, interval_mean, interval_std); to use a column of your customer table, give --customers TABLE",
        ),
        (
            "amount not numeric",
            _rows(("a", datetime(2024, 1, 1), "10")),
            {**typed, "amount": sa.Text()},
            (),
            2,
            'Error: --amount column "amount" of table tx is TEXT, not numeric',
        ),
        (
            "as-of before every transaction",
            GOOD,
            typed,
            ("--as-of", "2023-12-31"),
            3,
            "Error: --as-of 2023-12-31 is not after any transaction: the earliest in table tx is on 2024-01-01",
        ),
        (
            "since after every transaction",
            GOOD,
            typed,
            ("--since", "2024-02-01"),
            3,
            "Error: no transactions dated from 2024-02-01 before 2024-01-06 in table tx"
            " (it holds transactions from 2024-01-01 to 2024-01-05)",
        ),
        (
            "empty table",
            _rows(),
            typed,
            (),
            3,
            "Error: table tx is empty: there are no transactions to build features from",
        ),
        (
            "only returns",
            _rows(("a", datetime(2024, 1, 1), -10.0)),
            typed,
            (),
            3,
            "Error: no customer has a purchase (amount above 0) in the window: the only customer has only returns"
            " or zero amounts",
        ),
    ]
    if postgres:
        cases.append(
            (
                "date not a date",
                _rows(("a", "2024-01-01", 10.0)),
                {**typed, "ordered_at": sa.Text()},
                (),
                2,
                'Error: --date column "ordered_at" of table tx is TEXT, not a date or timestamp'
                " (convert it, e.g. ALTER TABLE ... TYPE date USING ...)",
            )
        )
    else:
        cases += [
            (
                "date not a date",
                _rows(("a", "03/15/2024", 10.0)),
                {**typed, "ordered_at": sa.Text()},
                (),
                2,
                'Error: --date column "ordered_at" of table tx holds no values that are an ISO date'
                " (YYYY-MM-DD, optionally with a time), e.g. '03/15/2024'",
            ),
            (
                "some dates unreadable",
                _rows(("a", "2024-01-01", 10.0), ("b", "2024-13-45", 5.0)),
                {**typed, "ordered_at": sa.Text()},
                (),
                3,
                'Error: 1 row of table tx has a --date value ("ordered_at") that is not an ISO date'
                " (YYYY-MM-DD, optionally with a time), e.g. '2024-13-45'; fix them or filter them out with a view",
            ),
        ]
    return cases


def test_bad_input_gives_one_error_line_and_publishes_nothing(migrated_db_url):
    engine = db.make_engine(migrated_db_url)
    postgres = dialect_of(engine).postgres
    try:
        for case, rows, types, options, code, line in bad_inputs(postgres):
            if "amount" in types and isinstance(types["amount"], sa.Double) and postgres:
                types = {**types, "amount": amount_type(engine)}
            with engine.begin() as connection:
                connection.exec_driver_sql("DROP TABLE IF EXISTS tx")
            create_table(engine, "tx", rows, types)
            arguments = list(TX_RUN)
            for option, value in zip(options[::2], options[1::2]):
                if option in arguments:
                    arguments[arguments.index(option) + 1] = value
                else:
                    arguments += [option, value]
            result = invoke(migrated_db_url, "run", *arguments)
            assert (result.exit_code, one_error_line(result.stderr)) == (code, line), case
            assert result.stdout == "", case
    finally:
        engine.dispose()
    assert query(migrated_db_url, "SELECT COUNT(*) AS n FROM run")[0]["n"] == 0


def test_a_raw_log_with_guest_checkouts_runs_and_says_what_it_left_out(migrated_db_url):
    engine = db.make_engine(migrated_db_url)
    try:
        rows = [(f"c{n % 40}", datetime(2024, 1, 1 + n % 28), 10.0 + n % 7) for n in range(200)]
        rows += [(None, datetime(2024, 2, 1), 5.0)] * 3
        types = {"customer_id": sa.Text(), "ordered_at": sa.DateTime(), "amount": amount_type(engine)}
        create_table(engine, "tx", _rows(*rows), types)
    finally:
        engine.dispose()
    summary = run_json(migrated_db_url, *TX_RUN, "--k", "3")
    assert summary["status"] == "succeeded" and summary["rows_used"] == 40
    assert summary["left_out"] == {"transactions_without_customer": 3, "customers_without_purchase": 0}
    shown = invoke(migrated_db_url, "runs", "show", str(summary["run_id"]))
    assert "3 transactions without a customer and 0 customers with only returns" in shown.stdout
    refused = invoke(migrated_db_url, "run", *TX_RUN, "--k", "3", "--require-customer")
    assert refused.exit_code == 3
    assert one_error_line(refused.stderr) == (
        'Error: 3 transactions in table tx have no customer ("customer_id" is NULL) and --require-customer'
        " refuses them; fix or delete them, or leave out --require-customer to leave them out and count them"
    )


def test_transactions_with_source_is_refused(sqlite_url):
    result = invoke(sqlite_url, "run", *TX_RUN, "--source", "customers")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --source does not go with --transactions")


@pytest.mark.slow  # large data
def test_demo_transactions_on_sqlite(sqlite_url):
    result = invoke(sqlite_url, "demo", "--transactions", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert "job transactions_demo: succeeded" in result.stdout
    runs = query(sqlite_url, "SELECT run_id, k, rows_used FROM run_summary WHERE job = 'transactions_demo'")
    assert len(runs) == 1 and runs[0]["rows_used"] == 2000 and runs[0]["k"] >= 3
    definitions = stored_spec(sqlite_url, runs[0]["run_id"])["transaction_features"]
    assert definitions["as_of"] == "2025-01-01"
    assert definitions["counts"]["customers_without_purchase"] == 6  # the sample's return-only customers
    labels = query(sqlite_url, "SELECT DISTINCT segment_label FROM current_segment WHERE job = 'transactions_demo'")
    assert len(labels) == runs[0]["k"]
    personas = {"Champions", "Loyal customers", "New customers", "New big spenders", "Potential loyalists"}
    personas |= {"Can't lose them", "At risk", "Lost", "Hibernating", "Need attention", "About to sleep", "Promising"}
    assert all(label["segment_label"].split(", ")[0] in personas for label in labels), labels
    shown = invoke(sqlite_url, "runs", "show", str(runs[0]["run_id"]))
    assert "purchase history as of 2025-01-01" in shown.stdout
    assert "recency [days]: days from the last purchase day" in shown.stdout
    assert (
        "0 transactions without a customer and 6 customers with only returns or zero amounts left out" in shown.stdout
    )
