"""The Spark engine (`segjob run --engine spark`): the same job on Apache Spark.

What runs where:

- Driver (this process): reads a seeded sample, and segjob's own prepare and model code fit on
  it exactly as for the local engine (K sweep, criteria, labels). A PostgreSQL source's sample is
  drawn by PostgreSQL with the same seeded query as the local engine's, so both engines fit on
  the same rows and give the same answer; a Parquet or Spark-catalog source is sampled by Spark
  (`DataFrame.sample`, seeded).
- Executors, one task per partition: rebuild the partition's model columns from the sample's
  feature parameters (`prepare.columns.apply_params`), assign the nearest and second-nearest
  centre, COPY the rows into the run's own assignment table, and return the partition's totals
  (exact sizes and means, population statistics, dropped rows, an order-independent digest),
  which the driver merges. The parameters and centres travel in the task closure (a few KB,
  which works with Spark Connect too, where there is no SparkContext to broadcast with).
- `--full-fit`: exact Lloyd iterations, each one Spark job of per-partition sums and counts
  per centre (segjob's own aggregation rather than MLlib's KMeans, so the model columns are the
  ones segjob builds and the stopping rule is the local engine's).

Writes: the driver creates the run's standalone assignment table and commits it (nobody reads a
table that is not attached). Each task writes its partition in one transaction, under an advisory
lock for (run, partition), that also records the partition in `assignment_load`; an attempt that
finds its partition recorded (a retry after a commit, a speculative copy) writes nothing, so every
customer has exactly one row. The publish transaction then indexes and attaches the table (a
duplicate id surfaces at its primary key) and deletes the run's `assignment_load` rows. A failed
run's table is dropped when it is marked failed, a killed driver's when the next run marks it
abandoned (migration 0008).

pyspark is imported here only, and only when the engine is used.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import sqlalchemy as sa

from segjob.config import JobSpec
from segjob.engines.base import (
    FULL_FIT_MAX_ITERATIONS,
    Assigned,
    Fitted,
    Sample,
    full_fit_tolerance,
    lloyd_update,
    stable_id_lookup,
)
from segjob.engines.totals import Totals
from segjob.errors import DatabaseError, DataError, SegjobError, UsageError, did_you_mean
from segjob.model.algorithms import KMEANS, label_sums, nearest_two
from segjob.model.choose_k import Metric
from segjob.model.fit import ModelResult, refitted
from segjob.prepare.columns import FeatureParams, PreparedData, apply_params, duplicate_ids_error
from segjob.progress import Progress
from segjob.source import tables
from segjob.store import db, partitions, pgcopy, schema
from segjob.store.dialect import dialect_of

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Debian's libpostgresql-jdbc-java puts PostgreSQL's JDBC driver here; SEGJOB_JDBC_JAR overrides.
DEBIAN_JDBC_JAR = "/usr/share/java/postgresql.jar"
# Rows per Arrow batch handed to an executor's Python worker (Spark's default is 10,000): the
# local engine's chunk size, so per-batch overhead stays as small.
BATCH_ROWS = tables.CHUNK_ROWS


def session(spec: JobSpec) -> SparkSession:
    """The SparkSession for `spec`'s --spark-master and --spark-conf (an existing one is reused)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UsageError("--engine spark needs pyspark: pip install 'segjob[spark]' (or use --engine local)") from None
    remote = spec.spark_master.startswith("sc://")
    if not remote and not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise UsageError("--engine spark needs Java 17 or newer for Spark's JVM: install it or set JAVA_HOME")
    # Executors start their Python workers with this interpreter, which has segjob and its packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    builder = SparkSession.builder.appName(f"segjob {spec.job}")
    builder = builder.remote(spec.spark_master) if remote else builder.master(spec.spark_master)
    settings = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(BATCH_ROWS),
        "spark.pyspark.python": os.environ["PYSPARK_PYTHON"],
    }
    jar = jdbc_jar()
    if jar:
        settings["spark.jars"] = jar
    settings.update(spec.spark_conf)
    for key, value in settings.items():
        if not (remote and key.startswith(("spark.driver.", "spark.jars", "spark.ui."))):
            builder = builder.config(key, value)
    try:
        with _stderr_to(spark_log()):
            return builder.getOrCreate()
    except Exception as exc:
        raise UsageError(
            f"Spark did not start ({spec.spark_master}): {_first_line(exc)} (Spark's log: {spark_log()})"
        ) from None


