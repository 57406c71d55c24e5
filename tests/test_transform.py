"""--transform log1p/auto and --clip-outliers: prepare records them, profiles stay in original units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segjob.errors import DataError, UsageError
from segjob.model.fit import fit
from segjob.model.profile import profile
from segjob.prepare.columns import PrepareOptions, prepare, to_original_units
from segjob.prepare.transform import AUTO_LOG1P_SKEWNESS, skewness, transform_numeric


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    """Spend is log-normal (heavily right-skewed), age roughly symmetric, balance skewed but negative."""
    rng = np.random.default_rng(11)
    n = 2000
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "spend": np.round(rng.lognormal(mean=4.0, sigma=1.0, size=n), 2),
            "age": rng.normal(45, 12, size=n).round(),
            "balance": rng.lognormal(mean=3.0, sigma=1.0, size=n) - 30,
        }
    )


def by_name(prepared):
    return {f.name: f for f in prepared.features}


def test_skewness():
    assert skewness(np.array([[1.0], [2.0], [3.0]]))[0] == pytest.approx(0.0)
    assert skewness(np.array([[0.0], [0.0], [0.0], [10.0]]))[0] == pytest.approx(1.1547, abs=1e-4)
    assert skewness(np.array([[5.0], [5.0]]))[0] == 0.0  # constant


def test_auto_log1p_picks_skewed_non_negative_features(customers):
    prepared = prepare(customers, "id", PrepareOptions(["spend", "age", "balance"], auto_log1p=True))
    features = by_name(prepared)
    assert features["spend"].skewness > AUTO_LOG1P_SKEWNESS and features["spend"].transform == "log1p"
    assert abs(features["age"].skewness) < 0.5 and features["age"].transform is None
    # skewed too, but log1p is undefined below -1: left alone
    assert features["balance"].skewness > AUTO_LOG1P_SKEWNESS and features["balance"].transform is None
    # the scaler works on log1p(spend): standard scaling centres it on the mean of the logs
    assert features["spend"].center == pytest.approx(np.log1p(customers["spend"]).mean())
    # population statistics stay in dollars
    assert features["spend"].mean == pytest.approx(customers["spend"].mean())
    assert features["spend"].max == customers["spend"].max()
    np.testing.assert_array_equal(prepared.original[:, 0], customers["spend"])


def test_explicit_log1p(customers):
    prepared = prepare(customers, "id", PrepareOptions(["spend", "age"], log1p=["age"]))
    assert [f.transform for f in prepared.features] == [None, "log1p"]
    expected = np.log1p(customers["age"].to_numpy())
    np.testing.assert_allclose(prepared.X[:, 1], (expected - expected.mean()) / expected.std())


def test_log1p_errors(customers):
    with pytest.raises(DataError) as info:
        prepare(customers, "id", PrepareOptions(["spend", "balance"], log1p=["balance"]))
    assert str(info.value).startswith('column "balance" has negative values (smallest -')
    assert str(info.value).endswith("so log1p cannot transform it; leave it out of --transform log1p:...")
    with pytest.raises(
        UsageError, match=r"--transform log1p:age names a column that is not a numeric feature \(features: spend\)"
    ):
        prepare(customers, "id", PrepareOptions(["spend"], log1p=["age"]))


def test_clip_outliers_winsorizes_before_scaling(customers):
    prepared = prepare(customers, "id", PrepareOptions(["spend", "age"], clip_z=3.0))
    spend = customers["spend"].to_numpy()
    low, high = spend.mean() - 3 * spend.std(), spend.mean() + 3 * spend.std()
    features = by_name(prepared)
    assert features["spend"].clip_low == pytest.approx(low)
    assert features["spend"].clip_high == pytest.approx(high)
    assert features["spend"].clipped_count == int(((spend < low) | (spend > high)).sum()) > 0
    clipped = np.clip(spend, low, high)
    np.testing.assert_allclose(prepared.X[:, 0], (clipped - clipped.mean()) / clipped.std())
    assert features["spend"].mean == pytest.approx(spend.mean())  # raw values, not clipped ones
    assert prepare(customers, "id", PrepareOptions(["spend"])).features[0].clip_low is None


def test_clip_then_log1p_order():
    values = np.array([[1.0], [2.0], [3.0], [1000.0]])
    result = transform_numeric(values, ["x"], ["x"], False, clip_z=1.0)
    high = values.mean() + values.std()
    assert result.clip_high[0] == pytest.approx(high)
    np.testing.assert_allclose(result.values[:, 0], np.log1p([1.0, 2.0, 3.0, high]))


def test_centroids_come_back_in_original_units(customers):
    options = PrepareOptions(["spend", "age"], auto_log1p=True, clip_z=4.0)
    prepared = prepare(customers, "id", options)
    model = fit(prepared.X, 3, seed=0)
    result = profile(prepared, model)
    spend = customers["spend"].to_numpy()
    features = by_name(prepared)
    for segment in result.segments:
        members = model.labels == segment.segment_id - 1
        c = next(c for c in result.centroids if c.segment_id == segment.segment_id and c.feature == "spend")
        # the model centre is in scaled log dollars: unscale, then expm1
        scaled = model.centers[segment.segment_id - 1, 0]
        center, scale = features["spend"].center, features["spend"].scale
        assert c.centroid == pytest.approx(np.expm1(center + scale * scaled), rel=1e-12)
        # a K-Means centre is (nearly) the members' mean in model units, so in dollars it is about
        # expm1 of the mean of their clipped log-spend: well below the arithmetic mean of spend
        clipped = np.clip(spend[members], features["spend"].clip_low, features["spend"].clip_high)
        assert c.centroid == pytest.approx(np.expm1(np.log1p(clipped).mean()), rel=0.01)
        assert spend[members].min() <= c.centroid < c.mean <= spend[members].max()
        assert c.mean == pytest.approx(spend[members].mean())  # member means from the raw values
        assert c.median == pytest.approx(np.median(spend[members]))
    np.testing.assert_allclose(to_original_units(prepared.features, prepared.X[:5])[:, 1], customers["age"][:5])


def test_far_out_fences_pull_in_a_handful_of_extreme_values():
    rng = np.random.default_rng(0)
    income = rng.normal(50_000, 12_000, 2_000)
    income[7] = 666_666
    visits = np.where(rng.random(2_000) < 0.8, 1.0, rng.integers(2, 40, 2_000))  # most bought once: IQR 0
    result = transform_numeric(np.column_stack([income, visits]), ["income", "visits"], [], True, None, fence=True)
    assert result.log1p.tolist() == [False, True]  # visits is strongly skewed, income is not
    q1, q3 = np.quantile(income, [0.25, 0.75])
    assert result.clip_high[0] == pytest.approx(max(q3 + 3 * (q3 - q1), np.quantile(income, 0.995)))
    assert result.values[7, 0] == pytest.approx(result.clip_high[0]) and result.clip_high[0] < 120_000
    # visits: a fence of IQR 0 would flatten the column, so it stops at the 99.5% quantile
    assert result.clip_high[1] == pytest.approx(np.quantile(visits, 0.995))
    assert result.clipped.tolist()[1] <= 0.005 * len(visits) + 1
    assert np.unique(result.values[:, 1]).size > 10
    # monotone: every customer keeps its rank on every column
    for j in range(2):
        assert np.all(np.diff(result.values[np.argsort(np.column_stack([income, visits])[:, j]), j]) >= -1e-12)


def test_fences_are_the_default_and_transform_none_keeps_the_values(customers):
    auto = prepare(customers, "id", PrepareOptions(["spend", "age"], auto_log1p=True, fence=True))
    plain = prepare(customers, "id", PrepareOptions(["spend", "age"]))
    assert all(f.clip_low is not None and f.clip_high is not None for f in auto.features)
    assert all(f.clip_low is None for f in plain.features)
    np.testing.assert_allclose(auto.original, plain.original)  # profiles stay in original units
