"""Validation of how segjob chooses k: one table over real and generated customer data.

    .venv/bin/python benchmarks/choose_k.py [--select CRITERION] [--transform none|auto|log1p:...]
        [--only NAME] [--cdnow PATH] [--markdown-out docs/validation.md]

Purchase histories (the bundled sample, a generated log whose customer types and next period are
known, and the CDNOW log of Fader & Hardie, 23,570 customers over 18 months, which the `lifetimes`
package ships: `pip install --no-deps lifetimes==0.11.3`, or give --cdnow PATH) run the whole
pipeline into a temporary SQLite database with a next period left in the table, and print what
their segments' customers did in it: the share of the variance of next-period spend the segments
explain, the spread of purchase rates between segments, and the same share for the practitioners'
RFM quintile scheme (recency, frequency and spend quintiles: 125 cells) on the same customers.

Every case goes through the library the way `segjob run` goes by default: a job spec from
`segjob.config.build_spec` (so the CLI's defaults apply as they change), `JobSpec.prepare_options`,
`segjob.prepare.columns.prepare` and `segjob.pipeline.fit_model`; the purchase-history case runs the whole
pipeline (`segjob.pipeline.run_job`) into a temporary SQLite database. Per case the table shows
the k each criterion would choose (`ModelResult.chosen_by`), the k of the default rule, the truth
where it is known (generated data; for Mall Customers the published answer 5) and the adjusted
Rand index against it, the smallest segment's share, seconds, and the run's warning when the
data shows little cluster structure. For telco (`Churn`) and marketing (`Response`), whose
outcome is not a feature, the outcome's rate per segment is printed below the table as an
outside check: more segments always separate more, so it checks, it does not select.

Deterministic: fixed seeds for the generated data and for segjob (`--seed` default); only the
seconds vary.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from segjob.config import JobSpec, build_spec  # noqa: E402
from segjob.model.fit import ModelResult  # noqa: E402
from segjob.model.labels import column_words  # noqa: E402
from segjob.model.profile import profile  # noqa: E402
from segjob.pipeline import fit_model  # noqa: E402
from segjob.prepare.columns import prepare  # noqa: E402

DATA = ROOT / "tests" / "data"  # copies of ../shared/data
TRANSACTIONS_SAMPLE = ROOT / "segjob" / "data" / "transactions.csv"
MALL_INCOME, MALL_SPENDING = "Annual Income (k$)", "Spending Score (1-100)"
MARKETING_FEATURES = ["Income", "Recency", "MntWines", "MntMeatProducts", "NumWebPurchases", "NumStorePurchases"]
SEED = 20240614  # generated data
VALIDATE_DAYS = 90
CDNOW_AS_OF = "1998-01-01"  # the last six months of the 18 are the next period


@dataclass
class Case:
    """One dataset: rows with an `id` column, the job's feature columns, and what is known."""

    name: str
    frame: pd.DataFrame
    features: list[str]
    categorical: list[str] = field(default_factory=list)
    id: str = "id"
    truth: np.ndarray | None = None  # true group per row of `frame`
    expected: str = ""  # "5", "warning", ...: what the rule should give
    outcome: str | None = None  # column of `frame` (1/0 or Yes/No) checked per segment, not a feature
    positive: str = "1"  # outcome value that counts


@dataclass
class Row:
    name: str
    rows: int
    chosen_by: dict[str, int | None]
    k: int | None
    criterion: str
    expected: str
    ari: float | None
    smallest: float | None
    seconds: float
    warning: str | None
    notes: list[str] = field(default_factory=list)
    next_explained: float | None = None  # share of next-period spend variance the segments explain
    rate_spread: float | None = None  # largest minus smallest next-period purchase rate of a segment
    rfm_explained: float | None = None  # the same share for the RFM quintile cells


# --- cases -----------------------------------------------------------------------------------