def spark_log() -> Path:
    """Where the driver JVM's own output goes (SEGJOB_SPARK_LOG, else a file in the temp folder)."""
    configured = os.environ.get("SEGJOB_SPARK_LOG")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / f"segjob-spark-{os.getpid()}.log"


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """File descriptor 2 points at `path` while the block starts Spark's JVM, which keeps it as its
    stderr: Spark's startup banner and log lines go to the file, not into segjob's own log."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def jdbc_jar() -> str | None:
    """PostgreSQL's JDBC driver: SEGJOB_JDBC_JAR, else Debian's package's jar when installed."""
    configured = os.environ.get("SEGJOB_JDBC_JAR")
    if configured:
        return configured
    return DEBIAN_JDBC_JAR if Path(DEBIAN_JDBC_JAR).is_file() else None


@dataclass
class SparkSource:
    """A checked source as a Spark DataFrame of the job's columns (id as text, numeric features as
    double), and what the error messages and the sample need to know about it."""

    frame: DataFrame
    description: str
    database: tables.Source | None  # a PostgreSQL table or query, read through Spark's JDBC source
    partitions: int


def describe(engine: sa.Engine, spec: JobSpec, spark: SparkSession) -> SparkSource:
    """Check the source and every named column, as `segjob.source.tables.describe_source` does."""
    if spec.engine != "spark":
        raise UsageError("the Spark engine runs jobs with engine = spark")
    if not dialect_of(engine).postgres:
        raise UsageError(
            "--engine spark writes results from its executors into PostgreSQL: give --database-url"
            " postgresql://... (the embedded SQLite file works with --engine local)"
        )
    if spec.algorithm != KMEANS:
        raise UsageError(
            f"--engine spark assigns customers to the nearest centre, which is --algorithm kmeans;"
            f" run --algorithm {spec.algorithm} with --engine local"
        )
    partitions_wanted = spec.spark_write_partitions or _default_parallelism(spark)
    if spec.source_format == "database":
        database = tables.describe_source(engine, spec)
        frame = _read_jdbc(engine, spec, spark, database, partitions_wanted)
        return SparkSource(frame, database.description, database, partitions_wanted)
    frame, description = _read_spark_source(spec, spark)
    tables.check_columns(spec, frame.columns, description)
    frame = frame.select(*_cast_columns(frame, spec))
    # No shuffle: each task reads a few input partitions (a no-op when there are fewer).
    frame = frame.coalesce(partitions_wanted)
    return SparkSource(frame, description, None, _partitions(frame, partitions_wanted))


def _partitions(frame: DataFrame, at_most: int) -> int:
    try:
        return int(frame.rdd.getNumPartitions())
    except Exception:  # Spark Connect has no RDDs: coalesce made at most this many
        return at_most


def _default_parallelism(spark: SparkSession) -> int:
    try:
        return max(1, int(spark.sparkContext.defaultParallelism))
    except Exception:  # Spark Connect has no SparkContext
        return 4


def _read_spark_source(spec: JobSpec, spark: SparkSession) -> tuple[DataFrame, str]:
    from pyspark.errors import AnalysisException

    if spec.source_format == "parquet":
        path = spec.source_path or ""
        try:
            return spark.read.parquet(path), f"parquet {path}"
        except AnalysisException as exc:
            raise UsageError(f"reading parquet {path} failed: {_first_line(exc)}") from None
    name = spec.source or ""
    if not spark.catalog.tableExists(name):
        known = [table.name for table in spark.catalog.listTables()]
        shown = ", ".join(sorted(known)[:30]) or "none"
        raise UsageError(f'table "{name}" not found in the Spark catalog (tables: {shown}){did_you_mean(name, known)}')
    return spark.table(name), f"Spark table {name}"


def _cast_columns(frame: DataFrame, spec: JobSpec) -> list:
    """The id and categorical columns as text, numeric features as double; other features stay
    text, for `prepare` to parse or reject as the local engine does."""
    from pyspark.sql import functions
    from pyspark.sql.types import BooleanType, NumericType

    types = {field.name: field.dataType for field in frame.schema.fields}
    columns = [functions.col(spec.id).cast("string").alias(spec.id)]
    for name in spec.features:
        numeric = isinstance(types[name], NumericType) and not isinstance(types[name], BooleanType)
        columns.append(functions.col(name).cast("double" if numeric else "string").alias(name))
    columns += [functions.col(name).cast("string").alias(name) for name in spec.categorical]
    return columns


