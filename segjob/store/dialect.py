"""What differs between the two databases segjob runs on, in one place.

Code that writes or reads segjob's tables asks the database's `Dialect` for a capability or for
the SQL form of an operation instead of testing the database's name (ibis's backends are the
model). PostgreSQL keeps segjob's tables in their own schema, partitions the assignments by run,
has roles, lock timeouts and advisory locks, and runs a user's query through the extended
protocol; SQLite is one file with one writer at a time, none of those, and dates stored as ISO
text.
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import date

import sqlalchemy as sa

from segjob.store.schema import SCHEMA


@dataclasses.dataclass(frozen=True)
class Dialect:
    name: str  # SQLAlchemy's name of the dialect
    schema: str | None  # the schema of segjob's tables; None: the main database
    # `assignment` is partitioned by run: a run's assignments are filled standalone by COPY,
    # attached at publish and dropped by prune as a whole partition.
    partitioned_assignments: bool
    roles: bool  # reader and writer roles (segjob db grant)
    # Statements can wait for a lock a bounded time (lock_timeout) and retry, and the server
    # holds session and transaction advisory locks; SQLite has one writer at a time and segjob
    # locks a job with a file lock.
    server_locks: bool
    # Columns hold only values of their declared type; SQLite stores any value in any column, so
    # segjob checks the values it reads instead.
    typed_columns: bool

    @property
    def postgres(self) -> bool:
        return self.name == "postgresql"

    def qualified(self, name: str) -> str:
        """`name` of one of segjob's tables or views as SQL text names it."""
        return f"{self.schema}.{name}" if self.schema else name

    # --- dates: PostgreSQL subtracts DATEs (giving days), SQLite subtracts julianday() of ISO text

    def day(self, column: sa.ColumnElement) -> sa.ColumnElement:
        """The calendar day of a date, timestamp or (SQLite) ISO text value."""
        return sa.cast(column, sa.Date) if self.postgres else sa.func.date(column)

    def date_literal(self, value: date) -> sa.ColumnElement:
        if self.postgres:
            return sa.cast(sa.literal(value, sa.Date), sa.Date)
        return sa.literal(value.isoformat(), sa.String)

    def days_between(self, later: sa.ColumnElement, earlier: sa.ColumnElement) -> sa.ColumnElement:
        if self.postgres:
            return later - earlier
        return sa.func.julianday(later) - sa.func.julianday(earlier)

    def comparable_day(self, column: sa.ColumnElement) -> sa.ColumnElement:
        """`column` in a form that compares with `date_literal`: PostgreSQL compares the column
        itself, so an index on it can serve a range."""
        return column if self.postgres else self.day(column)

    def in_window(self, column: sa.ColumnElement, since: date | None, as_of: date) -> list[sa.ColumnElement]:
        value = self.comparable_day(column)
        conditions = [value < self.date_literal(as_of)]
        if since:
            conditions.append(value >= self.date_literal(since))
        return conditions

    def std_pop(self, values: sa.ColumnElement) -> sa.ColumnElement:
        if self.postgres:
            return sa.func.stddev_pop(values)
        mean = sa.func.avg(values)
        # max(..., 0): rounding can leave a tiny negative variance when every gap is the same.
        return sa.func.sqrt(sa.func.max(sa.func.avg(values * values) - mean * mean, 0))

    # --- SQL text that segjob writes itself (`segjob sql score`): the preparation steps write
    # with these (segjob.prepare.steps.SqlDialect). SQLite (3.35 or later, for LN and SQRT) has
    # no NaN (a NaN is stored as NULL), writes infinity as 9e999, and its multi-argument MIN and
    # MAX are LEAST and GREATEST.

    def identifier(self, name: str) -> str:
        """`name` quoted where it needs quoting, by SQLAlchemy's identifier preparer."""
        return _identifier_preparer(self.name).quote(name)

    def text(self, value: str) -> str:
        """A quoted text literal (psycopg's quoting on PostgreSQL)."""
        if self.postgres:
            from psycopg import sql

            return sql.Literal(value).as_string(None).strip()
        return "'" + value.replace("'", "''") + "'"

    @staticmethod
    def number(value: float) -> str:
        """An exact DOUBLE PRECISION literal (Python's repr round-trips a double)."""
        return f"CAST({float(value)!r} AS DOUBLE PRECISION)"

    def is_usable(self, expr: str) -> str:
        """A condition: `expr` is a number, neither NULL, infinite nor NaN."""
        if self.postgres:
            return f"({expr} IS NOT NULL AND {expr} NOT IN ('Infinity', '-Infinity', 'NaN'))"
        return f"({expr} IS NOT NULL AND {expr} NOT IN (9e999, -9e999))"

    def least(self, *exprs: str) -> str:
        return f"{'LEAST' if self.postgres else 'MIN'}({', '.join(exprs)})"

    def greatest(self, *exprs: str) -> str:
        return f"{'GREATEST' if self.postgres else 'MAX'}({', '.join(exprs)})"


@functools.cache
def _identifier_preparer(name: str) -> sa.sql.compiler.IdentifierPreparer:
    if name == "postgresql":
        from sqlalchemy.dialects import postgresql

        # A `named` paramstyle: psycopg's default (pyformat) would double every `%` in identifiers.
        return postgresql.psycopg.dialect(paramstyle="named").identifier_preparer
    from sqlalchemy.dialects import sqlite

    return sqlite.dialect().identifier_preparer


POSTGRES = Dialect(
    "postgresql", SCHEMA, partitioned_assignments=True, roles=True, server_locks=True, typed_columns=True
)
SQLITE = Dialect("sqlite", None, partitioned_assignments=False, roles=False, server_locks=False, typed_columns=False)


def dialect_of(bind: sa.Engine | sa.Connection) -> Dialect:
    """The dialect of an engine or connection."""
    return POSTGRES if bind.dialect.name == "postgresql" else SQLITE