def _read_text(path: Path, sep: str = ",") -> pd.DataFrame:
    """The file's cells as text, as a database TEXT column holds them: prepare parses numbers."""
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)


def mall_income_spending() -> Case:
    """Mall Customers on income and spending: the textbook answer is k=5."""
    frame = _read_text(DATA / "mall_customers.csv")
    return Case("mall income+spending", frame, [MALL_INCOME, MALL_SPENDING], id="CustomerID", expected="5")


def mall_age_income_spending() -> Case:
    """Mall Customers on age, income and spending (no published answer)."""
    frame = _read_text(DATA / "mall_customers.csv")
    return Case("mall age+income+spending", frame, ["Age", MALL_INCOME, MALL_SPENDING], id="CustomerID")


def marketing() -> Case:
    """Customer Personality Analysis: spend and purchase columns plus Education; outcome Response."""
    frame = _read_text(DATA / "marketing_campaign.csv", sep="\t")
    return Case(
        "marketing_campaign", frame, MARKETING_FEATURES, ["Education"], id="ID", outcome="Response", positive="1"
    )


def telco() -> Case:
    """IBM telco churn: tenure and charges (TotalCharges holds blanks); outcome Churn."""
    frame = _read_text(DATA / "telco_customer_churn.csv")
    return Case(
        "telco tenure+charges",
        frame,
        ["tenure", "MonthlyCharges", "TotalCharges"],
        id="customerID",
        outcome="Churn",
        positive="Yes",
    )


