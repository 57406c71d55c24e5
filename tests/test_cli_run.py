"""The whole job through the CLI, on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import json

import pytest
from helpers import INCOME, MALL_ID, SPENDING, invoke, query, run_json

MALL_RUN = ("--source", "mall", "--id", MALL_ID, "--features", f"{INCOME},{SPENDING}")


def test_run_chooses_k_and_publishes_every_table(mall_url):
    summary = run_json(mall_url, *MALL_RUN)
    assert summary["status"] == "succeeded"
    assert summary["job"] == "mall"
    assert summary["k"] == 5
    assert summary["silhouette"] == pytest.approx(0.554, abs=0.002)
    assert (summary["rows_read"], summary["rows_used"], summary["rows_dropped"]) == (200, 200, 0)
    for key in ("run_id", "davies_bouldin", "calinski_harabasz", "inertia"):
        assert summary[key] is not None
    run_id = summary["run_id"]

    sizes = [
        row["size"]
        for row in query(mall_url, "SELECT size FROM segment WHERE run_id = :r ORDER BY size DESC", r=run_id)
    ]
    assert sizes == [81, 39, 35, 23, 22]

    features = query(
        mall_url,
        "SELECT feature, kind, center, scale, mean, min, max FROM run_feature WHERE run_id = :r ORDER BY position",
        r=run_id,
    )
    assert [f["feature"] for f in features] == [INCOME, SPENDING]
    assert features[0]["min"] == 15 and features[0]["max"] == 137
    assert features[0]["center"] == pytest.approx(features[0]["mean"])

    sweep = query(mall_url, "SELECT k, name FROM run_metric WHERE run_id = :r AND k IS NOT NULL", r=run_id)
    assert {row["k"] for row in sweep} == set(range(2, 11))
    assert {row["name"] for row in sweep} >= {"inertia", "silhouette", "davies_bouldin", "calinski_harabasz"}

    assignments = query(
        mall_url,
        "SELECT customer_key, segment_id, distance, second_distance FROM assignment WHERE run_id = :r",
        r=run_id,
    )
    assert len(assignments) == 200
    assert {a["customer_key"] for a in assignments} == {str(i) for i in range(1, 201)}
    assert all(a["second_distance"] >= a["distance"] >= 0 for a in assignments)

    centroids = query(
        mall_url, "SELECT feature, centroid, centroid_scaled FROM segment_centroid WHERE run_id = :r", r=run_id
    )
    assert len(centroids) == 10
    incomes = sorted(c["centroid"] for c in centroids if c["feature"] == INCOME)
    assert 15 <= incomes[0] < incomes[-1] <= 137  # original units (k$), not z-scores


def test_views_follow_the_contract(mall_url):
    first = run_json(mall_url, *MALL_RUN)["run_id"]
    second = run_json(mall_url, *MALL_RUN, "--k", "4")["run_id"]

    current = query(
        mall_url, "SELECT job, run_id, customer_key, segment_id, segment_label, distance FROM current_segment"
    )
    assert len(current) == 200 and {row["run_id"] for row in current} == {second}
    assert all(row["segment_label"] for row in current)

    profile = query(
        mall_url,
        "SELECT job, run_id, segment_id, segment_label, size, share, feature, centroid, mean FROM segment_profile WHERE run_id = :r",
        r=first,
    )
    assert len(profile) == 5 * 2
    assert sum(share for _, share in {(p["segment_id"], p["share"]) for p in profile}) == pytest.approx(1.0)

    history = query(mall_url, "SELECT * FROM customer_segment_history WHERE customer_key = '1' ORDER BY run_id")
    assert [row["run_id"] for row in history] == [first, second]
    assert history[0]["previous_segment_id"] is None
    assert history[1]["previous_segment_id"] == history[0]["segment_id"]
    assert bool(history[1]["changed"]) == (history[1]["segment_id"] != history[0]["segment_id"])

    migration = query(mall_url, "SELECT * FROM segment_migration")
    assert {(row["from_run_id"], row["to_run_id"]) for row in migration} == {(first, second)}
    assert sum(row["customers"] for row in migration) == 200

    summaries = query(mall_url, "SELECT run_id, status, k FROM run_summary ORDER BY run_id")
    assert [(s["run_id"], s["status"], s["k"]) for s in summaries] == [
        (first, "succeeded", 5),
        (second, "succeeded", 4),
    ]


def test_same_input_and_seed_give_same_assignments(mall_url):
    first = run_json(mall_url, *MALL_RUN, "--k", "5", "--seed", "7")["run_id"]
    second = run_json(mall_url, *MALL_RUN, "--k", "5", "--seed", "7")["run_id"]
    rows = query(
        mall_url,
        "SELECT a.customer_key, a.segment_id AS s1, b.segment_id AS s2 FROM assignment a "
        "JOIN assignment b ON b.customer_key = a.customer_key AND b.run_id = :second WHERE a.run_id = :first",
        first=first,
        second=second,
    )
    assert len(rows) == 200 and all(row["s1"] == row["s2"] for row in rows)
    fingerprints = query(mall_url, "SELECT DISTINCT input_fingerprint FROM run")
    assert len(fingerprints) == 1


def test_categorical_and_config_file(mall_url, tmp_path):
    config = tmp_path / "job.toml"
    config.write_text(
        f'source = "mall"\nid = "{MALL_ID}"\nfeatures = ["Age", "{INCOME}"]\n'
        'categorical = ["Gender"]\nk = 3\njob = "mall-gender"\nscaler = "robust"\n'
    )
    summary = run_json(mall_url, "--config", str(config), "--seed", "3")
    assert summary["job"] == "mall-gender" and summary["k"] == 3
    features = query(
        mall_url,
        "SELECT feature, kind, level FROM run_feature WHERE run_id = :r ORDER BY position",
        r=summary["run_id"],
    )
    assert [(f["feature"], f["kind"], f["level"]) for f in features] == [
        ("Age", "numeric", None),
        (INCOME, "numeric", None),
        ("Gender=Female", "categorical", "Female"),
        ("Gender=Male", "categorical", "Male"),
    ]
    spec = query(mall_url, "SELECT spec FROM run WHERE run_id = :r", r=summary["run_id"])[0]["spec"]
    spec = json.loads(spec) if isinstance(spec, str) else spec
    assert spec["seed"] == 3 and spec["scaler"] == "robust" and spec["categorical"] == ["Gender"]


def test_query_source_runs_read_only(mall_url):
    summary = run_json(
        mall_url,
        "--query",
        'SELECT * FROM mall WHERE "Age" < 40',
        "--job",
        "young",
        "--id",
        MALL_ID,
        "--features",
        f"{INCOME},{SPENDING}",
        "--k",
        "3",
    )
    young = query(mall_url, 'SELECT COUNT(*) AS n FROM mall WHERE "Age" < 40')[0]["n"]
    assert summary["rows_used"] == young

    result = invoke(
        mall_url,
        "run",
        "--query",
        "DELETE FROM mall RETURNING *",
        "--job",
        "evil",
        "--id",
        MALL_ID,
        "--features",
        INCOME,
    )
    assert result.exit_code == 2
    assert query(mall_url, "SELECT COUNT(*) AS n FROM mall")[0]["n"] == 200


def test_missing_values_are_dropped_and_counted(migrated_db_url, data_dir):
    assert (
        invoke(migrated_db_url, "load-csv", str(data_dir / "telco_customer_churn.csv"), "--table", "telco").exit_code
        == 0
    )
    args = ("--source", "telco", "--id", "customerID", "--features", "tenure,MonthlyCharges,TotalCharges", "--k", "3")
    dropped = run_json(migrated_db_url, *args)
    assert (dropped["rows_read"], dropped["rows_used"], dropped["rows_dropped"]) == (7043, 7032, 11)
    reasons = query(migrated_db_url, "SELECT dropped_by_reason FROM run WHERE run_id = :r", r=dropped["run_id"])[0]
    reasons = reasons["dropped_by_reason"]
    assert (json.loads(reasons) if isinstance(reasons, str) else reasons) == {"missing_value": 11}

    imputed = run_json(migrated_db_url, *args, "--missing", "median")
    assert imputed["rows_used"] == 7043 and imputed["rows_dropped"] == 0
    total = query(
        migrated_db_url,
        "SELECT impute_value, missing_count FROM run_feature WHERE run_id = :r AND feature = 'TotalCharges'",
        r=imputed["run_id"],
    )[0]
    assert total["missing_count"] == 11 and total["impute_value"] > 0
    keys = query(
        migrated_db_url,
        "SELECT customer_key FROM assignment WHERE run_id = :r AND customer_key = '7590-VHVEG'",
        r=imputed["run_id"],
    )
    assert keys == [{"customer_key": "7590-VHVEG"}]


def test_runs_list_and_show(mall_url):
    run_id = run_json(mall_url, *MALL_RUN)["run_id"]
    listed = invoke(mall_url, "runs", "list", "--json")
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert [(row["run_id"], row["status"], row["k"]) for row in rows] == [(run_id, "succeeded", 5)]

    shown = invoke(mall_url, "runs", "show", str(run_id), "--json")
    details = json.loads(shown.stdout)
    assert [s["size"] for s in details["segments"]] == [81, 39, 35, 23, 22]
    assert len(details["k_sweep"]) == 9
    assert details["k_reason"].startswith("k=5")

    text = invoke(mall_url, "runs", "show", str(run_id)).stdout
    assert "K sweep" in text and INCOME in text and details["segments"][0]["label"] in text
    table = invoke(mall_url, "runs", "list", "--job", "mall").stdout
    assert "succeeded" in table
    assert invoke(mall_url, "runs", "show", "999").exit_code == 2


def test_run_key_makes_reruns_idempotent(mall_url):
    first = run_json(mall_url, *MALL_RUN, "--run-key", "2026-11-28")
    again = run_json(mall_url, *MALL_RUN, "--run-key", "2026-11-28")
    assert again["run_id"] == first["run_id"] and again["reused"] is True
    forced = run_json(mall_url, *MALL_RUN, "--run-key", "2026-11-28", "--force")
    assert forced["run_id"] != first["run_id"] and forced["reused"] is False
    assert query(mall_url, "SELECT COUNT(*) AS n FROM run")[0]["n"] == 2


def test_run_and_score_json_include_the_segments_in_original_units(mall_url):
    fitted = run_json(
        mall_url, "--source", "mall", "--id", "CustomerID", "--features", f"{INCOME},{SPENDING}", "--k", "5"
    )
    scored_result = invoke(mall_url, "score", "--job", "mall", "--source", "mall", "--json")
    assert scored_result.exit_code == 0, scored_result.stderr
    scored = json.loads(scored_result.stdout)
    for output in (fitted, scored):
        run_id = output["run_id"]
        profile = query(mall_url, "SELECT * FROM segment_profile WHERE run_id = :r", r=run_id)
        expected = {}
        for row in profile:
            segment = expected.setdefault(
                row["segment_id"],
                {
                    "segment_id": row["segment_id"],
                    "label": row["segment_label"],
                    "size": row["size"],
                    "share": row["share"],
                    "centroid": {},
                },
            )
            segment["centroid"][row["feature"]] = row["centroid"]
        assert output["segments"] == [expected[s] for s in sorted(expected)]
        assert [list(s["centroid"]) for s in output["segments"]] == [[INCOME, SPENDING]] * 5
        assert sum(s["size"] for s in output["segments"]) == 200
    # Original units: income centroids lie within the data's range (15..137 k$), not around 0.
    assert all(15 <= s["centroid"][INCOME] <= 137 for s in fitted["segments"])