def _read_jdbc(engine: sa.Engine, spec: JobSpec, spark: SparkSession, source: tables.Source, parts: int) -> DataFrame:
    """The source through Spark's JDBC source in `parts` partitions, split by a hash of the id
    (works for text and number ids alike); the casts run in PostgreSQL. The only text of the user's
    that Spark sends is the source's FROM clause, which `tables.describe_source` checked."""
    return spark.read.jdbc(
        jdbc_url(engine),
        jdbc_table(engine, spec, source),
        predicates=jdbc_predicates(spec, parts),
        properties=jdbc_properties(engine, spec),
    )


def jdbc_table(engine: sa.Engine, spec: JobSpec, source: tables.Source) -> str:
    """What Spark's JDBC source reads FROM: the job's columns of the checked source, cast."""
    return f"({tables.cast_select(engine, spec, source)}) AS segjob_source"


def jdbc_predicates(spec: JobSpec, parts: int) -> list[str]:
    """One WHERE condition per partition, together covering every row once. A NULL id hashes to
    NULL, which no partition would match: those rows go to partition 0, whose task counts them as
    missing ids, as the local engine does."""
    from psycopg import sql

    key = sql.Identifier(spec.id).as_string(None)
    return [f"coalesce((hashtext({key}) & 2147483647) % {parts}, 0) = {part}" for part in range(parts)]


# libpq's connection parameters (as the database URL gives them) that PostgreSQL's JDBC driver
# knows under another name or the same one; host, port, dbname, user, password and options are
# translated on their own.
_JDBC_NAMES = {
    "sslmode": "sslmode",
    "sslrootcert": "sslrootcert",
    "sslcert": "sslcert",
    "sslkey": "sslkey",
    "sslpassword": "sslpassword",
    "gssencmode": "gssEncMode",
    "krbsrvname": "kerberosServerName",
    "connect_timeout": "connectTimeout",
    "target_session_attrs": "targetServerType",
}
_JDBC_SERVER_TYPES = {
    "any": "any",
    "read-write": "primary",
    "primary": "primary",
    "read-only": "secondary",
    "standby": "secondary",
    "prefer-standby": "preferSecondary",
}
# Tune the TCP or TLS transport only, not which server, database or user the read reaches or
# what it may do: the JDBC driver's own behaviour stands in. application_name: the read names
# itself, as every segjob connection does.
_JDBC_IGNORED = {
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "sslcompression",
    "sslsni",
    "client_encoding",
    "application_name",
    "fallback_application_name",
}


def jdbc_url(engine: sa.Engine) -> str:
    """The JDBC URL of the engine's server and database; the URL's other settings travel in
    `jdbc_properties` (which a JDBC URL's own parameters would override)."""
    params = db.libpq_params(engine)
    hosts = [host.strip() for host in str(params.get("host") or "localhost").split(",")]
    ports = [port.strip() for port in str(params.get("port") or "5432").split(",")]
    if len(ports) == 1:
        ports *= len(hosts)
    if len(ports) != len(hosts):
        raise UsageError(f"the database URL names {len(hosts)} hosts but {len(ports)} ports")
    for host in hosts:
        if host.startswith(("/", "@")):
            raise UsageError(
                f"--engine spark reads the source through PostgreSQL's JDBC driver, which cannot connect"
                f" through a Unix socket (host={host} in the database URL): give a TCP host and port"
            )
    addresses = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in zip(hosts, ports))
    return f"jdbc:postgresql://{addresses}/{quote(str(params.get('dbname') or ''), safe='')}"


