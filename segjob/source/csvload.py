"""Load a CSV file into a table of the user's database, in one transaction.

Three streaming passes keep memory bounded by one chunk, whatever the file size:

0. The `csv` module checks that every record has as many fields as the header. pandas cannot do
   this: its C parser silently pads a short row with empty strings and, when every row has one
   field too many, silently drops the extra one.
1. pandas reads chunks of strings and narrows each column's possible type (see `_infer`).
2. pandas reads the chunks again; they are converted and written, with COPY FROM STDIN on
   PostgreSQL and batched executemany on SQLite.

Values are stripped of surrounding whitespace; a blank value is NULL.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa
from psycopg import sql as pgsql

from segjob.errors import DatabaseError, DataError, UsageError

__all__ = ["LoadResult", "load_csv"]

IF_EXISTS = ("fail", "replace", "append")
DELIMITERS = (",", "\t", ";", "|")  # on a tie in the header line, the earlier one wins
RESERVED_SCHEMA = "segjob"

# Cells per chunk. One chunk of str objects costs roughly 60-100 bytes a cell in pandas plus the
# converted copy, so a million cells keeps a load near 200 MB however long or wide the file is.
CHUNK_CELLS = 1_000_000

_SEP = "\x00"  # joins a column's values into one string for fast C-level scans (see _Inference)
_PG_NULL = "\\N"
_PG_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_PG_SPECIAL = re.compile(r"[\\\t\n\r]")

# Type kinds, in the order inference prefers them when several fit every value of a column.
# Dates with dashes read day first and dates with slashes month first; the other order is used
# only when the preferred one fails on some value and it parses them all.
_DATE_FORMATS = ("%Y-%m-%d", "%d-%m-%Y", "%m-%d-%Y", "%m/%d/%Y", "%d/%m/%Y")
_CANDIDATES = ("boolean", "bigint", "double", *(f"date:{fmt}" for fmt in _DATE_FORMATS), "timestamp")

_SQL_TYPES: dict[str, Callable[[], sa.types.TypeEngine]] = {
    "boolean": sa.Boolean,
    "bigint": sa.BigInteger,
    "double": sa.Double,
    "date": sa.Date,
    "timestamp": sa.DateTime,
    "text": sa.Text,
}


@dataclass
class LoadResult:
    table: str  # as the user named it, e.g. "customers" or "public.customers"
    rows: int
    columns: dict[str, str]  # column name -> SQL type as created (or as found, when appending)


@dataclass(frozen=True)
class _CsvFile:
    path: Path
    delimiter: str
    header: list[str]
    stamp: tuple[int, int]  # (size, mtime_ns): a file that changes during the load is an error


@dataclass(frozen=True)
class _Plan:
    """How one CSV column is written."""

    name: str
    date_format: str | None  # strptime format of a column inferred as dates
    send: str  # boolean, bigint, double, date or timestamp: converted to it; text: sent as read


def load_csv(
    engine: sa.Engine,
    path: str | Path,
    table: str,
    if_exists: str = "fail",
    progress: Callable[[int], None] | None = None,
) -> LoadResult:
    """Load the CSV file at `path` into `table` ("name" or "schema.name"), in one transaction.

    Header names become column names exactly as written. Column types are inferred from every
    value: BIGINT, DOUBLE PRECISION, BOOLEAN (true/false), DATE, TIMESTAMP, else TEXT.
    `if_exists` says what to do when the table exists: "fail", "replace" it, or "append" to it
    (the CSV header must then name the table's columns; the database converts the values).
    `progress`, if given, is called with the number of rows written after each chunk.
    A failure leaves the database as it was.
    """
    if if_exists not in IF_EXISTS:
        raise UsageError(f"if_exists must be fail, replace or append, not {if_exists!r}")
    backend = engine.dialect.name
    if backend not in ("postgresql", "sqlite"):
        raise UsageError(f"loading CSV files works with PostgreSQL and SQLite, not {backend}")
    schema, name = _split_table_name(table, backend)

    source = _open_csv(Path(path), backend)
    expected_rows = _check_records(source)
    inferred = _infer(source, expected_rows)

    try:
        with engine.connect() as conn, conn.begin():
            if backend == "sqlite":
                _begin_sqlite(conn)
            else:
                schema = _resolve_pg_schema(conn, schema, name, table)
            target, plans, types = _prepare_table(conn, schema, name, table, source, inferred, if_exists)
            write = _copy_postgres if backend == "postgresql" else _insert_sqlite
            rows = write(conn, target, source, plans, progress)
            if rows != expected_rows or _current_stamp(source) != source.stamp:
                raise DataError(f"CSV file {source.path} changed while it was being loaded; nothing was loaded")
    except psycopg.Error as exc:
        raise _copy_error(exc, source, table) from exc
    except sa.exc.DBAPIError as exc:
        raise _database_error(exc, engine, source, table) from exc
    return LoadResult(table=table, rows=rows, columns=types)


# --- the file --------------------------------------------------------------------------------


def _open_csv(path: Path, backend: str) -> _CsvFile:
    """Check the file and its header; sniff the delimiter from the first line."""
    try:
        stamp = _stamp(path)
        with open(path, encoding="utf-8-sig", newline="") as f:
            first_line = f.readline()
            f.seek(0)
            delimiter = _sniff_delimiter(first_line)
            header = next(csv.reader(f, delimiter=delimiter), None)
    except FileNotFoundError:
        raise UsageError(f"CSV file not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"CSV file not found: {path} is a directory") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"CSV file {path} is not UTF-8 text: {exc.reason} at the start of the file") from None
    except OSError as exc:
        raise UsageError(f"cannot read CSV file {path}: {exc.strerror}") from None
    except csv.Error as exc:
        raise DataError(f"CSV file {path}, line 1: {exc}") from None
    if not header:
        if not first_line:
            raise UsageError(f"CSV file {path} is empty: it needs a header line naming the columns")
        raise UsageError(f"CSV file {path} starts with a blank line: the first line must name the columns")
    _check_header(header, path, backend)
    return _CsvFile(path=path, delimiter=delimiter, header=header, stamp=stamp)


def _stamp(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


def _current_stamp(source: _CsvFile) -> tuple[int, int]:
    try:
        return _stamp(source.path)
    except FileNotFoundError:
        raise UsageError(f"CSV file not found: {source.path} (it was removed during the load)") from None


def _sniff_delimiter(line: str) -> str:
    """The candidate delimiter that occurs most often outside quotes; a comma when none does."""
    unquoted = re.sub(r'"(?:[^"]|"")*"', "", line)
    counts = [unquoted.count(d) for d in DELIMITERS]
    best = max(counts)
    return DELIMITERS[counts.index(best)] if best else ","


def _check_header(header: list[str], path: Path, backend: str) -> None:
    empty = [str(i) for i, name in enumerate(header, 1) if not name.strip()]
    if len(empty) == 1:
        raise UsageError(f"CSV file {path}: header column {empty[0]} has no name")
    if empty:
        raise UsageError(f"CSV file {path}: header columns {', '.join(empty)} have no name")
    # SQLite compares column names without regard to case; PostgreSQL (quoted) does not.
    fold = str.casefold if backend == "sqlite" else (lambda name: name)
    seen: dict[str, str] = {}
    duplicates: list[str] = []
    for name in header:
        if fold(name) in seen and name not in duplicates:
            duplicates.append(name)
        seen.setdefault(fold(name), name)
    if duplicates:
        raise UsageError(f"CSV file {path}: duplicate column names in the header: {', '.join(map(repr, duplicates))}")
    if backend == "postgresql":
        _check_pg_identifiers(header, f"CSV file {path}: column name")


def _check_records(source: _CsvFile) -> int:
    """Pass 0: every record has one field per header column. Returns the number of records."""
    width = len(source.header)
    records = 0
    with _open_text(source.path) as f:
        reader = csv.reader(f, delimiter=source.delimiter)
        try:
            next(reader)
            for row in reader:
                if _is_blank(row):
                    continue
                if len(row) != width:
                    line = reader.line_num - sum(field.count("\n") for field in row)
                    raise DataError(
                        f"CSV file {source.path}, line {line}: expected {width} fields like the header, "
                        f"found {len(row)}"
                    )
                records += 1
        except csv.Error as exc:
            raise DataError(f"CSV file {source.path}, line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise DataError(
                f"CSV file {source.path} is not UTF-8 text: {exc.reason} after line {reader.line_num}"
            ) from None
    return records


def _is_blank(row: list[str]) -> bool:
    """A line pandas skips: empty, or unquoted whitespace (csv cannot tell `" "` from ` `)."""
    return not row or (len(row) == 1 and row[0].isspace())


def _open_text(path: Path):
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise UsageError(f"CSV file not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read CSV file {path}: {exc.strerror}") from None


def _chunks(source: _CsvFile) -> Iterator[pd.DataFrame]:
    """The data rows as DataFrames of str, columns named 0..n-1, at most CHUNK_CELLS cells each."""
    width = len(source.header)
    try:
        with pd.read_csv(
            source.path,
            sep=source.delimiter,
            header=0,
            names=list(range(width)),
            index_col=False,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
            engine="c",
            chunksize=max(1, CHUNK_CELLS // width),
        ) as reader:
            yield from reader
    except FileNotFoundError:
        raise UsageError(f"CSV file not found: {source.path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read CSV file {source.path}: {exc.strerror}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"CSV file {source.path}: {exc}".strip()) from None


def _record_line(source: _CsvFile, index: int) -> int | None:
    """The line on which data record `index` (0-based) starts; only used to report an error."""
    with _open_text(source.path) as f:
        reader = csv.reader(f, delimiter=source.delimiter)
        next(reader, None)
        seen = 0
        previous_end = reader.line_num
        for row in reader:
            if not _is_blank(row):
                if seen == index:
                    return previous_end + 1
                seen += 1
            previous_end = reader.line_num
    return None


# --- type inference --------------------------------------------------------------------------

_NOT_BOOLEAN_CHAR = re.compile(r"[^tTrRuUeEfFaAlLsS\x00]")
_NOT_INTEGER_CHAR = re.compile(r"[^0-9+\-\x00]")
_NOT_NUMBER_CHAR = re.compile(r"[^0-9+\-.eE\x00]")
_LEADING_ZERO = re.compile(r"(?:^|\x00|(?<![eE])[+\-])0[0-9]")  # "007", "-01"; not "1e-05"
_MISPLACED_SIGN = re.compile(r"[0-9+\-][+\-]|[+\-](?![0-9])")  # only a leading sign, then digits
_NINETEEN_DIGITS = re.compile(r"[0-9]{19}")
_TIMESTAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?)?"
_DATE_SHAPES = {
    "%Y-%m-%d": r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
    "%d-%m-%Y": r"[0-9]{2}-[0-9]{2}-[0-9]{4}",
    "%m-%d-%Y": r"[0-9]{2}-[0-9]{2}-[0-9]{4}",
    "%m/%d/%Y": r"[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}",
    "%d/%m/%Y": r"[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}",
}


class _Inference:
    """The kinds still possible for one column, narrowed chunk by chunk.

    Each test first scans the column's values joined into one string (C speed) for a character
    or shape that rules the kind out; only columns that survive pay for a per-value parse.
    """

    def __init__(self) -> None:
        self.alive = set(_CANDIDATES)
        self.seen_value = False

    def feed(self, raw: np.ndarray) -> None:
        if not self.alive:
            return  # already text: nothing to learn
        values = [value for value in map(str.strip, raw.tolist()) if value]
        if not values:
            return
        self.seen_value = True
        joined = _SEP.join(values)
        if joined.count(_SEP) != len(values) - 1:  # a value holds the separator: not a number or date
            self.alive.clear()
            return
        fitting_integers = False
        for kind in [k for k in _CANDIDATES if k in self.alive]:
            if kind == "double" and fitting_integers:
                continue  # BIGINT values are DOUBLE values too
            if _fits(kind, values, joined):
                fitting_integers = fitting_integers or kind == "bigint"
            else:
                self.alive.discard(kind)

    def result(self) -> tuple[str, str | None]:
        if self.seen_value:
            for kind in _CANDIDATES:
                if kind in self.alive:
                    base, _, fmt = kind.partition(":")
                    return base, fmt or None
        return "text", None


def _fits(kind: str, values: list[str], joined: str) -> bool:
    """Whether every (stripped, non-blank) value in `values` is of `kind`."""
    if kind == "boolean":
        return not _NOT_BOOLEAN_CHAR.search(joined) and {v.lower() for v in values} <= {"true", "false"}
    if kind == "bigint":
        if _NOT_INTEGER_CHAR.search(joined) or _LEADING_ZERO.search(joined) or _MISPLACED_SIGN.search(joined):
            return False
        return not (_NINETEEN_DIGITS.search(joined) and any(_outside_int64(v) for v in values))
    if kind == "double":
        if _NOT_NUMBER_CHAR.search(joined) or _LEADING_ZERO.search(joined):
            return False
        numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
        if numbers.dtype != np.int64 and not np.isfinite(numbers.to_numpy(dtype=np.float64)).all():
            return False  # not a number, or beyond double's range
        # Integers too long for BIGINT are identifiers more often than quantities: keep them exact.
        return not (_NINETEEN_DIGITS.search(joined) and any(_big_integer(v) for v in values))
    if kind == "timestamp":
        if joined.count("-") != 2 * len(values) or re.search(r"[^0-9\-: T.\x00]", joined):
            return False
        return _all_match(values, _TIMESTAMP) and _all_parse(values, "ISO8601")
    fmt = kind.removeprefix("date:")
    separator = fmt[2]
    if joined.count(separator) != 2 * len(values) or re.search(f"[^0-9{re.escape(separator)}\x00]", joined):
        return False
    return _all_match(values, _DATE_SHAPES[fmt]) and _all_parse(values, fmt)


def _big_integer(value: str) -> bool:
    return "." not in value and "e" not in value.lower() and _outside_int64(value)


def _outside_int64(value: str) -> bool:
    return not -(2**63) <= int(value) < 2**63


def _all_match(values: list[str], pattern: str) -> bool:
    return bool(pd.Series(values, dtype=object).str.fullmatch(pattern).all())


def _all_parse(values: list[str], fmt: str) -> bool:
    return bool(pd.to_datetime(pd.Series(values, dtype=object), format=fmt, errors="coerce").notna().all())


def _infer(source: _CsvFile, expected_rows: int) -> list[tuple[str, str | None]]:
    """Pass 1: (kind, date format) per column, over every value of the file."""
    columns = [_Inference() for _ in source.header]
    rows = 0
    for chunk in _chunks(source):
        rows += len(chunk)
        for i, column in enumerate(columns):
            column.feed(chunk[i].to_numpy(dtype=object))
    if rows != expected_rows:
        raise DataError(
            f"CSV file {source.path}: found {rows} rows on one reading and {expected_rows} on another; "
            "check its quoting, or whether it is still being written"
        )
    return [column.result() for column in columns]


# --- the table -------------------------------------------------------------------------------


def _split_table_name(table: str, backend: str) -> tuple[str | None, str]:
    parts = table.split(".")
    if len(parts) > 2 or not all(part.strip() for part in parts):
        raise UsageError(f"bad table name {table!r}: use name or schema.name")
    if len(parts) == 1:
        return None, parts[0]
    if backend == "sqlite":
        raise UsageError(f"bad table name {table!r}: SQLite tables take no schema; use just the name")
    schema, name = parts
    if schema == RESERVED_SCHEMA:
        raise UsageError(f"schema {RESERVED_SCHEMA!r} holds segjob's own tables; load {name!r} into another schema")
    return schema, name


def _check_pg_identifiers(names: list[str], what: str) -> None:
    # PostgreSQL silently truncates longer identifiers, which could merge two distinct names.
    for name in names:
        if len(name.encode("utf-8")) > 63:
            raise UsageError(f"{what} {name!r} is longer than PostgreSQL's 63-byte limit")


def _resolve_pg_schema(conn: sa.Connection, schema: str | None, name: str, table: str) -> str:
    """The schema the table goes in: the named one, or the connection's default (not segjob)."""
    inspector = sa.inspect(conn)
    if schema is None:
        schema = inspector.default_schema_name
        if schema is None:
            raise UsageError(f"no default schema to create {table!r} in: qualify it as schema.{table}")
        if schema == RESERVED_SCHEMA:
            raise UsageError(
                f"the default schema is {RESERVED_SCHEMA!r}, which holds segjob's own tables; "
                f"name the table as schema.{table}"
            )
    elif schema not in inspector.get_schema_names():
        raise UsageError(f'schema "{schema}" does not exist; create it first or pick another schema')
    _check_pg_identifiers([schema, name], "name")
    return schema


def _begin_sqlite(conn: sa.Connection) -> None:
    # Python's sqlite3 only opens a transaction before INSERT/UPDATE/DELETE, so a CREATE or DROP
    # TABLE would commit at once and survive a failed load; an explicit BEGIN takes them in.
    driver = conn.connection.driver_connection
    assert driver is not None  # a live connection has its DBAPI connection
    if not driver.in_transaction:
        conn.exec_driver_sql("BEGIN")


def _prepare_table(
    conn: sa.Connection,
    schema: str | None,
    name: str,
    table: str,
    source: _CsvFile,
    inferred: list[tuple[str, str | None]],
    if_exists: str,
) -> tuple[sa.Table, list[_Plan], dict[str, str]]:
    """Create (or drop and create, or check) the table; return it, the write plans and the types."""
    exists = sa.inspect(conn).has_table(name, schema=schema)
    if exists and if_exists == "fail":
        raise UsageError(f'table "{table}" already exists; use --if-exists replace or append')
    if exists and if_exists == "append":
        return _existing_table(conn, schema, name, table, source, inferred)
    if exists:
        try:
            sa.Table(name, sa.MetaData(), schema=schema).drop(conn)
        except sa.exc.DBAPIError as exc:
            raise UsageError(f'cannot replace table "{table}": {_first_line(exc.orig)}') from None
    kinds = [kind for kind, _ in inferred]
    target = sa.Table(
        name,
        sa.MetaData(),
        *(sa.Column(column, _SQL_TYPES[kind]()) for column, kind in zip(source.header, kinds)),
        schema=schema,
    )
    target.create(conn)
    plans = [_Plan(column, fmt, send=kind) for column, (kind, fmt) in zip(source.header, inferred)]
    types = {column.name: column.type.compile(dialect=conn.dialect) for column in target.columns}
    return target, plans, types


# Which inferred kinds each kind of existing column takes converted; others are sent as read.
_ACCEPTS = {
    "bigint": {"bigint"},
    "double": {"bigint", "double"},
    "boolean": {"boolean"},
    "date": {"date"},
    "timestamp": {"date", "timestamp"},
}


def _existing_table(
    conn: sa.Connection,
    schema: str | None,
    name: str,
    table: str,
    source: _CsvFile,
    inferred: list[tuple[str, str | None]],
) -> tuple[sa.Table, list[_Plan], dict[str, str]]:
    reflected = sa.inspect(conn).get_columns(name, schema=schema)
    by_name = {column["name"]: column for column in reflected}
    not_in_table = [column for column in source.header if column not in by_name]
    not_in_csv = [column for column in by_name if column not in source.header]
    if not_in_table or not_in_csv:
        problems = []
        if not_in_csv:
            problems.append(f"columns missing from the CSV: {', '.join(not_in_csv)}")
        if not_in_table:
            problems.append(f"CSV columns not in the table: {', '.join(not_in_table)}")
        raise UsageError(
            f'cannot append {source.path} to table "{table}": {"; ".join(problems)} '
            f"(table columns: {', '.join(by_name)})"
        )
    plans = []
    for column, (kind, fmt) in zip(source.header, inferred):
        target_kind = _kind_of(by_name[column]["type"])
        send = target_kind if kind in _ACCEPTS.get(target_kind, ()) else "text"
        plans.append(_Plan(column, fmt, send))
    target = sa.Table(name, sa.MetaData(), *(sa.Column(c) for c in source.header), schema=schema)
    types = {column: _type_name(by_name[column]["type"], conn.dialect) for column in source.header}
    return target, plans, types


def _kind_of(sql_type: sa.types.TypeEngine) -> str:
    if isinstance(sql_type, sa.Boolean):
        return "boolean"
    if isinstance(sql_type, sa.Integer):
        return "bigint"
    if isinstance(sql_type, sa.Float):
        return "double"
    if isinstance(sql_type, sa.DateTime):
        return "timestamp"
    if isinstance(sql_type, sa.Date):
        return "date"
    return "text"  # text, NUMERIC and anything else: the database parses the value as read


def _type_name(sql_type: sa.types.TypeEngine, dialect: sa.Dialect) -> str:
    try:
        return sql_type.compile(dialect=dialect)
    except sa.exc.CompileError:
        return type(sql_type).__name__.upper()


# --- writing ---------------------------------------------------------------------------------


def _copy_postgres(
    conn: sa.Connection,
    target: sa.Table,
    source: _CsvFile,
    plans: list[_Plan],
    progress: Callable[[int], None] | None,
) -> int:
    """Pass 2 on PostgreSQL: one COPY FROM STDIN in text format, fed a chunk at a time."""
    assert target.schema is not None  # _resolve_pg_schema always names the schema on PostgreSQL
    statement = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
        pgsql.Identifier(target.schema, target.name),
        pgsql.SQL(", ").join(pgsql.Identifier(plan.name) for plan in plans),
    )
    driver = conn.connection.driver_connection  # the same connection, so the same transaction
    assert driver is not None  # a live connection has its DBAPI connection
    written = 0
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for chunk in _chunks(source):
            if chunk.empty:
                continue
            columns = [_pg_text(chunk[i].to_numpy(dtype=object), plan) for i, plan in enumerate(plans)]
            copy.write("\n".join(map("\t".join, zip(*columns))) + "\n")
            written += len(chunk)
            if progress:
                progress(written)
    return written


