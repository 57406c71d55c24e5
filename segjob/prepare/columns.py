"""Prepare stage: raw customer rows -> clean, scaled feature matrix plus the parameters to redo it.

No database here: takes a DataFrame, returns arrays. The steps that build each model column
(impute, clip, log1p, scale, one-hot) are defined once in segjob.prepare.steps: `prepare` fits
them, `pipeline` rebuilds them from a run's stored `FeatureParams`, and `apply_params` (and the
scoring SQL, segjob.scoring.sql) walk that list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypedDict

import numpy as np
import pandas as pd

from segjob.arrow_text import surely_not_blank, text_buffers
from segjob.errors import DataError, UsageError, did_you_mean
from segjob.prepare.steps import (
    Clip,
    Impute,
    Log1p,
    MissingPolicy,
    OneHot,
    Scale,
    ScalerName,
    Step,
    column_stats,
)
from segjob.prepare.transform import LOG1P, transform_numeric

# A categorical column with more levels than this is refused: one-hot encoding would add that many
# model columns, and such a column is usually an id or free text rather than a category.
MAX_CATEGORICAL_LEVELS = 50

MISSING_LEVEL = "(missing)"  # level given to a missing categorical value; such rows are kept

# Longest customer id, in UTF-8 bytes: assignment's primary key indexes the id, and a PostgreSQL
# btree entry must fit in about a third of an 8 kB page. Far above any real id.
MAX_KEY_BYTES = 2000

# Reasons a row is dropped (keys of PreparedData.dropped). A row with several problems is counted
# once, under the first of these that applies.
MISSING_ID = "missing_id"
NON_FINITE_VALUE = "non_finite_value"
MISSING_VALUE = "missing_value"


@dataclass(frozen=True)
class PrepareOptions:
    features: list[str]
    categorical: list[str] = field(default_factory=list)
    missing: MissingPolicy = "drop"
    scaler: ScalerName = "standard"
    log1p: list[str] = field(default_factory=list)  # numeric features to log1p-transform
    auto_log1p: bool = False  # also log1p every strongly right-skewed non-negative feature
    clip_z: float | None = None  # winsorize numeric features at mean +/- clip_z * std
    fence: bool = False  # without clip_z: winsorize at the far-out fences (segjob.prepare.transform)


@dataclass
class FeatureParams:
    """How one model column was built; enough to rebuild it for new rows without refitting."""

    name: str  # model column name: the source column, or "column=level" for a one-hot level
    kind: Literal["numeric", "categorical"]
    source_column: str
    level: str | None  # categorical level this one-hot column encodes
    impute_value: float | None  # value that replaced missing cells (None: rows were dropped instead)
    missing_count: int  # cells that were missing among the rows read
    center: float  # scaled = (transformed - center) / scale; see to_original_units
    scale: float
    mean: float  # population statistics over the rows used, original units
    std: float
    min: float
    max: float
    transform: str | None = None  # "log1p" when applied after clipping, before scaling
    skewness: float | None = None  # of the (clipped) values; drives --transform auto
    clip_low: float | None = None  # winsorizing bounds, original units (--clip-outliers or the fences)
    clip_high: float | None = None
    clipped_count: int | None = None  # values moved to a bound


@dataclass
class PreparedData:
    keys: pd.api.extensions.ExtensionArray  # customer keys: a pandas string array, one per used row
    X: np.ndarray  # (rows_used, n_features) float64, scaled
    original: np.ndarray  # (rows_used, n_features) float64, original units (one-hot as 0/1)
    features: list[FeatureParams]
    rows_read: int
    dropped: dict[str, int]  # reason -> rows dropped

    @property
    def rows_used(self) -> int:
        return len(self.keys)

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())

    def describe_rows(self, rows) -> str:
        """Customers of `rows` with the values that set them apart most (largest scaled value):
        'C17 (Income 666,666), C3 (MntWines 1,493; Recency 99)'."""
        described = []
        for row in rows:
            standing_out = np.argsort(-np.abs(self.X[row]))[:2]
            values = "; ".join(f"{self.features[j].name} {self.original[row, j]:,.6g}" for j in standing_out)
            described.append(f"{self.keys[row]} ({values})")
        return ", ".join(described)


def prepare(frame: pd.DataFrame, id_column: str, options: PrepareOptions) -> PreparedData:
    """Clean and scale the rows of `frame` (the id column, numeric features, categorical columns).

    Rows without an id are dropped. A missing or infinite numeric value drops its row or is
    imputed, as `options.missing` says; a missing categorical value becomes the level "(missing)".
    Numeric columns are scaled with `options.scaler`; one-hot columns stay 0/1.

    Raises DataError for duplicate ids, a feature that is not numeric or has no values, a
    categorical column with too many levels, values too extreme to scale, or no usable rows.
    """
    _check_columns(frame, id_column, options)
    rows_read = len(frame)

    ids = as_text(frame[id_column])
    has_id = ~is_blank(ids)
    dropped = {MISSING_ID: int((~has_id).sum())}
    frame, keys = frame.loc[has_id.to_numpy()], ids[has_id]
    if len(keys) == 0:
        raise DataError(_no_rows_message(rows_read, dropped, options.missing, id_column))
    _check_unique(keys, id_column)
    _check_key_length(keys, id_column)

    values = np.empty((len(frame), len(options.features)))
    for j, name in enumerate(options.features):
        values[:, j] = _parse_numeric(frame[name], name)
    finite = np.isfinite(values)
    for j, name in enumerate(options.features):
        if not finite[:, j].any():
            raise DataError(
                f'column "{name}" has no usable values: all {len(values)} values are missing'
                " or infinite; choose another feature"
            )
    missing_counts = (~finite).sum(axis=0)

    impute = Impute.fit(values, finite, options.missing)
    kept, non_finite_row = _clean(values, [[step] for step in impute])
    keep = np.ones(len(values), dtype=bool) if kept is None else kept
    dropped[NON_FINITE_VALUE] = int(non_finite_row.sum())
    dropped[MISSING_VALUE] = int((~keep & ~non_finite_row).sum())
    dropped = {reason: count for reason, count in dropped.items() if count > 0}
    if not keep.any():
        raise DataError(_no_rows_message(rows_read, dropped, options.missing, id_column))

    levels, one_hot, categorical_missing = _one_hot(frame, options.categorical, keep)
    original = np.column_stack([values[keep], one_hot])
    n_numeric = len(options.features)
    names = list(options.features) + [f"{column}={level}" for column, level in levels]
    numeric = transform_numeric(
        values[keep], options.features, options.log1p, options.auto_log1p, options.clip_z, options.fence
    )
    transforms: list[list[Step]] = [[] for _ in range(n_numeric)]
    if numeric.clip_low is not None and numeric.clip_high is not None:
        for j, (low, high) in enumerate(zip(numeric.clip_low, numeric.clip_high)):
            transforms[j].append(Clip(float(low), float(high)))
    for transformed in np.flatnonzero(numeric.log1p):
        transforms[transformed].append(Log1p())
    model_input = original.copy()  # row-major like `original`: the scaler's column means add up rows in order
    for j, steps in enumerate(transforms):
        _walk(steps, model_input[:, j], out=model_input[:, j])
    X, scalers, stats = _scale(model_input, original, n_numeric, options.scaler, names)

    features = [
        FeatureParams(
            name=name,
            kind="numeric",
            source_column=name,
            level=None,
            impute_value=impute[j].value,
            missing_count=int(missing_counts[j]),
            center=scalers[j].center,
            scale=scalers[j].scale,
            **stats[j],
            transform=LOG1P if numeric.log1p[j] else None,
            skewness=float(numeric.skewness[j]),
            clip_low=None if numeric.clip_low is None else float(numeric.clip_low[j]),
            clip_high=None if numeric.clip_high is None else float(numeric.clip_high[j]),
            clipped_count=None if numeric.clip_low is None else int(numeric.clipped[j]),
        )
        for j, name in enumerate(options.features)
    ]
    features += [
        FeatureParams(
            name=names[j],
            kind="categorical",
            source_column=column,
            level=level,
            impute_value=None,
            missing_count=categorical_missing[column],
            center=scalers[j].center,
            scale=scalers[j].scale,
            **stats[j],
        )
        for j, (column, level) in enumerate(levels, start=n_numeric)
    ]
    return PreparedData(
        keys=keys[keep].array,
        X=X,
        original=original,
        features=features,
        rows_read=rows_read,
        dropped=dropped,
    )


def apply_params(
    frame: pd.DataFrame, id_column: str, features: list[FeatureParams], check_unique: bool = True
) -> PreparedData:
    """Rebuild the model columns of new rows from a run's stored parameters, without refitting.

    Each column walks its stored `pipeline`, the steps `prepare` fitted: a numeric cell that is
    missing or infinite gets the stored impute value, or drops its row when the run dropped such
    rows; then clip, log1p and scale as stored. A categorical level the run never
    saw gives zeros in all of that column's one-hot columns. The returned `features` are the
    stored ones; population statistics are not recomputed. `check_unique=False` skips the
    duplicate-id check, for a caller that checks ids across chunks itself.
    """
    needed = [id_column, *dict.fromkeys(f.source_column for f in features)]
    missing_columns = [name for name in needed if name not in frame.columns]
    if missing_columns:
        available = ", ".join(str(c) for c in frame.columns)
        hint = did_you_mean(missing_columns[0], map(str, frame.columns))
        raise UsageError(f'column "{missing_columns[0]}" not found in the input (columns: {available}){hint}')
    rows_read = len(frame)
    keys = as_text(frame[id_column])
    has_id = ~is_blank(keys).to_numpy()
    dropped = {MISSING_ID: int(rows_read - has_id.sum())}
    if not has_id.all():
        frame, keys = frame.loc[has_id], keys[has_id]
    if check_unique:
        _check_unique(keys, id_column)
    _check_key_length(keys, id_column)

    # Column-major arrays: every step below works on whole columns, and so do the distances.
    pipelines = [pipeline(feature) for feature in features]
    numeric = [j for j, feature in enumerate(features) if feature.kind == "numeric"]
    values = np.empty((len(numeric), len(frame))).T
    for j, i in enumerate(numeric):
        values[:, j] = _parse_numeric(frame[features[i].source_column], features[i].source_column)
    keep, non_finite_row = _clean(values, [[step for step in pipelines[i] if step.cleans] for i in numeric])
    if keep is not None:
        dropped[NON_FINITE_VALUE] = int(non_finite_row.sum())
        dropped[MISSING_VALUE] = int((~keep & ~non_finite_row).sum())
        values = np.asfortranarray(values[keep])
        keys = keys[keep]

    inputs = {i: values[:, j] for j, i in enumerate(numeric)}
    levels: dict[str, np.ndarray] = {}
    original = np.empty((len(features), len(values))).T
    X = np.empty_like(original)
    for i, (feature, steps) in enumerate(zip(features, pipelines)):
        if feature.kind == "categorical" and feature.source_column not in levels:
            text = as_text(frame[feature.source_column])
            text = text.where(~is_blank(text), MISSING_LEVEL)
            levels[feature.source_column] = (text if keep is None else text[keep]).to_numpy()
        column = inputs[i] if feature.kind == "numeric" else levels[feature.source_column]
        original[:, i] = _walk([step for step in steps if not (step.cleans or step.transforms)], column)
        _walk([step for step in steps if step.transforms], original[:, i], out=X[:, i])
    return PreparedData(
        keys=keys.array,
        X=X,
        original=original,
        features=features,
        rows_read=rows_read,
        dropped={reason: count for reason, count in dropped.items() if count > 0},
    )


def pipeline(feature: FeatureParams) -> list[Step]:
    """The steps that build `feature`'s model column from its source column, in order, as stored."""
    if feature.kind == "categorical":
        assert feature.level is not None  # a one-hot column always encodes a level
        return [OneHot(feature.level), Scale(feature.center, feature.scale)]
    steps: list[Step] = [Impute(feature.impute_value)]
    if feature.clip_low is not None:
        assert feature.clip_high is not None  # the bounds are set together
        steps.append(Clip(feature.clip_low, feature.clip_high))
    if feature.transform == LOG1P:
        steps.append(Log1p())
    steps.append(Scale(feature.center, feature.scale))
    return steps


