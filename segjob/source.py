"""Source stage: check the table or query and the columns a job names, then read the rows.

Identifiers come from users: they are checked against the database and quoted by SQLAlchemy's
identifier preparer, never pasted in raw. Every read runs in a read-only transaction, so a
`--query` cannot change anything. PostgreSQL rows stream through COPY (FORMAT csv) in chunks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from segjob.config import JobSpec
from segjob.db import is_postgres
from segjob.errors import DataError, UsageError

# PostgreSQL type OIDs that cast cleanly to float8: int2, int4, int8, oid, float4, float8, numeric.
_NUMERIC_OIDS = {21, 23, 20, 26, 700, 701, 1700}
# Rows per chunk (and per SQLite fetchmany): large enough to amortise per-chunk Python
# overhead, small enough that a chunk's arrays stay a few tens of MB.
CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class SourceColumn:
    name: str
    numeric: bool | None  # True/False when the database says; None when it cannot (SQLite)


@dataclass(frozen=True)
class Source:
    """A checked source: a FROM clause, safe to embed, and the columns it offers."""

    from_clause: str
    description: str
    columns: dict[str, SourceColumn]


def describe_source(engine: sa.Engine, spec: JobSpec) -> Source:
    """Check that the source and every named column exist; raise UsageError listing what does."""
    source = _table_source(engine, spec.source) if spec.source else _query_source(engine, spec.query or "")
    wanted = [spec.id, *spec.features, *spec.categorical]
    for name in wanted:
        if name not in source.columns:
            available = ", ".join(source.columns)
            raise UsageError(f'column "{name}" not found in {source.description} (columns: {available})')
    return source


def _table_source(engine: sa.Engine, name: str) -> Source:
    inspector = sa.inspect(engine)
    schema, table = _resolve_table(inspector, name)
    columns = {
        column["name"]: SourceColumn(column["name"], _is_numeric_type(column["type"]))
        for column in inspector.get_columns(table, schema=schema)
    }
    from_clause = ".".join(_quote(engine, part) for part in (schema, table) if part is not None)
    qualified = f"{schema}.{table}" if schema else table
    return Source(from_clause, f"table {qualified}", columns)


def _resolve_table(inspector, name: str) -> tuple[str | None, str]:
    """`name` as one table of the default schema, or as schema.table."""
    if inspector.has_table(name):
        return None, name
    schema, dot, table = name.partition(".")
    if dot and schema in inspector.get_schema_names() and inspector.has_table(table, schema=schema):
        return schema, table
    where = f"schema {schema}" if dot and schema in inspector.get_schema_names() else "the default schema"
    listed_schema = schema if dot and schema in inspector.get_schema_names() else None
    tables = inspector.get_table_names(schema=listed_schema) + inspector.get_view_names(schema=listed_schema)
    shown = ", ".join(sorted(tables)[:30]) or "none"
    raise UsageError(f'table "{name}" not found (tables in {where}: {shown})')


def _is_numeric_type(column_type: sa.types.TypeEngine) -> bool | None:
    if isinstance(column_type, sa.types.NullType):
        return None
    return isinstance(column_type, (sa.Integer, sa.Numeric, sa.Float)) and not isinstance(column_type, sa.Boolean)


def _query_source(engine: sa.Engine, query: str) -> Source:
    query = query.strip().rstrip(";").strip()
    if not query:
        raise UsageError("--query is empty")
    from_clause = f"(\n{query}\n) AS segjob_source"
    description, _ = _run_read_only(engine, f"SELECT * FROM {from_clause} LIMIT 0", fetch=False)
    columns: dict[str, SourceColumn] = {}
    for column in description:
        type_code = column[1]
        numeric = (type_code in _NUMERIC_OIDS) if is_postgres(engine) else None
        columns[column[0]] = SourceColumn(column[0], numeric)
    return Source(from_clause, "the query", columns)


def _run_read_only(engine: sa.Engine, statement: str, fetch: bool):
    """Run one statement in a read-only transaction on a raw driver connection.

    The raw cursor takes the SQL as is, so a `%` or `:name` in a user's query means nothing special.
    """
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            _begin_read_only(engine, cursor)
            cursor.execute(statement)
            return cursor.description, (cursor.fetchall() if fetch else None)
        except Exception as exc:
            _raise_query_error(exc)
        finally:
            _end_read_only(engine, connection, cursor)
    finally:
        connection.close()


def _begin_read_only(engine: sa.Engine, cursor) -> None:
    if is_postgres(engine):
        cursor.execute("SET TRANSACTION READ ONLY")
    else:
        cursor.execute("PRAGMA query_only = ON")


def _end_read_only(engine: sa.Engine, connection, cursor) -> None:
    if is_postgres(engine) and connection.driver_connection.broken:
        # The server ended the session: there is nothing to roll back, and a rollback would raise
        # over the error that says why. The pool must not reuse the connection.
        connection.invalidate()
        return
    connection.rollback()
    if not is_postgres(engine):
        cursor.execute("PRAGMA query_only = OFF")
        cursor.close()
        return
    # A read-only transaction still lets a query take session advisory locks, which outlive the
    # rollback: release them, and refuse the query unless it already failed for another reason.
    cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
    (held,) = cursor.fetchone()
    if held:
        cursor.execute("SELECT pg_advisory_unlock_all()")
    connection.rollback()
    cursor.close()
    if held and sys.exc_info()[1] is None:
        raise UsageError("reading the source failed: the query took an advisory lock; a source query may only read")


def _raise_query_error(exc: Exception) -> None:
    import psycopg
    import sqlite3

    if isinstance(exc, psycopg.OperationalError):
        raise exc  # lost connection or statement timeout: database trouble, not the user's SQL
    if isinstance(exc, psycopg.errors.NumericValueOutOfRange):
        raise DataError(
            "reading the source failed: a value does not fit a double precision number"
            " (beyond about 1.8e308); rescale or filter the column in the source"
        ) from None
    if isinstance(exc, (psycopg.Error, sqlite3.Error)):
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"reading the source failed: {message}") from None
    raise exc


def read_source(
    engine: sa.Engine, spec: JobSpec, source: Source, progress: Callable[[int], None] | None = None
) -> pd.DataFrame:
    """All rows of the job's columns: the id as text, features as float where the database types
    them as numbers (else as stored, for `prepare` to parse), categorical columns as text."""
    chunks, rows = [], 0
    for chunk in iter_source(engine, spec, source):
        chunks.append(chunk)
        rows += len(chunk)
        if progress:
            progress(rows)
    names = [spec.id, *spec.features, *spec.categorical]
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame({name: [] for name in names})


def iter_source(
    engine: sa.Engine, spec: JobSpec, source: Source, chunk_rows: int | None = None,
    sample_fraction: float | None = None, seed: int = 0,
) -> Iterator[pd.DataFrame]:
    """The rows of `read_source` in DataFrames of at most `chunk_rows` rows, streamed.

    With `sample_fraction`, each row is kept independently with that probability (a uniform
    Bernoulli sample), decided by the database on PostgreSQL and by a generator seeded with
    `seed` on SQLite; either way the same seed and the same stored rows give the same sample.
    Close the iterator (or read it to the end) to end the read transaction.
    """
    chunk_rows = chunk_rows or CHUNK_ROWS
    names = [spec.id, *spec.features, *spec.categorical]
    kinds = ["text"] + [_feature_kind(source.columns[name]) for name in spec.features] + ["text"] * len(
        spec.categorical
    )
    if is_postgres(engine):
        return _iter_postgres(engine, source, names, kinds, chunk_rows, sample_fraction, seed)
    return _iter_sqlite(engine, source, names, chunk_rows, sample_fraction, seed)


def count_rows(engine: sa.Engine, source: Source) -> int:
    """Rows in the source (one server-side count, in a read-only transaction)."""
    _, rows = _run_read_only(engine, f"SELECT count(*) FROM {source.from_clause}", fetch=True)
    return int(rows[0][0])


def _feature_kind(column: SourceColumn) -> str:
    return "float8" if column.numeric else "text"


def _quote(engine: sa.Engine, name: str) -> str:
    """A quoted identifier for SQL that goes to the driver as is, without parameters.

    On PostgreSQL psycopg quotes it: SQLAlchemy's preparer doubles a `%` for the pyformat
    paramstyle, which is wrong in a statement run without parameters.
    """
    if is_postgres(engine):
        from psycopg import sql

        return sql.Identifier(name).as_string(None)
    return engine.dialect.identifier_preparer.quote_identifier(name)


def _select_list(engine: sa.Engine, names: list[str], kinds: list[str] | None) -> str:
    def quote(name: str) -> str:
        return _quote(engine, name)

    if kinds is None:
        return ", ".join(quote(name) for name in names)
    cast = {"text": "TEXT", "float8": "DOUBLE PRECISION"}
    return ", ".join(f"CAST({quote(name)} AS {cast[kind]})" for name, kind in zip(names, kinds))


def _iter_postgres(engine, source: Source, names, kinds, chunk_rows, sample_fraction, seed) -> Iterator[pd.DataFrame]:
    """Stream COPY ... (FORMAT csv) into pandas' C parser in chunks. For a text id + 6 float8 on
    the shared 2-core test machine this and binary COPY decoded by psycopg's C row loader into
    preallocated arrays are within ~10% of each other, and which one wins changes with the load
    (docs/benchmarks.md, benchmarks/read_path.py); both pay psycopg's per-row message cost. CSV
    stays: it hands back DataFrames in chunks, which is what `prepare` takes."""
    where = ""
    if sample_fraction is not None:
        where = f" WHERE random() < {float(sample_fraction)!r}"
    statement = (
        f"COPY (SELECT {_select_list(engine, names, kinds)} FROM {source.from_clause}{where}) TO STDOUT (FORMAT CSV)"
    )
    labels = [f"c{index}" for index in range(len(names))]
    dtypes = {label: (np.float64 if kind == "float8" else object) for label, kind in zip(labels, kinds)}
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            _begin_read_only(engine, cursor)
            if sample_fraction is not None:
                # random() runs in this backend only (it is parallel restricted), so setseed makes
                # the sample repeatable; a synchronized scan could start mid-table and change it.
                cursor.execute("SET LOCAL synchronize_seqscans = off")
                cursor.execute("SELECT setseed(%s)", [_setseed_value(seed)])
            with cursor.copy(statement) as copy:
                # CSV NULL is an empty unquoted field, so "" (missing) and "" (empty text) both read
                # as missing, which is what prepare() wants for ids and features alike.
                # float8 NaN arrives as the text NaN, which the C parser reads only as a missing value.
                missing = {label: ["", "NaN"] if kind == "float8" else [""] for label, kind in zip(labels, kinds)}
                reader = pd.read_csv(
                    _CopyReader(copy), header=None, names=labels, dtype=dtypes, keep_default_na=False,
                    na_values=missing, chunksize=chunk_rows, engine="c",
                )
                for chunk in reader:
                    chunk.columns = names
                    yield chunk
        except GeneratorExit:
            raise
        except Exception as exc:
            _raise_query_error(exc)
        finally:
            _end_read_only(engine, connection, cursor)
    finally:
        connection.close()


def _setseed_value(seed: int) -> float:
    """PostgreSQL's setseed takes a number in [-1, 1]; spread integer seeds over it."""
    return (seed % 2_000_001) / 1_000_000 - 1.0


