"""Plain words for how k was chosen and what a run left out, shared by the model and source (which
decide) and the history and report (which read the stored numbers back). No numpy here: `segjob
runs show` imports it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Silhouette gain (the silhouette minus that of one Gaussian blob of the data's spread, at the
# same k) below which a run warns that its data has little cluster structure. Measured: a
# log-normal blob gains 0.000-0.005 at every k; Mall Customers 0.22 at k=5; the telco charges
# 0.16 at k=4; customers split in two real groups 0.10.
LITTLE_STRUCTURE_GAIN = 0.05


# Segments with fewer customers than this get a warning: their profile and label describe a
# handful of people (a 3-row table split 2 + 1 was labelled "High income, low spend"), and
# labels only compare segments with the other customers of the same run.
MIN_SEGMENT_CUSTOMERS = 10


def plural(count: int, noun: str) -> str:
    """'1 customer', '3 customers', '1,204 customers'."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def little_structure_warning(k: int, metrics: Mapping[str, float]) -> str | None:
    """The warning a run with k segments carries when they barely beat cuts through one blob, from
    its chosen-model metrics (silhouette and silhouette_gain); None when they do, or unmeasured."""
    silhouette, gain = metrics.get("silhouette"), metrics.get("silhouette_gain")
    if silhouette is None or gain is None or gain >= LITTLE_STRUCTURE_GAIN:
        return None
    comparison = f"only {gain:.3f} above" if gain > 0 else ("no better than" if gain == 0 else f"{-gain:.3f} below")
    return (
        f"little cluster structure: the silhouette of these {k} segments ({silhouette:.3f}) is {comparison}"
        f" that of {k} segments cut from one Gaussian blob of the same spread;"
        " the segments are ranges of one continuum, not distinct groups (try other features)"
    )


def small_segments_warning(sizes: list[int], rows: int | None) -> str | None:
    """The warning a run carries when a segment holds fewer than MIN_SEGMENT_CUSTOMERS customers."""
    small = sorted(size for size in sizes if size < MIN_SEGMENT_CUSTOMERS)
    if not small:
        return None
    counted = ", ".join(f"{size:,}" for size in small)
    among = f" among {plural(rows, 'customer')}" if rows else ""
    return (
        f"small segments: {plural(len(small), 'segment')} of fewer than {MIN_SEGMENT_CUSTOMERS} customers"
        f" ({counted}); their profiles describe a handful of people, and labels only compare segments{among}"
        " of this run (use more rows or a smaller k)"
    )


def left_out(definitions: dict[str, Any] | None) -> dict[str, int] | None:
    """What a purchase-history run's stored definitions say it left out, None for other runs:
    transactions without a customer and customers with only returns or zero amounts."""
    counts = (definitions or {}).get("counts")
    if counts is None:
        return None
    return {
        "transactions_without_customer": int(counts.get("rows_without_customer") or 0),
        "customers_without_purchase": int(counts.get("customers_without_purchase") or 0),
    }


def left_out_text(definitions: dict[str, Any] | None) -> str | None:
    """`left_out` in words for `runs show` and the report."""
    counts = left_out(definitions)
    if counts is None:
        return None
    return (
        f"{counts['transactions_without_customer']:,} transactions without a customer and"
        f" {counts['customers_without_purchase']:,} customers with only returns or zero amounts left out"
    )
