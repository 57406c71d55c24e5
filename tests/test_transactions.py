"""Purchase-history features computed by the database equal a pandas computation of the same
definitions on the same rows, on SQLite and PostgreSQL; plus the spec checks and marketer words."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from segjob.config import build_spec
from segjob.errors import UsageError
from segjob.model.labels import marketer_words
from segjob.source.purchases import FEATURES, transaction_source
from segjob.source.tables import read_source
from segjob.store import db
from segjob.store.dialect import dialect_of

ALL_FEATURES = list(FEATURES)


def make_transactions(seed: int = 7) -> pd.DataFrame:
    """Random customers around a window of 2024-01-01..2024-06-30, plus the awkward cases."""
    rng = np.random.default_rng(seed)
    rows = []
    for number in range(60):
        customer = f"{number:04d}"  # zero-padded text ids must survive as they are
        for _ in range(int(rng.integers(1, 10))):
            day = date(2023, 10, 1) + timedelta(days=int(rng.integers(0, 300)))  # before since .. after as-of
            at = datetime.combine(day, time(int(rng.integers(0, 22)), int(rng.integers(0, 60))))
            kind = rng.choice(["purchase", "return", "zero"], p=[0.8, 0.15, 0.05])
            amount = {"purchase": rng.uniform(5, 200), "return": -rng.uniform(5, 50), "zero": 0.0}[kind]
            rows.append((customer, at, round(float(amount), 2)))
            if rng.random() < 0.25:  # a second basket the same day: still one purchase
                rows.append((customer, at + timedelta(hours=1), round(float(rng.uniform(1, 30)), 2)))
    rows += [
        ("R001", datetime(2023, 11, 5, 10), 80.0),  # a purchase before --since ...
        ("R001", datetime(2024, 2, 1, 12), -80.0),  # ... so in the window: only a return
        ("N001", datetime(2024, 3, 3, 9), 25.5),
        ("N001", datetime(2024, 4, 3, 9), None),  # NULL amount: adds nothing, no purchase
        ("N001", None, 99.0),  # NULL date: ignored
        ("S001", datetime(2024, 5, 5, 8), 10.0),
        ("S001", datetime(2024, 5, 5, 18), 12.0),  # same day: one purchase
        ("E001", datetime(2024, 1, 1, 0, 0), 30.0),  # the first instant of --since: inside
        ("E001", datetime(2024, 6, 30, 23, 59), 40.0),  # the last minute before --as-of: inside
        ("E001", datetime(2024, 7, 1, 0, 0), 50.0),  # the as-of day itself: outside
    ]
    return pd.DataFrame(rows, columns=["customer_id", "ordered_at", "amount"])


def make_customers(transactions: pd.DataFrame) -> pd.DataFrame:
    ids = sorted(set(transactions["customer_id"]) - {"0003"})  # 0003 has no customer row: NULL age
    rng = np.random.default_rng(1)
    return pd.DataFrame({"customer_id": ids, "age": rng.integers(18, 80, len(ids))})


def reference(transactions: pd.DataFrame, as_of: date | None, since: date | None) -> pd.DataFrame:
    """The README's definitions, one customer at a time, in plain pandas."""
    rows = transactions.dropna(subset=["ordered_at"]).copy()
    rows["day"] = pd.to_datetime(rows["ordered_at"]).dt.normalize()
    as_of_ts = pd.Timestamp(as_of) if as_of else rows["day"].max() + pd.Timedelta(days=1)
    rows = rows[rows["day"] < as_of_ts]
    if since:
        rows = rows[rows["day"] >= pd.Timestamp(since)]
    out = []
    for customer, group in rows.groupby("customer_id"):
        days = sorted(group.loc[group["amount"] > 0, "day"].unique())
        if not days:
            continue  # only returns, zero or NULL amounts: left out
        gaps = np.diff(np.array(days)).astype("timedelta64[D]").astype(float)
        total = group["amount"].sum()
        recency = float((as_of_ts - days[-1]).days)
        out.append(
            {
                "customer_id": customer,
                "recency": recency,
                "frequency": float(len(days)),
                "monetary_total": total,
                "monetary_avg": total / len(days),
                "tenure": float((as_of_ts - days[0]).days),
                "interval_mean": gaps.mean() if len(gaps) else recency,
                "interval_std": gaps.std() if len(gaps) else 0.0,
            }
        )
    return pd.DataFrame(out)


def create_table(engine: sa.Engine, name: str, frame: pd.DataFrame, types: dict[str, sa.types.TypeEngine]) -> None:
    table = sa.Table(name, sa.MetaData(), *(sa.Column(column, types[column]) for column in frame.columns))
    records = [
        {
            key: (None if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)) else value)
            for key, value in row.items()
        }
        for row in frame.astype(object).to_dict("records")
    ]
    with engine.begin() as connection:
        table.create(connection)
        if records:
            connection.execute(table.insert(), records)


