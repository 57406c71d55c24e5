"""Read-path speed on the benchmark table: segjob's reader against the alternatives.

    .venv/bin/python benchmarks/read_path.py [--database-url URL]

Run benchmarks/bench.py first (it creates bench_customers). Prints rows/s of each way, twice:
segjob's reader (ADBC: binary COPY decoded into Arrow in C++, then pandas chunks), psycopg's
binary COPY decoded row by row into preallocated arrays, and psql writing the same binary COPY
to /dev/null (no decoding at all: what the server and the socket cost).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time

import numpy as np
import psycopg

from segjob.config import JobSpec
from segjob.source.tables import describe_source, iter_source
from segjob.store.db import make_engine

FEATURES = ["age", "income", "spend", "visits", "tenure", "satisfaction"]
COLUMNS = ", ".join(f"{name}::float8" for name in FEATURES)
COPY_OUT = f"COPY (SELECT customer_id::text, {COLUMNS} FROM bench_customers) TO STDOUT (FORMAT BINARY)"


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
        report("segjob: ADBC (binary COPY -> Arrow in C++) -> pandas chunks", n, started)

        started, n = time.perf_counter(), 0
        ids, values = np.empty(rows, dtype=object), np.empty((rows, len(FEATURES)))
        with psycopg.connect(url) as conn, conn.cursor().copy(COPY_OUT) as copy:
            copy.set_types(["text"] + ["float8"] * len(FEATURES))
            while (row := copy.read_row()) is not None:
                ids[n], values[n] = row[0], row[1:]
                n += 1
        report("psycopg: binary COPY -> read_row -> preallocated arrays", n, started)

        psql = shutil.which("psql")
        if psql:
            started = time.perf_counter()
            subprocess.run([psql, "-X", "-q", url, "-c", COPY_OUT], stdout=subprocess.DEVNULL, check=True)
            report("psql: binary COPY -> /dev/null (no decoding)", rows, started)


def report(name: str, rows: int, started: float) -> None:
    seconds = time.perf_counter() - started
    print(f"{name}: {rows:,} rows in {seconds:.2f} s = {rows / seconds:,.0f} rows/s")


if __name__ == "__main__":
    main()
