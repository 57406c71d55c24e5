"""Read a purchase-history run's backtest: its customers as of the earlier date, prepared as the
run prepares its own rows, with what each did in the horizon after it (segjob.model.backtest
scores it). The SQL comes from the run's spec (`transaction_features.backtest`, built by
segjob.source.purchases); only per-customer rows reach Python, at most BACKTEST_ROWS of them.
"""

from __future__ import annotations

import dataclasses
from contextlib import closing

import numpy as np
import pandas as pd
import sqlalchemy as sa

from segjob.config import JobSpec
from segjob.errors import DataError
from segjob.model.backtest import Backtest
from segjob.prepare.columns import prepare
from segjob.progress import Progress
from segjob.source.purchases import NEXT_PURCHASE, NEXT_SPEND
from segjob.source.tables import Source, SourceColumn, iter_source

# A uniform sample of this many customers at most, as the K sweep takes (segjob.model.fit.SWEEP_ROWS):
# the backtest scores settle long before, and its fits then cost the same at any size.
BACKTEST_ROWS = 50_000


def read_backtest(engine: sa.Engine, spec: JobSpec, progress: Progress) -> tuple[Backtest | None, str]:
    """The run's backtest, or (None, why there is none: "" when the run does not need one)."""
    definitions = spec.transaction_features or {}
    plan = definitions.get("backtest")
    if not plan:
        return None, ""
    if "none" in plan:
        return None, plan["none"]
    assert spec.customer is not None  # build_spec requires --customer with --transactions
    period = f"as of {plan['as_of']}, the next {plan['days']} days ({plan['start']} to {plan['end']}; {plan['rule']})"
    progress.stage(f"reading the backtest {period}")
    columns = {spec.customer: SourceColumn(spec.customer, None)}
    columns |= {name: SourceColumn(name, numeric) for name, numeric in plan["numeric"].items()}
    columns |= {name: SourceColumn(name, True) for name in (NEXT_SPEND, NEXT_PURCHASE)}
    source = Source(f"(\n{plan['sql']}\n) AS segjob_backtest", "the backtest", columns)
    read = dataclasses.replace(spec, features=[*spec.features, NEXT_SPEND, NEXT_PURCHASE])
    customers = int((definitions.get("counts") or {}).get("customers_with_purchase") or 0)
    fraction = BACKTEST_ROWS / customers if customers > BACKTEST_ROWS else None
    with closing(iter_source(engine, read, source, sample_fraction=fraction, seed=spec.seed)) as chunks:
        frame = pd.concat(list(chunks), ignore_index=True)
    if frame.empty:
        progress.done("no customers")
        return None, f"no customer had bought before the backtest date {plan['as_of']}"
    try:
        prepared = prepare(frame[[spec.id, *spec.features, *spec.categorical]], spec.id, spec.prepare_options())
    except DataError as exc:
        progress.done("not usable")
        return None, f"the backtest's customers could not be prepared ({exc})"
    outcomes = frame.set_index(frame[spec.id].astype(str))[[NEXT_SPEND, NEXT_PURCHASE]]
    kept = outcomes.loc[np.asarray(prepared.keys, dtype=str)].to_numpy(dtype=float)
    backtest = Backtest(prepared.X, kept[:, 0], kept[:, 1], period)
    why = backtest.too_small()
    progress.done(
        f"{len(backtest.X):,} customers, {int(backtest.purchased.sum()):,} bought in the horizon"
        + (f"; {why}" if why else "")
    )
    return (None, why) if why else (backtest, "")
