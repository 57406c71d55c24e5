"""Source stage: check the table or query and the columns a job names, then read the rows.

Identifiers come from users: they are checked against the database and quoted by SQLAlchemy's
identifier preparer, never pasted in raw. Every read runs in a read-only transaction, so a
`--query` cannot change anything. PostgreSQL rows stream through ADBC (binary COPY decoded into
Arrow) in chunks.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable, Collection, Generator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
import pandas as pd
import sqlalchemy as sa

from segjob.background import call_interruptibly, read_ahead
from segjob.config import JobSpec
from segjob.errors import DataError, UsageError, did_you_mean
from segjob.store.db import server_options
from segjob.store.dialect import dialect_of

# PostgreSQL type OIDs that cast cleanly to float8: int2, int4, int8, oid, float4, float8, numeric.
_NUMERIC_OIDS = {21, 23, 20, 26, 700, 701, 1700}
# Rows per chunk (and per SQLite fetchmany): large enough to amortise per-chunk Python
# overhead, small enough that a chunk's arrays stay a few tens of MB.
CHUNK_ROWS = 50_000
_ADBC_BATCH_BYTES = 2_000_000


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
    check_columns(spec, source.columns, source.description)
    return source


def check_columns(spec: JobSpec, columns: Collection[str], description: str) -> None:
    """Every column the job names is among `columns`; else UsageError listing them."""
    for name in [spec.id, *spec.features, *spec.categorical]:
        if name not in columns:
            hint = did_you_mean(name, columns)
            raise UsageError(f'column "{name}" not found in {description} (columns: {", ".join(columns)}){hint}')


def _table_source(engine: sa.Engine, name: str) -> Source:
    inspector = sa.inspect(engine)
    schema, table = resolve_table(inspector, name)
    columns = {
        column["name"]: SourceColumn(column["name"], _is_numeric_type(column["type"]))
        for column in inspector.get_columns(table, schema=schema)
    }
    from_clause = ".".join(_quote(engine, part) for part in (schema, table) if part is not None)
    qualified = f"{schema}.{table}" if schema else table
    return Source(from_clause, f"table {qualified}", columns)


def resolve_table(inspector, name: str) -> tuple[str | None, str]:
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
    hint = did_you_mean(table if dot else name, tables)
    raise UsageError(f'table "{name}" not found (tables in {where}: {shown}){hint}')


def _is_numeric_type(column_type: sa.types.TypeEngine) -> bool | None:
    if isinstance(column_type, sa.types.NullType):
        return None
    return isinstance(column_type, (sa.Integer, sa.Numeric, sa.Float)) and not isinstance(column_type, sa.Boolean)


def _query_source(engine: sa.Engine, query: str) -> Source:
    query = query.strip().rstrip(";").strip()
    if not query:
        raise UsageError("--query is empty")
    from_clause = f"(\n{query}\n) AS segjob_source"
    if dialect_of(engine).postgres:
        _, plan = _run_read_only(engine, f"EXPLAIN (VERBOSE, FORMAT JSON) SELECT * FROM {from_clause}", fetch=True)
        _refuse_outside_effects(plan[0][0])
    description, _ = _run_read_only(engine, f"SELECT * FROM {from_clause} LIMIT 0", fetch=False)
    columns: dict[str, SourceColumn] = {}
    for column in description:
        type_code = column[1]
        numeric = (type_code in _NUMERIC_OIDS) if dialect_of(engine).postgres else None
        columns[column[0]] = SourceColumn(column[0], numeric)
    return Source(from_clause, "the query", columns)


# Functions whose effects a read-only transaction does not stop, because they act outside it
# (segjob rolls every read back, which undoes writes to large objects, NOTIFY and set_config):
# signalling other sessions, server administration and replication, files on the server
# (lo_import/lo_export included), other connections (dblink) and session advisory locks.
_OUTSIDE_EFFECTS = re.compile(
    r"\b(pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile|pg_switch_wal"
    r"|pg_create_restore_point|pg_promote|pg_backup_\w+|pg_wal_replay_\w+|pg_stat_reset\w*"
    r"|pg_log_backend_memory_contexts|pg_logical_emit_message|pg_\w*replication_\w+|pg_file_\w+"
    r"|pg_read_file|pg_read_binary_file|pg_ls_\w+|pg_stat_file|dblink\w*|lo_\w+|lo(?:read|write|open|close|creat)"
    r"|pg_(?:try_)?advisory_lock(?:_shared)?)\s*\(",
    re.IGNORECASE,
)
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")


def _refuse_outside_effects(plan) -> None:
    """Refuse a query whose plan calls a function that acts outside its transaction.

    The plan names every function the statement calls directly or through views, as the server
    resolved it (whatever quoting or escapes the text used); a function called from inside another
    function is not in it, which the role's privileges must cover (README: the writer role)."""
    for expression in _plan_strings(plan):
        found = _OUTSIDE_EFFECTS.search(_STRING_LITERAL.sub("''", expression))
        if found:
            raise UsageError(
                f"reading the source failed: the query calls {found.group(1)}(), which acts outside"
                " a read-only transaction; a source query may only read"
            )


