"""Write segjob/data/transactions.csv: the bundled purchase-history sample of `segjob demo --transactions`.

About 2,000 customers over 2023-2024 in four groups a marketer would recognise: loyal big spenders,
frequent small baskets, lapsed one-off buyers and new customers; a few purchases are returned
(negative amounts) and a few customers have only a return. The seed is fixed, so running this
script again writes the same file.

    .venv/bin/python scripts/make_transactions_sample.py
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20240601
START, END = date(2023, 1, 1), date(2024, 12, 31)
OUTPUT = Path(__file__).resolve().parents[1] / "segjob" / "data" / "transactions.csv"

# name: (customers, first purchase between (days after START), mean days between purchases or None
# for one or two purchases, median basket)
GROUPS = {
    "loyal big spenders": (250, (0, 180), 35, 160.0),
    "frequent small baskets": (450, (420, 560), 12, 18.0),
    "lapsed one-offs": (800, (0, 450), None, 45.0),
    "new customers": (500, (670, 725), 20, 55.0),
}
RETURN_SHARE = 0.04  # of purchases, returned in full or in part a few days later
ONLY_RETURNS = 6  # customers whose only row is a return (bought before the sample starts)


def purchases(rng: np.random.Generator, customer: str, group: tuple) -> list[tuple[str, date, float]]:
    _, (low, high), gap, basket = group
    day = START + timedelta(days=int(rng.integers(low, high)))
    rows = []
    while day <= END:
        rows.append((customer, day, round(float(rng.lognormal(np.log(basket), 0.35)), 2)))
        if gap is None:
            if len(rows) == 2 or rng.random() > 0.15:
                break
            day += timedelta(days=int(rng.integers(20, 120)))
        else:
            day += timedelta(days=max(1, int(rng.gamma(4.0, gap / 4.0))))
    return rows


def returns(rng: np.random.Generator, rows: list[tuple[str, date, float]]) -> list[tuple[str, date, float]]:
    out = []
    for customer, day, amount in rows:
        if rng.random() < RETURN_SHARE:
            when = min(day + timedelta(days=int(rng.integers(1, 21))), END)
            share = 1.0 if rng.random() < 0.6 else float(rng.uniform(0.2, 0.8))
            out.append((customer, when, -round(amount * share, 2)))
    return out


def main() -> None:
    rng = np.random.default_rng(SEED)
    total = sum(group[0] for group in GROUPS.values()) + ONLY_RETURNS
    ids = [f"C{number:05d}" for number in rng.permutation(np.arange(1, total + 1))]
    rows: list[tuple[str, date, float]] = []
    position = 0
    for group in GROUPS.values():
        for customer in ids[position : position + group[0]]:
            bought = purchases(rng, customer, group)
            rows += bought + returns(rng, bought)
        position += group[0]
    for customer in ids[position:]:
        day = START + timedelta(days=int(rng.integers(400, 700)))
        rows.append((customer, day, -round(float(rng.lognormal(np.log(40.0), 0.3)), 2)))
    frame = pd.DataFrame(rows, columns=["customer_id", "order_date", "amount"])
    frame = frame.sort_values(["order_date", "customer_id"], kind="stable")
    frame.to_csv(OUTPUT, index=False, float_format="%.2f")
    print(f"wrote {len(frame):,} rows for {frame['customer_id'].nunique():,} customers to {OUTPUT}")


if __name__ == "__main__":
    main()
