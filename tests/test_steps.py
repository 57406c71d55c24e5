"""Preparation steps (segjob.prepare.steps): each step's numpy and SQL forms agree, the fit's own
columns are what apply_params rebuilds from the stored parameters, and the scoring SELECT run by
SQLite gives `segjob score`'s answer. No database server: SQLite in memory."""

from __future__ import annotations

import itertools
import sqlite3

import numpy as np
import pandas as pd
import pytest

from segjob.config import JobSpec
from segjob.prepare.columns import PrepareOptions, apply_params, pipeline, prepare, to_original_units
from segjob.prepare.steps import Clip, Impute, Log1p, OneHot, Scale, Step
from segjob.results.stored import StoredModel
from segjob.scoring.score import assign
from segjob.scoring.sql import render
from segjob.store.dialect import POSTGRES, SQLITE

NUMBERS = [0.0, 1.5, -2.25, 1e6, 3.0, np.nan, np.inf, -np.inf]


def sqlite_column(sql: str, values: list) -> list:
    """`sql` (over the column x) evaluated by SQLite for each value of `values`."""
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE TABLE t (i INTEGER, x)")
        connection.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(values)))
        return [row[0] for row in connection.execute(f"SELECT {sql} FROM t ORDER BY i")]
    finally:
        connection.close()


@pytest.mark.parametrize(
    "step",
    [Impute(7.5), Clip(-1.0, 2.0), Scale(0.5, 4.0)],
    ids=repr,
)
def test_a_numeric_step_computes_the_same_in_sqlite(step: Step):
    values = NUMBERS if isinstance(step, Impute) else [v for v in NUMBERS if np.isfinite(v)]
    expected = step.apply(np.array(values, dtype=np.float64))
    assert sqlite_column(step.sql("x", SQLITE), values) == pytest.approx(list(expected), rel=1e-15)


def test_log1p_computes_the_same_in_sqlite():
    values = [0.0, 1.5, 1e6, 3.0]
    expected = Log1p().apply(np.array(values))
    assert sqlite_column(Log1p().sql("x", SQLITE), values) == pytest.approx(list(expected), rel=1e-14)


def test_a_dropping_impute_keeps_the_same_rows_in_sqlite():
    step = Impute(None)
    kept = step.keeps(np.array(NUMBERS))
    condition = step.sql_keeps("x", SQLITE)
    assert kept is not None and condition is not None
    assert [bool(v) for v in sqlite_column(condition, NUMBERS)] == [bool(v) for v in kept]
    assert Impute(1.0).keeps(np.array(NUMBERS)) is None and Impute(1.0).sql_keeps("x", SQLITE) is None


def test_one_hot_computes_the_same_in_sqlite():
    levels = ["N", "O'Hare \\ West", "(missing)", "é x"]
    step = OneHot("O'Hare \\ West")
    expected = step.apply(np.array(levels, dtype=object))
    assert sqlite_column(step.sql("x", SQLITE), levels) == list(expected)
    assert [s.level for s in OneHot.fit(np.array(["b", "a", "b"], dtype=object))] == ["a", "b"]


def test_steps_write_each_dialect():
    assert Clip(-1.0, 2.0).sql("n0", POSTGRES) == (
        "LEAST(GREATEST(n0, CAST(-1.0 AS DOUBLE PRECISION)), CAST(2.0 AS DOUBLE PRECISION))"
    )
    assert Clip(-1.0, 2.0).sql("n0", SQLITE) == (
        "MIN(MAX(n0, CAST(-1.0 AS DOUBLE PRECISION)), CAST(2.0 AS DOUBLE PRECISION))"
    )
    assert OneHot("O'Hare \\ West").sql("c0", POSTGRES) == "CASE WHEN c0 = E'O''Hare \\\\ West' THEN 1.0 ELSE 0.0 END"
    assert OneHot("O'Hare \\ West").sql("c0", SQLITE) == "CASE WHEN c0 = 'O''Hare \\ West' THEN 1.0 ELSE 0.0 END"