def _pg_text(raw: np.ndarray, plan: _Plan) -> list[str]:
    """A column in COPY text format: stripped values, escaped where needed, \\N for NULL."""
    stripped = list(map(str.strip, raw.tolist()))
    if plan.send in ("date", "timestamp"):
        return [value or _PG_NULL for value in _dates_as_text(stripped, plan)]
    if plan.send == "text" and _PG_SPECIAL.search(_SEP.join(stripped)):
        stripped = [value.translate(_PG_ESCAPES) if _PG_SPECIAL.search(value) else value for value in stripped]
    return [value or _PG_NULL for value in stripped]


def _insert_sqlite(
    conn: sa.Connection,
    target: sa.Table,
    source: _CsvFile,
    plans: list[_Plan],
    progress: Callable[[int], None] | None,
) -> int:
    """Pass 2 on SQLite: one executemany per chunk.

    The batch is the chunk: executemany binds one row at a time, so SQLite's limit on bound
    parameters per statement never applies, and CHUNK_CELLS already bounds the rows held in memory.
    The insert targets untyped columns because the values are already in the form SQLAlchemy
    stores on SQLite (ISO strings for dates, 0/1 for booleans); values of an existing table's
    other types go in as read, for SQLite's column affinity to convert.
    """
    statement = sa.insert(sa.table(target.name, *(sa.column(plan.name) for plan in plans)))
    keys = [plan.name for plan in plans]
    written = 0
    for chunk in _chunks(source):
        if chunk.empty:
            continue
        columns = [_sqlite_values(chunk[i].to_numpy(dtype=object), plan) for i, plan in enumerate(plans)]
        conn.execute(statement, [dict(zip(keys, row)) for row in zip(*columns)])
        written += len(chunk)
        if progress:
            progress(written)
    return written