class _CopyReader:
    """A file-like view of a psycopg COPY TO STDOUT stream, for pandas.read_csv.

    psycopg yields one small buffer per row, so pieces are gathered in a list and joined once
    per read() rather than concatenated one by one.
    """

    def __init__(self, copy) -> None:
        self._rows = iter(copy)
        self._rest = b""

    def read(self, size: int = -1) -> bytes:
        pieces, length = [self._rest], len(self._rest)
        for piece in self._rows:
            pieces.append(piece)
            length += len(piece)
            if 0 <= size <= length:
                break
        data = b"".join(pieces)
        if size < 0:
            size = len(data)
        self._rest = data[size:]
        return data[:size]


def _iter_sqlite(engine, source: Source, names, chunk_rows, sample_fraction, seed) -> Iterator[pd.DataFrame]:
    statement = f"SELECT {_select_list(engine, names, None)} FROM {source.from_clause}"
    random = np.random.default_rng(seed) if sample_fraction is not None else None
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            _begin_read_only(engine, cursor)
            cursor.execute(statement)
            while batch := cursor.fetchmany(chunk_rows):
                if random is not None:
                    keep = random.random(len(batch)) < sample_fraction
                    batch = [row for row, kept in zip(batch, keep) if kept]
                yield pd.DataFrame.from_records(batch, columns=names)
        except GeneratorExit:
            raise
        except Exception as exc:
            _raise_query_error(exc)
        finally:
            _end_read_only(engine, connection, cursor)
    finally:
        connection.close()