def _clean(values: np.ndarray, steps: Sequence[Sequence[Step]]) -> tuple[np.ndarray | None, np.ndarray]:
    """Apply each column's cleaning steps (`steps[j]` for column j) to `values` (rows x columns), in place.

    Returns the rows to keep (None: every row) and the dropped rows with an infinite value in a
    column whose step dropped it (the others were dropped for a missing value).
    """
    keep = None
    non_finite_row = np.zeros(len(values), dtype=bool)
    for j, column_steps in enumerate(steps):
        column = values[:, j]
        for step in column_steps:
            kept = step.keeps(column)
            if kept is not None and not kept.all():
                keep = kept if keep is None else keep & kept
                non_finite_row |= np.isinf(column) & ~kept
            step.apply(column, out=column)
    return keep, non_finite_row


def _walk(steps: list[Step], column: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """`column` through `steps`, in `out` when given (no temporary column per step)."""
    for step in steps:
        column = step.apply(column, out=out)
    if out is not None and column is not out:
        out[...] = column
    return column


def _check_columns(frame: pd.DataFrame, id_column: str, options: PrepareOptions) -> None:
    if not options.features and not options.categorical:
        raise UsageError("no features to segment on: give a numeric or categorical column")
    for name in [id_column, *options.features, *options.categorical]:
        if name not in frame.columns:
            available = ", ".join(str(c) for c in frame.columns)
            hint = did_you_mean(name, map(str, frame.columns))
            raise UsageError(f'column "{name}" not found in the input (columns: {available}){hint}')
    for name in options.features:
        if name in options.categorical:
            raise UsageError(f'column "{name}" is listed both as a feature and under --categorical')
    for name in options.log1p:
        if name not in options.features:
            raise UsageError(
                f"--transform log1p:{name} names a column that is not a numeric feature"
                f" (features: {', '.join(options.features)})"
            )


def as_text(column: pd.Series) -> pd.Series:
    """The values as text (pandas "string" dtype; missing values stay <NA>).

    Whole floats lose their ".0": an integer column that holds NULLs reaches pandas as floats,
    and id 7 must stay "7".
    """
    text = column.astype("string")
    if pd.api.types.is_float_dtype(column):
        numbers = column.astype("float64")
    elif column.dtype == object and pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty"):
        return text  # all text already (a PostgreSQL read casts ids to text): nothing to convert
    elif column.dtype == object:
        # Only the real floats in a mixed column: a string such as "007" keeps its text.
        is_float = column.apply(isinstance, args=(float,)).astype(bool)
        numbers = pd.to_numeric(column.where(is_float), errors="coerce").astype("float64")
    else:
        return text
    # Above 2**53 a float no longer holds a whole number exactly, so keep its own text.
    whole = np.isfinite(numbers) & (numbers == np.trunc(numbers)) & (numbers.abs() < 2**53)
    text[whole] = numbers[whole].astype("int64").astype("string")
    return text


def is_blank(text: pd.Series) -> pd.Series:
    """True where the text is missing or only whitespace."""
    buffers = text_buffers(text.array)
    if buffers is None:
        return _is_blank_by_stripping(text)
    offsets, data, valid = buffers
    unsure = ~surely_not_blank(offsets, data)  # most ids start with a letter or digit
    if valid is not None:
        unsure &= valid
    blank = np.zeros(len(text), dtype=bool) if valid is None else ~valid
    if unsure.any():
        blank[unsure] = _is_blank_by_stripping(text[unsure]).to_numpy()
    return pd.Series(blank, index=text.index)


def _is_blank_by_stripping(text: pd.Series) -> pd.Series:
    return (text.isna() | text.str.strip().eq("")).fillna(True).astype(bool)


def _check_unique(keys: pd.Series, id_column: str) -> None:
    repeated = keys[keys.duplicated()]
    if repeated.empty:
        return
    counts = keys[keys.isin(repeated)].value_counts()
    example = repeated.iloc[0]
    raise duplicate_ids_error(id_column, len(counts), example, int(counts[example]))


def duplicate_ids_error(id_column: str, repeated: int, example: str, times: int) -> DataError:
    """The error for ids that are not unique: how many repeat, and one of them with its count."""
    ids = "1 id appears" if repeated == 1 else f"{repeated} ids appear"
    return DataError(
        f'duplicate customer ids in column "{id_column}": {ids} more than once'
        f' (for example "{example}" appears {times} times); ids must be unique'
    )


def _check_key_length(keys: pd.Series, id_column: str) -> None:
    buffers = text_buffers(keys.array)
    lengths: np.ndarray | pd.Series
    if buffers is not None:
        lengths = np.diff(buffers[0])  # UTF-8 bytes already
    else:
        # A character takes at most 4 bytes in UTF-8: only longer ids need encoding to be measured.
        keys = keys[keys.str.len() > MAX_KEY_BYTES // 4]
        # pandas-stubs declare .str.len() for str only; pandas measures bytes (any sequence) too.
        lengths = keys.str.encode("utf-8").str.len()  # type: ignore[misc]
    too_long = lengths > MAX_KEY_BYTES
    if too_long.any():
        raise DataError(
            f'{int(too_long.sum())} customer ids in column "{id_column}" are longer than {MAX_KEY_BYTES} bytes'
            f" (the longest has {int(lengths.max())}); is it really the id column?"
        )


def _parse_numeric(column: pd.Series, name: str) -> np.ndarray:
    """The column as float64: NaN where missing, +/-inf kept so the caller can count them."""
    if pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column):
        raise DataError(
            f'column "{name}" holds dates or times, not numbers; derive a number from it'
            " (for example days since the date) or choose another feature"
        )
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return numbers
    text = column.astype("string").str.strip()
    # Blank text means missing: the Telco data stores " " as TotalCharges for new customers.
    blank = is_blank(text) | text.str.lower().eq("nan").fillna(False).astype(bool)
    unreadable = np.isnan(numbers) & ~blank.to_numpy()
    if unreadable.any():
        example = text[unreadable].iloc[0]
        raise DataError(
            f'column "{name}" is not numeric: {int(unreadable.sum())} of {len(column)} values'
            f' cannot be read as numbers (for example "{example}");'
            " list it under --categorical or choose another feature"
        )
    return numbers


def _no_rows_message(rows_read: int, dropped: dict[str, int], policy: MissingPolicy, id_column: str) -> str:
    if rows_read == 0:
        return "no usable rows: the input has no rows"
    words = {
        MISSING_ID: "missing ids",
        MISSING_VALUE: "missing values",
        NON_FINITE_VALUE: "infinite values",
    }
    problems = [words[reason] for reason in words if reason in dropped]
    described = problems[-1] if len(problems) == 1 else f"{', '.join(problems[:-1])} or {problems[-1]}"
    counts = ", ".join(f"{reason}: {count}" for reason, count in dropped.items())
    message = f"no usable rows: 0 of {rows_read} rows remain after dropping rows with {described}"
    message += f" ({counts})"
    if policy == "drop" and dropped.keys() != {MISSING_ID}:
        return message + "; try --missing median"
    return message + f'; check the id column "{id_column}"'


def _one_hot(
    frame: pd.DataFrame, columns: list[str], keep: np.ndarray
) -> tuple[list[tuple[str, str]], np.ndarray, dict[str, int]]:
    """One 0/1 column per level of each categorical column, over the kept rows.

    Returns the (column, level) of each output column, the matrix, and each column's count of
    missing values among all rows given (before `keep`).
    """
    levels: list[tuple[str, str]] = []
    blocks = []
    missing_counts = {}
    for column in columns:
        text = as_text(frame[column])
        blank = is_blank(text)
        missing_counts[column] = int(blank.sum())
        text = text.where(~blank, MISSING_LEVEL)[keep]
        column_levels = [step.level for step in OneHot.fit(text.unique())]
        if len(column_levels) > MAX_CATEGORICAL_LEVELS:
            raise DataError(
                f'column "{column}" has {len(column_levels)} distinct values, more than the'
                f" {MAX_CATEGORICAL_LEVELS} a categorical column may have; it looks like an id"
                " or free text: leave it out of --categorical"
            )
        codes = pd.Categorical(text, categories=column_levels).codes
        blocks.append((codes[:, None] == np.arange(len(column_levels))).astype(np.float64))
        levels += [(column, level) for level in column_levels]
    matrix = np.column_stack(blocks) if blocks else np.empty((int(keep.sum()), 0))
    return levels, matrix, missing_counts


class _Stats(TypedDict):
    """A model column's population statistics in original units (FeatureParams' fields of the same names)."""

    mean: float
    std: float
    min: float
    max: float


def _scale(
    model_input: np.ndarray, original: np.ndarray, n_numeric: int, scaler: ScalerName, names: list[str]
) -> tuple[np.ndarray, list[Scale], list[_Stats]]:
    """Fit and apply the Scale steps (see Scale.fit); one-hot columns keep center 0, scale 1.

    The scaler is fitted on `model_input` (after clipping and log1p); the population statistics
    returned are those of `original`. Returns X, the steps and each column's population
    mean/std/min/max in original units.
    """
    X = np.empty_like(model_input)
    with np.errstate(over="ignore", invalid="ignore"):
        low, high, mean, std = column_stats(original)
        scalers = Scale.fit(model_input, n_numeric, scaler)
        for j, step in enumerate(scalers):
            step.apply(model_input[:, j], out=X[:, j])

    usable = (
        np.isfinite(mean)
        & np.isfinite(std)
        & np.isfinite([step.center for step in scalers])
        & np.isfinite([step.scale for step in scalers])
        & np.isfinite(X).all(axis=0)
    )
    if not usable.all():
        j = int(np.argmin(usable))
        largest = float(np.abs(original[:, j]).max())
        raise DataError(
            f'column "{names[j]}" cannot be scaled: its values are too extreme in magnitude'
            f" (largest absolute value {largest:g}); rescale the column in the source"
        )
    stats: list[_Stats] = [
        {"mean": float(mean[j]), "std": float(std[j]), "min": float(low[j]), "max": float(high[j])}
        for j in range(len(scalers))
    ]
    return X, scalers, stats


def to_original_units(features: list[FeatureParams], scaled: np.ndarray) -> np.ndarray:
    """Points in scaled model units (rows) -> original units: unscale, then undo log1p.

    Clipping cannot be undone; a one-hot column comes back as a share between 0 and 1.
    """
    points = np.array(scaled, dtype=np.float64)  # a copy: the caller's points stay as they are
    for j, feature in enumerate(features):
        column = points[..., j]
        for step in reversed(pipeline(feature)):
            column = step.invert(column)
        points[..., j] = column
    return points