def _sqlite_values(raw: np.ndarray, plan: _Plan) -> list:
    stripped = list(map(str.strip, raw.tolist()))
    if plan.send == "bigint":
        return [int(value) if value else None for value in stripped]
    if plan.send == "double":
        return [float(value) if value else None for value in stripped]
    if plan.send == "boolean":
        return [value.lower() == "true" if value else None for value in stripped]
    if plan.send in ("date", "timestamp"):
        return [value or None for value in _dates_as_text(stripped, plan)]
    return [value or None for value in stripped]


def _dates_as_text(stripped: list[str], plan: _Plan) -> list[str]:
    """Dates as YYYY-MM-DD, timestamps as YYYY-MM-DD HH:MM:SS.ffffff; blank stays ""."""
    present = [i for i, value in enumerate(stripped) if value]
    parsed = pd.to_datetime(
        pd.Series([stripped[i] for i in present], dtype=object),
        format=plan.date_format or "ISO8601",
    ).to_numpy()
    text: Iterable[str]
    if plan.send == "date":
        text = np.datetime_as_string(parsed, unit="D")
    else:
        text = [f"{value[:10]} {value[11:]}" for value in np.datetime_as_string(parsed, unit="us")]
    out = [""] * len(stripped)
    for i, value in zip(present, text):
        out[i] = str(value)
    return out


