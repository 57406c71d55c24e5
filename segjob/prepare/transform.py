"""Numeric transforms applied before scaling: winsorizing and log1p (--transform, --clip-outliers).

Order, per numeric feature: clip (original units), then log1p where asked (or, with `auto`, where
the values are non-negative and strongly right-skewed), then the scaler. The clip bounds are
mean +/- Z*std with --clip-outliers Z; with `--transform auto` and no --clip-outliers they are
Tukey's far-out fences of the log1p-transformed (or plain) values, quartiles -/+ FENCE_IQRS
interquartile ranges, never tighter than the FENCE_QUANTILE tails, taken back to original units.
Both are monotone, so every customer keeps its rank, and bounds are stored per feature, so scoring
clips new customers the same way. No database here: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segjob.errors import DataError

# Sample skewness above 1 is the usual rule of thumb for "highly skewed" (Bulmer, Principles of
# Statistics); spend-like features are typically 2-10, while Age or a 1-100 score is below 0.5.
AUTO_LOG1P_SKEWNESS = 1.0

LOG1P = "log1p"
# Far-out fences (Tukey 1977: beyond 3 IQR of the quartiles) keep a few extreme customers (an
# income of 666,666 among 50,000s) from taking a centroid of their own. Where most customers
# share one value (bought once: IQR 0) the fence would flatten the whole column, so it never
# cuts inside the 0.5% tails on either side.
FENCE_IQRS = 3.0
FENCE_QUANTILE = 0.005


@dataclass
class NumericTransform:
    """The numeric block as the scaler sees it, and what was done to each column to get there."""

    values: np.ndarray  # (rows, columns) after clipping and log1p
    log1p: np.ndarray  # (columns,) bool: log1p applied
    skewness: np.ndarray  # (columns,) sample skewness before log1p (with fences: within the 0.5% tails)
    clip_low: np.ndarray | None  # (columns,) bounds in original units; None without clipping
    clip_high: np.ndarray | None
    clipped: np.ndarray  # (columns,) values moved to a bound


def transform_numeric(
    values: np.ndarray,
    names: list[str],
    log1p_columns: list[str],
    auto_log1p: bool,
    clip_z: float | None,
    fence: bool = False,
) -> NumericTransform:
    """Clip (at mean +/- `clip_z` std, or at the far-out fences with `fence`) and log1p-transform
    the columns of `values` (finite floats).

    `log1p_columns` names the columns to transform; with `auto_log1p` every non-negative column
    whose skewness exceeds AUTO_LOG1P_SKEWNESS is transformed. Raises DataError when a column
    named for log1p holds negative values.
    """
    values = np.asarray(values, dtype=np.float64)
    clip_low = clip_high = None
    clipped = np.zeros(values.shape[1], dtype=np.int64)
    if clip_z is not None:
        with np.errstate(over="ignore", invalid="ignore"):  # extreme values are reported by the scaler
            mean, std = values.mean(axis=0), values.std(axis=0)
        clip_low, clip_high = mean - clip_z * std, mean + clip_z * std
        clipped = ((values < clip_low) | (values > clip_high)).sum(axis=0)
        values = np.clip(values, clip_low, clip_high)

    skew = skewness(_without_tails(values) if fence and clip_z is None else values)
    non_negative = (values >= 0).all(axis=0)
    log1p = np.array([name in log1p_columns for name in names], dtype=bool)
    for j in np.flatnonzero(log1p & ~non_negative):
        raise DataError(
            f'column "{names[j]}" has negative values (smallest {values[:, j].min():g}), so log1p'
            " cannot transform it; leave it out of --transform log1p:..."
        )
    if auto_log1p:
        log1p |= non_negative & (skew > AUTO_LOG1P_SKEWNESS)
    if fence and clip_z is None:
        transformed = _apply_log1p(values, log1p)
        fence_low, fence_high = far_out_fences(transformed)
        # Counted where the fences were drawn: back in original units a value on a fence may
        # differ from it in the last bit, and moving it that far changes nothing.
        clipped = ((transformed < fence_low) | (transformed > fence_high)).sum(axis=0)
        clip_low, clip_high = inverse_log1p(fence_low, log1p), inverse_log1p(fence_high, log1p)
        values = np.clip(values, clip_low, clip_high)
    return NumericTransform(_apply_log1p(values, log1p), log1p, skew, clip_low, clip_high, clipped)


def _without_tails(values: np.ndarray) -> np.ndarray:
    """Values clipped to their FENCE_QUANTILE tails: one income of 666,666 among 50,000s makes a
    symmetric column look wildly skewed, and a log would then squash every other customer."""
    if len(values) == 0:
        return values
    low, high = np.quantile(values, [FENCE_QUANTILE, 1 - FENCE_QUANTILE], axis=0)
    return np.clip(values, low, high)


def far_out_fences(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the far-out fences widened to the FENCE_QUANTILE tails (see FENCE_IQRS)."""
    low_tail, q1, q3, high_tail = np.quantile(values, [FENCE_QUANTILE, 0.25, 0.75, 1 - FENCE_QUANTILE], axis=0)
    iqr = q3 - q1
    return np.minimum(q1 - FENCE_IQRS * iqr, low_tail), np.maximum(q3 + FENCE_IQRS * iqr, high_tail)


def _apply_log1p(values: np.ndarray, log1p: np.ndarray) -> np.ndarray:
    return np.where(log1p, np.log1p(np.where(log1p, values, 0.0)), values)


def skewness(values: np.ndarray) -> np.ndarray:
    """Per column, the (biased) sample skewness m3 / m2^1.5; 0 for a constant column."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return np.zeros(values.shape[1])
    with np.errstate(over="ignore", invalid="ignore"):  # extreme values are reported by the scaler
        centred = values - values.mean(axis=0)
        m2 = (centred**2).mean(axis=0)
        m3 = (centred**3).mean(axis=0)
        # A column whose spread is lost in rounding counts as constant, not as wildly skewed.
        spread = m2 > (1e-12 * np.abs(values).max(axis=0)) ** 2
        skew = np.where(spread, m3 / np.where(spread, m2, 1.0) ** 1.5, 0.0)
    return np.where(np.isfinite(skew), skew, 0.0)


def inverse_log1p(values: np.ndarray, log1p: np.ndarray) -> np.ndarray:
    """Undo log1p on the flagged columns (model units before scaling -> original units)."""
    return np.where(log1p, np.expm1(np.where(log1p, values, 0.0)), values)
