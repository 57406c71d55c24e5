"""Purchase-history features: a transactions table becomes a per-customer `Source`.

The user names a transactions table and its customer, date and amount columns; all are checked
against the reflected database. ONE aggregation SELECT per customer is then built with SQLAlchemy
Core and computed inside the database (no transaction rows reach Python), and wrapped as a
`Source` whose id column is the customer column, so prepare, model, profile and publish run
unchanged. The definitions (FEATURES, RULES), the as-of date actually used, counts and the SQL are
stored in the run's spec as `transaction_features`, so `segjob score` can rebuild the features.

Transactions without a customer (guest checkouts) are left out and counted
(`counts.rows_without_customer`); --require-customer refuses them instead (exit 3), for teams that
use the run as a data-quality gate. Customer ids that arrive as numbers with a fractional zero
("17850.0", a float column or text) become the integer's text ("17850"), so they join the same ids
held as integers elsewhere (a --customers table, earlier runs' assignments).

Fit runs that choose k by later behaviour (the default rule of --transactions jobs) also get the
SQL of a backtest (`backtest`): the same features as of the as-of date moved back by a horizon,
with each customer's net spend and whether they bought in that horizon (segjob.source.backtest
reads it, segjob.model.backtest scores it).

Frequency counts purchase days, not rows: order-line or split-payment tables hold several rows
per shopping trip, and counting rows would count items, not visits. Returns (amount < 0) lower
the spend but are no purchases. Customers with only returns or zero amounts in the window have no
recency: they are left out and counted, never dropped silently.

Errors: wrong table, column or feature names, a date column that is not a date or timestamp (on
SQLite: holds no ISO dates) or a non-numeric amount are configuration problems (UsageError, exit
2). An empty table, no transactions in the window (e.g. an as-of date before every transaction),
transactions without a customer (with --require-customer), some unreadable dates or no customer
with a purchase are unusable data (DataError, exit 3).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.default import DefaultDialect

from segjob.config import JobSpec
from segjob.errors import DataError, UsageError, did_you_mean
from segjob.model.algorithms import DBSCAN_NAME
from segjob.model.choose_k import NEXT_PERIOD
from segjob.progress import Progress
from segjob.source.tables import Source, SourceColumn, resolve_table
from segjob.store.dialect import Dialect, dialect_of

# name -> (unit, definition); the order is the order of `segjob run --help` and the README.
FEATURES: dict[str, tuple[str, str]] = {
    "recency": ("days", "days from the last purchase day to the as-of date (1: bought the day before)"),
    "frequency": ("purchases", "number of distinct days with a purchase (amount > 0) in the window"),
    "monetary_total": ("amount", "sum of all amounts in the window, returns included (net spend)"),
    "monetary_avg": ("amount per purchase", "monetary_total / frequency: net spend per purchase day"),
    "tenure": ("days", "days from the first purchase day in the window to the as-of date"),
    "interval_mean": (
        "days",
        "mean days between consecutive purchase days, (last - first) / (frequency - 1); with a single"
        " purchase day, the days since it (equal to recency: the wait so far)",
    ),
    "interval_std": (
        "days",
        "population standard deviation of the days between consecutive purchase days; 0 with one or two purchase days",
    ),
}

RULES = {
    "window": "rows dated on or after since (when given) and before the as-of date; NULL dates are ignored",
    "day": "PostgreSQL: CAST(date AS DATE) in the session time zone; SQLite: date(date), UTC when the"
    " text carries an offset",
    "purchase": "a row with amount > 0; all rows of a customer on one day are one purchase",
    "amount": "amount < 0 is a return: it lowers monetary_total but is no purchase; zero and NULL amounts add nothing",
    "customers_without_purchase": "customers with rows in the window but no purchase are left out and counted",
    "rows_without_customer": "rows whose customer is NULL are left out and counted (--require-customer refuses them)",
    "customer_key": "a number with a fractional zero (17850.0, as a float or as text) is the integer's text (17850)",
    "customers_table": "LEFT JOIN on the customer column: customers without a row get NULL attributes",
}


# The backtest's horizon without --validate-days: a quarter of the history before the as-of date,
# in whole weeks (so weekdays weigh the same), within these bounds; a horizon that leaves less
# than BACKTEST_MIN_DAYS of history to build features from means no backtest.
BACKTEST_MIN_DAYS = 28
BACKTEST_MAX_DAYS = 364
# Columns of the backtest's SELECT next to the features (names no feature may have).
NEXT_SPEND, NEXT_PURCHASE = "segjob_next_spend", "segjob_next_purchase"


@dataclasses.dataclass(frozen=True)
class Period:
    """The next period: `start` (the as-of date) to `end`, both days included."""

    start: date
    end: date
    rule: str
    days: int | None  # --validate-days, or None for "up to the latest transaction"

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "days": self.days, "rule": self.rule}


def next_period(
    spec: JobSpec, as_of: date, as_of_rule: str, span: tuple[date, date], description: str
) -> tuple[date, str, Period | None]:
    """The as-of date to build features to, its rule, and the next period (None: there is none).

    `as_of` is the date that would be used without --validate-days (given, or the day after the
    latest transaction) and `span` the first and last transaction days of the table. Raises
    UsageError (exit 2) when --validate-days leaves no history before the moved as-of date.
    """
    first, last = span
    days = spec.validate_days
    if days:
        moved = as_of - timedelta(days=days)
        if moved <= first:
            most = (as_of - first).days - 1
            hint = f"; give at most {most}" if most >= 1 else ""
            raise UsageError(
                f"--validate-days {days} moves the as-of date back to {moved}, but the earliest transaction in"
                f" {description} is on {first}: no history is left to build features from{hint}"
            )
        if spec.since and date.fromisoformat(spec.since) >= moved:
            raise UsageError(
                f"--since {spec.since} must be before {moved}, the as-of date --validate-days {days} leaves"
            )
        rule = f"--validate-days {days}: the {days} days from the as-of date, which it moved back from {as_of}"
        return (
            moved,
            f"{as_of_rule}, moved back {days} days by --validate-days",
            Period(moved, as_of - timedelta(days=1), rule, days),
        )
    if spec.as_of is not None and last >= as_of:
        rule = f"the transactions on and after the given --as-of date, up to the latest ({last})"
        return as_of, as_of_rule, Period(as_of, last, rule, None)
    return as_of, as_of_rule, None


def transaction_source(
    engine: sa.Engine, spec: JobSpec, progress: Progress | None = None, validate: bool = False
) -> tuple[JobSpec, Source]:
    """Check the transactions (and customers) tables, resolve the as-of date and build the features.

    Returns the spec with `transaction_features` filled in (definitions, as-of date used, counts,
    SQL) and a `Source` over the per-customer aggregation. `validate=True` (fit runs) applies
    --validate-days and records the next period that checks the segments (segjob.results.validation);
    rebuilding a stored spec's features (score, sql-score, report) leaves it False. Raises
    UsageError (exit 2) for names and types, DataError (exit 3) for unusable rows; see the module
    docstring.
    """
    # build_spec requires --customer, --date and --amount with --transactions.
    assert spec.customer is not None and spec.date is not None and spec.amount is not None
    _check_feature_names(spec.features, spec.categorical, spec.customers)
    inspector = sa.inspect(engine)
    tx = _check_transactions_table(engine, inspector, spec)
    customers = _check_customers_table(inspector, spec, tx) if spec.customers else None
    dialect = dialect_of(engine)
    derived = [name for name in spec.features if name in FEATURES]
    if "interval_std" in derived:
        _check_sqrt(engine, dialect)
    names = dict.fromkeys([spec.customer, spec.date, spec.amount])
    t = sa.table(tx.name, *(sa.column(name) for name in names), schema=tx.schema)

    if progress:
        progress.stage(f"checking transactions in {tx.description}")
    key = customer_key(t.c[spec.customer], tx.types[spec.customer], dialect)
    with _reading(engine, tx.description) as connection:
        if not dialect.typed_columns:
            _check_sqlite_values(connection, t, spec, tx)
        as_of, as_of_rule, span = _resolve_as_of(connection, t, dialect, spec, tx)
        period = None
        if validate:
            as_of, as_of_rule, period = next_period(spec, as_of, as_of_rule, span, tx.description)
        counts = _window_counts(connection, t, key, dialect, spec, tx, as_of, span)
        select = _feature_select(t, key, customers, dialect, spec, derived, as_of)
        # Planning the query (LIMIT 0) finds a join the database refuses before the run starts.
        connection.execute(sa.select(sa.literal(1)).select_from(select.subquery()).limit(0))
    if progress:
        left_out = [
            f"{count:,} {what}"
            for count, what in (
                (counts["rows_without_customer"], "transactions without a customer"),
                (counts["customers_without_purchase"], "customers with only returns or zero amounts"),
            )
            if count
        ]
        note = f"; left out {' and '.join(left_out)}" if left_out else ""
        progress.done(f"{counts['rows']:,} transactions, {counts['customers_with_purchase']:,} customers{note}")

    backtest = None
    if validate and spec.k is None and spec.select == NEXT_PERIOD and spec.algorithm != DBSCAN_NAME:
        backtest = _backtest_plan(engine, t, key, customers, dialect, spec, derived, as_of, span)
    sql = _compile(engine, select)
    definitions = {
        "as_of": as_of.isoformat(),
        "as_of_rule": as_of_rule,
        "since": spec.since,
        "features": {name: {"unit": FEATURES[name][0], "definition": FEATURES[name][1]} for name in derived},
        "rules": RULES,
        "counts": counts,
        "validation": period.to_json() if period else None,
        "backtest": backtest,
        "dialect": engine.dialect.name,
        "sql": sql,
    }
    columns = {spec.customer: SourceColumn(spec.customer, None)}
    columns |= {name: SourceColumn(name, True) for name in derived}
    if customers:
        columns |= customers.columns
    source = Source(f"(\n{sql}\n) AS segjob_source", f"transactions in {tx.description}", columns)
    return dataclasses.replace(spec, transaction_features=definitions), source


def backtest_days(spec: JobSpec, as_of: date, first: date) -> tuple[int | None, str]:
    """The backtest's horizon in days and how it was chosen; (None, why) when the history before
    the as-of date is too short for one."""
    start = max(first, date.fromisoformat(spec.since)) if spec.since else first
    history = (as_of - start).days
    if spec.validate_days:
        days, rule = spec.validate_days, f"--validate-days {spec.validate_days}"
    else:
        days = min(BACKTEST_MAX_DAYS, max(BACKTEST_MIN_DAYS, history // 4 // 7 * 7))
        rule = (
            f"a quarter of the {history:,} days of history, in whole weeks, {BACKTEST_MIN_DAYS} to {BACKTEST_MAX_DAYS}"
        )
    if history - days < BACKTEST_MIN_DAYS:
        return None, (
            f"the {history:,} days of history before {as_of} are too short for a backtest of {days} days"
            f" (it needs {days + BACKTEST_MIN_DAYS:,}: {BACKTEST_MIN_DAYS} days of history before the horizon)"
        )
    return days, rule


def _backtest_plan(
    engine: sa.Engine,
    t: sa.TableClause,
    key: sa.ColumnElement,
    customers: _CustomersTable | None,
    dialect: Dialect,
    spec: JobSpec,
    derived: list[str],
    as_of: date,
    span: tuple[date, date],
) -> dict[str, Any]:
    """The backtest of a run that chooses k by later behaviour: its dates, horizon, rule and SQL
    (the features as of the as-of date moved back by the horizon, each customer's net spend and
    whether they bought in the horizon); {"none": why} when the history is too short."""
    # build_spec requires --customer, --date and --amount with --transactions.
    assert spec.customer is not None and spec.date is not None and spec.amount is not None
    days, rule = backtest_days(spec, as_of, span[0])
    if days is None:
        return {"none": rule}
    moved = as_of - timedelta(days=days)
    features = _feature_select(t, key, customers, dialect, spec, derived, moved).subquery("features")
    amount = t.c[spec.amount]
    outcome = (
        sa.select(
            key.label("customer"),
            sa.func.sum(amount).label("spend"),
            sa.func.max(sa.case((amount > 0, 1), else_=0)).label("purchased"),
        )
        .where(*dialect.in_window(t.c[spec.date], moved, as_of), t.c[spec.customer].is_not(None))
        .group_by(key)
        .subquery("outcome")
    )
    select = sa.select(
        features,
        _double(sa.func.coalesce(outcome.c.spend, 0)).label(NEXT_SPEND),
        _double(sa.func.coalesce(outcome.c.purchased, 0)).label(NEXT_PURCHASE),
    ).select_from(features.outerjoin(outcome, outcome.c.customer == features.c[spec.customer]))
    numeric: dict[str, bool | None] = {name: True for name in derived}
    numeric |= {name: column.numeric for name, column in (customers.columns if customers else {}).items()}
    return {
        "as_of": moved.isoformat(),
        "start": moved.isoformat(),
        "end": (as_of - timedelta(days=1)).isoformat(),
        "days": days,
        "rule": rule,
        "numeric": numeric,
        "sql": _compile(engine, select),
    }


# --- checking the tables ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Table:
    schema: str | None
    name: str
    description: str  # "table public.orders"
    types: dict[str, sa.types.TypeEngine]


@dataclasses.dataclass(frozen=True)
class _CustomersTable:
    table: _Table
    columns: dict[str, SourceColumn]
    wanted: list[str]  # columns of this table among --features and --categorical


def _reflect(inspector, name: str) -> _Table:
    schema, table = resolve_table(inspector, name)
    types = {column["name"]: column["type"] for column in inspector.get_columns(table, schema=schema)}
    qualified = f"{schema}.{table}" if schema else table
    return _Table(schema, table, f"table {qualified}", types)


def _require_column(table: _Table, option: str, name: str) -> sa.types.TypeEngine:
    if name not in table.types:
        available = ", ".join(table.types)
        hint = did_you_mean(name, table.types)
        raise UsageError(f'{option} column "{name}" not found in {table.description} (columns: {available}){hint}')
    return table.types[name]


def _check_transactions_table(engine: sa.Engine, inspector, spec: JobSpec) -> _Table:
    assert spec.transactions is not None  # transaction_source is only called for --transactions jobs
    # build_spec requires --customer, --date and --amount with --transactions.
    assert spec.customer is not None and spec.date is not None and spec.amount is not None
    table = _reflect(inspector, spec.transactions)
    _require_column(table, "--customer", spec.customer)
    date_type = _require_column(table, "--date", spec.date)
    amount_type = _require_column(table, "--amount", spec.amount)
    if spec.customer in FEATURES:
        raise UsageError(f'the --customer column may not be named "{spec.customer}", the name of a derived feature')

    typed = dialect_of(engine).typed_columns
    if typed:
        if not isinstance(date_type, (sa.Date, sa.DateTime)):
            raise UsageError(
                f'--date column "{spec.date}" of {table.description} is {_type_name(date_type, engine)},'
                " not a date or timestamp (convert it, e.g. ALTER TABLE ... TYPE date USING ...)"
            )
    elif isinstance(date_type, (sa.Integer, sa.Numeric, sa.Float, sa.Boolean)):
        raise UsageError(
            f'--date column "{spec.date}" of {table.description} is {_type_name(date_type, engine)};'
            " on SQLite segjob reads dates stored as ISO text (YYYY-MM-DD, optionally with a time)"
        )
    if _numeric(amount_type) is False or (_numeric(amount_type) is None and typed):
        raise UsageError(
            f'--amount column "{spec.amount}" of {table.description} is {_type_name(amount_type, engine)}, not numeric'
        )
    return table


def _check_customers_table(inspector, spec: JobSpec, tx: _Table) -> _CustomersTable:
    assert spec.customers is not None  # only called with --customers
    assert spec.customer is not None  # build_spec requires --customer with --transactions
    table = _reflect(inspector, spec.customers)
    _require_column(table, "--customer", spec.customer)
    wanted = [name for name in [*spec.features, *spec.categorical] if name not in FEATURES]
    for name in wanted:
        if name == spec.customer:
            raise UsageError(f'"{name}" is the customer column; it cannot also be a feature')
        _require_column(table, "--features/--categorical", name)
    columns = {name: SourceColumn(name, _numeric(table.types[name])) for name in wanted}
    return _CustomersTable(table, columns, wanted)


def _check_feature_names(features: list[str], categorical: list[str], customers: str | None) -> None:
    """Without a customers table every feature must be a derived one, and nothing is categorical."""
    if customers:
        return
    for name in features:
        if name not in FEATURES:
            raise UsageError(
                f'feature "{name}" is not a purchase-history feature ({", ".join(FEATURES)});'
                " to use a column of your customer table, give --customers TABLE"
            )
    if categorical:
        raise UsageError("--categorical with --transactions names columns of --customers TABLE; give that table")


def _numeric(column_type: sa.types.TypeEngine) -> bool | None:
    if isinstance(column_type, sa.types.NullType):
        return None
    return isinstance(column_type, (sa.Integer, sa.Numeric, sa.Float)) and not isinstance(column_type, sa.Boolean)


def customer_key(column: sa.ColumnElement, column_type: sa.types.TypeEngine, dialect: Dialect) -> sa.ColumnElement:
    """The customer id as segjob keys it: an integer column as it is; anything else as text, with
    a number's fractional zero dropped ("17850.0" and 17850.0 become "17850") so the same ids
    join whether a table holds them as integers, floats or text. Other text (zero-padded ids,
    codes) is kept exactly."""
    if isinstance(column_type, sa.Integer):
        return column
    if _numeric(column_type):
        whole = sa.cast(column, sa.BigInteger)
        key = sa.case((whole == column, sa.cast(whole, sa.Text)), else_=sa.cast(column, sa.Text))
        return sa.type_coerce(key, sa.Text)
    text = sa.cast(column, sa.Text)
    if dialect.postgres:  # LIKE first: cheaper than the regular expression on every row
        stripped = sa.func.regexp_replace(text, r"^([0-9]+)\.0+$", r"\1", type_=sa.Text)
        return sa.type_coerce(sa.case((text.like("%.0"), stripped), else_=text), sa.Text)
    head = sa.func.substr(text, 1, sa.func.length(text) - 2)
    key = sa.case((sa.and_(text.op("GLOB")("[0-9]*.0"), head.op("NOT GLOB")("*[^0-9]*")), head), else_=text)
    return sa.type_coerce(key, sa.Text)


def _as_text(key: sa.ColumnElement) -> sa.ColumnElement:
    return key if isinstance(key.type, sa.Text) else sa.cast(key, sa.Text)


def _type_name(column_type: sa.types.TypeEngine, engine: sa.Engine) -> str:
    if isinstance(column_type, sa.types.NullType):
        return "untyped"
    try:
        return column_type.compile(dialect=engine.dialect)
    except sa.exc.CompileError:
        return type(column_type).__name__.upper()


def _check_sqrt(engine: sa.Engine, dialect: Dialect) -> None:
    if dialect.postgres:
        return
    try:
        with engine.connect() as connection:
            connection.execute(sa.select(sa.func.sqrt(1.0)))
    except sa.exc.OperationalError:
        raise UsageError(
            "interval_std needs SQLite's sqrt(), which this SQLite build lacks (SQLite 3.35+ with math functions)"
        ) from None


@contextmanager
def _reading(engine: sa.Engine, description: str) -> Iterator[sa.Connection]:
    """A read-only connection; an SQL error (e.g. no SELECT permission) becomes a UsageError."""
    with engine.connect() as connection:
        try:
            if dialect_of(engine).postgres:
                connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield connection
        except (sa.exc.ProgrammingError, sa.exc.DataError) as exc:
            first_line = (str(exc.orig).strip().splitlines() or [""])[0]
            raise UsageError(f"reading {description} failed: {first_line}") from None
        finally:
            connection.rollback()


def _check_sqlite_values(connection: sa.Connection, t: sa.TableClause, spec: JobSpec, tx: _Table) -> None:
    """SQLite has no date type and lets any column hold text: a column without one readable value
    is the wrong column (exit 2); a few unreadable values are bad data (exit 3)."""
    assert spec.date is not None and spec.amount is not None  # build_spec requires both with --transactions
    day, amount = t.c[spec.date], t.c[spec.amount]
    bad_date = sa.and_(day.is_not(None), sa.or_(sa.func.typeof(day) != "text", sa.func.date(day).is_(None)))
    bad_amount = sa.and_(amount.is_not(None), sa.func.typeof(amount).not_in(["integer", "real"]))
    row = connection.execute(
        sa.select(
            sa.func.count(day),
            _count_if(bad_date),
            sa.func.min(sa.case((bad_date, day))),
            sa.func.count(amount),
            _count_if(bad_amount),
            sa.func.min(sa.case((bad_amount, amount))),
        ).select_from(t)
    ).one()
    checks = (
        ("--date", spec.date, "an ISO date (YYYY-MM-DD, optionally with a time)", row[0], row[1], row[2]),
        ("--amount", spec.amount, "a number", row[3], row[4], row[5]),
    )
    for option, name, wanted, present, bad, example in checks:
        if bad and bad == present:
            raise UsageError(
                f'{option} column "{name}" of {tx.description} holds no values that are {wanted}, e.g. {example!r}'
            )
        if bad:
            raise DataError(
                f'{_count(bad, "row")} of {tx.description} {_have(bad)} a {option} value ("{name}") that is'
                f" not {wanted}, e.g. {example!r}; fix them or filter them out with a view"
            )


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def _have(number: int) -> str:
    return "has" if number == 1 else "have"


def _count_if(condition) -> sa.ColumnElement:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _resolve_as_of(
    connection: sa.Connection, t: sa.TableClause, dialect: Dialect, spec: JobSpec, tx: _Table
) -> tuple[date, str, tuple[date, date]]:
    """The as-of date (given, or the day after the latest transaction), how it was chosen, and
    the first and last transaction days of the table."""
    assert spec.date is not None  # build_spec requires --date with --transactions
    day = dialect.day(t.c[spec.date])
    rows, dated, first, last = connection.execute(
        sa.select(sa.func.count(), sa.func.count(t.c[spec.date]), sa.func.min(day), sa.func.max(day)).select_from(t)
    ).one()
    if rows == 0:
        raise DataError(f"{tx.description} is empty: there are no transactions to build features from")
    if dated == 0:
        raise DataError(f'every row of {tx.description} has a NULL --date ("{spec.date}")')
    first, last = _as_date(first), _as_date(last)
    if spec.as_of is None:
        return last + timedelta(days=1), "default: the day after the latest transaction", (first, last)
    as_of = date.fromisoformat(spec.as_of)
    if as_of <= first:
        raise DataError(f"--as-of {as_of} is not after any transaction: the earliest in {tx.description} is on {first}")
    return as_of, "given", (first, last)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _window_counts(
    connection: sa.Connection,
    t: sa.TableClause,
    key: sa.ColumnElement,
    dialect: Dialect,
    spec: JobSpec,
    tx: _Table,
    as_of: date,
    span: tuple[date, date],
) -> dict[str, int]:
    """Row and customer counts of the window; raises DataError when it cannot be segmented."""
    # build_spec requires --customer, --date and --amount with --transactions.
    assert spec.customer is not None and spec.date is not None and spec.amount is not None
    customer, amount = t.c[spec.customer], t.c[spec.amount]
    since = date.fromisoformat(spec.since) if spec.since else None
    row = connection.execute(
        sa.select(
            sa.func.count().label("rows"),
            _count_if(customer.is_(None)).label("rows_without_customer"),
            _count_if(amount > 0).label("purchase_rows"),
            _count_if(amount < 0).label("return_rows"),
            _count_if(amount == 0).label("zero_amount_rows"),
            _count_if(amount.is_(None)).label("null_amount_rows"),
            sa.func.count(sa.distinct(key)).label("customers"),
            sa.func.count(sa.distinct(sa.case((amount > 0, key)))).label("customers_with_purchase"),
        ).where(*dialect.in_window(t.c[spec.date], since, as_of))
    ).one()
    counts = {key: int(value) for key, value in row._mapping.items()}
    counts["customers_without_purchase"] = counts["customers"] - counts["customers_with_purchase"]
    if counts["rows"] == 0:
        window = f"from {since} " if since else ""
        raise DataError(
            f"no transactions dated {window}before {as_of} in {tx.description}"
            f" (it holds transactions from {span[0]} to {span[1]})"
        )
    missing = counts["rows_without_customer"]
    if missing and spec.require_customer:
        raise DataError(
            f"{_count(missing, 'transaction')} in {tx.description} {_have(missing)} no customer"
            f' ("{spec.customer}" is NULL) and --require-customer refuses them; fix or delete them,'
            " or leave out --require-customer to leave them out and count them"
        )
    if counts["customers_with_purchase"] == 0:
        if counts["customers"] == 0:
            raise DataError(f'no transaction in the window has a customer ("{spec.customer}" is NULL in every row)')
        raise DataError(
            "no customer has a purchase (amount above 0) in the window: "
            + ("the only customer has" if counts["customers"] == 1 else f"all {counts['customers']:,} customers have")
            + " only returns or zero amounts"
        )
    return counts


# --- the features ----------------------------------------------------------------------------


def _feature_select(
    t: sa.TableClause,
    key: sa.ColumnElement,
    customers: _CustomersTable | None,
    dialect: Dialect,
    spec: JobSpec,
    derived: list[str],
    as_of: date,
) -> sa.Select:
    """One row per customer with a purchase in the window: the customer column, the derived
    features (as double precision) and the wanted columns of the customers table."""
    # build_spec requires --customer, --date and --amount with --transactions.
    assert spec.customer is not None and spec.date is not None and spec.amount is not None
    since = date.fromisoformat(spec.since) if spec.since else None
    amount = t.c[spec.amount]
    day = dialect.day(t.c[spec.date])
    customer_days = (
        sa.select(
            key.label("customer"),
            day.label("day"),
            sa.func.sum(amount).label("spend"),
            sa.func.max(sa.case((amount > 0, 1), else_=0)).label("purchased"),
        )
        .where(*dialect.in_window(t.c[spec.date], since, as_of), t.c[spec.customer].is_not(None))
        .group_by(key, day)
        .cte("customer_days")
    )
    cd = customer_days.c
    purchase_day = sa.case((cd.purchased == 1, cd.day))
    per_customer = (
        sa.select(
            cd.customer,
            sa.func.sum(cd.purchased).label("frequency"),
            sa.func.sum(cd.spend).label("monetary_total"),
            sa.func.min(purchase_day).label("first_day"),
            sa.func.max(purchase_day).label("last_day"),
        )
        .group_by(cd.customer)
        .having(sa.func.sum(cd.purchased) > 0)
        .cte("per_customer")
    )
    pc = per_customer.c
    as_of_day = dialect.date_literal(as_of)
    between_purchases = _double(dialect.days_between(pc.last_day, pc.first_day)) / _double(pc.frequency - 1)
    expressions = {
        "recency": dialect.days_between(as_of_day, pc.last_day),
        "frequency": pc.frequency,
        "monetary_total": pc.monetary_total,
        "monetary_avg": _double(pc.monetary_total) / _double(pc.frequency),
        "tenure": dialect.days_between(as_of_day, pc.first_day),
        "interval_mean": sa.case(
            (pc.frequency > 1, between_purchases),
            else_=dialect.days_between(as_of_day, pc.last_day),
        ),
    }
    joined: sa.FromClause = per_customer
    if "interval_std" in derived:
        previous = sa.func.lag(cd.day).over(partition_by=cd.customer, order_by=cd.day)
        gaps = (
            sa.select(cd.customer, dialect.days_between(cd.day, previous).label("gap"))
            .where(cd.purchased == 1)
            .cte("gaps")
        )
        gap_stats = (
            sa.select(gaps.c.customer, dialect.std_pop(gaps.c.gap).label("interval_std"))
            .group_by(gaps.c.customer)
            .cte("gap_stats")
        )
        joined = joined.outerjoin(gap_stats, gap_stats.c.customer == pc.customer)
        expressions["interval_std"] = sa.func.coalesce(gap_stats.c.interval_std, 0)
    extra = []
    if customers:
        names = dict.fromkeys([spec.customer, *customers.wanted])
        k = sa.table(customers.table.name, *(sa.column(n) for n in names), schema=customers.table.schema)
        their_key = customer_key(k.c[spec.customer], customers.table.types[spec.customer], dialect)
        both_integers = not isinstance(their_key.type, sa.Text) and not isinstance(key.type, sa.Text)
        on = their_key == pc.customer if both_integers else _as_text(their_key) == _as_text(pc.customer)
        joined = joined.outerjoin(k, on)
        extra = [k.c[name] for name in customers.wanted]
    return (
        sa.select(
            pc.customer.label(spec.customer),
            *(_double(expressions[name]).label(name) for name in derived),
            *extra,
        )
        .select_from(joined)
        .order_by(pc.customer)  # a stable row order keeps the input fingerprint and seeded fits stable
    )


def _double(value: sa.ColumnElement) -> sa.ColumnElement:
    return sa.cast(value, sa.Double)


def _compile(engine: sa.Engine, select: sa.Select) -> str:
    """SQL text with values rendered as literals, to embed as the source's FROM clause.

    Compiled for a `named` paramstyle: psycopg's default (pyformat) would double every `%` in
    identifiers, and the text is run as is, without parameters.
    """
    assert isinstance(engine.dialect, DefaultDialect)  # every SQLAlchemy dialect derives from it
    dialect = type(engine.dialect)(paramstyle="named")
    return str(select.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
