"""Segments checked against later behaviour (segjob.results.validation), on SQLite and PostgreSQL: the
next-period figures stored per segment and run equal a pandas computation over the run's own
assignments, and the hand-made groups give the numbers written down below."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa
from helpers import invoke, one_error_line, query, run_json
from test_transactions import amount_type, create_table

from segjob.config import build_spec
from segjob.errors import UsageError
from segjob.pipeline import run_job
from segjob.store import db, migrate

TX = ("--transactions", "tx", "--customer", "customer_id", "--date", "ordered_at", "--amount", "amount", "--k", "3")
LAST_DAY = date(2024, 9, 30)  # the latest transaction: the default as-of date is 2024-10-01
FIRST_DAY = date(2023, 3, 1)


def make_history(copies: int = 1) -> pd.DataFrame:
    """Three groups whose later behaviour is known, `copies` customers per pattern.

    History (before 2024-07-01): 10 champions buy 200 weekly, 20 regulars 50 monthly, 30 lapsed
    bought 20 once in 2023. Next period (2024-07-01 .. 2024-09-30):
    - champions: 0-6 buy 300 on 07-15, 7 buys 100 on the last day, 8 only returns 50, 9 nothing;
    - regulars: 0-4 buy 50 on the as-of day itself, 5 buys 80 and returns it the same day;
    - lapsed: 0 buys 40 on 08-15;
    - a new customer buys 999: in no segment, so not counted.
    """
    rows = []

    def add(customer: str, day: date, amount: float, hour: int = 12) -> None:
        rows.append((customer, datetime.combine(day, datetime.min.time()) + timedelta(hours=hour), amount))

    for copy in range(copies):
        for number in range(10):
            customer = f"C{copy:03d}{number:02d}"
            for week in range(26):
                add(customer, date(2024, 1, 3) + timedelta(weeks=week), 200.0)
            if number < 7:
                add(customer, date(2024, 7, 15), 300.0)
            elif number == 7:
                add(customer, LAST_DAY, 100.0, hour=23)
            elif number == 8:
                add(customer, date(2024, 8, 1), -50.0)
        for number in range(20):
            customer = f"R{copy:03d}{number:02d}"
            for month in range(1, 7):
                add(customer, date(2024, month, 10), 50.0)
            if number < 5:
                add(customer, date(2024, 7, 1), 50.0, hour=0)
            elif number == 5:
                add(customer, date(2024, 7, 20), 80.0, hour=9)
                add(customer, date(2024, 7, 20), -80.0, hour=17)
        for number in range(30):
            customer = f"L{copy:03d}{number:02d}"
            add(customer, FIRST_DAY + timedelta(days=number), 20.0)
            if number == 0:
                add(customer, date(2024, 8, 15), 40.0)
    add("N0000001", date(2024, 8, 1), 999.0)
    return pd.DataFrame(rows, columns=["customer_id", "ordered_at", "amount"])


def load(url: str, frame: pd.DataFrame) -> None:
    engine = db.make_engine(url)
    try:
        create_table(
            engine, "tx", frame, {"customer_id": sa.Text(), "ordered_at": sa.DateTime(), "amount": amount_type(engine)}
        )
    finally:
        engine.dispose()


def expected(frame: pd.DataFrame, assignments: pd.DataFrame, start: date, end: date) -> tuple[pd.DataFrame, float]:
    """Per-segment rate, mean spend and revenue share, and eta squared, computed in pandas."""
    day = frame["ordered_at"].dt.normalize()
    later = frame[(day >= pd.Timestamp(start)) & (day <= pd.Timestamp(end))]
    spend = later.groupby("customer_id")["amount"].sum()
    bought = later[later["amount"] > 0].groupby("customer_id").size() > 0
    customers = assignments.set_index("customer_key")
    customers["spend"] = spend.reindex(customers.index).fillna(0.0).astype(float)
    customers["bought"] = bought.reindex(customers.index).fillna(False).astype(float)
    by = customers.groupby("segment_id")
    table = pd.DataFrame(
        {
            "rate": by["bought"].mean(),
            "mean": by["spend"].mean(),
            "share": by["spend"].sum() / customers["spend"].sum(),
        }
    )
    overall = customers["spend"].mean()
    between = (by.size() * (by["spend"].mean() - overall) ** 2).sum()
    total = ((customers["spend"] - overall) ** 2).sum()
    return table, between / total


def stored(url: str, run_id: int) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    segments = pd.DataFrame(
        query(url, "SELECT * FROM segment_validation WHERE run_id = :r ORDER BY segment_id", r=run_id)
    )
    run = query(url, "SELECT * FROM run_summary WHERE run_id = :r", r=run_id)[0]
    assignments = pd.DataFrame(
        query(url, "SELECT customer_key, segment_id FROM assignment WHERE run_id = :r", r=run_id)
    )
    return segments.set_index("segment_id"), run, assignments


def group_of(assignments: pd.DataFrame) -> dict[str, int]:
    """Letter of the hand-made group -> its segment id; each group must be exactly one segment."""
    letters = assignments["customer_key"].str[0]
    groups = assignments.groupby(letters)["segment_id"].unique()
    assert all(len(ids) == 1 for ids in groups), groups
    return {letter: int(ids[0]) for letter, ids in groups.items()}


def assert_figures(url: str, run_id: int, frame: pd.DataFrame, start: date, end: date, hand: dict) -> None:
    segments, run, assignments = stored(url, run_id)
    assert str(run["validation_start"]) == start.isoformat() and str(run["validation_end"]) == end.isoformat()
    assert str(segments["validation_start"].iloc[0]) == start.isoformat()
    table, eta = expected(frame, assignments, start, end)
    assert segments["next_purchase_rate"].to_numpy() == pytest.approx(table["rate"].to_numpy(), abs=1e-12)
    assert segments["next_spend_mean"].to_numpy() == pytest.approx(table["mean"].to_numpy(), rel=1e-9)
    assert segments["next_revenue_share"].to_numpy() == pytest.approx(table["share"].to_numpy(), rel=1e-9)
    assert run["next_spend_explained"] == pytest.approx(eta, rel=1e-9)
    assert (segments["next_spend_explained"] == run["next_spend_explained"]).all()
    groups = group_of(assignments)
    for letter, (rate, mean, share) in hand.items():
        row = segments.loc[groups[letter]]
        assert (row["next_purchase_rate"], row["next_spend_mean"], row["next_revenue_share"]) == pytest.approx(
            (rate, mean, share), rel=1e-9, abs=1e-12
        ), letter


# Whole next period 2024-07-01 .. 2024-09-30: revenue 2150 + 250 + 40 = 2440 per copy.
WHOLE = {"C": (0.8, 215.0, 2150 / 2440), "R": (0.3, 12.5, 250 / 2440), "L": (1 / 30, 40 / 30, 40 / 2440)}
# July only: champions 7 x 300, regulars 5 x 50 (the 80 bought and returned is a purchase of net 0).
JULY = {"C": (0.7, 210.0, 2100 / 2350), "R": (0.3, 12.5, 250 / 2350), "L": (0.0, 0.0, 0.0)}


def test_validate_days_checks_segments_against_the_moved_back_period(migrated_db_url):
    frame = make_history()
    load(migrated_db_url, frame)
    days = (LAST_DAY - date(2024, 7, 1)).days + 1  # 92: the as-of date moves from 2024-10-01 to 2024-07-01
    summary = run_json(migrated_db_url, *TX, "--validate-days", str(days))
    assert summary["validation_start"] == "2024-07-01" and summary["validation_end"] == "2024-09-30"
    assert 0 < summary["next_spend_explained"] < 1
    assert_figures(migrated_db_url, summary["run_id"], frame, date(2024, 7, 1), LAST_DAY, WHOLE)

    spec = query(migrated_db_url, "SELECT spec FROM run WHERE run_id = :r", r=summary["run_id"])[0]["spec"]
    definitions = (json.loads(spec) if isinstance(spec, str) else spec)["transaction_features"]
    assert definitions["as_of"] == "2024-07-01"
    assert "moved back 92 days by --validate-days" in definitions["as_of_rule"]
    assert definitions["validation"] == {
        "start": "2024-07-01",
        "end": "2024-09-30",
        "days": 92,
        "rule": "--validate-days 92: the 92 days from the as-of date, which it moved back from 2024-10-01",
    }
    assert summary["rows_used"] == 60  # the customer who first bought in the next period is in no segment

    shown = invoke(migrated_db_url, "runs", "show", str(summary["run_id"]))
    assert shown.exit_code == 0, shown.stderr
    assert "next period 2024-07-01 to 2024-09-30 (--validate-days 92:" in shown.stdout
    assert "Segments in the next period" in shown.stdout and "80.0%" in shown.stdout and "215.00" in shown.stdout


def test_given_as_of_with_later_transactions_checks_up_to_the_latest(migrated_db_url):
    frame = make_history()
    load(migrated_db_url, frame)
    summary = run_json(migrated_db_url, *TX, "--as-of", "2024-07-01")
    assert_figures(migrated_db_url, summary["run_id"], frame, date(2024, 7, 1), LAST_DAY, WHOLE)
    spec = query(migrated_db_url, "SELECT spec FROM run WHERE run_id = :r", r=summary["run_id"])[0]["spec"]
    validation = (json.loads(spec) if isinstance(spec, str) else spec)["transaction_features"]["validation"]
    assert validation["days"] is None
    assert validation["rule"] == "the transactions on and after the given --as-of date, up to the latest (2024-09-30)"


def test_given_as_of_and_validate_days_check_exactly_those_days(migrated_db_url):
    """--as-of 2024-08-01 --validate-days 31: features as of 2024-07-01, next period July only,
    although the table holds later transactions."""
    frame = make_history()
    load(migrated_db_url, frame)
    summary = run_json(migrated_db_url, *TX, "--as-of", "2024-08-01", "--validate-days", "31")
    assert_figures(migrated_db_url, summary["run_id"], frame, date(2024, 7, 1), date(2024, 7, 31), JULY)


def test_streamed_run_stores_the_same_figures(migrated_db_url):
    """Above --fit-sample the run streams its assignments; the figures come from the same SQL."""
    frame = make_history(copies=20)  # 1,200 customers
    load(migrated_db_url, frame)
    summary = run_json(migrated_db_url, *TX, "--validate-days", "92", "--fit-sample", "1000")
    assert summary["rows_used"] == 1200
    metrics = query(migrated_db_url, "SELECT name FROM run_metric WHERE run_id = :r AND k IS NULL", r=summary["run_id"])
    assert "sample_size" in {row["name"] for row in metrics}  # it did stream
    scaled = {letter: (rate, mean, share) for letter, (rate, mean, share) in WHOLE.items()}
    assert_figures(migrated_db_url, summary["run_id"], frame, date(2024, 7, 1), LAST_DAY, scaled)


def test_no_next_period_leaves_nulls_and_score_runs_do_not_inherit_them(migrated_db_url):
    frame = make_history()
    load(migrated_db_url, frame)
    plain = run_json(migrated_db_url, *TX)  # default as-of: the day after the latest transaction
    assert (plain["validation_start"], plain["validation_end"], plain["next_spend_explained"]) == (None, None, None)
    segments, _, _ = stored(migrated_db_url, plain["run_id"])
    assert len(segments) == 3
    assert segments[["next_purchase_rate", "next_spend_mean", "next_revenue_share"]].isna().all().all()
    shown = invoke(migrated_db_url, "runs", "show", str(plain["run_id"]))
    assert "next period: none" in shown.stdout and "Segments in the next period" not in shown.stdout

    checked = run_json(migrated_db_url, *TX, "--validate-days", "92")
    scored = invoke(migrated_db_url, "score", "--job", "tx", "--json")
    assert scored.exit_code == 0, scored.stderr
    score = json.loads(scored.stdout)
    assert score["kind"] == "score" and score["model_run_id"] == checked["run_id"]
    assert score["validation_start"] is None and score["next_spend_explained"] is None
    segments, _, _ = stored(migrated_db_url, score["run_id"])
    assert segments[["next_purchase_rate", "next_spend_mean", "next_revenue_share"]].isna().all().all()
    spec = query(migrated_db_url, "SELECT spec FROM run WHERE run_id = :r", r=score["run_id"])[0]["spec"]
    spec = json.loads(spec) if isinstance(spec, str) else spec
    # Scored as of the day after the latest transaction, not moved back by the model's --validate-days.
    assert spec["validate_days"] is None and spec["transaction_features"]["as_of"] == "2024-10-01"


def test_validate_days_beyond_the_history_is_a_usage_error(migrated_db_url):
    load(migrated_db_url, make_history())
    result = invoke(migrated_db_url, "run", *TX, "--validate-days", "600")
    assert result.exit_code == 2
    most = (date(2024, 10, 1) - FIRST_DAY).days - 1
    assert one_error_line(result.stderr) == (
        "Error: --validate-days 600 moves the as-of date back to 2023-02-09, but the earliest transaction in"
        f" table tx is on 2023-03-01: no history is left to build features from; give at most {most}"
    )
    assert query(migrated_db_url, "SELECT COUNT(*) AS n FROM run")[0]["n"] == 0
    assert invoke(migrated_db_url, "run", *TX, "--validate-days", "0").exit_code == 2
    since = invoke(migrated_db_url, "run", *TX, "--validate-days", "92", "--since", "2024-08-01")
    assert since.exit_code == 2 and "--since 2024-08-01 must be before 2024-07-01" in since.stderr


def test_validate_days_needs_transactions():
    with pytest.raises(UsageError, match="--validate-days applies only with --transactions"):
        build_spec(source="mall", id="CustomerID", features="Age", validate_days=30)
    with pytest.raises(UsageError, match="validate-days must be a whole number"):
        build_spec(transactions="tx", customer="c", date="d", amount="a", validate_days="soon")


def test_validate_days_from_the_toml_spec(sqlite_url, tmp_path):
    migrate.upgrade(sqlite_url)
    frame = make_history()
    load(sqlite_url, frame)
    config = tmp_path / "job.toml"
    config.write_text(
        'transactions = "tx"\ncustomer = "customer_id"\ndate = "ordered_at"\namount = "amount"\nk = 3\n'
        "validate_days = 92\n"
    )
    engine = db.make_engine(sqlite_url)
    try:
        outcome = run_job(engine, build_spec(config))
    finally:
        engine.dispose()
    assert_figures(sqlite_url, outcome.run_id, frame, date(2024, 7, 1), LAST_DAY, WHOLE)


def test_report_shows_the_next_period(sqlite_url, tmp_path):
    migrate.upgrade(sqlite_url)
    load(sqlite_url, make_history())
    summary = run_json(sqlite_url, *TX, "--validate-days", "92")
    out = tmp_path / "report"
    result = invoke(sqlite_url, "report", str(summary["run_id"]), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    page = (out / "report.html").read_text()
    assert "<h2>Segments in the next period</h2>" in page
    assert f"segments explain {summary['next_spend_explained']:.1%} of the variance" in page
    assert "<td class='num'>80.0%</td><td class='num'>215</td><td class='num'>88.1%</td>" in page
    assert "What this means: knowing only a customer's segment explains" in page


def test_reader_keeps_run_summary_and_gets_segment_validation_through_0006(migrated_pg_url, pg_admin_engine):
    reader = "segjob_reader_validation"
    with pg_admin_engine.connect() as connection:
        connection.exec_driver_sql(f"DROP ROLE IF EXISTS {reader}")
        connection.exec_driver_sql(f"CREATE ROLE {reader} LOGIN")
    try:
        migrate.downgrade(migrated_pg_url, "0005")
        engine = sa.create_engine(migrated_pg_url)
        with engine.begin() as connection:
            connection.exec_driver_sql(f"GRANT USAGE ON SCHEMA segjob TO {reader}")
            connection.exec_driver_sql(f"GRANT SELECT ON segjob.run_summary TO {reader}")
        engine.dispose()
        migrate.upgrade(migrated_pg_url)
        url = sa.make_url(migrated_pg_url).set(drivername="postgresql", username=reader).render_as_string(False)
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("SELECT validation_start, next_spend_explained FROM segjob.run_summary").fetchall()
            connection.execute("SELECT next_purchase_rate FROM segjob.segment_validation").fetchall()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute("SELECT next_purchase_rate FROM segjob.segment")
    finally:
        with sa.create_engine(migrated_pg_url).connect() as connection:
            connection.exec_driver_sql(f"DROP OWNED BY {reader}")
            connection.commit()
        with pg_admin_engine.connect() as connection:
            connection.exec_driver_sql(f"DROP ROLE IF EXISTS {reader}")