# --- errors ----------------------------------------------------------------------------------


def _first_line(exc: BaseException | None) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _copy_error(exc: psycopg.Error, source: _CsvFile, table: str) -> DatabaseError | DataError:
    """A COPY failure, with the CSV line of the rejected row when PostgreSQL names one."""
    message = exc.diag.message_primary or _first_line(exc)
    if not isinstance(exc, (psycopg.DataError, psycopg.IntegrityError)):
        return DatabaseError(f'loading {source.path} into table "{table}" failed: {message}')
    found = re.search(r"\bline (\d+)(?:, column (.*?): )?", exc.diag.context or "")
    where = ""
    if found:
        line = _record_line(source, int(found.group(1)) - 1)
        where = f", line {line}" if line else ""
        if found.group(2):
            message += f" (column {found.group(2)})"
    return DataError(f'CSV file {source.path}{where}: cannot load into table "{table}": {message}')


def _database_error(exc: sa.exc.DBAPIError, engine: sa.Engine, source: _CsvFile, table: str) -> Exception:
    reason = _first_line(exc.orig)
    if isinstance(exc, (sa.exc.IntegrityError, sa.exc.DataError)):
        return DataError(f'CSV file {source.path}: cannot load into table "{table}": {reason}')
    where = engine.url.render_as_string(hide_password=True)
    return DatabaseError(f'loading {source.path} into table "{table}" on {where} failed: {reason}')