def jdbc_properties(engine: sa.Engine, spec: JobSpec) -> dict[str, str]:
    """The JDBC driver's connection properties: the database URL's settings (sslmode, options,
    ...), and read-only sessions with the job's statement timeout."""
    params = db.libpq_params(engine)
    properties = {
        "driver": "org.postgresql.Driver",
        "user": str(params.get("user") or os.environ.get("USER", "")),
        "connectTimeout": "10",
    }
    for name, value in params.items():
        if name in _JDBC_NAMES:
            properties[_JDBC_NAMES[name]] = str(value)
        elif name not in _JDBC_IGNORED and name not in ("host", "port", "dbname", "user", "password", "options"):
            raise UsageError(
                f"--engine spark reads the source through PostgreSQL's JDBC driver, which has no"
                f" equivalent of {name}= in the database URL; leave it out or use --engine local"
            )
    if "targetServerType" in properties:
        given = properties["targetServerType"]
        if given not in _JDBC_SERVER_TYPES:
            raise UsageError(f"target_session_attrs={given} in the database URL is not one of libpq's values")
        properties["targetServerType"] = _JDBC_SERVER_TYPES[given]
    if params.get("password"):
        properties["password"] = str(params["password"])
    settings = {"default_transaction_read_only": "on", "statement_timeout": db.timeout_ms(spec.statement_timeout)}
    properties |= {
        "fetchsize": str(BATCH_ROWS),
        # Binary transfer from the first execution (a server-side prepared statement): pgjdbc
        # otherwise sends doubles as text, and parsing them made the read about 4x slower.
        "prepareThreshold": "-1",
        "ApplicationName": "segjob spark read",
        # Read-only, as every segjob read is: the session by default (after the URL's own
        # options, so they cannot turn it off) and each transaction the driver begins.
        "options": db.server_options(engine.url, settings),
        "readOnly": "true",
    }
    return properties


class SparkEngine:
    """Reads, assigns and writes a run's rows on Spark (see the module docstring)."""

    def __init__(self, engine: sa.Engine, spec: JobSpec, spark: SparkSession, source: SparkSource) -> None:
        self.engine, self.spec, self.spark, self.source = engine, spec, spark, source
        self.rows = 0
        self.cached = False

    def read_sample(self, progress: Progress) -> Sample:
        spec, source = self.spec, self.source
        progress.stage(f"counting {source.description} (Spark)")
        self.rows = tables.count_rows(self.engine, source.database) if source.database else source.frame.count()
        progress.done(f"{self.rows:,} rows in {source.partitions} partitions")
        fraction = min(1.0, spec.fit_sample / self.rows) if self.rows else 1.0
        progress.stage(f"sampling {source.description}")
        if source.database is not None:
            # PostgreSQL draws the sample as for the local engine, so both fit on the same rows.
            frame = self._database_sample(source.database, fraction)
        elif fraction < 1.0:
            frame = source.frame.sample(fraction=fraction, seed=spec.seed).toPandas()
        else:
            frame = source.frame.toPandas()
        progress.done(f"{len(frame):,} of {self.rows:,} rows ({fraction:.2%} uniform sample)")
        return Sample(frame, rows=self.rows, every_row=False)

    def _database_sample(self, source: tables.Source, fraction: float) -> pd.DataFrame:
        sample_fraction = fraction if fraction < 1.0 else None
        with contextlib.closing(
            tables.iter_source(self.engine, self.spec, source, sample_fraction=sample_fraction, seed=self.spec.seed)
        ) as chunks:
            frames = list(chunks)
        names = [self.spec.id, *self.spec.features, *self.spec.categorical]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({name: [] for name in names})

    def refine(self, sample: PreparedData, model: ModelResult, progress: Progress) -> ModelResult:
        """Exact Lloyd iterations over every row, one Spark job each, from the sampled centres."""
        from pyspark import StorageLevel

        frame = self.source.frame.persist(StorageLevel.MEMORY_AND_DISK)  # read the source once
        self.cached = True
        centers = model.centers.copy()
        tolerance = full_fit_tolerance(sample.X)
        iterations = 0
        for iterations in range(1, FULL_FIT_MAX_ITERATIONS + 1):
            progress.stage(f"full fit: Lloyd iteration {iterations} (Spark)")
            task = functools.partial(_lloyd_partition, self.spec.id, sample.features, centers)
            rows = _collect(frame.mapInPandas(task, "sums binary"))
            sums = np.zeros_like(centers)
            counts = np.zeros(len(centers), dtype=np.int64)
            for row in rows:
                part_sums, part_counts = pickle.loads(row["sums"])
                sums += part_sums
                counts += part_counts
            centers, shift = lloyd_update(centers, sums, counts)
            progress.done(f"centres moved {shift:.3g} (tolerance {tolerance:.3g})")
            if shift <= tolerance:
                break
        note = f"; refined by {iterations} exact Lloyd iterations over all rows on Spark (--full-fit)"
        return refitted(sample.X, model, centers, note)

    def assign(self, connection: sa.Connection, run_id: int, fitted: Fitted, progress: Progress) -> Assigned:
        spec, sample, model = self.spec, fitted.sample, fitted.model
        stable = stable_id_lookup(fitted)
        with self.engine.begin() as setup:  # committed, so executors can write into it; not attached
            target = partitions.create(setup, run_id)
        task = AssignTask(
            conninfo=executor_conninfo(self.engine, spec.statement_timeout),
            run_id=run_id,
            target=target,
            id_column=spec.id,
            features=sample.features,
            centers=model.centers,
            stable_ids=stable,
            shift=np.array([f.mean for f in sample.features]),
        )
        frame = self.source.frame
        progress.stage(f"assigning and writing on Spark ({self.source.partitions} partitions)")
        results = _collect(frame.mapInPandas(task, "part int, attempt int, wrote boolean, totals binary"))
        if self.cached:
            frame.unpersist()
        totals = Totals(model.k, len(sample.features))
        digest_sum = 0
        for row in results:
            part_totals, part_digest = pickle.loads(row["totals"])
            totals.merge(part_totals)
            digest_sum = (digest_sum + part_digest) % 2**64
        _check_loads(connection, run_id, len(results), totals)
        try:
            partitions.attach(connection, run_id)  # builds the primary key: a repeated id fails here
        except sa.exc.IntegrityError:
            raise self._duplicate_ids() from None
        connection.execute(sa.delete(schema.assignment_load).where(schema.assignment_load.c.run_id == run_id))
        if model.k == 1:  # binary COPY writes NaN; "no second centre" is NULL, as in the local engine
            connection.execute(
                sa.update(schema.assignment).where(schema.assignment.c.run_id == run_id).values(second_distance=None)
            )
        if totals.rows_used == 0:
            raise DataError(f"no usable rows: 0 of {totals.rows_read:,} rows remain after dropping rows")
        progress.done(f"{totals.rows_used:,} assignments, inertia {totals.inertia:,.1f}")
        names = ",".join([spec.id, *spec.features, *spec.categorical])
        fingerprint = hashlib.sha256(f"spark:{names}:{totals.rows_read}:{digest_sum}".encode()).hexdigest()
        return Assigned(
            fingerprint,
            totals.population(sample.features, task.shift),
            sample.original,
            totals.rows_read,
            {reason: count for reason, count in totals.dropped.items() if count},
            totals.rows_used,
            totals=(totals.sizes, totals.member_means()),
            metrics=[Metric("full_inertia", totals.inertia, None, totals.rows_used)],
        )

    def _duplicate_ids(self) -> DataError:
        """How many ids repeat, the smallest and how often, as the local engine says it."""
        from pyspark.sql import functions

        key = self.spec.id
        repeated = (
            self.source.frame.where(functions.trim(functions.col(key)) != "")
            .groupBy(key)
            .count()
            .where(functions.col("count") > 1)
        )
        summary = repeated.agg(functions.count("*").alias("ids"), functions.min(key).alias("example")).first()
        if summary is None or not summary["ids"]:
            return DataError(f'duplicate customer ids in column "{key}"; ids must be unique')
        example = repeated.where(functions.col(key) == summary["example"]).first()
        times = int(example["count"]) if example is not None else 2
        return duplicate_ids_error(key, int(summary["ids"]), str(summary["example"]), times)


