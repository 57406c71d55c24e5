"""The steps that turn a source column into a model column, each in one place for all three paths.

A model column is built by a short list of steps (`prepare.columns.pipeline` builds it from a
run's stored `FeatureParams`): a numeric feature by Impute, then Clip and Log1p where fitted, then
Scale; a one-hot column by OneHot, then Scale. Every step knows how to

- fit itself (`fit`, over a block of columns at once: a column-by-column sum or median would not
  reproduce a fitted value to the last bit; Clip and Log1p are fitted together by
  `prepare.transform.transform_numeric`, since the fences depend on the log1p decision),
- apply itself to a numpy column (`apply`: whole columns, no Python per row), and
- write itself as SQL (`sql`) for a `SqlDialect`, which `segjob.store.dialect.Dialect` implements
  for PostgreSQL and SQLite: this package holds no database code, only the text, and
- undo itself where it can (`invert`: centroids back to original units).

`prepare.columns.prepare` fits the steps, `prepare.columns.apply_params` and
`scoring.sql.render` walk them. A new step is a class here, its fit in `prepare`, a line in
`pipeline` and a field of `FeatureParams` (a column of `run_feature`, so a migration);
tests/test_steps.py checks that the stored pipeline rebuilds the fit bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

import numpy as np

MissingPolicy = Literal["drop", "median", "mean"]
ScalerName = Literal["standard", "robust", "minmax", "none"]


class SqlDialect(Protocol):
    """The few things steps write differently per database (segjob.store.dialect.Dialect)."""

    def number(self, value: float) -> str:
        """An exact DOUBLE PRECISION literal."""
        ...

    def text(self, value: str) -> str:
        """A quoted text literal."""
        ...

    def is_usable(self, expr: str) -> str:
        """A condition: `expr` is a number, neither NULL, infinite nor NaN."""
        ...

    def least(self, *exprs: str) -> str: ...

    def greatest(self, *exprs: str) -> str: ...


class Step:
    """What every step offers; the defaults are those of a step that keeps every row."""

    # A transform toward model units (clipping, log1p, scaling): a column's values in original
    # units are those before its first transform.
    transforms: ClassVar[bool] = True
    # A cleaning step works on the source column before anything else, and may drop rows.
    cleans: ClassVar[bool] = False

    def apply(self, column: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The step applied to a whole column; written into `out` when given (which may be `column`)."""
        raise NotImplementedError

    def sql(self, expr: str, dialect: SqlDialect) -> str:
        raise NotImplementedError

    def invert(self, column: np.ndarray) -> np.ndarray:
        """Model units back toward original units; a step that cannot be undone (clipping) or
        needs no undoing keeps the values as they are."""
        return column

    def keeps(self, column: np.ndarray) -> np.ndarray | None:
        """Which rows of the source column this step keeps; None: every row."""
        return None

    def sql_keeps(self, expr: str, dialect: SqlDialect) -> str | None:
        """`keeps` as a SQL condition; None: every row."""
        return None


