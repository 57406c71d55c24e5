"""Per-core throughput of the Spark engine's steps, the inputs of docs/scale-out.md.

    .venv/bin/python benchmarks/spark_throughput.py [--rows 1000000] [--database-url URL]

Reads `bench_customers` (made by benchmarks/bench.py, 6 features) with one Spark task at a time
(`local[1]`), so each figure is what one executor core does while PostgreSQL has the other core:

- JDBC read: one partition through Spark's JDBC source into Spark rows (a `noop` write).
- to Python: the rows of a cached DataFrame handed to a Python worker as Arrow batches.
- assign: the same plus segjob's executor work without the write (rebuild the model columns,
  nearest and second-nearest centre, totals).
- COPY write: one connection's binary COPY of assignment rows into a standalone table (run in
  this process, not in Spark: encoding plus the server's insert).
- key build: the primary key the publish transaction builds on the run's assignment table.

Each step runs three times; the table has the best (the first warms up the JIT and the Python
worker), as rows per second.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import psycopg

from segjob.config import build_spec
from segjob.engines import spark as spark_engine
from segjob.engines.totals import Totals
from segjob.model.algorithms import nearest_two
from segjob.pipeline import fit_model
from segjob.prepare.columns import apply_params, prepare
from segjob.source import tables
from segjob.store import db, pgcopy

TABLE = "bench_customers"
FEATURES = ["age", "income", "spend", "visits", "tenure", "satisfaction"]
SCRATCH = "bench_throughput_assignment"


def timed(step, repeat: int = 3) -> float:
    """The best of `repeat` runs: the first also warms up the JVM's JIT and the Python worker."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of bench_customers to read")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/segjob_bench")
    options = parser.parse_args()
    engine = db.make_engine(options.database_url)
    spec = build_spec(
        source=TABLE, id="customer_id", features=",".join(FEATURES), k="6", engine="spark", spark_master="local[1]"
    )
    source = tables.describe_source(engine, spec)
    sample = pd.read_sql(f"SELECT customer_id, {', '.join(FEATURES)} FROM {TABLE} LIMIT 100000", engine)
    prepared = prepare(sample, "customer_id", spec.prepare_options())
    model = fit_model(prepared, spec)
    features, centers = prepared.features, model.centers
    shift = np.array([f.mean for f in features])

    started = time.perf_counter()
    spark = spark_engine.session(spec)
    start_seconds = time.perf_counter() - started
    limited = f"(SELECT * FROM ({tables.cast_select(engine, spec, source)}) AS s LIMIT {options.rows}) AS segjob_source"
    frame = spark.read.jdbc(
        spark_engine.jdbc_url(engine), limited, properties=spark_engine.jdbc_properties(engine, spec)
    )
    rows = frame.count()
    read = timed(lambda: frame.write.format("noop").mode("overwrite").save())
    cached = frame.cache()
    cached.count()

    def consume(batches):
        for _ in batches:
            pass
        yield pd.DataFrame({"n": [0]})

    def assign(batches):
        totals = Totals(len(centers), len(features))
        for batch in batches:
            totals.count_missing(batch, features)
            chunk = apply_params(batch, "customer_id", features, check_unique=False)
            labels, own, _ = nearest_two(chunk.X, centers)
            totals.add(chunk, labels, own, shift)
        yield pd.DataFrame({"n": [totals.rows_used]})

    handoff = timed(lambda: cached.mapInPandas(consume, "n long").collect())
    assigned = timed(lambda: cached.mapInPandas(assign, "n long").collect())
    keys = cached.select("customer_id").toPandas()["customer_id"].astype("string[pyarrow]").array
    spark.stop()

    plain = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
        connection.execute(
            f"CREATE TABLE {SCRATCH} (run_id int4 NOT NULL, customer_key text NOT NULL, segment_id int4,"
            " distance float8, second_distance float8)"
        )
        zeros = np.zeros(len(keys))

        def copy_in() -> None:
            with connection.cursor().copy(f"COPY {SCRATCH} FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(pgcopy.HEADER)
                for start in range(0, len(keys), tables.CHUNK_ROWS):
                    part = slice(start, start + tables.CHUNK_ROWS)
                    n = len(keys[part])
                    values = [
                        ("int4", np.ones(n, dtype=np.int64)),
                        ("text", keys[part]),
                        ("int4", np.ones(n, dtype=np.int64)),
                        ("float8", zeros[:n]),
                        ("float8", zeros[:n]),
                    ]
                    copy.write(pgcopy.encode_rows(values))
                copy.write(pgcopy.TRAILER)

        write = timed(lambda: (connection.execute(f"TRUNCATE {SCRATCH}"), copy_in()))
        key = timed(
            lambda: (
                connection.execute(f"ALTER TABLE {SCRATCH} DROP CONSTRAINT IF EXISTS {SCRATCH}_pkey"),
                connection.execute(f"ALTER TABLE {SCRATCH} ADD PRIMARY KEY (customer_key, run_id)"),
            )
        )
        # What one more load costs the server's disk: WAL and table + key bytes per row.
        before = connection.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        connection.execute(f"ALTER TABLE {SCRATCH} DROP CONSTRAINT {SCRATCH}_pkey")
        connection.execute(f"TRUNCATE {SCRATCH}")
        copy_in()
        connection.execute(f"ALTER TABLE {SCRATCH} ADD PRIMARY KEY (customer_key, run_id)")
        wal, size = connection.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s), pg_total_relation_size(%s)", (before, SCRATCH)
        ).fetchone()
        connection.execute(f"DROP TABLE {SCRATCH}")

    print(f"\n{rows:,} rows x {len(FEATURES)} features, one task at a time (local[1])", end="")
    print(f"; Spark started in {start_seconds:.1f} s\n")
    print("| step (one core) | seconds | rows/s |")
    print("|---|---:|---:|")
    for name, seconds in (
        ("JDBC read of one partition (into Spark rows)", read),
        ("hand-off to a Python worker (Arrow batches, cached rows)", handoff),
        ("assign in the Python worker (hand-off included, no write)", assigned),
        ("COPY write over one connection (encode + server insert)", write),
        ("primary key build on the run's table (publish)", key),
    ):
        print(f"| {name} | {seconds:.2f} | {rows / seconds:,.0f} |")
    per_row = f"{float(wal) / rows:.0f} WAL bytes and {size / rows:.0f} table + key bytes"
    print(f"\nOne load of the assignments: {per_row} per row.")


if __name__ == "__main__":
    main()
