"""Segments checked against later behaviour: what a purchase-history run's customers did in the
"next period", the days after the as-of date its features were built to.

A run has a next period when
- `--validate-days N` moved its as-of date back N days: the next period is those N days, from the
  moved as-of date up to the as-of date that would otherwise have been used; or
- `--as-of` was given and the table holds transactions on or after it: the next period runs from
  the as-of date to the latest transaction.
Otherwise (the default as-of date, the day after the latest transaction) there is none and every
figure is NULL. Which rule applied is stored in the run's spec (transaction_features.validation).

Inside the publish transaction, after the run's assignments are written, ONE aggregation SELECT
joins each assigned customer to its next-period transactions and sums per segment, so neither
transactions nor customers reach Python. A customer without next-period transactions counts as
spend 0 and no purchase; customers who bought only in the next period are in no segment and are
not counted. Per segment:
- next_purchase_rate: share of its customers with a purchase (amount > 0) in the next period;
- next_spend_mean: net next-period spend (returns included) per customer;
- next_revenue_share: its part of the net next-period spend of all the run's customers (NULL when
  that total is not above 0).
Per run, next_spend_explained: the share of the variance of per-customer next-period spend that
the segments explain (eta squared: between-segment sum of squares / total sum of squares; NULL
when every customer spent the same).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from segjob.config import JobSpec
from segjob.source.purchases import customer_key
from segjob.source.tables import resolve_table
from segjob.store import schema
from segjob.store.dialect import dialect_of


@dataclass(frozen=True)
class SegmentOutcome:
    customers: int
    purchase_rate: float
    spend_mean: float
    revenue_share: float | None


@dataclass(frozen=True)
class Validation:
    """What a run's customers did in the next period, by stable segment id."""

    start: date
    end: date
    segments: dict[int, SegmentOutcome]
    explained: float | None  # eta squared of per-customer next-period spend


def measurer(spec: JobSpec, run_id: int) -> Callable[[sa.Connection], Validation] | None:
    """The check of run `run_id` against its next period, to call inside its publish transaction
    once its assignments are written; None when the run has no next period."""
    stored = (spec.transaction_features or {}).get("validation")
    if not spec.transactions or not stored:
        return None
    start, end = date.fromisoformat(stored["start"]), date.fromisoformat(stored["end"])
    return lambda connection: measure(connection, spec, run_id, start, end)


def measure(connection: sa.Connection, spec: JobSpec, run_id: int, start: date, end: date) -> Validation:
    """Per-segment next-period figures of run `run_id` over `start`..`end` (days included)."""
    rows = connection.execute(outcome_select(connection, spec, run_id, start, end)).all()
    customers = sum(row.customers for row in rows)
    total_spend = sum(row.spend for row in rows)
    mean = total_spend / customers if customers else 0.0
    segments = {
        row.segment_id: SegmentOutcome(
            customers=row.customers,
            purchase_rate=row.buyers / row.customers,
            spend_mean=row.spend / row.customers,
            revenue_share=row.spend / total_spend if total_spend > 0 else None,
        )
        for row in rows
    }
    # Between segments from their means (no cancellation); the total from the sum of squares.
    between = sum(s.customers * (s.spend_mean - mean) ** 2 for s in segments.values())
    squares = sum(row.spend_squares for row in rows)
    total = squares - customers * mean * mean
    explained = min(max(between / total, 0.0), 1.0) if total > 1e-12 * max(squares, 1.0) else None
    return Validation(start, end, segments, explained)


def outcome_select(connection: sa.Connection, spec: JobSpec, run_id: int, start: date, end: date) -> sa.Select:
    """One row per segment of the run: customers, buyers (customers with a purchase), net spend and
    the sum of squared per-customer spend in the next period. The transactions table is checked
    against the reflected database and its names quoted; dates are bound values."""
    assert spec.transactions is not None  # only --transactions runs have a next period (see measurer)
    assert spec.customer is not None and spec.date is not None and spec.amount is not None  # as build_spec requires
    inspector = sa.inspect(connection)
    table_schema, table_name = resolve_table(inspector, spec.transactions)
    types = {column["name"]: column["type"] for column in inspector.get_columns(table_name, schema=table_schema)}
    names = dict.fromkeys([spec.customer, spec.date, spec.amount])
    t = sa.table(table_name, *(sa.column(name) for name in names), schema=table_schema)
    dialect = dialect_of(connection)
    # PostgreSQL compares the column itself, so an index on it can serve the range.
    day = dialect.comparable_day(t.c[spec.date])
    amount = t.c[spec.amount]
    # Assignment keys are the customer ids as the features key them, as text (the read casts them the same way).
    key = sa.cast(customer_key(t.c[spec.customer], types[spec.customer], dialect), sa.Text)
    next_period = (
        sa.select(
            key.label("customer_key"),
            sa.cast(sa.func.sum(amount), sa.Double).label("spend"),
            sa.func.max(sa.case((amount > 0, 1), else_=0)).label("purchased"),
        )
        .where(day >= dialect.date_literal(start), day < dialect.date_literal(end + timedelta(days=1)))
        .group_by(key)
        .cte("next_period")
    )
    a = schema.assignment
    spend = sa.func.coalesce(next_period.c.spend, 0.0)
    return (
        sa.select(
            a.c.segment_id,
            sa.func.count().label("customers"),
            sa.func.coalesce(sa.func.sum(sa.func.coalesce(next_period.c.purchased, 0)), 0).label("buyers"),
            sa.cast(sa.func.coalesce(sa.func.sum(spend), 0.0), sa.Double).label("spend"),
            sa.cast(sa.func.coalesce(sa.func.sum(spend * spend), 0.0), sa.Double).label("spend_squares"),
        )
        .select_from(a.outerjoin(next_period, next_period.c.customer_key == a.c.customer_key))
        .where(a.c.run_id == run_id)
        .group_by(a.c.segment_id)
        .order_by(a.c.segment_id)
    )


def segment_columns(validation: Validation | None, segment_id: int) -> dict[str, float | None]:
    """The segment table's next-period columns for one segment (NULL without a next period)."""
    outcome = validation.segments.get(segment_id) if validation else None
    if outcome is None:
        return {"next_purchase_rate": None, "next_spend_mean": None, "next_revenue_share": None}
    return {
        "next_purchase_rate": outcome.purchase_rate,
        "next_spend_mean": outcome.spend_mean,
        "next_revenue_share": outcome.revenue_share,
    }


def run_columns(validation: Validation | None) -> dict[str, Any]:
    """The run table's next-period columns (NULL without a next period)."""
    if validation is None:
        return {"validation_start": None, "validation_end": None, "next_spend_explained": None}
    return {
        "validation_start": validation.start,
        "validation_end": validation.end,
        "next_spend_explained": validation.explained,
    }