@dataclass(frozen=True)
class Impute(Step):
    """A missing or infinite value becomes `value`; without a value, such a row is dropped."""

    value: float | None
    transforms: ClassVar[bool] = False
    cleans: ClassVar[bool] = True

    @staticmethod
    def fit(values: np.ndarray, finite: np.ndarray, policy: MissingPolicy) -> list[Impute]:
        """One step per column of `values`: its median or mean over the `finite` cells, or (drop) none."""
        if policy == "drop":
            return [Impute(None)] * values.shape[1]
        known = np.where(finite, values, np.nan)
        with np.errstate(over="ignore"):  # an overflowing mean is reported by the scaler
            fill = np.nanmedian(known, axis=0) if policy == "median" else np.nanmean(known, axis=0)
        return [Impute(float(v)) for v in fill]

    def apply(self, column: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        result = column
        if self.value is not None:  # else the caller drops the rows `keeps` refuses
            finite = np.isfinite(column)
            if not finite.all():
                result = np.where(finite, column, self.value)
        return _into(out, result)

    def sql(self, expr: str, dialect: SqlDialect) -> str:
        if self.value is None:
            return expr
        return f"CASE WHEN {dialect.is_usable(expr)} THEN {expr} ELSE {dialect.number(self.value)} END"

    def keeps(self, column: np.ndarray) -> np.ndarray | None:
        return None if self.value is not None else np.isfinite(column)

    def sql_keeps(self, expr: str, dialect: SqlDialect) -> str | None:
        return None if self.value is not None else dialect.is_usable(expr)


@dataclass(frozen=True)
class Clip(Step):
    """Winsorize to [low, high] (original units); fitted by prepare.transform.transform_numeric."""

    low: float
    high: float

    def apply(self, column: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return np.clip(column, self.low, self.high, out=out)

    def sql(self, expr: str, dialect: SqlDialect) -> str:
        return dialect.least(dialect.greatest(expr, dialect.number(self.low)), dialect.number(self.high))


@dataclass(frozen=True)
class Log1p(Step):
    """log(1 + x); chosen per feature by prepare.transform.transform_numeric."""

    def apply(self, column: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return np.log1p(column, out=out)

    def sql(self, expr: str, dialect: SqlDialect) -> str:
        return f"LN(1 + {expr})"

    def invert(self, column: np.ndarray) -> np.ndarray:
        return np.expm1(column)


@dataclass(frozen=True)
class Scale(Step):
    """(x - center) / scale."""

    center: float
    scale: float

    @staticmethod
    def fit(model_input: np.ndarray, n_numeric: int, scaler: ScalerName) -> list[Scale]:
        """One step per column of `model_input`: its first `n_numeric` columns scaled by `scaler`,
        the others (one-hot) kept as they are. A center or scale may come out infinite or NaN for
        extreme values; the caller reports it."""
        n_columns = model_input.shape[1]
        center = np.zeros(n_columns)
        scale = np.ones(n_columns)
        numeric = model_input[:, :n_numeric]
        low, high, mean, std = column_stats(model_input)
        if scaler == "standard":
            center[:n_numeric], scale[:n_numeric] = mean[:n_numeric], std[:n_numeric]
        elif scaler == "robust":
            q25, median, q75 = np.percentile(numeric, [25, 50, 75], axis=0)
            center[:n_numeric], scale[:n_numeric] = median, q75 - q25
        elif scaler == "minmax":
            center[:n_numeric], scale[:n_numeric] = low[:n_numeric], (high - low)[:n_numeric]
        # No spread (a constant column, or a robust IQR of 0): scale 1 keeps the values finite,
        # and a constant column becomes zeros, which K-Means ignores.
        scale[scale == 0] = 1.0
        return [Scale(float(c), float(s)) for c, s in zip(center, scale)]

    def apply(self, column: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        result = np.subtract(column, self.center, out=out)
        result /= self.scale
        return result

    def sql(self, expr: str, dialect: SqlDialect) -> str:
        return f"({expr} - {dialect.number(self.center)}) / {dialect.number(self.scale)}"

    def invert(self, column: np.ndarray) -> np.ndarray:
        return self.center + self.scale * column


@dataclass(frozen=True)
class OneHot(Step):
    """1.0 where the text (missing: "(missing)") is `level`, else 0.0: one model column per level."""

    level: str
    transforms: ClassVar[bool] = False

    @staticmethod
    def fit(text: np.ndarray) -> list[OneHot]:
        """One step per distinct value of `text`, sorted."""
        return [OneHot(level) for level in sorted(set(text))]

    def apply(self, column: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return _into(out, (column == self.level).astype(np.float64))

    def sql(self, expr: str, dialect: SqlDialect) -> str:
        return f"CASE WHEN {expr} = {dialect.text(self.level)} THEN 1.0 ELSE 0.0 END"


def column_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per column min, max, mean and std."""
    low, high = values.min(axis=0), values.max(axis=0)
    constant = low == high
    # Set a constant column's statistics exactly: rounding in the mean of, say, 0.1 repeated
    # leaves a spread of ~1e-17 that would blow up into a +/-1 column and false z-scores.
    mean = np.where(constant, low, values.mean(axis=0))
    std = np.where(constant, 0.0, values.std(axis=0))
    return low, high, mean, std


def _into(out: np.ndarray | None, result: np.ndarray) -> np.ndarray:
    if out is None or out is result:
        return result
    out[...] = result
    return out
