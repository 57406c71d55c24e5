"""The report's segment cards and feature-preparation table from a run's stored numbers (no database):
plain words relative to these customers, the rest's means, the next period, honest clipping."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import date
from html import escape

import pytest

from segjob.model.explain import MIN_SEGMENT_CUSTOMERS, small_segments_warning
from segjob.report import html
from segjob.report.cards import cards, relative_note
from segjob.results.details import CentroidStats, FeatureDetail, KExplanation, RunDetails, RunSummary, SegmentDetail
from segjob.results.history import CRITERION_METRICS


def feature(name: str, mean: float, std: float, low: float, high: float, **extra) -> FeatureDetail:
    return FeatureDetail(
        **{
            **dict.fromkeys(f.name for f in fields(FeatureDetail)),
            **{"feature": name, "position": 0, "kind": "numeric", "source_column": name, "missing_count": 0},
            **{"center": mean, "scale": std, "mean": mean, "std": std, "min": low, "max": high, **extra},
        }
    )


def stats(mean: float, population: FeatureDetail) -> CentroidStats:
    return CentroidStats(mean, mean, mean, (mean - population.mean) / population.std)


SPEND = feature("spend", 100.0, 80.0, 0.0, 2000.0)
TEMPERATURE = feature("temperature", 2.0, 5.0, -20.0, 30.0)
VISITS = feature("visits", 10.0, 4.0, 0.0, 40.0)
LEVEL = replace(feature("plan=gold", 0.2, 0.4, 0.0, 1.0), kind="categorical", source_column="plan", level="gold")


def segment(segment_id: int, label: str, size: int, means: dict[str, float], **extra) -> dict:
    populations = {f.feature: f for f in (SPEND, TEMPERATURE, VISITS, LEVEL)}
    return {
        "segment_id": segment_id,
        "label": label,
        "size": size,
        "share": size / 1000,
        "top_features": [],
        "features": {name: stats(value, populations[name]) for name, value in means.items()},
        **extra,
    }


def details(segments: list[dict], k_explanation: dict | None = None, **extra) -> RunDetails:
    """A run of these segments (dicts of SegmentDetail's fields); `extra` sets the summary's fields
    and the details' own."""
    summary_fields = {f.name for f in fields(RunSummary)} - {"features"}  # features= sets the details'
    summary = RunSummary(
        **{
            **dict.fromkeys(f.name for f in fields(RunSummary)),
            **{"run_id": 7, "job": "shop", "kind": "fit", "status": "succeeded", "k": len(segments)},
            **{"algorithm": "kmeans", "candidate": False, "is_current": True},
            **{key: value for key, value in extra.items() if key in summary_fields},
        }
    )
    explanation = KExplanation(
        **{
            **dict.fromkeys(f.name for f in fields(KExplanation)),
            **{"chosen_k_by": {}, "no_answer": {}},
            **(k_explanation or {}),
        }
    )
    unset_segment = dict.fromkeys(f.name for f in fields(SegmentDetail))
    run = {
        **dict.fromkeys(f.name for f in fields(RunDetails)),
        **{"summary": summary, "k_explanation": explanation, "source": "table shop", "spec": {}},
        **{"k_sweep": [], "rejected_k": [], "model_metrics": {}, "features": [SPEND, TEMPERATURE, VISITS, LEVEL]},
        "segments": [SegmentDetail(**{**unset_segment, **s}) for s in segments],
    }
    return RunDetails(**{**run, **{key: value for key, value in extra.items() if key not in summary_fields}})


def test_a_card_says_what_sets_the_segment_apart_in_plain_words():
    # 200 big spenders and 800 others: population mean spend 100 = (200 * 300 + 800 * 50) / 1000.
    big = segment(1, "High spend", 200, {"spend": 300.0, "temperature": -4.0, "visits": 10.4, "plan=gold": 0.6})
    rest = segment(2, "Low spend", 800, {"spend": 50.0, "temperature": 3.5, "visits": 9.9, "plan=gold": 0.1})
    first, second = cards(details([big, rest]))
    # Strongest first (z 2.6, -1.2, 1.0): a ratio for amounts, a difference where values go below
    # zero, shares for a level; visits (0.1 sd from the mean) does not set the segment apart.
    assert first.description == (
        "spend 3.0x the average, temperature 6 below the average (2) and 60% with plan gold (all customers: 20%)."
    )
    assert [d.feature for d in first.differences] == ["spend", "temperature", "plan=gold"]
    spend = first.differences[0]
    assert (spend.segment, spend.average, spend.rest) == (300.0, 100.0, pytest.approx(50.0))
    assert first.differences[2].share and first.differences[2].rest == pytest.approx(0.1)
    assert second.description.startswith("spend 50% below the average, temperature 1.5 above the average (2)")
    assert (first.size, first.share, first.small) == (200, 0.2, False)
    assert first.next_period is None

    page = html.render(details([big, rest]), [], None, [])
    card = page[page.index('id="segment-1"') : page.index('id="segment-2"')]
    assert "<h3>1: High spend</h3>" in card and "200 customers &middot; 20.0% of all" in card
    assert "<tr><td>spend</td><td class='num'>300</td><td class='num'>50</td></tr>" in card
    assert "<tr><td>plan=gold</td><td class='num'>60%</td><td class='num'>10%</td></tr>" in card


def test_labels_are_relative_and_small_segments_say_so():
    tiny = segment(1, "High income, low spend", 1, {"spend": 10.0})
    pair = segment(2, "Low income", 2, {"spend": 145.0})
    assert relative_note(details([tiny, pair])) == (
        "Words such as high and low, and every comparison with the average, describe these 3 customers"
        " against each other, not against any outside benchmark."
    )
    # The run's small-segments warning (segjob.model.explain) stands above the cards, each small
    # segment's card says so again; a segment of MIN_SEGMENT_CUSTOMERS does not.
    warning = small_segments_warning([1, 2], 3)
    assert all(card.small for card in cards(details([tiny, pair])))
    page = html.render(details([tiny, pair], k_explanation={"warning": warning}), [], None, [])
    assert f"<p class='warning'><strong>Warning:</strong> {escape(warning)}</p>" in page
    assert page.index(escape(warning)) < page.index('class="cards"')
    assert "Only 1 customer: a description of these few, not yet a type of customer." in page
    assert "Only 2 customers: a description of these few" in page
    big = segment(1, "Big", MIN_SEGMENT_CUSTOMERS, {"spend": 100.0})
    assert not any(card.small for card in cards(details([big, segment(2, "Also big", 500, {"spend": 100.0})])))


def test_purchase_history_cards_read_as_behaviour_and_show_the_next_period():
    recency = feature("recency", 60.0, 40.0, 1.0, 365.0)
    total = feature("monetary_total", 200.0, 150.0, 0.0, 5000.0)
    populations = {"recency": recency, "monetary_total": total}
    segments = [
        {
            "segment_id": 1,
            "label": "Champions",
            "size": 100,
            "share": 0.25,
            "top_features": [],
            "features": {"recency": stats(12.4, recency), "monetary_total": stats(600.0, total)},
            "next_purchase_rate": 0.8,
            "next_spend_mean": 215.0,
            "next_revenue_share": 0.6,
        },
        {
            "segment_id": 2,
            "label": "Hibernating",
            "size": 300,
            "share": 0.75,
            "top_features": [],
            "features": {name: stats(value, populations[name]) for name, value in (("recency", 76.0),)},
            "next_purchase_rate": 0.2,
            "next_spend_mean": 30.0,
            "next_revenue_share": 0.4,
        },
    ]
    run = details(
        segments,
        features=[recency, total],
        spec={"transaction_features": {"features": {"recency": {}, "monetary_total": {}}}},
        validation_start=date(2024, 7, 1),
        validation_end=date(2024, 9, 30),
    )
    champions, hibernating = cards(run)
    assert champions.description == (
        "Spend 3.0x the average and last bought 12 days ago on average (all customers: 60)."
    )
    # All customers: (100 * 0.8 + 300 * 0.2) / 400 = 35% bought again, (100 * 215 + 300 * 30) / 400 = 76.25.
    assert champions.next_period == (
        "In the next period (2024-07-01 to 2024-09-30) 80% bought again (all customers: 35%), spending 215 per"
        " customer (all: 76.25); 60% of all revenue."
    )
    assert hibernating.next_period.startswith("In the next period (2024-07-01 to 2024-09-30) 20% bought again")


def test_dbscan_outliers_and_average_segments():
    run = details(
        [segment(0, "Outliers", 50, {"spend": 900.0}), segment(1, "Average", 950, {"spend": 101.0})],
        algorithm="dbscan",
    )
    outliers, average = cards(run)
    assert outliers.description.startswith("Customers in no dense group (DBSCAN outliers)")
    assert average.description == "Close to the average customer on every feature." and average.differences == []


@pytest.mark.parametrize(
    ("bounds", "count", "shown"),
    [
        # The numbers: fences far outside the observed values clipped nothing.
        ((-32.0, 110.0), 0, "none"),
        ((-10.0, 4_195_483.0), None, "none"),
        (
            (-129.0, 1500.0),
            3,
            "3 values above 1,500 (observed max 2,000) moved to the bound; kept as observed: 0 to 1,500",
        ),
        (
            (5.0, 1500.0),
            4,
            "4 values below 5 (observed min 0) or above 1,500 (observed max 2,000) moved to the bound;"
            " kept as observed: 5 to 1,500",
        ),
        (
            (-129.0, 1500.0),
            None,
            "some values (count not stored) above 1,500 (observed max 2,000) moved to the bound;"
            " kept as observed: 0 to 1,500",
        ),
        ((None, None), None, ""),
    ],
)
def test_the_features_table_shows_only_what_clipping_did(bounds, count, shown):
    clipped = replace(SPEND, clip_low=bounds[0], clip_high=bounds[1], clipped_count=count)
    run = details([segment(1, "A", 500, {"spend": 100.0}), segment(2, "B", 500, {"spend": 100.0})])
    page = html.render(replace(run, features=[clipped]), [], None, [])
    table = page[page.index('<table class="features">') :]
    row = table[table.index("<tr><td>spend</td>") :]
    assert row[: row.index("</tr>")].endswith(f"<td>{escape(shown)}</td>")
    for fence in ("-32", "4,195,483", "-129"):
        assert f">{fence}<" not in table and f" {fence} " not in table


def test_every_criterion_for_k_has_its_metric():
    from segjob.model.choose_k import CRITERIA

    assert set(CRITERION_METRICS) == set(CRITERIA)
