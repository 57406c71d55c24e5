"""Property (issue 25): `segjob score` (Python) and `segjob sql score` (the printed PostgreSQL
SELECT) put every customer in the same segment, at the same distance, whatever the data and
the preparation options: missing values under each policy, outliers and fences, skewed columns
and log1p, every scaler, categorical columns with missing levels."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import sqlalchemy as sa
from helpers import invoke, query, run_json
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_score_sql import execute, print_sql
from test_transactions import create_table

from segjob.store import db

SHAPES = ["normal", "lognormal", "outliers", "small integers"]


@st.composite
def tables(draw):
    """A customer table and the run options to fit it with."""
    rows = draw(st.integers(40, 120))
    seed = draw(st.integers(0, 2**31 - 1))
    random = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {"cid": np.array([f"c{i:04d}" for i in range(rows)], dtype=object)}
    shapes = draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3))
    for j, shape in enumerate(shapes):
        if shape == "normal":
            values = random.normal(50, 10, rows)
        elif shape == "lognormal":
            values = np.round(random.lognormal(3, 1.5, rows), 2)
        elif shape == "outliers":
            values = random.normal(0, 1, rows)
            values[random.choice(rows, 3, replace=False)] = random.choice([-1, 1], 3) * 1e4
        else:
            values = random.integers(0, 5, rows).astype(float)
        if draw(st.booleans()):
            values[random.random(rows) < 0.1] = np.nan
        columns[f"f{j}"] = values
    categorical = draw(st.booleans())
    if categorical:
        levels = draw(st.lists(st.sampled_from(["N", "S", "O'Hare", "é x"]), min_size=2, max_size=4, unique=True))
        region = random.choice(levels, rows).astype(object)
        region[random.random(rows) < 0.05] = None
        columns["region"] = region
    options = [
        "--features",
        ",".join(f"f{j}" for j in range(len(shapes))),
        "--missing",
        draw(st.sampled_from(["drop", "median", "mean"])),
        "--scaler",
        draw(st.sampled_from(["standard", "robust", "minmax"])),
        "--transform",
        draw(st.sampled_from(["auto", "none"])),
        "--k",
        str(draw(st.integers(2, 4))),
    ]
    if draw(st.booleans()):
        options += ["--clip-outliers", str(draw(st.sampled_from([1.5, 2.5])))]
    if categorical:
        options += ["--categorical", "region"]
    return pd.DataFrame(columns), options


# Each example fits and scores a run (a few seconds): no shrinking, the failing table is printed whole.
@settings(
    max_examples=12,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(table=tables())
def test_python_and_sql_scoring_agree(migrated_pg_url, table):
    url = migrated_pg_url
    frame, options = table
    name = f"t_{uuid.uuid4().hex[:8]}"
    engine = db.make_engine(url)
    try:
        types = {c: (sa.Text() if c in ("cid", "region") else sa.Float(precision=53)) for c in frame.columns}
        create_table(engine, name, frame, types)
    finally:
        engine.dispose()
    fitted = run_json(url, "--source", name, "--id", "cid", "--job", name, *options)
    result = invoke(url, "score", "--job", name, "--source", name, "--json")
    assert result.exit_code == 0, result.stderr
    from_sql = execute(url, print_sql(url, "--job", name, "--model-run", str(fitted["run_id"])))
    scored = {
        r["customer_key"]: (r["segment_id"], r["distance"])
        for r in query(url, "SELECT customer_key, segment_id, distance FROM current_segment WHERE job = :j", j=name)
    }
    assert scored and from_sql.keys() == scored.keys(), options
    for key, (segment_id, _label, distance) in from_sql.items():
        assert segment_id == scored[key][0], (key, options)
        assert abs(distance - scored[key][1]) <= 1e-9 * max(1.0, abs(distance)), (key, options)