def customers(rows: int = 300, seed: int = 4) -> pd.DataFrame:
    random = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "cid": [f"c{i:04d}" for i in range(rows)],
            "age": random.normal(40, 10, rows),
            "spend": np.round(random.lognormal(3, 1.5, rows), 2),
            "visits": random.integers(0, 5, rows).astype(float),
            "region": random.choice(["N", "S", "O'Hare", None], rows).astype(object),
        }
    )
    frame.loc[random.random(rows) < 0.08, "spend"] = np.nan
    frame.loc[[3, 9], "age"] = [400.0, -300.0]
    return frame


OPTIONS = [
    PrepareOptions(
        features=["age", "spend", "visits"],
        categorical=categorical,
        missing=missing,
        scaler=scaler,
        auto_log1p=auto,
        fence=auto,
        clip_z=clip_z,
    )
    for missing, scaler, auto, clip_z, categorical in itertools.product(
        ["drop", "median"], ["standard", "robust", "minmax"], [True, False], [None, 2.0], [[], ["region"]]
    )
]


@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: f"{o.missing}-{o.scaler}-{o.auto_log1p}-{o.clip_z}-{o.categorical}"
)
def test_the_stored_pipeline_rebuilds_the_fit_exactly(options: PrepareOptions):
    frame = customers()
    fitted = prepare(frame, "cid", options)
    rebuilt = apply_params(frame, "cid", fitted.features)
    assert np.array_equal(rebuilt.X, fitted.X) and np.array_equal(rebuilt.original, fitted.original)
    assert list(rebuilt.keys) == list(fitted.keys) and rebuilt.dropped == fitted.dropped


def test_a_pipeline_lists_the_stored_steps_in_order():
    options = PrepareOptions(
        features=["age", "spend"], categorical=["region"], missing="median", clip_z=2.0, log1p=["spend"]
    )
    age, spend, *levels = prepare(customers(), "cid", options).features
    assert [type(step) for step in pipeline(age)] == [Impute, Clip, Scale]
    assert [type(step) for step in pipeline(spend)] == [Impute, Clip, Log1p, Scale]
    assert pipeline(levels[0]) == [OneHot(levels[0].level or ""), Scale(0.0, 1.0)]
    assert pipeline(spend)[0] == Impute(spend.impute_value)


@pytest.mark.parametrize(
    "options", OPTIONS[::3], ids=lambda o: f"{o.missing}-{o.scaler}-{o.auto_log1p}-{o.clip_z}-{o.categorical}"
)
def test_sqlite_runs_the_scoring_select_to_the_same_segments(options: PrepareOptions):
    frame = customers()
    fitted = prepare(frame, "cid", options)
    model = StoredModel(
        run_id=1,
        job="j",
        spec=JobSpec(id="cid", features=options.features, categorical=options.categorical),
        features=fitted.features,
        segment_ids=np.array([1, 2, 3]),
        centroids=fitted.X[[0, 40, 80]],
        labels={1: "one", 2: "two", 3: "three"},
    )
    new = customers(120, seed=11)
    prepared = apply_params(new, "cid", model.features)
    expected = assign(model, prepared.X)

    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE TABLE people (cid TEXT, age REAL, spend REAL, visits REAL, region TEXT)")
        rows = new.astype(object).where(new.notna(), None).itertuples(index=False)
        connection.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?)", list(rows))
        sql = render(model, "people", {"age", "spend", "visits"}, SQLITE)
        scored = {key: (segment, distance) for key, segment, _, distance in connection.execute(sql)}
    finally:
        connection.close()
    assert list(scored) and sorted(scored) == sorted(prepared.keys)
    for key, segment, distance in zip(prepared.keys, expected.segment_ids, expected.distance):
        assert scored[key][0] == segment, key
        assert scored[key][1] == pytest.approx(distance, rel=1e-9, abs=1e-12), key


def test_the_pipeline_undone_gives_original_units_back():
    options = PrepareOptions(
        features=["age", "spend", "visits"], categorical=["region"], missing="median", log1p=["spend"]
    )
    fitted = prepare(customers(), "cid", options)
    assert to_original_units(fitted.features, fitted.X) == pytest.approx(fitted.original, rel=1e-12, abs=1e-9)
    point = fitted.X[0].copy()
    assert to_original_units(fitted.features, point) == pytest.approx(fitted.original[0], rel=1e-12, abs=1e-9)
    assert np.array_equal(point, fitted.X[0])  # the caller's point is left as it was
