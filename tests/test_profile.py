"""profile(): sizes, original-unit centroids, z-scores and unique readable labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segjob.errors import UsageError
from segjob.model.fit import ModelResult, fit
from segjob.model.labels import column_words, marketer_words
from segjob.model.profile import profile
from segjob.prepare.columns import PreparedData, PrepareOptions, prepare

INCOME = "Annual Income (k$)"
SPENDING = "Spending Score (1-100)"


@pytest.fixture(scope="module")
def mall_run(data_dir):
    mall = pd.read_csv(data_dir / "mall_customers.csv")
    prepared = prepare(mall, "CustomerID", PrepareOptions(features=[INCOME, SPENDING]))
    model = fit(prepared.X, None, k_min=2, k_max=10, seed=0)
    return prepared, model, profile(prepared, model)


def segmented(points: list[tuple], sizes: list[int], categorical: dict[str, list] | None = None):
    """Prepared data whose segment s is `sizes[s]` copies of `points[s]`, and its model result."""
    names = [chr(ord("A") + j) for j in range(len(points[0]))]
    frame = pd.DataFrame(np.repeat(points, sizes, axis=0), columns=names)
    for column, values in (categorical or {}).items():
        frame[column] = np.repeat(values, sizes)
    frame.insert(0, "id", range(len(frame)))
    prepared = prepare(frame, "id", PrepareOptions(features=names, categorical=list(categorical or {})))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    centers = np.array([prepared.X[labels == s].mean(axis=0) for s in range(len(sizes))])
    model = ModelResult(
        k=len(sizes),
        labels=labels,
        centers=centers,
        distance=np.zeros(len(labels)),
        second_distance=np.zeros(len(labels)),
        metrics=[],
        k_reason="test",
    )
    return prepared, model


def labels_of(prepared: PreparedData, model: ModelResult) -> list[str]:
    return [s.label for s in profile(prepared, model).segments]


def test_mall_segments(mall_run):
    _, _, result = mall_run
    assert [(s.segment_id, s.size) for s in result.segments] == [(1, 81), (2, 39), (3, 35), (4, 23), (5, 22)]
    assert [s.label for s in result.segments] == [
        "Average",
        f"High {INCOME}, High {SPENDING}",
        f"High {INCOME}, Low {SPENDING}",
        f"Low {INCOME}, Low {SPENDING}",
        f"Low {INCOME}, High {SPENDING}",
    ]
    assert [s.share for s in result.segments] == [0.405, 0.195, 0.175, 0.115, 0.11]


def test_mall_centroids_are_in_original_units(mall_run):
    prepared, model, result = mall_run
    by_key = {(c.segment_id, c.feature): c for c in result.centroids}
    assert len(result.centroids) == 5 * 2
    rich_spenders = prepared.original[model.labels == 1]
    income = by_key[(2, INCOME)]
    assert income.centroid == pytest.approx(86.538, abs=1e-3)  # thousands of dollars
    assert income.mean == pytest.approx(rich_spenders[:, 0].mean())
    assert income.median == np.median(rich_spenders[:, 0])
    assert income.centroid_scaled == pytest.approx(model.centers[1, 0])
    assert income.z_score == pytest.approx((income.mean - 60.56) / prepared.original[:, 0].std())
    assert by_key[(2, SPENDING)].centroid == pytest.approx(82.128, abs=1e-3)


def test_centroid_is_center_plus_scale_times_scaled_centre():
    prepared, model = segmented([(1.0, 10.0), (3.0, 30.0), (8.0, 20.0)], [4, 3, 2])
    result = profile(prepared, model)
    for c in result.centroids:
        feature = next(f for f in prepared.features if f.name == c.feature)
        assert c.centroid == pytest.approx(feature.center + feature.scale * c.centroid_scaled)
        assert c.centroid == pytest.approx(c.mean)


def test_colliding_labels_get_the_feature_that_tells_them_apart():
    # Segments 1 and 2 are both high on A and B; only C (less prominent) separates them.
    c = 2.63
    points = [(3.0, 3.0, 1.5), (3.0, 3.0, -1.5), (-3.0, -3.0, c), (-3.0, -3.0, -c)]
    labels = labels_of(*segmented(points, [10, 10, 10, 10]))
    assert labels == ["High A, High B, High C", "High A, High B, Low C", "Low A, High C", "Low A, Low C"]


def test_identical_segments_are_told_apart_by_group_letters_not_segment_numbers():
    points = [(3.0, 1.0), (3.0, 1.0), (-3.0, -1.0)]
    labels = labels_of(*segmented(points, [10, 10, 20]))
    assert labels == ["High A, High B (group A)", "High A, High B (group B)", "Low A, Low B"]


def test_comparative_wording_separates_segments_only_when_needed():
    # A and C stand out most everywhere; B (z -0.3 or -0.9 in segments 1 to 4) only splits the pairs:
    # the higher of each pair is "Higher B" (it does not stand out in the population), the lower "Low B".
    points = [(3.0, 0.0, 3.0), (3.0, -1.5, 3.0), (-3.0, 1.5, -3.0), (-3.0, -1.5, -3.0), (0.0, 6.0, 0.0)]
    labels = labels_of(*segmented(points, [10, 10, 10, 10, 10]))
    assert labels == [
        "High A, Higher B, High C",
        "High A, Low B, High C",
        "Low A, Higher B, Low C",
        "Low A, Low B, Low C",
        "High B",
    ]


def test_over_represented_level_describes_a_segment():
    prepared, model = segmented(
        [(50.0,), (50.0,), (50.0,)], [10, 10, 20], categorical={"Gender": ["Female", "Male", "Other"]}
    )
    result = profile(prepared, model)
    assert [s.label for s in result.segments] == ["Gender: Female", "Gender: Male", "Gender: Other"]
    female = {c.feature: c for c in result.centroids if c.segment_id == 1}
    assert female["Gender=Female"].centroid == 1.0  # share of the level among members
    assert female["Gender=Male"].centroid == 0.0
    assert female["A"].z_score == 0.0  # A is constant: no spread to compare with


def test_nothing_stands_out():
    prepared, model = segmented([(0.1,), (-0.1,)], [10, 10])
    assert labels_of(prepared, model) == ["High A", "Low A"]
    # two segments with no differences at all
    prepared, model = segmented([(1.0, 1.0), (1.0, 1.0)], [5, 5])
    assert labels_of(prepared, model) == ["Average (group A)", "Average (group B)"]


# distinguishing features, user labels, noise, categorical shares


def test_mall_top_features(mall_run):
    _, _, result = mall_run
    top = {s.label: s.top_features for s in result.segments}
    assert top["Average"] == []
    assert top[f"High {INCOME}, Low {SPENDING}"] == [SPENDING, INCOME]  # spending stands out more
    assert all(len(features) <= 3 for features in top.values())
    for segment in result.segments:  # ordered by how far the segment is from the population
        z = {c.feature: abs(c.z_score) for c in result.centroids if c.segment_id == segment.segment_id}
        assert [z[name] for name in segment.top_features] == sorted((z[n] for n in segment.top_features), reverse=True)


def test_labels_override_automatic_ones(mall_run):
    prepared, model, _ = mall_run
    result = profile(prepared, model, {2: "Big spenders", 5: "Careful rich"})
    labels = [s.label for s in result.segments]
    assert labels == [
        "Average",
        "Big spenders",
        f"High {INCOME}, Low {SPENDING}",
        f"Low {INCOME}, Low {SPENDING}",
        "Careful rich",
    ]


def test_labels_for_unknown_segments_or_twice_the_same_label(mall_run):
    prepared, model, _ = mall_run
    with pytest.raises(UsageError) as info:
        profile(prepared, model, {2: "Big spenders", 7: "Ghosts", 0: "Noise"})
    assert str(info.value) == (
        "--labels names segment 0, 7, but this run has segments 1, 2, 3, 4, 5;"
        " see 'segjob runs show' for the segment ids"
    )
    with pytest.raises(UsageError) as info:
        profile(prepared, model, {3: "Average"})
    assert str(info.value) == (
        "with --labels, segments 1 and 3 would both be labelled 'Average'; labels must be unique within a run"
    )


def test_noise_is_segment_zero_labelled_outliers():
    prepared, model = segmented([(0.0, 0.0), (10.0, 0.0), (50.0, 50.0)], [20, 20, 2])
    noise = model.labels == 2
    model.labels = np.where(noise, -1, model.labels)
    model.noise_center, model.centers, model.k = model.centers[2], model.centers[:2], 2
    result = profile(prepared, model)
    assert [(s.segment_id, s.label, s.size) for s in result.segments] == [
        (0, "Outliers", 2),
        (1, "Low A", 20),
        (2, "Average", 20),
    ]
    assert sum(s.share for s in result.segments) == pytest.approx(1.0)
    outliers = {c.feature: c for c in result.centroids if c.segment_id == 0}
    assert outliers["A"].centroid == pytest.approx(50.0) and outliers["A"].z_score > 2
    assert result.segments[0].top_features == ["B", "A"]  # B: 0 -> 50 is further out than A: 10 -> 50
    assert profile(prepared, model, {0: "Odd ones"}).segments[0].label == "Odd ones"


def test_level_centroids_are_member_shares_for_every_algorithm():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "id": range(300),
            "x": np.r_[rng.normal(0, 1, 150), rng.normal(8, 1, 150)],
            "plan": rng.choice(["basic", "pro", "team"], size=300),
        }
    )
    prepared = prepare(frame, "id", PrepareOptions(features=["x"], categorical=["plan"]))
    for algorithm in ("gmm", "agglomerative", "minibatch-kmeans"):
        model = fit(prepared.X, 2, algorithm=algorithm)
        result = profile(prepared, model)
        for segment in result.segments:
            members = frame["plan"][model.labels == segment.segment_id - 1]
            shares = {c.feature: c.centroid for c in result.centroids if c.segment_id == segment.segment_id}
            for level in ("basic", "pro", "team"):
                assert shares[f"plan={level}"] == pytest.approx((members == level).mean())
            assert sum(shares[f"plan={level}"] for level in ("basic", "pro", "team")) == pytest.approx(1.0)


def test_vocabulary_puts_standout_features_into_domain_words():
    # recency high (long ago) + frequency low, a recent frequent big spender, and an average group
    prepared, model = segmented([(400, 1, 30), (5, 20, 3000), (100, 5, 200)], [40, 20, 40])
    prepared.features[0].name, prepared.features[1].name, prepared.features[2].name = (
        "recency",
        "frequency",
        "monetary_total",
    )
    assert labels_of(prepared, model) == [
        "High recency, Low frequency",
        "High frequency, High monetary_total",
        "Low recency",
    ]
    worded = [s.label for s in profile(prepared, model, vocabulary=marketer_words).segments]
    # the RFM personas: one purchase long ago, recent frequent big spenders, recent repeat buyers
    assert worded == ["Lost", "Champions", "Potential loyalists"]


def named(prepared: PreparedData, *names: str) -> PreparedData:
    for feature, name in zip(prepared.features, names):
        feature.name = name
    return prepared


def worded(prepared: PreparedData, model: ModelResult) -> list[str]:
    return [s.label for s in profile(prepared, model, vocabulary=column_words).segments]


def test_table_columns_read_like_a_marketer(mall_run):
    prepared, model = segmented([(400, 1, 30), (5, 20, 3000), (100, 5, 200)], [40, 20, 40])
    named(prepared, "recency_days", "frequency", "monetary")
    assert worded(prepared, model) == ["Lapsed, one-off", "Frequent, high spend", "Recent"]
    named(prepared, "days_since_last_order", "NumWebPurchases", "MntWines")
    assert worded(prepared, model) == ["Lapsed, few web purchases", "Many web purchases, high spend on wines", "Recent"]
    prepared, model, _ = mall_run
    assert worded(prepared, model) == [
        "Average",
        "High income, high spend",
        "High income, low spend",
        "Low income, low spend",
        "Low income, high spend",
    ]


def test_unknown_column_names_keep_generic_words():
    prepared, model = segmented([(3.0, 1.0), (-3.0, -1.0)], [10, 10])
    named(prepared, "plan_level", "Kidhome")
    assert worded(prepared, model) == ["High plan_level, High Kidhome", "Low plan_level, Low Kidhome"]
    named(prepared, "tenure", "Kidhome")
    assert worded(prepared, model) == ["Long-standing, High Kidhome", "New, Low Kidhome"]


def test_columns_with_the_same_words_keep_labels_unique():
    # orders and num_orders both read "Frequent": segments 1 and 2 fall back to the column names,
    # segment 3 (high on both) names the second one; identical segments get group letters.
    prepared, model = segmented([(20, 5), (5, 20), (20, 20), (5, 5), (5, 5)], [10, 10, 10, 100, 100])
    named(prepared, "orders", "num_orders")
    assert worded(prepared, model) == [
        "High orders",
        "High num_orders",
        "Frequent, High num_orders",
        "Average (group A)",
        "Average (group B)",
    ]
