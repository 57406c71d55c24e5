"""What a marketer reads first: one card per segment in plain words, from the run's stored profile.

Every comparison is with the customers of this run: the population mean of a feature is
run_feature.mean and a segment's is segment_centroid.mean, both in original units, so "3.1x the
average" means the average of these customers, not of a market. The mean of "the rest" (everyone
outside the segment) follows from the two and the sizes. No database here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from segjob.model.explain import MIN_SEGMENT_CUSTOMERS, plural
from segjob.model.profile import NOISE_SEGMENT_ID
from segjob.results.details import FeatureDetail, RunDetails, SegmentDetail

# A feature whose segment mean lies within this many population standard deviations of the mean
# does not set the segment apart; the strongest MOST_FEATURES beyond it are named.
STANDS_OUT_Z = 0.25
MOST_FEATURES = 3

# Purchase-history features (segjob.source.purchases.FEATURES): what their numbers are, in words.
_TRANSACTION_NOUNS = {
    "frequency": "purchase days",
    "monetary_total": "spend",
    "monetary_avg": "spend per purchase day",
    "tenure": "time as a customer",
    "interval_mean": "time between purchases",
    "interval_std": "variation in the time between purchases",
}


@dataclass(frozen=True)
class Difference:
    """One feature that sets a segment apart: its mean there, among all others and among everyone."""

    feature: str
    segment: float
    rest: float | None  # None when the segment holds every customer
    average: float
    share: bool  # a categorical level: the values are shares of customers


@dataclass(frozen=True)
class Card:
    segment_id: int
    label: str
    size: int
    share: float
    description: str  # one sentence
    differences: list[Difference]
    next_period: str | None  # purchase histories with a next period: what the segment did in it
    small: bool  # fewer than MIN_SEGMENT_CUSTOMERS: the run's warning names it, its card says so too


def number(value: Any, digits: int = 4) -> str:
    """A number as a person reads it: thousands separators, about `digits` significant digits."""
    if value is None:
        return ""
    if isinstance(value, int):
        return f"{value:,}"
    value = float(value)
    if value != value:
        return ""
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:,.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3g}"


def cards(details: RunDetails) -> list[Card]:
    """A card for each segment of run `details` (segjob.results.history.show_run)."""
    features = {f.feature: f for f in details.features}
    total = sum(s.size for s in details.segments)
    transaction_features = set((details.transaction_features or {}).get("features") or {})
    overall = _overall_next_period(details)
    result = []
    for s in details.segments:
        differences = _differences(s, features, total)
        noise = details.summary.algorithm == "dbscan" and s.segment_id == NOISE_SEGMENT_ID
        if noise:
            description = "Customers in no dense group (DBSCAN outliers): they have little in common."
        elif differences:
            phrases = [_phrase(d, features[d.feature], transaction_features) for d in differences]
            description = _sentence(phrases, differences[0].feature)
        else:
            description = "Close to the average customer on every feature."
        result.append(
            Card(
                segment_id=s.segment_id,
                label=s.label,
                size=s.size,
                share=s.share,
                description=description,
                differences=differences,
                next_period=_next_period(s, overall),
                small=s.size < MIN_SEGMENT_CUSTOMERS,
            )
        )
    return result


def relative_note(details: RunDetails) -> str:
    """What "high", "low" and "the average" are relative to (segments too small to say much get the
    run's small-segments warning, segjob.model.explain.small_segments_warning, above the cards)."""
    total = sum(s.size for s in details.segments)
    return (
        f"Words such as high and low, and every comparison with the average, describe these"
        f" {plural(total, 'customer')} against each other, not against any outside benchmark."
    )


def _differences(segment: SegmentDetail, features: dict[str, FeatureDetail], total: int) -> list[Difference]:
    """The features whose segment mean lies furthest from the population mean (stored z-score)."""
    apart = []
    for name, stats in segment.features.items():
        if name not in features or abs(stats.z_score) < STANDS_OUT_Z:
            continue
        apart.append((abs(stats.z_score), name, stats.mean))
    apart.sort(key=lambda item: -item[0])
    differences = []
    for _, name, mean in apart[:MOST_FEATURES]:
        average = features[name].mean
        others = total - segment.size
        rest = (average * total - mean * segment.size) / others if others > 0 else None
        differences.append(Difference(name, mean, rest, average, features[name].kind != "numeric"))
    return differences


def _phrase(difference: Difference, feature: FeatureDetail, transaction_features: set[str]) -> str:
    if difference.share:
        return (
            f"{difference.segment:.0%} with {feature.source_column} {feature.level}"
            f" (all customers: {difference.average:.0%})"
        )
    name = difference.feature
    if name in transaction_features and name == "recency":
        return (
            f"last bought {number(round(difference.segment))} days ago on average"
            f" (all customers: {number(round(difference.average))})"
        )
    noun = _TRANSACTION_NOUNS.get(name, name) if name in transaction_features else name
    return f"{noun} {_compared(difference.segment, difference.average, feature.min >= 0)}"


def _compared(value: float, average: float, non_negative: bool) -> str:
    """ "3.1x the average", "40% below the average", or a difference where a ratio means nothing."""
    if non_negative and average > 0:
        ratio = value / average
        if ratio >= 1.95:
            return f"{ratio:.0f}x the average" if ratio >= 9.5 else f"{ratio:.1f}x the average"
        if ratio >= 1.05:
            return f"{ratio - 1:.0%} above the average"
        if ratio > 0.95:
            return "about average"
        return f"{1 - ratio:.0%} below the average"
    gap = value - average
    return f"{number(abs(gap), 3)} {'above' if gap > 0 else 'below'} the average ({number(average, 3)})"


def _sentence(phrases: list[str], first_feature: str) -> str:
    """The phrases as one sentence; a feature's name keeps its case even where the sentence starts."""
    text = phrases[0] if len(phrases) == 1 else f"{', '.join(phrases[:-1])} and {phrases[-1]}"
    return f"{text}." if text.startswith(first_feature) else f"{text[0].upper()}{text[1:]}."


@dataclass(frozen=True)
class _NextPeriod:
    """All customers in the next period: purchase rate and spend per customer, from the segments'."""

    start: date
    end: date | None
    rate: float
    spend: float


def _overall_next_period(details: RunDetails) -> _NextPeriod | None:
    start = details.summary.validation_start
    if start is None:
        return None
    measured = [(s.size, s.next_purchase_rate, s.next_spend_mean) for s in details.segments]
    rated = [(size, rate, spend) for size, rate, spend in measured if rate is not None]
    customers = sum(size for size, _, _ in rated)
    if not customers:
        return None
    return _NextPeriod(
        start,
        details.summary.validation_end,
        rate=sum(size * rate for size, rate, _ in rated) / customers,
        spend=sum(size * (spend or 0.0) for size, _, spend in rated) / customers,
    )


def _next_period(segment: SegmentDetail, overall: _NextPeriod | None) -> str | None:
    rate = segment.next_purchase_rate
    if overall is None or rate is None:
        return None
    spend, revenue = segment.next_spend_mean, segment.next_revenue_share
    return (
        f"In the next period ({overall.start} to {overall.end}) {rate:.0%} bought again"
        f" (all customers: {overall.rate:.0%}), spending {number(spend)} per customer"
        f" (all: {number(overall.spend)})" + (f"; {revenue:.0%} of all revenue" if revenue is not None else "") + "."
    )