def _lognormal_groups(
    shares: list[float], log_means: list[tuple[float, ...]], rows: int, seed: int, log_sd: float = 0.35
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows drawn from log-normal groups with the given shares and log-means, shuffled, and their groups."""
    rng = np.random.default_rng(seed)
    sizes = np.floor(np.array(shares) * rows).astype(int)
    sizes[0] += rows - sizes.sum()
    truth = np.repeat(np.arange(len(shares)), sizes)
    rng.shuffle(truth)
    means = np.array(log_means)[truth]
    values = np.exp(means + rng.normal(0.0, log_sd, size=means.shape))
    frame = pd.DataFrame(values.round(2), columns=[f"x{j + 1}" for j in range(values.shape[1])])
    frame.insert(0, "id", np.arange(1, rows + 1))
    return frame, truth


# The dominant group sits low on every feature; each small group is SHIFT log units higher on one
# or more features: 2.0 is over five log standard deviations (0.35), apart in log space, while in
# raw units the big group's long right tail reaches into the small groups. At 1.5 the groups
# overlap even in log space (assigning each row to the nearest true centre scores ARI 0.86 only):
# the "closer" case shows where K-Means stops telling them apart.
SHIFT, CLOSER_SHIFT = 2.0, 1.5
DOMINANT_GROUPS = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1)]  # 1: shifted up
DOMINANT_SHARES = [0.75, 0.10, 0.07, 0.05, 0.03]
DOMINANT80_SHARES = [0.80, 0.10, 0.06, 0.04]


def dominant_group(
    shares: list[float] | None = None, shift: float = SHIFT, rows: int = 5_000, seed: int = SEED
) -> Case:
    """One dominant log-normal group and small ones, true labels known (default 75/10/7/5/3%)."""
    shares = shares or DOMINANT_SHARES
    log_means = [tuple(3.0 + shift * up for up in group) for group in DOMINANT_GROUPS[: len(shares)]]
    frame, truth = _lognormal_groups(shares, log_means, rows, seed)
    name = f"dominant {round(shares[0] * 100)}% + {len(shares) - 1} small (log-normal, {shift:g} log units apart)"
    return Case(name, frame, ["x1", "x2", "x3"], truth=truth, expected=str(len(shares)))


def one_blob(rows: int = 5_000, seed: int = SEED + 1) -> Case:
    """No structure: one log-normal blob in 3 features; the run must warn."""
    frame, truth = _lognormal_groups([1.0], [(3.0, 3.5, 4.0)], rows, seed, log_sd=0.5)
    return Case("one log-normal blob", frame, ["x1", "x2", "x3"], truth=truth, expected="warning")


def gaussian_blobs(k: int = 4, rows: int = 2_000, seed: int = SEED + 2) -> Case:
    """Well-separated Gaussian blobs of equal size (sanity check: must give k)."""
    rng = np.random.default_rng(seed)
    centres = np.array([(0, 0), (12, 0), (0, 12), (12, 12), (6, 24), (24, 6)][:k], dtype=float) * 10 + 100
    truth = np.repeat(np.arange(k), rows // k)
    rng.shuffle(truth)
    values = centres[truth] + rng.normal(0.0, 10.0, size=(len(truth), 2))
    frame = pd.DataFrame(values.round(3), columns=["x1", "x2"])
    frame.insert(0, "id", np.arange(1, len(truth) + 1))
    return Case(f"{k} Gaussian blobs", frame, ["x1", "x2"], truth=truth, expected=str(k))


CASES: dict[str, Callable[[], Case]] = {
    "mall": mall_income_spending,
    "mall3": mall_age_income_spending,
    "marketing": marketing,
    "telco": telco,
    "dominant": dominant_group,
    "dominant80": lambda: dominant_group(DOMINANT80_SHARES),
    "dominant-closer": lambda: dominant_group(shift=CLOSER_SHIFT),
    "blob": one_blob,
    "blobs": gaussian_blobs,
}
TRANSACTION_CASES = ("transactions",)
PURCHASE_CASES = ("sample-log", "generated-log", "cdnow")


# --- running ---------------------------------------------------------------------------------


def job_spec(case: Case, **overrides) -> JobSpec:
    """The spec `segjob run --source ... --id ... --features ... [--categorical ...]` would build."""
    return build_spec(
        source=case.name, id=case.id, features=case.features, categorical=case.categorical or None, **overrides
    )


def run_case(case: Case, **overrides) -> Row:
    """Prepare and fit `case` as `segjob run` does by default; compare with what is known."""
    spec = job_spec(case, **overrides)
    started = time.perf_counter()
    prepared = prepare(case.frame, spec.id, spec.prepare_options())
    model = fit_model(prepared, spec)
    seconds = time.perf_counter() - started
    # the rows prepare kept, as positions in case.frame
    position = pd.Series(np.arange(len(case.frame)), index=case.frame[case.id].astype(str))
    used = position.loc[np.asarray(prepared.keys, dtype=str)].to_numpy()
    # one true group (no structure): every answer scores 0, so there is nothing to compare
    known = case.truth is not None and len(np.unique(case.truth)) > 1
    ari = adjusted_rand_score(case.truth[used], model.labels) if known else None
    sizes = np.bincount(model.labels[model.labels >= 0])
    notes = [_labels_note(prepared, model), labels_at_every_k(prepared, column_words)]
    if model.warning:
        notes.append(f"warning: {model.warning}")
    if case.outcome:
        outcome = (case.frame[case.outcome].to_numpy()[used] == case.positive).astype(float)
        notes.append(outcome_note(case.outcome, outcome, model.labels))
    return Row(
        case.name,
        prepared.rows_used,
        dict(model.chosen_by),
        model.k,
        model.criterion,
        case.expected,
        ari,
        float(sizes.min() / sizes.sum()),
        seconds,
        model.warning,
        notes,
    )


def outcome_note(name: str, outcome: np.ndarray, labels: np.ndarray) -> str:
    """ "Response rate per segment: 1 4.1%, 2 27.0%, ...; spread 22.9 points" (segment = label + 1)."""
    rates = [float(outcome[labels == s].mean()) for s in range(labels.max() + 1)]
    listed = ", ".join(f"{s + 1} {rate:.1%}" for s, rate in enumerate(rates))
    return f"{name} rate per segment: {listed}; spread (max-min) {(max(rates) - min(rates)) * 100:.1f} points"


def labels_at_every_k(prepared, vocabulary, ks: range = range(2, 11)) -> str:
    """Whether every segment gets its own label, without numbers or "Mid" words, at each k."""
    from segjob.model.fit import fit

    bad = []
    for k in ks:
        if k >= len(prepared.X):
            break
        labels = [s.label for s in profile(prepared, fit(prepared.X, k), vocabulary=vocabulary).segments]
        if len(set(labels)) < len(labels) or any("(segment" in label or "Mid " in label for label in labels):
            bad.append(f"k={k}: {labels}")
    verdict = "yes" if not bad else "NO: " + "; ".join(bad)
    return f"labels distinct (no numbers, no Mid words) at k={ks.start}..{ks.stop - 1}: {verdict}"


def _labels_note(prepared, model: ModelResult) -> str:
    segments = profile(prepared, model, vocabulary=column_words).segments
    return "segments: " + "; ".join(f"{s.segment_id} {s.label} ({s.share:.0%})" for s in segments)


def transactions_row(validate: bool, **overrides) -> Row:
    """The bundled purchase-history sample through the real pipeline, into a temporary SQLite file.

    With `validate`, the run uses `--validate-days 90` when the job spec has that option and
    prints the stored next-period figures; without it (or without the option) they read "n/a".
    """
    import sqlalchemy as sa

    from segjob.pipeline import run_job
    from segjob.source.csvload import load_csv
    from segjob.store import db, migrate

    name = "transactions sample" + (f" --validate-days {VALIDATE_DAYS}" if validate else "")
    supported = "validate_days" in {f.name for f in fields(JobSpec)}
    if validate and supported:
        overrides["validate_days"] = VALIDATE_DAYS
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/segjob.db"
        migrate.upgrade(url)
        engine = db.make_engine(url)
        try:
            load_csv(engine, TRANSACTIONS_SAMPLE, "transactions")
            spec = build_spec(
                transactions="transactions", customer="customer_id", date="order_date", amount="amount", **overrides
            )
            started = time.perf_counter()
            run_id = run_job(engine, spec).run_id
            seconds = time.perf_counter() - started
            with engine.connect() as connection:
                row = connection.execute(sa.text("SELECT * FROM run WHERE run_id = :r"), {"r": run_id}).mappings().one()
                chosen = connection.execute(
                    sa.text(
                        "SELECT name, value FROM run_metric WHERE run_id = :r AND k IS NULL"
                        " AND name LIKE 'chosen_k_by_%' ORDER BY name"
                    ),
                    {"r": run_id},
                ).all()
                segments = (
                    connection.execute(
                        sa.text("SELECT * FROM segment WHERE run_id = :r ORDER BY segment_id"), {"r": run_id}
                    )
                    .mappings()
                    .all()
                )
            notes = ["segments: " + "; ".join(f"{s['segment_id']} {s['label']} ({s['share']:.0%})" for s in segments)]
            if validate:
                notes.append(next_period_note(row, segments) if supported else "next period: n/a (no --validate-days)")
        finally:
            engine.dispose()
    run = dict(row)
    k = run.get("k") or run.get("chosen_k") or len(segments)
    return Row(
        name,
        int(run.get("rows_used") or 0),
        # stored names spell criteria with "_" ("chosen_k_by_silhouette_gain"); chosen_by with "-"
        {n.removeprefix("chosen_k_by_").replace("_", "-"): None if v is None else int(v) for n, v in chosen},
        k,
        str(run.get("k_criterion") or ""),
        "",
        None,
        min(s["share"] for s in segments),
        seconds,
        next((run[c] for c in run if "warning" in c and run[c]), None),
        notes,
    )


def next_period_note(run: dict, segments: list[dict]) -> str:
    """The stored next-period figures: run columns and per-segment columns named next_* (n/a if none)."""
    per_run = {c: run[c] for c in run if c.startswith(("validation_", "next_"))}
    columns = sorted({c for s in segments for c in s.keys() if c.startswith("next_")})
    if not columns or all(s[c] is None for s in segments for c in columns):
        return "next period: n/a"
    listed = "; ".join(
        f"{s['segment_id']} " + ", ".join(f"{c.removeprefix('next_')} {_number(s[c])}" for c in columns)
        for s in segments
    )
    summary = ", ".join(f"{c} {_number(v)}" for c, v in per_run.items())
    return f"next period ({summary}): {listed}"


def _number(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# --- purchase histories ------------------------------------------------------------------------


@dataclass
class Log:
    """A purchase log (customer_id, order_date, amount) and how a run on it is set up."""

    name: str
    frame: pd.DataFrame
    options: dict
    types: pd.Series | None = None  # known customer type by customer id (generated logs)
    expected: str = ""


GENERATED_START, GENERATED_AS_OF, GENERATED_END = "2023-01-01", "2024-10-01", "2024-12-31"
NEW_DAYS = 60  # a customer whose first purchase is this recent is "new", whatever comes next
# How customers buy: (share, mean days between purchases or None for once, median basket, days
# of buying before they lapse (low, high) or None for never).
CUSTOMER_KINDS = {
    "one-off": (0.45, None, 35.0, None),
    "regular": (0.35, 30, 45.0, None),
    "lapsing whale": (0.20, 10, 300.0, (30, 60)),
}


def generated_log(customers: int = 6_000, seed: int = SEED + 3) -> Log:
    """A purchase log whose customers have four known types at any date, and a next period (the 91
    days after the as-of date) that follows from how each type buys.

    First purchases arrive evenly from a year before the log starts to its end, so the as-of date
    and the backtest's earlier date see the same mix. One-offs buy once; regulars every ~30 days
    with no end; whales big baskets every ~10 days for one or two months, then lapse (back once
    in six per quarter). At a date, a customer whose first purchase is at most NEW_DAYS old is
    "new" (what comes next depends on how they buy); the others are "one-off", "regular" or
    "lapsing whale". The truth is the type at the as-of date."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(GENERATED_START)
    last_day = (pd.Timestamp(GENERATED_END) - start).days
    as_of_day = (pd.Timestamp(GENERATED_AS_OF) - start).days
    kinds = list(CUSTOMER_KINDS)
    drawn = rng.choice(len(kinds), customers, p=[CUSTOMER_KINDS[n][0] for n in kinds])
    rows, types = [], {}
    for number, which in enumerate(drawn, start=1):
        kind = kinds[which]
        _, gap, basket, life = CUSTOMER_KINDS[kind]
        first = int(rng.integers(-365, last_day + 1))
        days = [first]
        if gap is not None:
            stop = first + int(rng.integers(*life)) if life else last_day
            while days[-1] + gap <= min(stop, last_day):
                days.append(days[-1] + max(1, int(rng.gamma(4.0, gap / 4.0))))
            if life:
                days += [d + int(rng.integers(0, 91)) for d in range(stop + 91, last_day, 91) if rng.random() < 1 / 6]
        customer = f"G{number:05d}"
        for day in (d for d in days if 0 <= d <= last_day):
            rows.append((customer, start + pd.Timedelta(days=day), round(float(rng.lognormal(np.log(basket), 0.3)), 2)))
        if any(0 <= d < as_of_day for d in days):
            types[customer] = "new" if as_of_day - first <= NEW_DAYS else kind
    frame = pd.DataFrame(rows, columns=["customer_id", "order_date", "amount"])
    frame["order_date"] = frame["order_date"].dt.strftime("%Y-%m-%d")
    return Log("generated purchase log (4 known types)", frame, {"as_of": GENERATED_AS_OF}, pd.Series(types), "4")


def sample_log() -> Log:
    """The bundled sample (segjob demo --transactions), its last 90 days as the next period."""
    frame = pd.read_csv(TRANSACTIONS_SAMPLE, dtype={"customer_id": str})
    return Log(f"transactions sample --validate-days {VALIDATE_DAYS}", frame, {"validate_days": VALIDATE_DAYS})


def cdnow_path(given: Path | None = None) -> Path | None:
    """CDNOW_master.txt: `given`, else the copy the installed lifetimes package ships (found
    without importing lifetimes, whose dependencies need not be installed)."""
    import importlib.util

    if given:
        return given
    found = importlib.util.find_spec("lifetimes")
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(list(found.submodule_search_locations)[0]) / "datasets" / "CDNOW_master.txt"
    return path if path.exists() else None


def cdnow_log(path: Path) -> Log:
    """CDNOW (a music retailer, 1997-01 to 1998-06; most customers bought once): features as of
    1998-01-01, the last six months the next period."""
    raw = pd.read_csv(path, sep=r"\s+", header=0, names=["customer_id", "date", "cds", "amount"], dtype=str)
    frame = pd.DataFrame(
        {
            "customer_id": raw["customer_id"].str.lstrip("0"),
            "order_date": pd.to_datetime(raw["date"], format="%Y%m%d").dt.strftime("%Y-%m-%d"),
            "amount": raw["amount"].astype(float),
        }
    )
    return Log(f"CDNOW music retailer (--as-of {CDNOW_AS_OF})", frame, {"as_of": CDNOW_AS_OF})


def rfm_explained(log: Log, as_of: str, end: str, customers: pd.Index) -> float:
    """Share of the variance of next-period net spend (as_of..end) that the RFM quintile cells
    explain, over `customers` (a run's assigned customers): recency (days since the last purchase
    day), frequency (purchase days) and net spend, each cut into quintiles of its ranks."""
    frame = log.frame.assign(day=pd.to_datetime(log.frame["order_date"]))
    history = frame[frame["day"] < pd.Timestamp(as_of)]
    bought = history[history["amount"] > 0]
    features = pd.DataFrame(
        {
            "recency": (pd.Timestamp(as_of) - bought.groupby("customer_id")["day"].max()).dt.days,
            "frequency": bought.groupby("customer_id")["day"].nunique(),
            "monetary": history.groupby("customer_id")["amount"].sum(),
        }
    ).reindex(customers)
    cells = sum(
        pd.qcut(features[c].rank(method="first"), 5, labels=False).to_numpy() * 5**i
        for i, c in enumerate(features.columns)
    )
    later = frame[(frame["day"] >= pd.Timestamp(as_of)) & (frame["day"] <= pd.Timestamp(end))]
    spend = later.groupby("customer_id")["amount"].sum().reindex(customers).fillna(0.0).to_numpy()
    return eta_squared(spend, np.asarray(cells, dtype=int))


def eta_squared(values: np.ndarray, groups: np.ndarray) -> float:
    total = ((values - values.mean()) ** 2).sum()
    means = pd.Series(values).groupby(groups).transform("mean").to_numpy()
    return float(((means - values.mean()) ** 2).sum() / total) if total > 0 else float("nan")


def purchase_row(log: Log, **overrides) -> Row:
    """A purchase log through the real pipeline into a temporary SQLite file, checked against its next period."""
    import sqlalchemy as sa

    from segjob.model.labels import marketer_words
    from segjob.pipeline import run_job
    from segjob.source.purchases import transaction_source
    from segjob.source.tables import read_source
    from segjob.store import db, migrate

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/segjob.db"
        migrate.upgrade(url)
        engine = db.make_engine(url)
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql("CREATE TABLE purchases (customer_id TEXT, order_date TEXT, amount REAL)")
                connection.exec_driver_sql(
                    "INSERT INTO purchases VALUES (?, ?, ?)", list(log.frame.itertuples(index=False, name=None))
                )
            spec = build_spec(
                transactions="purchases",
                customer="customer_id",
                date="order_date",
                amount="amount",
                **log.options,
                **overrides,
            )
            started = time.perf_counter()
            run_id = run_job(engine, spec).run_id
            seconds = time.perf_counter() - started
            with engine.connect() as connection:
                run = dict(
                    connection.execute(sa.text("SELECT * FROM run WHERE run_id = :r"), {"r": run_id}).mappings().one()
                )
                chosen = connection.execute(
                    sa.text(
                        "SELECT name, value FROM run_metric WHERE run_id = :r AND k IS NULL"
                        " AND name LIKE 'chosen_k_by_%' ORDER BY name"
                    ),
                    {"r": run_id},
                ).all()
                segments = [
                    dict(s)
                    for s in connection.execute(
                        sa.text("SELECT * FROM segment WHERE run_id = :r ORDER BY segment_id"), {"r": run_id}
                    ).mappings()
                ]
                assigned = pd.read_sql(
                    sa.text("SELECT customer_key, segment_id FROM assignment WHERE run_id = :r"),
                    connection,
                    params={"r": run_id},
                ).set_index("customer_key")["segment_id"]
            stored = JobSpec(**{**json.loads(run["spec"]), "transaction_features": None})
            checked, source = transaction_source(engine, stored, validate=True)
            features = read_source(engine, checked, source)
            every_k = labels_at_every_k(prepare(features, checked.id, checked.prepare_options()), marketer_words)
        finally:
            engine.dispose()
    labels = [s["label"] for s in segments]
    notes = ["segments: " + "; ".join(f"{s['segment_id']} {s['label']} ({s['share']:.0%})" for s in segments)]
    if len(set(labels)) < len(labels):
        notes.append("labels NOT distinct")
    notes.append(every_k)
    notes.append(next_period_note(run, segments))
    notes.append(f"how k was chosen: {run['k_reason']}")
    rates = [s["next_purchase_rate"] for s in segments if s.get("next_purchase_rate") is not None]
    start, end = run.get("validation_start"), run.get("validation_end")
    rfm = rfm_explained(log, str(start), str(end), assigned.index) if start else None
    ari = None
    if log.types is not None:
        truth = log.types.reindex(assigned.index).to_numpy()
        ari = adjusted_rand_score(truth, assigned.to_numpy())
    return Row(
        log.name,
        int(run.get("rows_used") or 0),
        {n.removeprefix("chosen_k_by_").replace("_", "-"): None if v is None else int(v) for n, v in chosen},
        int(run["k"]),
        str(run.get("k_criterion") or ""),
        log.expected,
        ari,
        min(s["share"] for s in segments),
        seconds,
        None,
        notes,
        next_explained=run.get("next_spend_explained"),
        rate_spread=(max(rates) - min(rates)) if rates else None,
        rfm_explained=rfm,
    )


# --- output ----------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    """The markdown table: one column per criterion found in any row's `chosen_by`."""
    criteria = list(dict.fromkeys(c for row in rows for c in row.chosen_by))
    header = [
        "dataset",
        "rows",
        *(f"k by {c}" for c in criteria),
        "k (rule)",
        "expected",
        "ARI",
        "smallest",
        "next-period spend explained",
        "purchase-rate spread",
        "RFM quintiles (125 cells)",
        "seconds",
        "warning",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [
            row.name,
            f"{row.rows:,}",
            *(_k(row.chosen_by.get(c, "")) for c in criteria),
            f"**{row.k}** ({row.criterion})",
            row.expected or "-",
            "-" if row.ari is None else f"{row.ari:.3f}",
            "-" if row.smallest is None else f"{row.smallest:.1%}",
            "-" if row.next_explained is None else f"{row.next_explained:.3f}",
            "-" if row.rate_spread is None else f"{row.rate_spread:.1%}",
            "-" if row.rfm_explained is None else f"{row.rfm_explained:.3f}",
            f"{row.seconds:.1f}",
            (row.warning or "").split(":")[0],  # in full below the table
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _k(value) -> str:
    return "-" if value is None or value == "" else str(value)


def notes(rows: list[Row]) -> str:
    return "\n".join(f"- **{row.name}**: {note}" for row in rows for note in row.notes)


HEADER = """# Validation: choosing k, labels, and purchase histories against later behaviour

Produced by `{command}` (benchmarks/choose_k.py; the defaults of `segjob run`; the CDNOW log from
`pip install --no-deps lifetimes==0.11.3`).

Columns: **dataset** the case; **rows** rows (customers) used; **k by ...** the k each criterion
would choose among the accepted candidates ("-": no answer; next-period only for purchase
histories); **k (rule)** the k the run uses and the rule that chose it; **expected** the true k of
generated data, the published answer (Mall Customers on income and spending: 5) or "warning"
when the data has no structure; **ARI** adjusted Rand index against the true groups (generated
data); **smallest** the smallest segment's share; **next-period spend explained** the share of the
variance of next-period net spend per customer that the published segments explain (eta squared,
`run.next_spend_explained`); **purchase-rate spread** the largest minus the smallest next-period
purchase rate of a segment; **RFM quintiles** the same share for the practitioners' scheme of
recency, frequency and spend quintiles (125 cells) on the same customers and period; **seconds**
prepare + fit (purchase histories: the whole run into SQLite); **warning** the little-structure
warning, if any.

Purchase histories: the bundled sample with `--validate-days 90`; a generated log of four known
customer types whose next period follows from the type (`generated_log`); CDNOW (a music retailer,
23,570 customers, 1997-01 to 1998-06, most of whom bought once) as of 1998-01-01, the last six
months the next period. Below the table: each case's labels, the outcome rates of telco (`Churn`)
and marketing (`Response`), and for purchase histories the next period per segment and how k was
chosen (the backtest's period and its score per k).
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--select", help="criterion that chooses k (default: segjob run's)")
    parser.add_argument("--transform", help="passed to the job spec as --transform")
    parser.add_argument(
        "--only",
        action="append",
        choices=[*CASES, *TRANSACTION_CASES, *PURCHASE_CASES],
        help="run only this case (repeatable)",
    )
    parser.add_argument("--cdnow", type=Path, help="CDNOW_master.txt (default: the installed lifetimes package's)")
    parser.add_argument("--markdown-out", type=Path, help="also write the table and notes to this file")
    args = parser.parse_args(argv)
    overrides = {key: value for key, value in (("select", args.select), ("transform", args.transform)) if value}

    rows = []
    for name in args.only or [*CASES, *TRANSACTION_CASES, *PURCHASE_CASES]:
        if name in CASES:
            rows.append(run_case(CASES[name](), **overrides))
        elif name in PURCHASE_CASES:
            if name == "cdnow" and cdnow_path(args.cdnow) is None:
                print("cdnow: skipped (pip install --no-deps lifetimes==0.11.3, or --cdnow PATH)", file=sys.stderr)
                continue
            log = {"generated-log": generated_log, "sample-log": sample_log}.get(name)
            rows.append(purchase_row(log() if log else cdnow_log(cdnow_path(args.cdnow)), **overrides))
        else:
            rows.append(transactions_row(validate=False, **overrides))
        print(f"{rows[-1].name}: k={rows[-1].k} ({rows[-1].seconds:.1f} s)", file=sys.stderr)
    text = table(rows) + "\n\n" + notes(rows)
    print(text)
    if args.markdown_out:
        command = " ".join(["python benchmarks/choose_k.py", *(argv if argv is not None else sys.argv[1:])])
        args.markdown_out.write_text(HEADER.format(command=command) + "\n" + text + "\n")


if __name__ == "__main__":
    main()
