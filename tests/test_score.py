"""`segjob score` through the CLI on SQLite and PostgreSQL: scoring a fit run's own rows reproduces
its assignments exactly, new customers go to the nearest stored centroid (computed here
independently from the stored parameters), purchase-history jobs rebuild identical features, and
bad input gives one line, its exit code and no published run."""

from __future__ import annotations

import json
import math
import os
import signal

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from helpers import INCOME, MALL_ID, SPENDING, invoke, one_error_line, query, run_json
from test_transactions import create_table, load_tables, make_transactions

from segjob.store import db

HOSTILE = 'visits "per" %month'  # a feature name that needs quoting and holds a %
ODD_LEVEL = "O'Hare \\ West"  # a level with a quote and a backslash
TX_RUN = ("--transactions", "tx", "--customer", "customer_id", "--date", "ordered_at", "--amount", "amount")
PEOPLE_RUN = (
    "--source",
    "people",
    "--id",
    "person_id",
    "--features",
    f"spend,age,{HOSTILE}",
    "--categorical",
    "region",
    "--missing",
    "median",
    "--transform",
    "auto",
    "--clip-outliers",
    "2.5",
    "--k",
    "3",
)


def make_people(n: int, seed: int, prefix: str = "P") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(float)
    age[rng.random(n) < 0.08] = np.nan  # imputed with the median
    region = rng.choice(["North", "South", ODD_LEVEL], n).astype(object)
    region[rng.random(n) < 0.05] = None  # the level "(missing)"
    return pd.DataFrame(
        {
            "person_id": [f"{prefix}{i:05d}" for i in range(n)],
            "spend": np.round(rng.lognormal(4, 1.2, n), 2),  # strongly right-skewed: auto log1p
            "age": age,
            HOSTILE: rng.poisson(5, n),
            "region": region,
        }
    )


PEOPLE_TYPES = {
    "person_id": sa.Text(),
    "spend": sa.Double(),
    "age": sa.Double(),
    HOSTILE: sa.Integer(),
    "region": sa.Text(),
}


def load_people(url: str, table: str, frame: pd.DataFrame) -> None:
    engine = db.make_engine(url)
    try:
        create_table(engine, table, frame, PEOPLE_TYPES)
    finally:
        engine.dispose()


