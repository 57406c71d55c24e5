"""Read-path speed on the benchmark table: segjob's CSV COPY stream vs binary COPY decoded row by row.

    .venv/bin/python benchmarks/read_path.py [--database-url URL]

Run benchmarks/bench.py first (it creates bench_customers). Prints rows/s of each way, twice.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import psycopg

from segjob.config import JobSpec
from segjob.db import make_engine
from segjob.source import describe_source, iter_source

FEATURES = ["age", "income", "spend", "visits", "tenure", "satisfaction"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/segjob_bench")
    url = parser.parse_args().database_url
    engine = make_engine(url)
    spec = JobSpec(job="read-path", source="bench_customers", id="customer_id", features=FEATURES)
    source = describe_source(engine, spec)
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT count(*) FROM bench_customers").fetchone()[0]
    for _ in range(2):
        started, n = time.perf_counter(), 0
        for chunk in iter_source(engine, spec, source):
            n += len(chunk)
        report("CSV COPY -> pandas C parser, 100k-row chunks", n, started)

        started, n = time.perf_counter(), 0
        ids, values = np.empty(rows, dtype=object), np.empty((rows, len(FEATURES)))
        columns = ", ".join(f"{name}::float8" for name in FEATURES)
        with psycopg.connect(url) as conn, conn.cursor().copy(
            f"COPY (SELECT customer_id::text, {columns} FROM bench_customers) TO STDOUT (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text"] + ["float8"] * len(FEATURES))
            while (row := copy.read_row()) is not None:
                ids[n], values[n] = row[0], row[1:]
                n += 1
        report("binary COPY -> psycopg read_row -> preallocated arrays", n, started)


def report(name: str, rows: int, started: float) -> None:
    seconds = time.perf_counter() - started
    print(f"{name}: {rows:,} rows in {seconds:.2f} s = {rows / seconds:,.0f} rows/s")


if __name__ == "__main__":
    main()