def _plan_strings(node) -> Generator[str, None, None]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _plan_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _plan_strings(value)


def _run_read_only(engine: sa.Engine, statement: str, fetch: bool):
    """Run one statement in a read-only transaction on a raw driver connection, then roll back.

    The raw cursor takes the SQL as is, so a `%` or `:name` in a user's query means nothing special.
    On PostgreSQL the statement goes through the extended query protocol (binary=True), which
    runs exactly one statement: a `;` that would stack a COMMIT or a write after the query is a
    syntax error, not a second command. sqlite3 refuses a second statement on its own.
    """
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            _begin_read_only(engine, cursor)
            if dialect_of(engine).postgres:
                cursor.execute(statement, binary=True)  # type: ignore[call-arg]  # psycopg's own keyword
            else:
                cursor.execute(statement)
            return cursor.description, (cursor.fetchall() if fetch else None)
        except Exception as exc:
            _raise_query_error(exc)
        finally:
            _end_read_only(engine, connection, cursor)
    finally:
        connection.close()


def _begin_read_only(engine: sa.Engine, cursor) -> None:
    if dialect_of(engine).postgres:
        cursor.execute("SET TRANSACTION READ ONLY")
    else:
        cursor.execute("PRAGMA query_only = ON")


def _end_read_only(engine: sa.Engine, connection, cursor) -> None:
    if dialect_of(engine).postgres and connection.driver_connection.broken:
        # The server ended the session: there is nothing to roll back, and a rollback would raise
        # over the error that says why. The pool must not reuse the connection.
        connection.invalidate()
        return
    connection.rollback()
    if not dialect_of(engine).postgres:
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
    import sqlite3

    import psycopg

    if isinstance(exc, psycopg.OperationalError):
        raise exc  # lost connection or statement timeout: database trouble, not the user's SQL
    if isinstance(exc, psycopg.errors.NumericValueOutOfRange):
        raise DataError(
            "reading the source failed: a value does not fit a double precision number"
            " (beyond about 1.8e308); rescale or filter the column in the source"
        ) from None
    if _is_stacked(exc):
        raise UsageError(
            "reading the source failed: the query must be one SELECT statement; remove the ';' and what follows it"
        ) from None
    if isinstance(exc, (psycopg.Error, sqlite3.Error)):
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"reading the source failed: {message}") from None
    raise exc


def _is_stacked(exc: Exception) -> bool:
    """The error the database gives for more than one statement in one query."""
    message = str(exc)
    return "cannot insert multiple commands into a prepared statement" in message or (
        "You can only execute one statement at a time" in message
    )


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
    engine: sa.Engine,
    spec: JobSpec,
    source: Source,
    chunk_rows: int | None = None,
    sample_fraction: float | None = None,
    seed: int = 0,
) -> Generator[pd.DataFrame, None, None]:
    """The rows of `read_source` in DataFrames of at most `chunk_rows` rows, streamed.

    With `sample_fraction`, each row is kept independently with that probability (a uniform
    Bernoulli sample), decided by the database on PostgreSQL and by a generator seeded with
    `seed` on SQLite; either way the same seed and the same stored rows give the same sample.
    Close the iterator (or read it to the end) to end the read transaction.
    """
    chunk_rows = chunk_rows or CHUNK_ROWS
    names = [spec.id, *spec.features, *spec.categorical]
    kinds = _read_kinds(spec, source)
    if dialect_of(engine).postgres:
        return _iter_postgres(engine, source, names, kinds, chunk_rows, sample_fraction, seed)
    return _iter_sqlite(engine, source, names, chunk_rows, sample_fraction, seed)