def score_json(url: str, *args: str) -> dict:
    result = invoke(url, "score", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def assignments(url: str, run_id: int) -> dict[str, tuple]:
    rows = query(
        url, "SELECT customer_key, segment_id, distance, second_distance FROM assignment WHERE run_id = :r", r=run_id
    )
    return {row["customer_key"]: (row["segment_id"], row["distance"], row["second_distance"]) for row in rows}


def assert_same_assignments(url: str, fit_run: int, score_run: int) -> None:
    fitted, scored = assignments(url, fit_run), assignments(url, score_run)
    assert len(fitted) > 50 and fitted.keys() == scored.keys()
    for key, (segment_id, distance, second) in fitted.items():
        assert scored[key][0] == segment_id, key
        assert abs(scored[key][1] - distance) <= 1e-12 * max(1.0, distance), key
        assert abs(scored[key][2] - second) <= 1e-12 * max(1.0, second), key


def assert_model_copied(url: str, fit_run: int, score_run: int) -> None:
    run = query(url, "SELECT kind, model_run_id, status, k, rows_used FROM run WHERE run_id = :r", r=score_run)[0]
    fit = query(url, "SELECT k, rows_used FROM run WHERE run_id = :r", r=fit_run)[0]
    assert (run["kind"], run["model_run_id"], run["status"]) == ("score", fit_run, "succeeded")
    assert (run["k"], run["rows_used"]) == (fit["k"], fit["rows_used"])
    features = "SELECT feature, position, impute_value, center, scale, clip_low, clip_high, transform FROM run_feature"
    features += " WHERE run_id = :r ORDER BY position"
    assert query(url, features, r=score_run) == query(url, features, r=fit_run)
    centroids = "SELECT segment_id, feature, centroid, centroid_scaled FROM segment_centroid WHERE run_id = :r"
    centroids += " ORDER BY segment_id, feature"
    assert query(url, centroids, r=score_run) == query(url, centroids, r=fit_run)
    # The same customers in the same segments: the same sizes, and the labels are the model's.
    segments = "SELECT segment_id, label, size, share FROM segment WHERE run_id = :r ORDER BY segment_id"
    assert query(url, segments, r=score_run) == query(url, segments, r=fit_run)
    current = query(url, "SELECT DISTINCT run_id FROM current_segment")
    assert current == [{"run_id": score_run}]


def independent_assignment(url: str, model_run: int, frame: pd.DataFrame, id_column: str) -> dict[str, tuple]:
    """Nearest centroid of each row, from the stored parameters, with plain Python arithmetic."""
    features = query(url, "SELECT * FROM run_feature WHERE run_id = :r ORDER BY position", r=model_run)
    centroid_rows = query(
        url, "SELECT segment_id, feature, centroid_scaled FROM segment_centroid WHERE run_id = :r", r=model_run
    )
    algorithm = query(url, "SELECT algorithm FROM run WHERE run_id = :r", r=model_run)[0]["algorithm"]
    centroids: dict[int, dict[str, float]] = {}
    for row in centroid_rows:
        centroids.setdefault(row["segment_id"], {})[row["feature"]] = row["centroid_scaled"]
    if algorithm == "dbscan":
        centroids.pop(0, None)  # the Outliers segment is never given to a scored customer
    out = {}
    for row in frame.to_dict("records"):
        point = {}
        for f in features:
            value = row[f["source_column"]]
            if f["kind"] == "categorical":
                level = value if isinstance(value, str) and value.strip() else "(missing)"
                x = 1.0 if level == f["level"] else 0.0
            else:
                x = float(value) if value is not None and math.isfinite(float(value)) else f["impute_value"]
                if f["clip_low"] is not None:
                    x = min(max(x, f["clip_low"]), f["clip_high"])
                if f["transform"] == "log1p":
                    x = math.log1p(x)
            point[f["feature"]] = (x - f["center"]) / f["scale"]
        distances = {
            segment_id: math.sqrt(sum((point[name] - c) ** 2 for name, c in centre.items()))
            for segment_id, centre in sorted(centroids.items())
        }
        nearest = min(distances, key=distances.get)
        out[str(row[id_column])] = (nearest, distances[nearest])
    return out


def test_scoring_training_rows_reproduces_numeric_fit(mall_url):
    fit = run_json(mall_url, "--source", "mall", "--id", MALL_ID, "--features", f"Age,{INCOME},{SPENDING}", "--k", "5")
    scored = score_json(mall_url, "--job", "mall", "--source", "mall", "--id", MALL_ID)
    assert scored["kind"] == "score" and scored["model_run_id"] == fit["run_id"]
    assert_same_assignments(mall_url, fit["run_id"], scored["run_id"])
    assert_model_copied(mall_url, fit["run_id"], scored["run_id"])
    shown = invoke(mall_url, "runs", "show", str(scored["run_id"]))
    assert f"score run {scored['run_id']} of job mall with the model of run {fit['run_id']}" in shown.stdout
    assert "silhouette" not in shown.stdout  # a score run fits nothing


def test_score_run_counts_dropped_rows(mall_url):
    """A model that dropped rows with missing values drops them when scoring too, and says so."""
    fit = run_json(mall_url, "--source", "mall", "--id", MALL_ID, "--features", f"Age,{INCOME}", "--k", "3")
    columns = f'"{MALL_ID}", "Age", "{INCOME}"'
    extra = f"SELECT {columns} FROM mall UNION ALL SELECT 9001, NULL, 50 UNION ALL SELECT NULL, 30, 40"
    scored = score_json(mall_url, "--job", "mall", "--query", extra)
    run = query(
        mall_url, "SELECT rows_read, rows_used, dropped_by_reason FROM run WHERE run_id = :r", r=scored["run_id"]
    )[0]
    dropped = run["dropped_by_reason"]
    dropped = json.loads(dropped) if isinstance(dropped, str) else dropped
    assert (run["rows_read"], run["rows_used"]) == (202, 200)
    assert dropped == {"missing_id": 1, "missing_value": 1}
    assert "9001" not in assignments(mall_url, scored["run_id"])
    assert_same_assignments(mall_url, fit["run_id"], scored["run_id"])


def test_scoring_training_rows_reproduces_categorical_transformed_fit(migrated_db_url):
    load_people(migrated_db_url, "people", make_people(400, seed=3))
    fit = run_json(migrated_db_url, *PEOPLE_RUN)
    spend = query(
        migrated_db_url,
        "SELECT transform, clipped_count, impute_value FROM run_feature WHERE feature = 'age'"
        " OR feature = 'spend' ORDER BY feature DESC",
    )
    assert spend[0]["transform"] == "log1p" and spend[0]["clipped_count"] > 0  # spend: logged and clipped
    assert spend[1]["impute_value"] is not None  # age: median imputation
    levels = query(migrated_db_url, "SELECT level FROM run_feature WHERE kind = 'categorical' ORDER BY level")
    assert [row["level"] for row in levels] == ["(missing)", "North", ODD_LEVEL, "South"]

    scored = score_json(migrated_db_url, "--job", "people", "--query", "SELECT * FROM people")
    assert_same_assignments(migrated_db_url, fit["run_id"], scored["run_id"])
    assert_model_copied(migrated_db_url, fit["run_id"], scored["run_id"])


def test_new_customers_get_the_nearest_stored_centroid(migrated_db_url):
    load_people(migrated_db_url, "people", make_people(400, seed=3))
    new = make_people(60, seed=11, prefix="N")
    new.loc[0, "spend"] = 1e6  # far above the clip bound
    new.loc[1, "age"] = np.nan  # imputed with the model's median, not the new rows'
    new.loc[2, "region"] = None
    load_people(migrated_db_url, "people_new", new)
    fit = run_json(migrated_db_url, *PEOPLE_RUN)

    scored = score_json(migrated_db_url, "--job", "people", "--source", "people_new", "--run-key", "new-1")
    expected = independent_assignment(migrated_db_url, fit["run_id"], new, "person_id")
    got = assignments(migrated_db_url, scored["run_id"])
    assert got.keys() == expected.keys()
    for key, (segment_id, distance) in expected.items():
        assert got[key][0] == segment_id, key
        assert abs(got[key][1] - distance) <= 1e-9, key
    sizes = query(migrated_db_url, "SELECT segment_id, size, share FROM segment WHERE run_id = :r", r=scored["run_id"])
    counted = pd.Series([segment for segment, _ in expected.values()]).value_counts()
    for row in sizes:
        assert row["size"] == counted.get(row["segment_id"], 0)
        assert row["share"] == pytest.approx(row["size"] / 60)

    # The run key makes a repeat a no-op; --force scores again.
    again = score_json(migrated_db_url, "--job", "people", "--source", "people_new", "--run-key", "new-1")
    assert again["reused"] and again["run_id"] == scored["run_id"]
    forced = score_json(migrated_db_url, "--job", "people", "--source", "people_new", "--run-key", "new-1", "--force")
    assert not forced["reused"] and forced["run_id"] > scored["run_id"]


def test_dbscan_model_scores_to_the_nearest_real_segment(mall_url):
    fit = run_json(
        mall_url, "--source", "mall", "--id", MALL_ID, "--features", f"{INCOME},{SPENDING}", "--algorithm", "dbscan"
    )
    fitted = assignments(mall_url, fit["run_id"])
    assert any(segment == 0 for segment, _, _ in fitted.values())  # the model has outliers
    scored = score_json(mall_url, "--job", "mall", "--source", "mall")
    got = assignments(mall_url, scored["run_id"])
    frame = pd.DataFrame(query(mall_url, "SELECT * FROM mall"))
    expected = independent_assignment(mall_url, fit["run_id"], frame, MALL_ID)
    assert {key: segment for key, (segment, _, _) in got.items()} == {key: s for key, (s, _) in expected.items()}
    outliers = query(mall_url, "SELECT size FROM segment WHERE run_id = :r AND segment_id = 0", r=scored["run_id"])
    assert outliers == [{"size": 0}]


def test_gmm_model_scores_to_the_nearest_mean_without_probability(mall_url):
    fit = run_json(
        mall_url,
        "--source",
        "mall",
        "--id",
        MALL_ID,
        "--features",
        f"{INCOME},{SPENDING}",
        "--algorithm",
        "gmm",
        "--k",
        "4",
    )
    assert (
        query(mall_url, "SELECT COUNT(probability) AS n FROM assignment WHERE run_id = :r", r=fit["run_id"])[0]["n"]
        == 200
    )
    scored = score_json(mall_url, "--job", "mall", "--source", "mall")
    frame = pd.DataFrame(query(mall_url, "SELECT * FROM mall"))
    expected = independent_assignment(mall_url, fit["run_id"], frame, MALL_ID)
    got = assignments(mall_url, scored["run_id"])
    assert {key: segment for key, (segment, _, _) in got.items()} == {key: s for key, (s, _) in expected.items()}
    assert (
        query(mall_url, "SELECT COUNT(probability) AS n FROM assignment WHERE run_id = :r", r=scored["run_id"])[0]["n"]
        == 0
    )


def test_transactions_job_rebuilds_identical_features(migrated_db_url):
    engine = db.make_engine(migrated_db_url)
    try:
        load_tables(engine, make_transactions())
    finally:
        engine.dispose()
    fit = run_json(
        migrated_db_url,
        *TX_RUN,
        "--features",
        "recency,frequency,monetary_total,tenure",
        "--transform",
        "auto",
        "--k",
        "3",
    )
    scored = score_json(migrated_db_url, "--job", "tx")  # the model's transactions table and columns
    assert_same_assignments(migrated_db_url, fit["run_id"], scored["run_id"])
    assert_model_copied(migrated_db_url, fit["run_id"], scored["run_id"])

    specs = {
        row["run_id"]: (json.loads(row["spec"]) if isinstance(row["spec"], str) else row["spec"])
        for row in query(migrated_db_url, "SELECT run_id, spec FROM run")
    }
    fitted, rebuilt = specs[fit["run_id"]]["transaction_features"], specs[scored["run_id"]]["transaction_features"]
    assert rebuilt["as_of"] == fitted["as_of"] and rebuilt["features"] == fitted["features"]
    engine = db.make_engine(migrated_db_url)
    try:
        with engine.connect() as connection:
            # through the driver without parameters, as segjob runs it: the text holds a LIKE '%.0'
            # that a parameterised execute would read as a placeholder
            driver = connection.connection.driver_connection
            assert driver is not None
            frames = []
            for sql in (fitted["sql"], rebuilt["sql"]):
                cursor = driver.execute(sql)
                frames.append(pd.DataFrame(cursor.fetchall(), columns=[d[0] for d in cursor.description]))
            before, after = frames
    finally:
        engine.dispose()
    assert len(before) == fit["rows_read"] > 50
    pd.testing.assert_frame_equal(after, before)


def test_transactions_job_scores_a_new_table_as_of_a_date(migrated_db_url):
    transactions = make_transactions()
    engine = db.make_engine(migrated_db_url)
    try:
        load_tables(engine, transactions)
        later = transactions[transactions["customer_id"].str.startswith("00")].copy()
        later["ordered_at"] = later["ordered_at"] + pd.Timedelta(days=400)
        from test_transactions import amount_type

        create_table(
            engine,
            "tx_later",
            later,
            {"customer_id": sa.Text(), "ordered_at": sa.DateTime(), "amount": amount_type(engine)},
        )
    finally:
        engine.dispose()
    fit = run_json(migrated_db_url, *TX_RUN, "--features", "recency,frequency,monetary_total", "--k", "3")
    scored = score_json(migrated_db_url, "--job", "tx", "--transactions", "tx_later", "--as-of", "2025-12-31")
    spec = query(migrated_db_url, "SELECT spec FROM run WHERE run_id = :r", r=scored["run_id"])[0]["spec"]
    spec = json.loads(spec) if isinstance(spec, str) else spec
    assert spec["transactions"] == "tx_later" and spec["transaction_features"]["as_of"] == "2025-12-31"
    assert scored["model_run_id"] == fit["run_id"] and scored["rows_used"] > 0
    keys = assignments(migrated_db_url, scored["run_id"]).keys()
    assert keys and all(key.startswith("00") for key in keys)
    result = invoke(migrated_db_url, "score", "--job", "tx", "--source", "tx_later")
    assert result.exit_code == 2 and "builds its features from transactions" in result.stderr


def _no_score_run(url: str) -> None:
    assert query(url, "SELECT COUNT(*) AS n FROM run WHERE kind = 'score' AND status = 'succeeded'")[0]["n"] == 0


def test_bad_input_one_line_and_exit_code(migrated_db_url):
    url = migrated_db_url
    people = make_people(200, seed=5)
    load_people(url, "people", people)
    unknown_level = make_people(20, seed=6, prefix="U")
    unknown_level.loc[3, "region"] = "Atlantis"
    load_people(url, "people_atlantis", unknown_level)
    text_age = make_people(20, seed=7, prefix="T").astype({"age": object})
    text_age.loc[4, "age"] = "forty"
    engine = db.make_engine(url)
    try:
        create_table(engine, "people_text_age", text_age, {**PEOPLE_TYPES, "age": sa.Text()})
    finally:
        engine.dispose()

    result = invoke(url, "score", "--job", "people", "--source", "people")
    assert result.exit_code == 2 and "job 'people' has no runs" in one_error_line(result.stderr)

    failed = invoke(url, "run", *PEOPLE_RUN[:-1], "500")  # more segments than rows: the fit run fails
    assert failed.exit_code == 3
    result = invoke(url, "score", "--job", "people", "--source", "people")
    assert result.exit_code == 2 and "no succeeded fit run" in one_error_line(result.stderr)

    fit = run_json(url, *PEOPLE_RUN)
    cases = [
        (("--source", "people_atlantis"), 3, 'column "region" has 1 level(s) the model'),
        (("--source", "people_text_age"), 3, 'column "age" is not numeric'),
        (("--query", "SELECT person_id, spend, region FROM people"), 2, 'column "age" not found'),
        (("--source", "nowhere"), 2, 'table "nowhere" not found'),
        (("--source", "people", "--query", "SELECT * FROM people"), 2, "exactly one of --source TABLE or --query"),
        (("--source", "people", "--model-run", str(fit["run_id"] + 100)), 2, f"run {fit['run_id'] + 100} not found"),
        (("--source", "people", "--model-run", str(failed_run(url))), 2, "needs a succeeded fit run"),
        (("--source", "people", "--transactions", "people"), 2, "reads a table, not transactions"),
        (("--source", "people", "--as-of", "2024-01-01"), 2, "reads a table, not transactions"),
    ]
    for args, code, message in cases:
        result = invoke(url, "score", "--job", "people", *args)
        assert result.exit_code == code, (args, result.stderr)
        assert message in one_error_line(result.stderr), args
    _no_score_run(url)
    assert query(url, "SELECT COUNT(*) AS n FROM assignment WHERE run_id <> :r", r=fit["run_id"])[0]["n"] == 0


def failed_run(url: str) -> int:
    return query(url, "SELECT MIN(run_id) AS r FROM run WHERE status = 'failed'")[0]["r"]


class _SignalAt:
    """Progress that sends this process SIGTERM when a stage starts, like an orchestrator would."""

    def __init__(self, stage: str) -> None:
        self.stage_name = stage

    def stage(self, name: str, total: int | None = None) -> None:
        if name.startswith(self.stage_name):
            os.kill(os.getpid(), signal.SIGTERM)

    def rows(self, done: int) -> None:
        pass

    def done(self, summary: str) -> None:
        pass


@pytest.mark.parametrize("stage", ["scoring", "publishing"])
def test_sigterm_during_a_score_run_marks_it_failed(mall_url, stage):
    """The score run shares the fit run's lifecycle: a signal fails it and publishes nothing."""
    from segjob.errors import Interrupted
    from segjob.scoring.score import ScoreInput, score_job

    fit = run_json(mall_url, "--source", "mall", "--id", MALL_ID, "--features", f"Age,{INCOME}", "--k", "3")
    engine = db.make_engine(mall_url)
    try:
        with pytest.raises(Interrupted) as stopped:
            score_job(engine, "mall", ScoreInput(source="mall"), progress=_SignalAt(stage))
    finally:
        engine.dispose()
    assert stopped.value.exit_code == 143
    runs = query(mall_url, "SELECT run_id, kind, status, model_run_id, error FROM run ORDER BY run_id")
    assert [(r["kind"], r["status"]) for r in runs] == [("fit", "succeeded"), ("score", "failed")]
    assert runs[1]["model_run_id"] == fit["run_id"] and "SIGTERM" in runs[1]["error"]
    assert query(mall_url, "SELECT COUNT(*) AS n FROM assignment WHERE run_id = :r", r=runs[1]["run_id"])[0]["n"] == 0
    assert query(mall_url, "SELECT DISTINCT run_id FROM current_segment") == [{"run_id": fit["run_id"]}]
