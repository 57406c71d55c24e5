"""Benchmark segjob against the notebook way on the same generated customers, in one run.

    .venv/bin/python benchmarks/bench.py --rows 1000000 [--database-url URL] [--skip-notebook]
        [--spark-master local[2]]

Generates N customers with 6 numeric features and 6 known latent groups inside PostgreSQL
(server-side, so generation is not what is measured), then times, each in its own child
process: the notebook way (pandas.read_sql + StandardScaler + KMeans + DataFrame.to_sql),
segjob with fixed k, segjob with automatic K over 2..10, and the I/O floor (binary COPY of the
feature columns out, decoded by ADBC, and of an assignment-sized table back in). Prints wall time, peak memory
of each child, ratios and the adjusted Rand index against the generator's groups as a markdown
table. Absolute times are noisy on a shared machine: read the ratios. With --spark-master, the
fixed-k job also runs with --engine spark, and the peak memory of the driver, of Spark's JVM and
of the executors' Python workers is sampled from /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy as sa

TABLE = "bench_customers"
FEATURES = ["age", "income", "spend", "visits", "tenure", "satisfaction"]
GROUPS = 6
# Latent group centres (rows) per feature, and each feature's within-group spread.
CENTRES = [
    (25, 30_000, 400, 4, 1, 6),
    (35, 55_000, 1_500, 12, 4, 8),
    (45, 90_000, 3_000, 20, 10, 7),
    (55, 45_000, 800, 6, 15, 5),
    (65, 35_000, 300, 2, 20, 9),
    (40, 130_000, 5_000, 35, 8, 4),
]
SPREAD = (4, 6_000, 250, 2.5, 1.5, 0.6)
SEGJOB = str(Path(sys.executable).parent / "segjob")


@dataclass
class Result:
    name: str
    seconds: float
    peak_mb: float
    ari: float | None = None


def generate(url: str, rows: int) -> None:
    """Create the customers table server-side: Box-Muller normals around each group's centre."""
    centres = ", ".join(f"({g}, {', '.join(map(str, c))})" for g, c in enumerate(CENTRES))
    features = ",\n".join(
        f"    c.{name} + {spread} * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS {name}"
        for name, spread in zip(FEATURES, SPREAD)
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(
            f"CREATE TABLE {TABLE} AS\n"
            f"SELECT lpad(g::text, 10, '0') AS customer_id, c.grp AS true_group,\n{features}\n"
            f"FROM generate_series(1, {rows}) AS g\n"
            f"JOIN (VALUES {centres}) AS c(grp, {', '.join(FEATURES)}) ON c.grp = g % {GROUPS}"
        )
        conn.execute(f"ANALYZE {TABLE}")


@dataclass
class TreePeaks:
    """Peak resident memory of a child's process tree, sampled from /proc: the child itself, the
    JVMs among its descendants, and the most its other (Python worker) descendants held at once."""

    root_mb: float = 0.0
    jvm_mb: float = 0.0
    workers_mb: float = 0.0


def _status_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "PPid"):
            fields[key] = int(value.split()[0])
    return fields


def _sample_tree(root: int, peaks: TreePeaks, done: threading.Event) -> None:
    while not done.is_set():
        statuses = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    statuses[int(entry.name)] = (_status_kb(int(entry.name)), (entry / "comm").read_text().strip())
                except (OSError, ValueError):
                    continue
        family, grew = {root}, True
        while grew:
            grew = False
            for pid, (status, _) in statuses.items():
                if pid not in family and status.get("PPid") in family:
                    family.add(pid)
                    grew = True
        workers = 0.0
        for pid in family:
            status, name = statuses.get(pid, ({}, ""))
            if pid == root:
                peaks.root_mb = max(peaks.root_mb, status.get("VmHWM", 0) / 1024)
            elif name == "java":
                peaks.jvm_mb = max(peaks.jvm_mb, status.get("VmHWM", 0) / 1024)
            else:
                workers += status.get("VmRSS", 0) / 1024
        peaks.workers_mb = max(peaks.workers_mb, workers)
        done.wait(0.1)