def _check_loads(connection: sa.Connection, run_id: int, parts: int, totals: Totals) -> None:
    """Every partition committed once, and the table holds exactly the rows the executors assigned."""
    load = schema.assignment_load
    recorded = connection.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(load.c.rows), 0)).where(load.c.run_id == run_id)
    ).one()
    if recorded[0] != parts or recorded[1] != totals.rows_used:
        raise DatabaseError(
            f"the Spark executors recorded {recorded[0]} of {parts} partitions with {recorded[1]:,} rows, but"
            f" assigned {totals.rows_used:,}; nothing was published, run the job again"
        )


def executor_conninfo(engine: sa.Engine, statement_timeout: float) -> str:
    """A libpq connection string for the executors' write connections: the engine's server,
    credentials and settings, with the job's statement timeout."""
    from psycopg.conninfo import make_conninfo

    settings = {"statement_timeout": db.timeout_ms(statement_timeout)}
    params = {"connect_timeout": "10", **db.libpq_params(engine)}
    return make_conninfo("", **{**params, "options": db.server_options(engine.url, settings)})


@dataclass
class AssignTask:
    """One task's work, run on an executor for each partition (see the module docstring)."""

    conninfo: str
    run_id: int
    target: str  # the run's standalone assignment table, quoted
    id_column: str
    features: list[FeatureParams]
    centers: np.ndarray
    stable_ids: np.ndarray  # model label + 1 -> stable segment id
    shift: np.ndarray  # the sample's means: sums of shifted values keep the variance exact

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import psycopg
        from pyspark import TaskContext

        context = TaskContext.get()
        part, attempt = (context.partitionId(), context.attemptNumber()) if context else (0, 0)
        totals = Totals(len(self.centers), len(self.features))
        digest_sum = 0
        application = f"segjob spark run {self.run_id} part {part}"
        with psycopg.connect(self.conninfo, application_name=application) as connection:
            # One attempt of a partition at a time; a later one finds the earlier one's commit.
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (db.lock_key(f"load\0{self.run_id}\0{part}"),))
            loaded = connection.execute(
                "SELECT 1 FROM segjob.assignment_load WHERE run_id = %s AND part = %s", (self.run_id, part)
            ).fetchone()
            columns = "run_id, customer_key, segment_id, distance, second_distance"
            copying = (
                contextlib.nullcontext()
                if loaded
                else connection.cursor().copy(f"COPY {self.target} ({columns}) FROM STDIN (FORMAT BINARY)")
            )
            with copying as copy:
                if copy is not None:
                    copy.write(pgcopy.HEADER)
                for frame in batches:
                    digest_sum = (digest_sum + _row_digest_sum(frame)) % 2**64
                    totals.count_missing(frame, self.features)
                    chunk = apply_params(frame, self.id_column, self.features, check_unique=False)
                    labels, own, second = nearest_two(chunk.X, self.centers)
                    totals.add(chunk, labels, own, self.shift)
                    if copy is not None:
                        values = [
                            ("int4", np.full(len(labels), self.run_id)),
                            ("text", chunk.keys),
                            ("int4", self.stable_ids[labels + 1]),
                            ("float8", own),
                            ("float8", second),
                        ]
                        copy.write(pgcopy.encode_rows(values))
                if copy is not None:
                    copy.write(pgcopy.TRAILER)
            if not loaded:
                connection.execute(
                    "INSERT INTO segjob.assignment_load (run_id, part, attempt, rows, loaded_at)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (self.run_id, part, attempt, totals.rows_used, datetime.now(UTC)),
                )
        yield pd.DataFrame(
            {
                "part": [part],
                "attempt": [attempt],
                "wrote": [not loaded],
                "totals": [pickle.dumps((totals, digest_sum))],
            }
        )