def cast_select(engine: sa.Engine, spec: JobSpec, source: Source) -> str:
    """The SELECT of the job's columns from the source, cast as `iter_source` casts them (the id
    and categorical columns as text, features the database types as numbers as double precision),
    each under its own name: for readers of their own (Spark's JDBC source)."""
    names = [spec.id, *spec.features, *spec.categorical]
    kinds = _read_kinds(spec, source)
    expressions = _select_expressions(engine, names, kinds)
    columns = ", ".join(f"{expression} AS {_quote(engine, name)}" for expression, name in zip(expressions, names))
    return f"SELECT {columns} FROM {source.from_clause}"


def count_rows(engine: sa.Engine, source: Source) -> int:
    """Rows in the source (one server-side count, in a read-only transaction)."""
    _, rows = _run_read_only(engine, f"SELECT count(*) FROM {source.from_clause}", fetch=True)
    return int(rows[0][0])


def repeated_ids(engine: sa.Engine, source: Source, id_column: str) -> tuple[int, str, int] | None:
    """How many ids appear more than once in the source, the smallest of them and how often it
    appears (one grouping query, for the error message once a duplicate was found); None if none."""
    key = f"CAST({_quote(engine, id_column)} AS TEXT)"
    _, rows = _run_read_only(
        engine,
        f"SELECT key, n, count(*) OVER () FROM (SELECT {key} AS key, count(*) AS n FROM {source.from_clause}"
        f" WHERE TRIM({key}) <> '' GROUP BY {key} HAVING count(*) > 1) AS repeated ORDER BY key LIMIT 1",
        fetch=True,
    )
    if not rows:
        return None
    example, times, repeated = rows[0]
    return int(repeated), str(example), int(times)


def _read_kinds(spec: JobSpec, source: Source) -> list[str]:
    """How each column of the job is read: the id and categorical columns as text, features the
    database types as numbers as float8, other features as stored text (for `prepare` to parse)."""
    features = [_feature_kind(source.columns[name]) for name in spec.features]
    return ["text", *features, *["text"] * len(spec.categorical)]


def _feature_kind(column: SourceColumn) -> str:
    return "float8" if column.numeric else "text"


def _quote(engine: sa.Engine, name: str) -> str:
    """A quoted identifier for SQL that goes to the driver as is, without parameters.

    On PostgreSQL psycopg quotes it: SQLAlchemy's preparer doubles a `%` for the pyformat
    paramstyle, which is wrong in a statement run without parameters.
    """
    if dialect_of(engine).postgres:
        from psycopg import sql

        return sql.Identifier(name).as_string(None)
    return engine.dialect.identifier_preparer.quote_identifier(name)


def _select_list(engine: sa.Engine, names: list[str], kinds: list[str] | None) -> str:
    return ", ".join(_select_expressions(engine, names, kinds))


def _select_expressions(engine: sa.Engine, names: list[str], kinds: list[str] | None) -> list[str]:
    if kinds is None:
        return [_quote(engine, name) for name in names]
    cast = {"text": "TEXT", "float8": "DOUBLE PRECISION"}
    return [f"CAST({_quote(engine, name)} AS {cast[kind]})" for name, kind in zip(names, kinds)]


def _iter_postgres(
    engine, source: Source, names, kinds, chunk_rows, sample_fraction, seed
) -> Generator[pd.DataFrame, None, None]:
    """Stream the rows through ADBC's PostgreSQL driver, which runs the SELECT as COPY (FORMAT
    binary) and decodes it in C++ into Arrow record batches: about 1M rows/s for a text id and
    6 float8 on the 2-core test machine, within 10-20% of psql writing the same COPY to
    /dev/null, against 0.2M rows/s for psycopg decoding it row by row (benchmarks/read_path.py).
    The read has its own connection, read-only from the start."""
    import adbc_driver_postgresql.dbapi as adbc

    where = ""
    if sample_fraction is not None:
        where = f" WHERE random() < {float(sample_fraction)!r}"
    statement = f"SELECT {_select_list(engine, names, kinds)} FROM {source.from_clause}{where}"
    uri = _libpq_uri(engine, synchronize_seqscans="off")
    handles: dict[str, Any] = {}  # the connection and cursor, as soon as they exist
    finished = False

    def start() -> None:
        handles["connection"] = adbc.connect(uri)
        handles["cursor"] = cursor = handles["connection"].cursor()
        if sample_fraction is not None:
            # random() runs in this backend only (it is parallel restricted), so setseed makes the
            # sample repeatable; a synchronized scan could start mid-table and change it.
            cursor.execute("SELECT setseed($1)", (setseed_value(seed),))
            cursor.fetchall()
        # The driver's default 16 MB batches would be most of the streaming pass's memory.
        cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(_ADBC_BATCH_BYTES)})
        cursor.execute(statement)

    def cancel() -> None:
        if "cursor" in handles:
            handles["cursor"].adbc_cancel()

    try:
        # ADBC's blocking calls run off the main thread (see background.call_interruptibly).
        call_interruptibly(start, cancel)
        cursor = handles["cursor"]
        # Decoding the next batch overlaps with the caller's work on this one.
        yield from read_ahead(_frames(cursor.fetch_record_batch(), names, chunk_rows), cursor.adbc_cancel)
        finished = True
        call_interruptibly(lambda: _refuse_advisory_locks(cursor), cancel)
    except GeneratorExit:
        raise
    except Exception as exc:
        _raise_query_error(_as_psycopg_error(exc))
    finally:
        if "cursor" in handles and not finished:
            with suppress(Exception):
                handles["cursor"].adbc_cancel()  # else closing would first read the rest of the COPY
        for name in ("cursor", "connection"):
            if name in handles:
                with suppress(Exception):  # a lost connection cannot be closed cleanly
                    handles[name].close()