def child_tree(args: list[str]) -> tuple[float, TreePeaks, str]:
    """Like `child`, for a child with descendants (Spark's JVM and its Python workers): wall
    seconds, the tree's peaks and stdout."""
    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peaks, done = TreePeaks(), threading.Event()
    sampler = threading.Thread(target=_sample_tree, args=(process.pid, peaks, done), daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{args[:3]} failed ({process.returncode}):\n{stderr.decode()[-2000:]}")
    return seconds, peaks, stdout.decode()


def child(args: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run a child process; returns (seconds, peak RSS in MB, stdout)."""
    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{args[:3]} failed ({status}):\n{stderr.decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, stdout.decode()


NOTEBOOK = textwrap.dedent(
    f"""
    import sys
    import pandas as pd
    import sqlalchemy as sa
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    engine = sa.create_engine(sys.argv[1])
    frame = pd.read_sql("SELECT customer_id, {", ".join(FEATURES)} FROM {TABLE}", engine)
    X = StandardScaler().fit_transform(frame[{FEATURES!r}])
    labels = KMeans(n_clusters=int(sys.argv[2]), random_state=0).fit_predict(X)
    out = pd.DataFrame({{"customer_id": frame["customer_id"], "segment": labels}})
    out.to_sql("bench_notebook_segments", engine, if_exists="replace", index=False)
    """
)

FLOOR_TABLE = "bench_floor_assignment"

# The least any Python job must move: the feature columns out of PostgreSQL by binary COPY,
# decoded into Arrow arrays by ADBC (the fastest decoder we know, and segjob's own reader),
# then an assignment-sized payload, already encoded, into a table by binary COPY.
IO_FLOOR = textwrap.dedent(
    """
    import sys
    import adbc_driver_postgresql.dbapi as adbc
    import psycopg

    url, read, table, payload = sys.argv[1:5]
    with adbc.connect(url) as conn, conn.cursor() as cur:
        cur.execute(read)
        for _ in cur.fetch_record_batch():
            pass
    with psycopg.connect(url) as conn, conn.cursor() as cur, open(payload, "rb") as source:
        with cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
            while block := source.read(1 << 20):
                copy.write(block)
    """
)


def prepare_floor(url: str, payload: Path) -> list[str]:
    """The I/O floor's command, after making untimed what it needs: the assignment-sized payload
    (run id, customer key, segment, two distances per customer) as a binary COPY file, made with
    psql, and an empty table to load it into."""
    psql = shutil.which("psql")
    if psql is None:
        raise SystemExit("the benchmark needs psql (PostgreSQL's client) on PATH to make the I/O floor's payload")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")
        conn.execute(
            f"CREATE TABLE {FLOOR_TABLE} (run_id int4, customer_key text, segment_id int4,"
            " distance float8, second_distance float8)"
        )
    subprocess.run(
        [
            psql,
            "-X",
            "-q",
            url,
            "-c",
            f"\\copy (SELECT 1::int4, customer_id, 1::int4, 0.5::float8, 0.7::float8 FROM {TABLE})"
            f" TO '{payload}' (FORMAT BINARY)",
        ],
        check=True,
    )
    read = f"SELECT customer_id, {', '.join(f'{f}::float8' for f in FEATURES)} FROM {TABLE}"
    return [sys.executable, "-c", IO_FLOOR, url, read, FLOOR_TABLE, str(payload)]


ARI = textwrap.dedent(
    """
    import sys
    import psycopg
    from sklearn.metrics import adjusted_rand_score

    with psycopg.connect(sys.argv[1]) as conn:
        truth, found = zip(*conn.execute(sys.argv[2]).fetchall())
    print(adjusted_rand_score(truth, found))
    """
)


def ari(url: str, sql: str) -> float:
    """In a child process: on Linux a child's peak RSS starts from its parent's size at fork, so
    the parent must stay small for the peaks of the measured children to mean anything."""
    completed = subprocess.run([sys.executable, "-c", ARI, url, sql], capture_output=True, text=True, check=True)
    return float(completed.stdout)


def run_ari(url: str, run_id: int) -> float:
    """A segjob run's assignments against the generator's groups."""
    return ari(
        url,
        f"SELECT c.true_group, a.segment_id FROM {TABLE} c JOIN segjob.assignment a "
        f"ON a.customer_key = c.customer_id AND a.run_id = {int(run_id)}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/segjob_bench")
    parser.add_argument(
        "--skip-notebook", action="store_true", help="skip the notebook way (it needs ~1 GB per million rows)"
    )
    parser.add_argument(
        "--spark-master",
        help="also run the fixed-k job with --engine spark on this master (e.g. local[2]); needs segjob[spark]",
    )
    options = parser.parse_args()
    url = sa.make_url(options.database_url)
    admin = url.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone():
            conn.execute(f'CREATE DATABASE "{url.database}"')
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)

    print(f"generating {options.rows:,} customers ...", file=sys.stderr)
    generate(plain, options.rows)
    subprocess.run([SEGJOB, "db", "upgrade", "--database-url", plain], check=True, capture_output=True)

    results: list[Result] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        floor_command = prepare_floor(plain, Path(scratch) / "assignments.copy")
        seconds, peak, _ = child(floor_command)
    results.append(Result("I/O floor (binary COPY out via ADBC + COPY in)", seconds, peak))

    if not options.skip_notebook:
        print("notebook way ...", file=sys.stderr)
        seconds, peak, _ = child(
            [sys.executable, "-c", NOTEBOOK, plain.replace("postgresql://", "postgresql+psycopg://"), str(GROUPS)]
        )
        score = ari(
            plain, f"SELECT c.true_group, n.segment FROM {TABLE} c JOIN bench_notebook_segments n USING (customer_id)"
        )
        results.append(Result("notebook (read_sql, StandardScaler, KMeans, to_sql)", seconds, peak, score))

    base = [
        "run",
        "--source",
        TABLE,
        "--id",
        "customer_id",
        "--features",
        ",".join(FEATURES),
        "--json",
        "--quiet",
        "--database-url",
        plain,
    ]
    # Job names of their own: a job's later run also measures drift against its previous one.
    stamp = time.strftime("%Y%m%d%H%M%S")
    for name, extra in (
        ("segjob, k fixed", ["--k", str(GROUPS), "--job", f"bench-fixed-{stamp}"]),
        ("segjob, k auto 2..10", ["--job", f"bench-auto-{stamp}"]),
    ):
        print(f"{name} ...", file=sys.stderr)
        seconds, peak, out = child([SEGJOB, *base, *extra])
        results.append(Result(name, seconds, peak, run_ari(plain, json.loads(out)["run_id"])))

    spark_peaks = None
    if options.spark_master:
        name = f"segjob on Spark {options.spark_master}, k fixed"
        print(f"{name} ...", file=sys.stderr)
        spark_job = ["--k", str(GROUPS), "--job", f"bench-spark-{stamp}", "--engine", "spark"]
        seconds, spark_peaks, out = child_tree([SEGJOB, *base, *spark_job, "--spark-master", options.spark_master])
        results.append(Result(name, seconds, spark_peaks.root_mb, run_ari(plain, json.loads(out)["run_id"])))

    floor = results[0].seconds
    notebook = next((r for r in results if r.name.startswith("notebook")), None)
    fixed = next(r for r in results if r.name == "segjob, k fixed")
    print(f"\n{options.rows:,} customers x {len(FEATURES)} features, {GROUPS} latent groups\n")
    print(machine(plain, load_before) + "\n")
    print(
        "| case | wall s | peak MB | x faster than notebook | peak / notebook's | x I/O floor | x fixed-k run"
        " | ARI vs truth |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        speedup = f"{notebook.seconds / r.seconds:.1f}" if notebook else ""
        memory = f"{r.peak_mb / notebook.peak_mb:.2f}" if notebook else ""
        print(
            f"| {r.name} | {r.seconds:.1f} | {r.peak_mb:,.0f} | {speedup} | {memory} | {r.seconds / floor:.2f} | "
            f"{r.seconds / fixed.seconds:.2f} | {'' if r.ari is None else f'{r.ari:.4f}'} |"
        )
    if spark_peaks is not None:
        spark = results[-1]
        print(
            f"\nSpark ({options.spark_master}): {spark.seconds / fixed.seconds:.2f}x the local engine's fixed-k run,"
            f" JVM start included. Peak memory: driver (the segjob process) {spark_peaks.root_mb:,.0f} MB,"
            f" Spark's JVM (driver and, in local mode, the executors) {spark_peaks.jvm_mb:,.0f} MB, executors'"
            f" Python workers {spark_peaks.workers_mb:,.0f} MB at most at once."
        )


def machine(url: str, load_before: tuple[float, float, float]) -> str:
    """One line describing the machine and the software versions, and how busy it was."""
    import numpy
    import sklearn

    with psycopg.connect(url) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    load_after = os.getloadavg()
    return (
        f"{platform.machine()} ({cpu}), {os.cpu_count()} cores, {memory:.0f} GiB RAM;"
        f" PostgreSQL {server} on the same host;"
        f" Python {platform.python_version()}, numpy {numpy.__version__}, scikit-learn {sklearn.__version__};"
        f" load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )


if __name__ == "__main__":
    main()
