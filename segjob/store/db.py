"""Database plumbing: URLs and engines, migrations driven from code, the schema-at-head check,
and the per-job lock. Everything dialect-specific outside the COPY paths lives here."""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from segjob.errors import DatabaseError, JobLockedError, SchemaOutOfDateError, StatementTimeoutError, UsageError
from segjob.store.dialect import dialect_of
from segjob.store.schema import SCHEMA

DEFAULT_URL = "sqlite:///segjob.db"
URL_ENV = "SEGJOB_DATABASE_URL"

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # segjob/, where wheels bundle _migrations and _sql


def _bundled(installed: str, in_repo: str) -> Path:
    """A folder shipped inside the wheel (installed name) or found at the repository root."""
    inside = _PACKAGE_DIR / installed
    return inside if inside.is_dir() else _PACKAGE_DIR.parent / in_repo


def migrations_dir() -> Path:
    return _bundled("_migrations", "migrations")


def sql_dir() -> Path:
    return _bundled("_sql", "sql")


def resolve_url(url: str | None) -> sa.URL:
    """The database URL from the option, else $SEGJOB_DATABASE_URL, else the SQLite default.

    Plain postgresql:// URLs are sent to psycopg 3, the driver segjob ships with.
    """
    text = url or os.environ.get(URL_ENV) or DEFAULT_URL
    try:
        parsed = sa.make_url(text)
    except sa.exc.ArgumentError:
        raise UsageError(
            "database URL is not valid; expected e.g. postgresql://user@host:5432/db or sqlite:///segjob.db"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def display_url(url: sa.URL) -> str:
    """A URL that is safe to print: the password is masked."""
    return url.render_as_string(hide_password=True)


def make_engine(
    url: str | sa.URL | None = None, statement_timeout: float | None = None, must_exist: bool = False
) -> sa.Engine:
    """An engine for segjob's work. On SQLite the `segjob` schema maps to the main database.

    `statement_timeout` (seconds, PostgreSQL only) caps every statement on every connection of
    the engine, including the raw ones that read sources; None leaves the server's setting.
    `must_exist`: an SQLite file that does not exist is an error (SchemaOutOfDateError, exit 5)
    instead of a new empty file, for commands that only work on a database segjob made.
    """
    parsed = url if isinstance(url, sa.URL) else resolve_url(url)
    if must_exist and parsed.get_backend_name() == "sqlite" and not _sqlite_file_exists(parsed):
        where = display_url(parsed)
        raise SchemaOutOfDateError(
            f"database {where} does not exist; create it with 'segjob db upgrade --database-url {where}'"
            " (or try 'segjob demo')"
        )
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(parsed, execution_options={"schema_translate_map": {SCHEMA: None}})
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    if parsed.get_backend_name() == "postgresql":
        # Defaults only: what the URL says about these wins (connect_args would replace it).
        connect_args: dict[str, object] = {
            name: value
            for name, value in (("application_name", "segjob"), ("connect_timeout", 10))
            if name not in parsed.query
        }
        if statement_timeout is not None:
            # A startup option rather than SET: it holds on every pooled connection from the start.
            connect_args["options"] = server_options(parsed, {"statement_timeout": timeout_ms(statement_timeout)})
        return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    raise UsageError(f"unsupported database {parsed.get_backend_name()!r}: segjob works with PostgreSQL and SQLite")


def libpq_params(engine: sa.Engine) -> dict[str, Any]:
    """The libpq connection parameters (host, port, dbname, user, password, sslmode, options, ...)
    that the engine's URL gives, as SQLAlchemy's psycopg dialect reads it (multi-host URLs too)."""
    from psycopg import pq

    keywords = {default.keyword.decode() for default in pq.Conninfo.get_defaults()}
    _, params = engine.dialect.create_connect_args(engine.url)
    return {name: value for name, value in params.items() if name in keywords}


def server_options(url: sa.URL, settings: Mapping[str, object]) -> str:
    """libpq's `options` for a connection to `url` that also sets the server parameters `settings`.

    The URL's own `options` come first (else $PGOPTIONS, which libpq would have sent), so a
    search_path or work_mem given there still holds; then `-c name=value` for each setting. The
    server applies them in order, so a setting here wins over the same name given before it.
    """
    given = url.query.get("options")
    if given is None:
        given = os.environ.get("PGOPTIONS", "")
    if isinstance(given, tuple):  # ?options=...&options=...
        given = " ".join(given)
    ours = [f"-c {name}={_escape_option(str(value))}" for name, value in settings.items()]
    return " ".join([given, *ours] if given.strip() else ours)


def _escape_option(value: str) -> str:
    """A value inside libpq's `options`, where a space separates arguments unless escaped."""
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


def timeout_ms(seconds: float) -> int:
    """PostgreSQL's statement_timeout (whole milliseconds, 0 would mean none) for `seconds`."""
    return max(1, round(seconds * 1000))


def _sqlite_file_exists(url: sa.URL) -> bool:
    """False only for a plain file path that is not there (":memory:" and URI filenames count as there)."""
    if not url.database or url.database == ":memory:" or url.query.get("uri"):
        return True
    return Path(url.database).exists()


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets BI readers keep reading while a run publishes; the busy timeout makes a writer
    # wait for a short lock instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def connection_error(engine: sa.Engine, exc: BaseException) -> DatabaseError:
    """One readable line for a database that cannot be reached; never shows the password."""
    reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
    if engine.url.password:
        reason = reason.replace(str(engine.url.password), "***")
    lost = ("terminating connection", "server closed the connection", "consuming input failed", "connection is lost")
    if any(marker in reason.lower() for marker in lost):
        return DatabaseError(f"lost the connection to database {display_url(engine.url)}: {reason}")
    return DatabaseError(f"cannot use database {display_url(engine.url)}: {reason}")


@contextmanager
def translate_errors(engine: sa.Engine, statement_timeout: float | None = None) -> Iterator[None]:
    """Turn driver-level connection failures and statement timeouts into DatabaseError."""
    try:
        yield
    except Exception as exc:
        trouble = database_trouble(engine, exc, statement_timeout)
        if trouble is None:
            raise
        raise trouble from exc


def database_trouble(
    engine: sa.Engine, exc: BaseException, statement_timeout: float | None = None
) -> DatabaseError | None:
    """A DatabaseError with one readable line when `exc` (SQLAlchemy-wrapped or straight from the
    driver) means the database is unreachable, the connection was lost or a statement timed
    out; None for any other error. Never shows the password."""
    import psycopg

    if isinstance(exc, DatabaseError):
        return None
    driver = getattr(exc, "orig", None) or exc
    if isinstance(driver, psycopg.errors.QueryCanceled) and "statement timeout" in str(driver):
        limit = f" ({statement_timeout:g} s)" if statement_timeout is not None else ""
        return StatementTimeoutError(
            f"a database statement ran longer than --statement-timeout{limit} and was cancelled;"
            " raise --statement-timeout or make the source faster"
        )
    if isinstance(driver, psycopg.errors.QueryCanceled):
        # Ctrl-C and SIGTERM are told apart before this (they become Interrupted); what is left
        # is a cancel from outside, e.g. pg_cancel_backend by an administrator.
        return DatabaseError(f"a database statement was cancelled from outside segjob: {_first_line(driver)}")
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return connection_error(engine, exc)
    # Failed connects and lost connections carry no SQLSTATE, or class 08 (connection exception)
    # or 57P (server shutdown, terminated backend). psycopg's OperationalError also covers limits
    # such as an oversized index row, which are not trouble with the database itself; SQLite's
    # covers plain SQL errors too, so only a few of its messages count.
    if isinstance(driver, psycopg.InterfaceError) or (
        isinstance(driver, psycopg.OperationalError)
        and (driver.sqlstate is None or driver.sqlstate.startswith(("08", "57P")))
    ):
        return connection_error(engine, exc)
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)) and _is_connection_failure(exc):
        return connection_error(engine, exc)
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _is_connection_failure(exc: sa.exc.DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return any(
        marker in text
        for marker in ("connection", "could not connect", "server closed", "unable to open database", "terminating")
    )


# --- migrations ---------------------------------------------------------------------------


def alembic_config(connection: sa.Connection | None):
    """Alembic's configuration over `connection` (None: only to read the migration files)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["connection"] = connection
    return config


# The schema revision this version of segjob expects: the newest migration. A constant, so a
# command need not load every migration file to check the database (a test keeps it in step).
SCHEMA_REVISION = "0010"


def head_revision() -> str:
    """The newest migration, as Alembic reads it from the migration files."""
    from alembic.script import ScriptDirectory

    config = alembic_config(None)
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None  # segjob ships its migration files, so there is a newest one
    return head


def current_revision(connection: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    schema = dialect_of(connection).schema
    opts = {"version_table_schema": schema} if schema else {}
    return MigrationContext.configure(connection, opts=opts).get_current_revision()


def check_at_head(engine: sa.Engine) -> None:
    """Stop unless segjob's schema exists and is at the revision this version of segjob expects."""
    with translate_errors(engine), engine.connect() as connection:
        found = current_revision(connection)
    expected = SCHEMA_REVISION
    if found == expected:
        return
    where = display_url(engine.url)
    state = "has no segjob schema" if found is None else f"has segjob schema version {found}, expected {expected}"
    raise SchemaOutOfDateError(f"database {where} {state}; run 'segjob db upgrade --database-url {where}' first")


def create_views(connection: sa.Connection, names: list[str] | tuple[str, ...]) -> None:
    """Create the named BI views from sql/views/NAME.sql, in segjob's schema."""
    schema = dialect_of(connection).schema
    if schema:
        # The .sql files name tables without a schema, so they read the same on SQLite; views bind
        # their tables when created, so the search path only matters during this transaction.
        connection.exec_driver_sql(f"SET LOCAL search_path TO {schema}")
    for name in names:
        connection.exec_driver_sql((sql_dir() / "views" / f"{name}.sql").read_text())
    if schema:
        connection.exec_driver_sql("SET LOCAL search_path TO DEFAULT")


def drop_views(connection: sa.Connection, names: list[str] | tuple[str, ...]) -> None:
    dialect = dialect_of(connection)
    for name in reversed(names):
        connection.exec_driver_sql(f"DROP VIEW IF EXISTS {dialect.qualified(name)}")


# --- per-job lock -------------------------------------------------------------------------


def _still_at(path: Path, handle) -> bool:
    """Whether the open file `handle` is still the file at `path`."""
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for `name` (a job), namespaced so other apps' keys don't clash."""
    digest = hashlib.sha256(f"segjob:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def job_lock(engine: sa.Engine, job: str, describe_holder) -> Iterator[None]:
    """Hold the job's lock for the block, or raise JobLockedError at once.

    PostgreSQL: a session advisory lock on a connection of its own, released by the server
    when that connection ends, even if this process is killed. SQLite: an flock on a file next
    to the database, released by the kernel when the process dies.
    `describe_holder()` names the run that holds the lock, for the error message.
    """
    if dialect_of(engine).server_locks:
        with translate_errors(engine), engine.connect() as connection:
            key = lock_key(job)
            got = connection.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar()
            connection.commit()
            if not got:
                raise JobLockedError(f"job {job!r} is already running ({describe_holder()}); wait for it to finish")
            try:
                yield
            finally:
                if not connection.invalidated:
                    try:
                        connection.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                        connection.commit()
                    except sa.exc.DBAPIError:
                        pass  # the connection died: the server has released the lock already
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(f"{database}.lock-{lock_key(job) & 0xFFFFFFFF:08x}")
    while True:
        with open(lock_path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JobLockedError(
                    f"job {job!r} is already running ({describe_holder()}); wait for it to finish"
                ) from None
            if not _still_at(lock_path, handle):
                continue  # the holder before us removed this file as we opened it: lock the new one
            try:
                yield
            finally:
                # Removed while still locked, so no file is left beside the database; a process
                # that opened it meanwhile sees it is gone once it gets the lock, and starts over.
                lock_path.unlink(missing_ok=True)
                fcntl.flock(handle, fcntl.LOCK_UN)
            return