def amount_type(engine: sa.Engine) -> sa.types.TypeEngine:
    # NUMERIC on PostgreSQL (SUM gives numeric); SQLite has no decimal type worth the name.
    return sa.Numeric(12, 2) if dialect_of(engine).postgres else sa.Double()


def load_tables(engine: sa.Engine, transactions: pd.DataFrame) -> None:
    create_table(
        engine,
        "tx",
        transactions,
        {"customer_id": sa.Text(), "ordered_at": sa.DateTime(), "amount": amount_type(engine)},
    )
    create_table(engine, "customers", make_customers(transactions), {"customer_id": sa.Text(), "age": sa.Integer()})


@pytest.mark.parametrize(
    "as_of, since",
    [(date(2024, 7, 1), date(2024, 1, 1)), (None, None)],
    ids=["window", "default-as-of"],
)
def test_database_features_equal_pandas_reference(db_url, as_of, since):
    transactions = make_transactions()
    engine = db.make_engine(db_url)
    try:
        load_tables(engine, transactions)
        spec = build_spec(
            transactions="tx",
            customer="customer_id",
            date="ordered_at",
            amount="amount",
            features=[*ALL_FEATURES, "age"],
            customers="customers",
            as_of=as_of.isoformat() if as_of else None,
            since=since.isoformat() if since else None,
        )
        spec, source = transaction_source(engine, spec)
        got = read_source(engine, spec, source)
    finally:
        engine.dispose()

    expected = reference(transactions, as_of, since)
    assert list(got["customer_id"]) == list(expected["customer_id"])  # ordered by customer, text ids kept
    for name in ALL_FEATURES:
        np.testing.assert_allclose(
            got[name].to_numpy(float), expected[name].to_numpy(float), rtol=1e-9, atol=1e-9, err_msg=name
        )
    ages = make_customers(transactions).set_index("customer_id")["age"]
    np.testing.assert_array_equal(got["age"].to_numpy(float), expected["customer_id"].map(ages).to_numpy(float))
    assert got["age"].isna().sum() == 1  # customer 0003 has no customer row

    definitions = spec.transaction_features
    expected_as_of = as_of or (transactions["ordered_at"].dropna().max().date() + timedelta(days=1))
    assert definitions["as_of"] == expected_as_of.isoformat()
    assert set(definitions["features"]) == set(ALL_FEATURES)
    counts = definitions["counts"]
    assert counts["customers_with_purchase"] == len(expected)
    if since:
        assert counts["customers_without_purchase"] >= 1  # R001 at least
        assert "R001" not in set(got["customer_id"])
        row = got.set_index("customer_id").loc["E001"]
        assert (row["frequency"], row["recency"], row["tenure"]) == (2, 1, 182)
    row = got.set_index("customer_id").loc["S001"]
    assert row["frequency"] == 1 and row["monetary_total"] == pytest.approx(22.0)


def test_spec_defaults_and_exclusions():
    spec = build_spec(transactions="sales.orders", customer="cid", date="d", amount="a")
    assert (spec.id, spec.job, spec.transform) == ("cid", "sales.orders", "auto")
    assert spec.features == ["recency", "frequency", "monetary_total"]
    assert spec.source_description == "transactions sales.orders"
    with pytest.raises(UsageError, match="--source does not go with --transactions"):
        build_spec(transactions="t", source="s", customer="c", date="d", amount="a")
    with pytest.raises(UsageError, match="--transactions needs --date COLUMN, --amount COLUMN"):
        build_spec(transactions="t", customer="c")
    with pytest.raises(UsageError, match="--as-of must be a date like 2024-12-31, not '31/12/2024'"):
        build_spec(transactions="t", customer="c", date="d", amount="a", as_of="31/12/2024")
    with pytest.raises(UsageError, match="--since 2024-02-01 must be before --as-of 2024-01-01"):
        build_spec(transactions="t", customer="c", date="d", amount="a", as_of="2024-01-01", since="2024-02-01")
    with pytest.raises(UsageError, match="--as-of applies only with --transactions"):
        build_spec(source="t", id="c", features="x", as_of="2024-01-01")


def test_marketer_words():
    assert marketer_words("recency", "High") == "Lapsed"
    assert marketer_words("recency", "Low") == "Recent"
    assert marketer_words("frequency", "High") == "Frequent"
    assert marketer_words("frequency", "Low") == "Infrequent"
    assert marketer_words("frequency", "Low", value=1.1) == "One-off"
    assert marketer_words("monetary_total", "High") == "High spend"
    assert marketer_words("recency", "Mid") is None
    assert marketer_words("age", "High") is None
