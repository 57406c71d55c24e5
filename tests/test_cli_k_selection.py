"""K selection, algorithms, transforms and labels through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from helpers import INCOME, MALL_ID, SPENDING, invoke, query, run_json

MALL_RUN = ("--source", "mall", "--id", MALL_ID, "--features", f"{INCOME},{SPENDING}")
CRITERIA = (
    "silhouette_gain",
    "silhouette",
    "macro_silhouette",
    "gap",
    "elbow",
    "davies_bouldin",
    "calinski_harabasz",
    "stability",
)


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def test_mall_published_answer_with_every_criterion_recorded(mall_url):
    summary = run_json(mall_url, *MALL_RUN)
    assert (summary["k"], summary["algorithm"], summary["k_criterion"]) == (5, "kmeans", "silhouette-gain")
    explanation = summary["k_explanation"]
    assert (explanation["k"], explanation["rule"], explanation["runner_up_k"]) == (5, "silhouette-gain", 6)
    assert explanation["runner_up_margin"] == pytest.approx(0.031, abs=0.002)
    assert explanation["silhouette_gain"] == pytest.approx(0.216, abs=0.005) and explanation["warning"] is None
    assert explanation["chosen_k_by"]["silhouette-gain"] == 5 and explanation["chosen_k_by"]["silhouette"] == 5
    assert summary["silhouette"] == pytest.approx(0.554, abs=0.002)
    assert summary["stability"] > 0.9
    run_id = summary["run_id"]

    chosen = query(
        mall_url,
        "SELECT name, value FROM run_metric WHERE run_id = :r AND k IS NULL AND name LIKE 'chosen_k_by_%'",
        r=run_id,
    )
    chosen = {row["name"].removeprefix("chosen_k_by_"): row["value"] for row in chosen}
    assert set(chosen) == set(CRITERIA) and chosen["silhouette"] == 5 and chosen["elbow"] == 5
    sweep = query(
        mall_url,
        "SELECT k, sample_size FROM run_metric WHERE run_id = :r AND name = 'stability' AND k IS NOT NULL",
        r=run_id,
    )
    assert sorted(row["k"] for row in sweep) == list(range(2, 11)) and {row["sample_size"] for row in sweep} == {160}

    segments = query(
        mall_url, "SELECT segment_id, label, top_features FROM segment WHERE run_id = :r ORDER BY segment_id", r=run_id
    )
    assert [s["label"] for s in segments] == [
        "Average",
        "High income, high spend",
        "High income, low spend",
        "Low income, low spend",
        "Low income, high spend",
    ]
    assert _json(segments[0]["top_features"]) == []
    assert set(_json(segments[1]["top_features"])) == {INCOME, SPENDING}

    details = json.loads(invoke(mall_url, "runs", "show", str(run_id), "--json").stdout)
    assert details["chosen_k_by"]["silhouette"] == 5 and details["k_criterion"] == "silhouette-gain"
    assert details["k_explanation"] == explanation
    assert details["criteria_disagree"] == (len(set(chosen.values())) > 1)
    text = invoke(mall_url, "runs", "show", str(run_id)).stdout
    assert (
        "algorithm kmeans; k=5: largest silhouette gain over structureless data (0.216: silhouette 0.555,"
        " one blob 0.338) over k=2..10; runner-up k=6 (silhouette gain 0.186, 0.031 behind)"
    ) in " ".join(text.split())
    assert "silhouette-gain k=5 (used)" in text and "silhouette k=5," in text and "stability" in text
    assert "warning:" not in text
    assert ("criteria disagree" if details["criteria_disagree"] else "all criteria agree") in text


def test_min_segment_share_rejections(mall_url):
    summary = run_json(mall_url, *MALL_RUN, "--min-segment-share", "0.1")
    assert summary["k"] == 5
    rejected = query(
        mall_url, "SELECT k, smallest_share, reason FROM k_rejection WHERE run_id = :r ORDER BY k", r=summary["run_id"]
    )
    assert [row["k"] for row in rejected] == [6, 7, 8, 9, 10]
    assert all(row["smallest_share"] < 0.1 for row in rejected)
    assert rejected[0]["reason"].endswith("below --min-segment-share 10.0%")
    text = invoke(mall_url, "runs", "show", str(summary["run_id"])).stdout
    assert "rejected k=6: smallest segment has" in text

    failed = invoke(mall_url, "run", *MALL_RUN, "--k-min", "3", "--min-segment-share", "0.3", "--job", "picky")
    assert failed.exit_code == 3
    assert "Error: every candidate k=3..10 leaves a segment smaller than --min-segment-share 30.0%" in failed.stderr
    assert query(mall_url, "SELECT status FROM run WHERE job = 'picky'") == [{"status": "failed"}]


def test_gmm_probabilities_are_stored(mall_url):
    summary = run_json(mall_url, *MALL_RUN, "--algorithm", "gmm", "--k", "5")
    assert summary["algorithm"] == "gmm" and summary["k_criterion"] == "fixed"
    rows = query(mall_url, "SELECT probability FROM current_segment WHERE run_id = :r", r=summary["run_id"])
    assert len(rows) == 200 and all(0 < row["probability"] <= 1 for row in rows)
    kmeans = run_json(mall_url, *MALL_RUN, "--k", "5")
    assert query(mall_url, "SELECT DISTINCT probability FROM assignment WHERE run_id = :r", r=kmeans["run_id"]) == [
        {"probability": None}
    ]


def test_dbscan_outliers_are_segment_zero(mall_url):
    summary = run_json(mall_url, *MALL_RUN, "--algorithm", "dbscan", "--eps", "0.4")
    assert summary["k"] == 4 and summary["k_criterion"] == "dbscan"
    current = query(
        mall_url,
        "SELECT segment_id, segment_label, COUNT(*) AS n FROM current_segment GROUP BY segment_id, segment_label ORDER BY segment_id",
    )
    assert [row["segment_id"] for row in current] == [0, 1, 2, 3, 4]
    assert current[0]["segment_label"] == "Outliers" and current[0]["n"] == 15
    assert sum(row["n"] for row in current) == 200
    profile = query(
        mall_url,
        "SELECT segment_id, feature, centroid FROM segment_profile WHERE run_id = :r AND segment_id = 0",
        r=summary["run_id"],
    )
    assert len(profile) == 2
    text = invoke(mall_url, "runs", "show", str(summary["run_id"])).stdout
    assert "k=4: found by DBSCAN (eps 0.4 from --eps, min_samples 5); 15 rows are noise" in text

    # eps from the k-distance knee: one dense segment and two outliers, so no second centre
    single = run_json(mall_url, *MALL_RUN, "--algorithm", "dbscan", "--job", "knee")
    assert single["k"] == 1
    rows = query(mall_url, "SELECT segment_id, second_distance FROM assignment WHERE run_id = :r", r=single["run_id"])
    assert {row["second_distance"] for row in rows if row["segment_id"] == 1} == {None}
    assert all(row["second_distance"] > 0 for row in rows if row["segment_id"] == 0)

    wrong = invoke(mall_url, "run", *MALL_RUN, "--algorithm", "dbscan", "--k", "5")
    assert wrong.exit_code == 2
    assert "Error: --k does not apply to --algorithm dbscan" in wrong.stderr


def test_transforms_and_clipping_are_recorded(mall_url):
    summary = run_json(mall_url, *MALL_RUN, "--k", "5", "--transform", f"log1p:{INCOME}", "--clip-outliers", "2")
    features = query(
        mall_url,
        "SELECT feature, transform, skewness, clip_low, clip_high, clipped_count FROM run_feature WHERE run_id = :r ORDER BY position",
        r=summary["run_id"],
    )
    income, spending = features
    assert income["transform"] == "log1p" and spending["transform"] is None
    assert income["clip_low"] < 60.56 < income["clip_high"] < 137 and income["clipped_count"] > 0
    centroids = query(
        mall_url,
        "SELECT centroid FROM segment_centroid WHERE run_id = :r AND feature = :f",
        r=summary["run_id"],
        f=INCOME,
    )
    assert all(15 <= row["centroid"] <= 137 for row in centroids)  # thousands of dollars again
    text = invoke(mall_url, "runs", "show", str(summary["run_id"])).stdout
    assert f"transform: {INCOME} log1p" in text and f"clipped at mean +/- 2 std: {INCOME} to [" in text

    auto = run_json(mall_url, *MALL_RUN, "--k", "5", "--transform", "auto")
    # neither Mall feature is strongly skewed (0.32 and -0.05)
    assert query(mall_url, "SELECT DISTINCT transform FROM run_feature WHERE run_id = :r", r=auto["run_id"]) == [
        {"transform": None}
    ]
    # the far-out fences are stored (scoring clips new customers the same way) but move no Mall value
    fences = query(
        mall_url, "SELECT clip_low, clip_high, clipped_count FROM run_feature WHERE run_id = :r", r=auto["run_id"]
    )
    assert all(row["clip_low"] < 0 and row["clip_high"] > 137 and row["clipped_count"] == 0 for row in fences)
    assert "clipped" not in invoke(mall_url, "runs", "show", str(auto["run_id"])).stdout


def test_labels_file(mall_url, tmp_path):
    toml = tmp_path / "labels.toml"
    toml.write_text('2 = "Big spenders"\n5 = "Young and careless"\n')
    summary = run_json(mall_url, *MALL_RUN, "--labels", str(toml))
    labels = query(mall_url, "SELECT DISTINCT segment_id, segment_label FROM current_segment ORDER BY segment_id")
    assert labels[1] == {"segment_id": 2, "segment_label": "Big spenders"}
    assert labels[4] == {"segment_id": 5, "segment_label": "Young and careless"}
    assert labels[0]["segment_label"] == "Average"
    spec = _json(query(mall_url, "SELECT spec FROM run WHERE run_id = :r", r=summary["run_id"])[0]["spec"])
    assert spec["labels"] == {"2": "Big spenders", "5": "Young and careless"}

    as_json = tmp_path / "labels.json"
    as_json.write_text(json.dumps({"1": "Middle of the road"}))
    run_json(mall_url, *MALL_RUN, "--labels", str(as_json))
    assert query(mall_url, "SELECT DISTINCT segment_label FROM current_segment WHERE segment_id = 1") == [
        {"segment_label": "Middle of the road"}
    ]

    unknown = tmp_path / "unknown.toml"
    unknown.write_text('9 = "Ghosts"\n')
    result = invoke(mall_url, "run", *MALL_RUN, "--labels", str(unknown), "--job", "ghosts")
    assert result.exit_code == 2
    assert "Error: --labels names segment 9, but this run has segments 1, 2, 3, 4, 5" in result.stderr
    assert query(mall_url, "SELECT status FROM run WHERE job = 'ghosts'") == [{"status": "failed"}]

    broken = tmp_path / "broken.toml"
    broken.write_text("2 = Big spenders\n")
    result = invoke(mall_url, "run", *MALL_RUN, "--labels", str(broken), "--job", "broken")
    assert result.exit_code == 2 and f"Error: labels file {broken} is not valid TOML" in result.stderr
    not_ids = tmp_path / "names.json"
    not_ids.write_text('{"rich": "Big spenders"}')
    result = invoke(mall_url, "run", *MALL_RUN, "--labels", str(not_ids))
    assert result.exit_code == 2 and "'rich' is not a segment id (a whole number such as 1)" in result.stderr
    missing = invoke(mall_url, "run", *MALL_RUN, "--labels", str(tmp_path / "nope.toml"))
    assert missing.exit_code == 2 and "labels file not found" in missing.stderr
    assert query(mall_url, "SELECT COUNT(*) AS n FROM run WHERE job = 'broken'") == [{"n": 0}]  # refused up front
