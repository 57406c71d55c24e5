"""prepare(): ids, numeric parsing, missing values, one-hot columns and scaling, without a database."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from segjob.errors import DataError, UsageError
from segjob.prepare.columns import MAX_CATEGORICAL_LEVELS, PrepareOptions, apply_params, is_blank, prepare

INCOME = "Annual Income (k$)"
SPENDING = "Spending Score (1-100)"


def options(features, **kwargs) -> PrepareOptions:
    return PrepareOptions(features=list(features), **kwargs)


@pytest.fixture(scope="module")
def mall(data_dir) -> pd.DataFrame:
    return pd.read_csv(data_dir / "mall_customers.csv")


@pytest.fixture(scope="module")
def telco(data_dir) -> pd.DataFrame:
    # Everything as text, the way a TEXT column in a database hands it over.
    return pd.read_csv(data_dir / "telco_customer_churn.csv", dtype=str, keep_default_na=False)


# ids


@pytest.mark.parametrize(
    "ids, expected",
    [
        ([7, 8, 9], ["7", "8", "9"]),
        ([7.0, 8.0, 9.0], ["7", "8", "9"]),
        (["007", "08", "A-9"], ["007", "08", "A-9"]),
        (pd.Series([7, "007", 8.0, 9.5], dtype=object), ["7", "007", "8", "9.5"]),
    ],
)
def test_keys_are_the_ids_as_text(ids, expected):
    frame = pd.DataFrame({"id": ids, "x": np.arange(len(expected), dtype=float)})
    prepared = prepare(frame, "id", options(["x"]))
    assert list(prepared.keys) == expected
    assert all(isinstance(key, str) for key in prepared.keys)


def test_rows_without_an_id_are_dropped():
    frame = pd.DataFrame({"id": pd.Series(["a", None, " ", "", "b"], dtype=object), "x": [1.0, 2.0, 3.0, 4.0, 5.0]})
    prepared = prepare(frame, "id", options(["x"]))
    assert list(prepared.keys) == ["a", "b"]
    assert prepared.dropped == {"missing_id": 3}
    assert prepared.rows_read == 5 and prepared.rows_used == 2 and prepared.rows_dropped == 3


def test_integer_ids_with_nulls_keep_their_integer_text():
    frame = pd.DataFrame({"id": [7, None, 12345678901], "x": [1.0, 2.0, 3.0]})  # becomes float64
    assert list(prepare(frame, "id", options(["x"])).keys) == ["7", "12345678901"]


def test_duplicate_ids_are_refused(mall):
    frame = pd.concat([mall, mall.iloc[[41, 41, 9, 20]]])
    with pytest.raises(DataError) as info:
        prepare(frame, "CustomerID", options([INCOME]))
    assert str(info.value) == (
        'duplicate customer ids in column "CustomerID": 3 ids appear more than once'
        ' (for example "42" appears 3 times); ids must be unique'
    )


# numeric parsing


def test_text_column_is_not_numeric(mall):
    with pytest.raises(DataError) as info:
        prepare(mall, "CustomerID", options(["Gender"]))
    assert str(info.value) == (
        'column "Gender" is not numeric: 200 of 200 values cannot be read as numbers'
        ' (for example "Male"); list it under --categorical or choose another feature'
    )


def test_telco_numbers_stored_as_text(telco):
    features = ["tenure", "MonthlyCharges", "TotalCharges"]
    blank = telco["TotalCharges"].str.strip() == ""
    assert blank.sum() == 11  # new customers: TotalCharges is " "

    prepared = prepare(telco, "customerID", options(features))

    assert prepared.dropped == {"missing_value": 11}
    assert prepared.rows_used == len(telco) - 11
    assert set(prepared.keys).isdisjoint(telco.loc[blank, "customerID"])
    first = list(prepared.keys).index("5575-GNVDE")
    assert prepared.original[first].tolist() == [34.0, 56.95, 1889.5]
    assert prepared.features[2].missing_count == 11


def test_telco_blanks_imputed_with_median(telco):
    rows = telco.iloc[:60]  # includes row 488, the first blank TotalCharges
    rows = pd.concat([rows, telco[telco["TotalCharges"].str.strip() == ""].iloc[:2]])
    prepared = prepare(rows, "customerID", options(["TotalCharges"], missing="median"))
    known = rows["TotalCharges"][rows["TotalCharges"].str.strip() != ""].astype(float)
    assert prepared.rows_used == len(rows)
    assert prepared.dropped == {}
    assert prepared.features[0].impute_value == pytest.approx(known.median())
    assert prepared.features[0].missing_count == 2


def test_booleans_decimals_and_padded_text_are_numbers():
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "flag": [True, False, True],
            "flag_with_null": pd.Series([True, None, False], dtype=object),
            "amount": pd.Series([Decimal("29.85"), " 3.5 ", 4], dtype=object),
        }
    )
    prepared = prepare(frame, "id", options(["flag", "flag_with_null", "amount"], missing="mean"))
    assert prepared.original.tolist() == [[1.0, 1.0, 29.85], [0.0, 0.5, 3.5], [1.0, 0.0, 4.0]]
    assert prepared.original.dtype == np.float64


def test_dates_are_not_numbers():
    frame = pd.DataFrame({"id": [1, 2], "joined": pd.to_datetime(["2012-09-04", "2014-03-08"])})
    with pytest.raises(DataError, match=r'^column "joined" holds dates or times, not numbers; '):
        prepare(frame, "id", options(["joined"]))


# missing values


def test_drop_reasons_count_each_row_once_in_order():
    inf = float("inf")
    frame = pd.DataFrame(
        {
            "id": ["a", None, "c", "d", "e", "f"],
            "x": [1.0, None, inf, None, 5.0, 6.0],
            "y": [1.0, 2.0, None, 4.0, -inf, 6.0],
        }
    )
    prepared = prepare(frame, "id", options(["x", "y"]))
    assert list(prepared.keys) == ["a", "f"]
    assert prepared.dropped == {"missing_id": 1, "non_finite_value": 2, "missing_value": 1}
    assert [f.missing_count for f in prepared.features] == [2, 2]  # among rows with an id
    assert [f.impute_value for f in prepared.features] == [None, None]


@pytest.mark.parametrize("policy, expected", [("median", 2.0), ("mean", 13 / 3)])
def test_imputation_fills_missing_and_infinite_cells(policy, expected):
    frame = pd.DataFrame({"id": [1, 2, 3, 4, 5], "x": [1.0, 2.0, None, 10.0, float("inf")]})
    prepared = prepare(frame, "id", options(["x"], missing=policy))
    feature = prepared.features[0]
    assert feature.impute_value == pytest.approx(expected)
    assert feature.missing_count == 2
    assert prepared.dropped == {}
    assert prepared.original[:, 0].tolist() == pytest.approx([1.0, 2.0, expected, 10.0, expected])
    # statistics are over the imputed values, in original units
    assert feature.mean == pytest.approx(prepared.original[:, 0].mean())


@pytest.mark.parametrize("policy", ["drop", "median", "mean"])
def test_entirely_missing_feature_is_named(policy):
    frame = pd.DataFrame({"id": [1, 2, 3], "x": [1.0, 2.0, 3.0], "Empty col": [None, " ", None]})
    with pytest.raises(DataError) as info:
        prepare(frame, "id", options(["x", "Empty col"], missing=policy))
    assert str(info.value) == (
        'column "Empty col" has no usable values: all 3 values are missing or infinite; choose another feature'
    )


def test_no_usable_rows_suggests_imputation():
    frame = pd.DataFrame({"id": [1, 2, 3], "x": [1.0, None, 3.0], "y": [None, 2.0, None]})
    with pytest.raises(DataError) as info:
        prepare(frame, "id", options(["x", "y"]))
    assert str(info.value) == (
        "no usable rows: 0 of 3 rows remain after dropping rows with missing values"
        " (missing_value: 3); try --missing median"
    )


def test_no_usable_rows_lists_every_reason():
    frame = pd.DataFrame({"id": [1, None, 3, 4], "x": [float("inf"), 1.0, None, 2.0], "y": [1.0, 1.0, 1.0, None]})
    with pytest.raises(DataError) as info:
        prepare(frame, "id", options(["x", "y"]))
    assert str(info.value) == (
        "no usable rows: 0 of 4 rows remain after dropping rows with missing ids, missing values"
        " or infinite values (missing_id: 1, non_finite_value: 1, missing_value: 2);"
        " try --missing median"
    )


def test_no_ids_at_all():
    frame = pd.DataFrame({"customer id": [None, None], "x": [1.0, 2.0]})
    with pytest.raises(
        DataError,
        match=r'^no usable rows: 0 of 2 rows .* missing ids \(missing_id: 2\); check the id column "customer id"$',
    ):
        prepare(frame, "customer id", options(["x"]))


def test_empty_input():
    frame = pd.DataFrame({"id": [], "x": []})
    with pytest.raises(DataError, match="^no usable rows: the input has no rows$"):
        prepare(frame, "id", options(["x"]))


def test_unknown_column_is_a_usage_error(mall):
    with pytest.raises(
        UsageError, match=r'^column "incme" not found in the input \(columns: CustomerID, Gender, Age, '
    ):
        prepare(mall, "CustomerID", options(["incme"]))


# categorical columns


def test_one_hot_columns_follow_the_numeric_ones():
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5],
            "b": [10.0, 20.0, 30.0, 40.0, 50.0],
            "a": [5.0, 4.0, 3.0, 2.0, 1.0],
            "Plan type": ["gold", "basic", None, "gold", " "],
            "Senior": [0, 1, 0, 0, 1],
        }
    )
    prepared = prepare(frame, "id", options(["b", "a"], categorical=["Plan type", "Senior"]))
    names = [f.name for f in prepared.features]
    assert names == ["b", "a", "Plan type=(missing)", "Plan type=basic", "Plan type=gold", "Senior=0", "Senior=1"]
    assert [f.kind for f in prepared.features] == ["numeric"] * 2 + ["categorical"] * 5
    assert [f.level for f in prepared.features[2:]] == ["(missing)", "basic", "gold", "0", "1"]
    assert {f.source_column for f in prepared.features[2:]} == {"Plan type", "Senior"}
    assert prepared.features[2].missing_count == 2
    assert prepared.original[:, :2].tolist() == frame[["b", "a"]].to_numpy().tolist()
    assert prepared.original[:, 2:5].tolist() == [[0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 1], [1, 0, 0]]
    # one-hot columns are not scaled, and their statistics are over 0/1
    assert np.array_equal(prepared.X[:, 2:], prepared.original[:, 2:])
    gold = prepared.features[4]
    assert (gold.center, gold.scale, gold.mean, gold.min, gold.max) == (0.0, 1.0, 0.4, 0.0, 1.0)
    assert gold.std == pytest.approx(np.sqrt(0.4 * 0.6))


def test_categorical_levels_come_from_the_rows_used():
    frame = pd.DataFrame({"id": [1, 2, 3], "x": [1.0, None, 3.0], "c": ["p", "q", "p"]})
    prepared = prepare(frame, "id", options(["x"], categorical=["c"]))
    assert [f.name for f in prepared.features] == ["x", "c=p"]


def test_too_many_levels_is_refused(telco):
    with pytest.raises(DataError) as info:
        prepare(telco.iloc[:100], "customerID", options(["tenure"], categorical=["TotalCharges"]))
    assert str(info.value) == (
        f'column "TotalCharges" has 100 distinct values, more than the {MAX_CATEGORICAL_LEVELS}'
        " a categorical column may have; it looks like an id or free text:"
        " leave it out of --categorical"
    )


def test_categorical_only():
    frame = pd.DataFrame({"id": [1, 2, 3], "c": ["x", "y", "x"]})
    prepared = prepare(frame, "id", options([], categorical=["c"]))
    assert prepared.X.tolist() == [[1, 0], [0, 1], [1, 0]]


# scaling


@pytest.mark.parametrize("scaler", ["standard", "robust", "minmax", "none"])
def test_scaling_round_trips_to_original_units(mall, scaler):
    features = ["Age", INCOME, SPENDING]
    prepared = prepare(mall, "CustomerID", options(features, categorical=["Gender"], scaler=scaler))
    center = np.array([f.center for f in prepared.features])
    scale = np.array([f.scale for f in prepared.features])
    np.testing.assert_allclose(center + scale * prepared.X, prepared.original, atol=1e-9)
    np.testing.assert_array_equal(prepared.original[:, :3], mall[features].to_numpy(dtype=float))
    for j, name in enumerate(features):
        values = mall[name].to_numpy(dtype=float)
        feature = prepared.features[j]
        assert (feature.mean, feature.min, feature.max) == pytest.approx((values.mean(), values.min(), values.max()))
        assert feature.std == pytest.approx(values.std(ddof=0))
        expected = {
            "standard": (values.mean(), values.std(ddof=0)),
            "robust": (np.median(values), np.percentile(values, 75) - np.percentile(values, 25)),
            "minmax": (values.min(), values.max() - values.min()),
            "none": (0.0, 1.0),
        }[scaler]
        assert (feature.center, feature.scale) == pytest.approx(expected)
    assert np.isfinite(prepared.X).all() and prepared.X.dtype == np.float64


def test_standard_scaling_gives_zero_mean_unit_variance(mall):
    X = prepare(mall, "CustomerID", options([INCOME, SPENDING])).X
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(X.std(axis=0), 1)


@pytest.mark.parametrize("scaler", ["standard", "robust", "minmax"])
def test_constant_column_becomes_zeros(scaler):
    # 0.1 is not exact in binary: its mean over many rows is off by ~1e-17, its std is not 0
    frame = pd.DataFrame({"id": range(1000), "x": np.arange(1000.0), "const": [0.1] * 1000})
    prepared = prepare(frame, "id", options(["x", "const"], scaler=scaler))
    const = prepared.features[1]
    assert (const.scale, const.mean, const.std, const.min, const.max) == (1.0, 0.1, 0.0, 0.1, 0.1)
    assert prepared.X[:, 1].tolist() == [0.0] * 1000


def test_values_too_large_to_scale():
    frame = pd.DataFrame({"id": [1, 2, 3], "x": [1.0, 2.0, 3.0], "huge": [1e300, -1e300, 5e299]})
    with pytest.raises(DataError) as info:
        prepare(frame, "id", options(["x", "huge"]))
    assert str(info.value) == (
        'column "huge" cannot be scaled: its values are too extreme in magnitude'
        " (largest absolute value 1e+300); rescale the column in the source"
    )


@pytest.mark.parametrize(
    "prepare_options",
    [
        options(
            ["tenure", "MonthlyCharges", "TotalCharges"],
            categorical=["Contract"],
            missing="median",
            auto_log1p=True,
            clip_z=3,
        ),
        options(
            ["tenure", "TotalCharges"],
            categorical=["Contract", "InternetService"],
            scaler="robust",
            log1p=["TotalCharges"],
        ),
        options(["MonthlyCharges", "TotalCharges"], missing="mean", scaler="minmax"),
    ],
    ids=["median-auto-clip", "drop-robust-log1p", "mean-minmax"],
)
def test_apply_params_rebuilds_the_fitted_columns_exactly(telco, prepare_options):
    fitted = prepare(telco, "customerID", prepare_options)
    rebuilt = apply_params(telco, "customerID", fitted.features)
    assert list(rebuilt.keys) == list(fitted.keys)
    assert np.array_equal(rebuilt.X, fitted.X)
    assert np.array_equal(rebuilt.original, fitted.original)
    assert rebuilt.dropped == fitted.dropped


def test_apply_params_on_new_rows_uses_stored_values_and_zeroes_unseen_levels(telco):
    fitted = prepare(
        telco, "customerID", options(["tenure", "TotalCharges"], categorical=["Contract"], missing="median")
    )
    new = pd.DataFrame(
        {
            "customerID": ["n1", "n2"],
            "tenure": ["10", ""],
            "TotalCharges": ["100", "5"],
            "Contract": ["Month-to-month", "Lifetime"],
        }
    )
    rebuilt = apply_params(new, "customerID", fitted.features)
    tenure = fitted.features[0]
    assert rebuilt.original[1, 0] == tenure.impute_value  # imputed with the stored median
    assert rebuilt.X[1, 0] == pytest.approx((tenure.impute_value - tenure.center) / tenure.scale)
    contract = [j for j, f in enumerate(fitted.features) if f.source_column == "Contract"]
    assert rebuilt.X[0, contract].sum() == 1.0
    assert rebuilt.X[1, contract].sum() == 0.0  # "Lifetime" was never seen


BLANK_OR_NOT = {
    "A-1": False,
    "": True,
    " ": True,
    "\t\n": True,
    " x": False,
    "\u00a0": True,
    "\u3000": True,
    "\u3000x": False,
    "é": False,
    "顧客": False,
    "-": False,
    "~": False,
    "\x7f": False,
    None: True,
}


@pytest.mark.parametrize("storage", ["pyarrow", "python"])
def test_blank_text_whatever_its_storage(storage):
    # Arrow-backed text (what every read gives) is checked on its bytes; a slice has an offset.
    text = pd.Series(pd.array(list(BLANK_OR_NOT), dtype=f"string[{storage}]"))[1:]
    assert is_blank(text).tolist() == list(BLANK_OR_NOT.values())[1:]


def test_rows_with_blank_ids_are_dropped_as_missing_ids():
    fitted = prepare(pd.DataFrame({"id": ["a", "b"], "x": [0.0, 1.0]}), "id", options(["x"])).features
    frame = pd.DataFrame({"id": list(BLANK_OR_NOT), "x": np.arange(len(BLANK_OR_NOT), dtype=float)})
    prepared = apply_params(frame, "id", fitted)
    assert list(prepared.keys) == [key for key, blank in BLANK_OR_NOT.items() if not blank]
    assert prepared.dropped == {"missing_id": sum(BLANK_OR_NOT.values())}
    assert prepared.X[:, 0].tolist() == [
        (x - fitted[0].center) / fitted[0].scale for x, blank in enumerate(BLANK_OR_NOT.values()) if not blank
    ]


@pytest.mark.parametrize("storage", ["pyarrow", "python"])
def test_id_length_is_measured_in_utf8_bytes(storage):
    fitted = prepare(pd.DataFrame({"id": ["a", "b"], "x": [0.0, 1.0]}), "id", options(["x"])).features
    fits = pd.DataFrame({"id": pd.array(["é" * 1000, "b"], dtype=f"string[{storage}]"), "x": [0.0, 1.0]})
    assert len(apply_params(fits, "id", fitted).keys) == 2
    too_long = pd.DataFrame({"id": pd.array(["é" * 1001, "b"], dtype=f"string[{storage}]"), "x": [0.0, 1.0]})
    with pytest.raises(DataError, match="longer than 2000 bytes \\(the longest has 2002\\)"):
        apply_params(too_long, "id", fitted)
