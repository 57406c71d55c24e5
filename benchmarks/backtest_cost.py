"""The cost of choosing k by later behaviour: automatic K on a purchase history against a fixed k, in one run.

    .venv/bin/python benchmarks/backtest_cost.py [--customers 1000000] [--database-url URL]

Generates a purchase history of N customers inside PostgreSQL (server-side, so generation is not
what is measured): one-off buyers (40%), regulars (30%), lapsing big spenders (10%) and new
customers (20%) over 2023-2024, about 5.5 transactions per customer. Then times, each in its own
child process (benchmarks/bench.py's `child`), `segjob run --transactions ...` with `--k 5` and
with the default (k chosen by the next-period rule: the K sweep plus the backtest's read and
fits), and prints both, their ratio and TARGET_RATIO. Exits 1 when the ratio misses the target.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import psycopg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import SEGJOB, child  # noqa: E402

# Issue 23: automatic K on a 1M-customer purchase history within 3x of a fixed-k run.
TARGET_RATIO = 3.0
TABLE = "bench_purchases"


def generate(url: str, customers: int) -> int:
    """The purchase history, server-side; returns its number of rows."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(
            f"""
            CREATE TABLE {TABLE} AS
            WITH c AS (SELECT g, g % 10 AS kind, random() AS r FROM generate_series(1, {int(customers)}) AS g),
            days AS (
                SELECT g, (random() * 520)::int AS day, 35.0 AS basket FROM c WHERE kind < 4
                UNION ALL
                SELECT g, s + (random() * 10)::int, 45.0
                FROM c, generate_series((c.r * 120)::int, 720, 60) AS s WHERE kind BETWEEN 4 AND 6
                UNION ALL
                SELECT g, s, 300.0 FROM c, generate_series((c.r * 120)::int, 300 + (c.r * 150)::int, 20) AS s
                WHERE kind = 7
                UNION ALL
                SELECT g, s, 55.0 FROM c, generate_series(670 + (c.r * 50)::int, 729, 15) AS s WHERE kind >= 8
            )
            SELECT lpad(g::text, 10, '0') AS customer_id, DATE '2023-01-01' + day AS order_date,
                   round((basket * (0.7 + 0.6 * random()))::numeric, 2)::float8 AS amount
            FROM days
            """
        )
        conn.execute(f"ANALYZE {TABLE}")
        return int(conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/segjob_bench_backtest")
    options = parser.parse_args()
    url = sa.make_url(options.database_url)
    admin = url.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone():
            conn.execute(f'CREATE DATABASE "{url.database}"')
    plain = url.render_as_string(hide_password=False)
    print(f"generating {options.customers:,} customers ...", file=sys.stderr)
    rows = generate(plain, options.customers)
    child([SEGJOB, "db", "upgrade", "--database-url", plain])

    base = [SEGJOB, "run", "--transactions", TABLE, "--customer", "customer_id", "--date", "order_date"]
    base += ["--amount", "amount", "--quiet", "--json", "--database-url", plain]
    load_before = os.getloadavg()
    timings = {}
    for name, extra in (
        ("fixed --k 5", ["--k", "5", "--job", "bench_fixed"]),
        ("automatic K", ["--job", "bench_auto"]),
    ):
        print(f"{name} ...", file=sys.stderr)
        seconds, peak, _ = child([*base, *extra])
        timings[name] = (seconds, peak)
    ratio = timings["automatic K"][0] / timings["fixed --k 5"][0]
    print(f"{options.customers:,} customers, {rows:,} transactions; load average before {load_before[0]:.2f}")
    print("| run | seconds | peak MB |\n|---|---|---|")
    for name, (seconds, peak) in timings.items():
        print(f"| {name} | {seconds:.1f} | {peak:.0f} |")
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(f"automatic K / fixed k: {ratio:.2f} (target at most {TARGET_RATIO:g}: {verdict})")
    raise SystemExit(0 if ratio <= TARGET_RATIO else 1)


if __name__ == "__main__":
    main()