def _frames(batches, names: list[str], chunk_rows: int) -> Generator[pd.DataFrame, None, None]:
    for batch in batches:
        for start in range(0, batch.num_rows, chunk_rows):
            frame = batch.slice(start, chunk_rows).to_pandas()
            frame.columns = names
            yield frame


def _libpq_uri(engine: sa.Engine, **settings: str) -> str:
    """A libpq URI for a read connection of its own: the engine's server and credentials, its
    statement timeout, and read-only transactions, so a `--query` cannot change anything."""
    with engine.connect() as connection:
        timeout = connection.exec_driver_sql("SELECT current_setting('statement_timeout')").scalar_one()
    settings = {"statement_timeout": timeout, "default_transaction_read_only": "on", **settings}
    options = server_options(engine.url, settings)
    query = {"application_name": "segjob", "connect_timeout": "10", **engine.url.query, "options": options}
    base = engine.url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    # libpq reads %20, not +, as a space in a URI.
    return f"{base}?{urlencode(query, doseq=True, quote_via=quote)}"


def _refuse_advisory_locks(cursor) -> None:
    """A read-only transaction still lets a query take session advisory locks, which would
    outlive it: refuse such a query (closing its connection releases them)."""
    cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
    (held,) = cursor.fetchone()
    if held:
        raise UsageError("reading the source failed: the query took an advisory lock; a source query may only read")


# Server messages that ADBC passes on inside an error raised while streaming, which carries no
# SQLSTATE: the SQLSTATE each one has.
_STREAM_ERRORS = {
    "canceling statement due to statement timeout": "57014",
    "canceling statement due to user request": "57014",
    "terminating connection": "57P01",
    "out of range for type double precision": "22003",
}


def _as_psycopg_error(exc: Exception) -> Exception:
    """An ADBC error as the psycopg error of its SQLSTATE, so one set of rules (here and in
    db.database_trouble) tells database trouble from the user's SQL; other errors unchanged."""
    import adbc_driver_manager
    import psycopg

    message = str(exc).strip()
    # "[libpq] Failed to execute query: could not begin COPY: ERROR:  <the server's message>"
    server_error = message.partition("ERROR:  ")[2]
    server_message = server_error or message.partition("FATAL:  ")[2] or message
    if isinstance(exc, adbc_driver_manager.Error):
        sqlstate = exc.sqlstate
        statement_failed = exc.status_code != adbc_driver_manager.AdbcStatusCode.IO
    elif isinstance(exc, OSError) and message.startswith("[libpq]"):
        sqlstate = next((state for text, state in _STREAM_ERRORS.items() if text in message), None)
        statement_failed = bool(server_error)  # else the connection went, with or without a FATAL
    else:
        return exc
    if sqlstate:
        return psycopg.errors.lookup(sqlstate)(server_message)
    return (psycopg.ProgrammingError if statement_failed else psycopg.OperationalError)(server_message)


def setseed_value(seed: int) -> float:
    """PostgreSQL's setseed takes a number in [-1, 1]; spread integer seeds over it."""
    return (seed % 2_000_001) / 1_000_000 - 1.0


def _iter_sqlite(
    engine, source: Source, names, chunk_rows, sample_fraction, seed
) -> Generator[pd.DataFrame, None, None]:
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


def input_fingerprint(frame: pd.DataFrame) -> str:
    """A digest of the rows read, so analysts can tell whether two runs saw the same input."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