def _row_digest_sum(frame: pd.DataFrame) -> int:
    """The sum of the rows' 64-bit hashes: the same for the same rows in any order or partitioning."""
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return int(hashes.sum(dtype=np.uint64))


def _lloyd_partition(
    id_column: str, features: list[FeatureParams], centers: np.ndarray, batches: Iterator[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    """One partition's sums and counts of the scaled rows nearest each centre."""
    sums = np.zeros_like(centers)
    counts = np.zeros(len(centers), dtype=np.int64)
    for frame in batches:
        chunk = apply_params(frame, id_column, features, check_unique=False)
        labels, _, _ = nearest_two(chunk.X, centers)
        counts += np.bincount(labels, minlength=len(centers))
        sums += label_sums(chunk.X, labels, len(centers))
    yield pd.DataFrame({"sums": [pickle.dumps((sums, counts))]})


def _collect(frame: DataFrame) -> list[Any]:
    """`frame.collect()`, with an executor's failure as the segjob error it was, in one line."""
    try:
        return frame.collect()
    except Exception as exc:
        raise executor_error(exc) from None


# The last "module.Class: message" line of the Python traceback that Spark passes on.
_PYTHON_ERROR = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Violation)): (.+)$", re.MULTILINE)


def executor_error(exc: Exception) -> SegjobError:
    """An error raised by an executor's task (Spark wraps it in a JVM stack trace) as one line:
    a segjob error keeps its kind; a database error is exit 5; anything else says Spark failed."""
    text = str(exc)
    found = [match for match in _PYTHON_ERROR.finditer(text) if not match.group(1).startswith(("org.", "java."))]
    if not found:
        return DatabaseError(f"the Spark job failed: {_first_line(exc)}")
    name, message = found[-1].group(1), found[-1].group(2).strip()
    kinds: dict[str, type[SegjobError]] = {"DataError": DataError, "UsageError": UsageError}
    kind = kinds.get(name.rpartition(".")[2])
    if kind is not None:
        return kind(message)
    if name.startswith("psycopg"):
        return DatabaseError(f"a Spark executor's database write failed: {message}")
    return DatabaseError(f"a Spark task failed: {name.rpartition('.')[2]}: {message}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
