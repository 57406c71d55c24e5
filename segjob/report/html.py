"""The report page: one HTML file with inline CSS and every picture embedded as a data: URI.

It reads top down from what a marketer needs to what an analyst checks: one card per segment
(segjob.report.cards), the next period for purchase histories, the pictures, then an appendix of
diagnostics (the run, how k was chosen, the full profile, how each feature was prepared).

It opens offline, from a mail attachment or a file share: no script, no font, no link leaves the
file. Every value from the database is HTML-escaped.
"""

from __future__ import annotations

import base64
from datetime import datetime
from html import escape
from typing import Any

from segjob.model.explain import left_out_text, plural
from segjob.report.cards import Card, cards, number, relative_note
from segjob.report.customers import CustomerSample
from segjob.report.plots import Picture
from segjob.results.details import FeatureDetail, RunDetails, SegmentDetail, SweepRow
from segjob.results.history import CRITERION_METRICS, validation_summary

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 1.5rem auto; max-width: 1200px; padding: 0 1rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6rem; margin: 0 0 0.2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
.subtitle { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #d8d8d8; padding: 0.3rem 0.55rem; text-align: left; vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { width: 13rem; }
.wide { overflow-x: auto; }
.swatch { display: inline-block; width: 0.8rem; height: 0.8rem; border-radius: 2px; margin-right: 0.35rem;
          vertical-align: -0.1rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 1rem;
         margin: 0.8rem 0 1.2rem; }
.card { border: 1px solid #d8d8d8; border-top-width: 6px; border-radius: 6px; padding: 0.7rem 0.9rem;
        overflow-wrap: break-word; }
.card h3 { margin: 0; font-size: 1.05rem; }
.card .size { color: #555; margin: 0.1rem 0 0.5rem; font-size: 0.9rem; }
.card p { margin: 0.4rem 0; }
.card table { width: 100%; margin: 0.5rem 0; font-size: 0.85rem; }
.card .next { font-size: 0.9rem; }
figure { margin: 1.2rem 0 2rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.9rem; margin-top: 0.3rem; }
.warning { background: #fdecea; border-left: 4px solid #c62828; padding: 0.5rem 0.8rem; margin: 0.6rem 0; }
.note { background: #fff7e0; border-left: 4px solid #e0a800; padding: 0.5rem 0.8rem; margin: 0.6rem 0; }
.muted { color: #666; }
"""


def render(
    details: RunDetails,
    pictures: list[Picture],
    customers: CustomerSample | None,
    missing: list[str],
    colors: dict[int, str] | None = None,
) -> str:
    """The whole page for run `details` (history.show_run) with `pictures` embedded."""
    colors = colors or {}
    summary = details.summary
    title = f"segjob run {summary.run_id} of job {summary.job}"
    warning = details.k_explanation.warning
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="subtitle">{len(details.segments)} segments of'
        f" {escape(plural(sum(s.size for s in details.segments), 'customer'))}"
        f" &middot; {escape(details.source)} &middot; {escape(_when(summary.finished_at))}"
        ' &middot; <a href="#appendix">diagnostics</a></p>',
        f"<p class='warning'><strong>Warning:</strong> {escape(warning)}</p>" if warning else "",
        '<h2 id="segments">Segments</h2>',
        f'<p class="muted">{escape(relative_note(details))}</p>',
        _cards(cards(details), colors),
        _validation_section(details),
        '<h2 id="pictures">Pictures</h2>',
        _sample_note(customers),
        *(f'<p class="note">{escape(reason)}</p>' for reason in missing),
        *(_figure(picture) for picture in pictures),
        '<h2 id="appendix">Appendix: diagnostics</h2>',
        "<h3>Run</h3>",
        _key_values(_run_rows(details)),
        "<h3>How k was chosen</h3>",
        _choice(details),
        "<h3>Segment profiles</h3>",
        _profile_table(details, colors),
        "<h3>Feature preparation</h3>",
        _features_table(details),
        '<p class="muted">Written by segjob report.</p>',
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def _cards(segment_cards: list[Card], colors: dict[int, str]) -> str:
    return '<div class="cards">' + "".join(_card(c, colors.get(c.segment_id)) for c in segment_cards) + "</div>"


def _card(card: Card, color: str | None) -> str:
    style = f' style="border-top-color: {escape(color)}"' if color else ""
    rows = "".join(
        f"<tr><td>{escape(d.feature)}</td><td class='num'>{_amount(d.segment, d.share)}</td>"
        f"<td class='num'>{'' if d.rest is None else _amount(d.rest, d.share)}</td></tr>"
        for d in card.differences
    )
    table = (
        f"<table><tr><th>differs most on</th><th>this segment</th><th>all others</th></tr>{rows}</table>"
        if rows
        else ""
    )
    return (
        f'<section class="card" id="segment-{card.segment_id}"{style}>'
        f"<h3>{card.segment_id}: {escape(card.label)}</h3>"
        f'<p class="size">{escape(plural(card.size, "customer"))} &middot; {card.share:.1%} of all</p>'
        f'<p class="description">{escape(card.description)}</p>'
        + table
        + (f'<p class="next">{escape(card.next_period)}</p>' if card.next_period else "")
        + (
            f'<p class="muted">Only {escape(plural(card.size, "customer"))}: a description of these few,'
            " not yet a type of customer.</p>"
            if card.small
            else ""
        )
        + "</section>"
    )


def _amount(value: float, share: bool) -> str:
    """A mean in original units, or the share of customers for a categorical level."""
    return f"{value:.0%}" if share else number(value, 3)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if isinstance(value, datetime) else str(value or "")


def _metric(name: str, value: Any) -> str:
    if name.endswith("share") and value is not None:
        return f"{value:.1%}"
    return number(value)


def _key_values(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(key)}</th><td>{escape(value)}</td></tr>" for key, value in rows)
    return f'<table class="kv">{body}</table>'


def _run_rows(d: RunDetails) -> list[tuple[str, str]]:
    spec, summary = d.spec, d.summary
    dropped = d.dropped_by_reason or {}
    dropped_text = f"{number(summary.rows_dropped or 0)}" + (
        " (" + ", ".join(f"{reason}: {count:,}" for reason, count in dropped.items()) + ")" if dropped else ""
    )
    rows = [
        ("job", summary.job),
        ("run id", str(summary.run_id)),
        ("status", summary.status),
        ("source", d.source),
        ("features", ", ".join(spec.get("features") or [])),
    ]
    if spec.get("categorical"):
        rows.append(("categorical", ", ".join(spec["categorical"])))
    rows += [
        ("scaler / missing values", f"{spec.get('scaler', '')} / {spec.get('missing', '')}"),
        ("algorithm", str(summary.algorithm or "")),
        ("k and why", d.k_reason or str(summary.k)),
        ("decided by", str(summary.k_criterion or "")),
        ("rows read / used", f"{number(summary.rows_read)} / {number(summary.rows_used)}"),
        ("rows dropped", dropped_text),
        *([("left out", text)] if (text := left_out_text(d.transaction_features)) else []),
        ("started / finished", f"{_when(summary.started_at)} / {_when(summary.finished_at)}"),
        ("seed", str(d.seed)),
        ("input fingerprint", str(d.input_fingerprint or "")),
        ("versions", f"segjob {d.segjob_version}, scikit-learn {d.sklearn_version}, numpy {d.numpy_version}"),
        ("host / pid", f"{d.host} / {d.pid}"),
    ]
    return rows


def _choice(d: RunDetails) -> str:
    """The rule, its runner-up, each criterion's k (or why it has none), rejections, the chosen
    model's metrics and the K sweep with every criterion's metric."""
    explanation = d.k_explanation
    parts = []
    if explanation.rule and explanation.runner_up_k is not None:
        parts.append(
            f"<p>Chosen: k={escape(str(explanation.k))} by {escape(explanation.rule)}; runner-up"
            f" k={escape(str(explanation.runner_up_k))}, {explanation.runner_up_margin:.3f} behind.</p>"
        )
    parts.append(f"<p>{escape(d.k_reason or '')}</p>")
    chosen_by = explanation.chosen_k_by
    used = d.summary.k_criterion
    if chosen_by:
        no_answer = explanation.no_answer
        cells = "".join(
            f"<tr><td>{escape(name)}{' (used)' if name == used else ''}</td><td class='num'>{escape(str(k))}</td></tr>"
            for name, k in chosen_by.items()
        ) + "".join(
            f"<tr><td>{escape(name)}</td><td>no answer ({escape(why)})</td></tr>" for name, why in no_answer.items()
        )
        verdict = (
            "The criteria disagree: they would choose different k."
            if explanation.criteria_disagree
            else "All criteria agree."
        )
        parts.append(f"<p>{verdict}</p><table><tr><th>criterion</th><th>its k</th></tr>{cells}</table>")
    rejected = d.rejected_k
    if rejected:
        cells = "".join(f"<tr><td class='num'>{r.k}</td><td>{escape(r.reason)}</td></tr>" for r in rejected)
        parts.append(f"<p>Rejected candidates:</p><table><tr><th>k</th><th>why</th></tr>{cells}</table>")
    metrics = d.model_metrics
    if metrics:
        cells = "".join(
            f"<tr><td>{escape(name)}</td><td class='num'>{_metric(name, value)}</td></tr>"
            for name, value in metrics.items()
        )
        parts.append(f"<p>The chosen model:</p><table><tr><th>metric</th><th>value</th></tr>{cells}</table>")
    sweep = d.k_sweep
    if len(sweep) > 1:
        parts.append(_sweep_table(sweep, d.summary.k, {r.k for r in rejected}, used))
    return "\n".join(parts)


# The K sweep's columns: every criterion's metric (segjob.results.history.CRITERION_METRICS) and
# what qualifies a k, in reading order.
_SWEEP_COLUMNS = (
    "backtest_score",
    "backtest_spend_explained",
    "backtest_rate_spread",
    "silhouette_gain",
    "silhouette",
    "macro_silhouette",
    "gap",
    "inertia",
    "davies_bouldin",
    "calinski_harabasz",
    "stability",
    "smallest_segment_share",
)


def _sweep_table(sweep: list[SweepRow], k: int | None, rejected_ks: set[int], used: str | None) -> str:
    names = [n for n in _SWEEP_COLUMNS if any(row.metrics.get(n) is not None for row in sweep)]
    deciding = CRITERION_METRICS.get(used or "")

    def header(name: str) -> str:
        return escape(name.replace("_", " ")) + (" (decides)" if name == deciding else "")

    head = "".join(f"<th>{header(n)}</th>" for n in ["k", *names])
    body = "".join(
        f"<tr><td class='num'>{row.k}{' (chosen)' if row.k == k else ''}"
        f"{' (rejected)' if row.k in rejected_ks else ''}</td>"
        + "".join(f"<td class='num'>{_metric(n, row.metrics.get(n))}</td>" for n in names)
        + "</tr>"
        for row in sweep
    )
    return f'<p>The K sweep:</p><div class="wide"><table class="sweep"><tr>{head}</tr>{body}</table></div>'


def _profile_table(d: RunDetails, colors: dict[int, str]) -> str:
    """Segments as columns; size, share, top features, then per feature centroid/mean/median/z."""
    segments = d.segments
    kinds = {f.feature: f.kind for f in d.features}

    def head(s: SegmentDetail) -> str:
        color = colors.get(s.segment_id)
        swatch = f'<span class="swatch" style="background:{escape(color)}"></span>' if color else ""
        return f"<th>{swatch}{s.segment_id}: {escape(s.label)}</th>"

    def stat_of(s: SegmentDetail, feature: str, stat: str) -> float | None:
        stats = s.features.get(feature)
        return None if stats is None else getattr(stats, stat)

    rows = [
        "<tr><th>segment</th>" + "".join(head(s) for s in segments) + "</tr>",
        "<tr><th>size</th>" + "".join(f"<td class='num'>{s.size:,}</td>" for s in segments) + "</tr>",
        "<tr><th>share</th>" + "".join(f"<td class='num'>{s.share:.1%}</td>" for s in segments) + "</tr>",
        "<tr><th>top features</th>"
        + "".join(f"<td>{escape(', '.join(s.top_features))}</td>" for s in segments)
        + "</tr>",
    ]
    for feature, kind in kinds.items():
        stats = ("centroid", "mean", "median", "z_score") if kind == "numeric" else ("mean", "z_score")
        for stat in stats:
            name = f"{feature}: {'share of level' if kind != 'numeric' and stat == 'mean' else stat.replace('_', '-')}"
            cells = "".join(f"<td class='num'>{_value(stat_of(s, feature, stat), kind, stat)}</td>" for s in segments)
            rows.append(f"<tr><th>{escape(name)}</th>{cells}</tr>")
    return (
        '<p class="muted">Centroid, mean and median in original units; z-score: segment mean against all'
        " customers, in population standard deviations.</p>"
        f'<div class="wide"><table class="profile">{"".join(rows)}</table></div>'
    )


def _value(value: Any, kind: str, stat: str) -> str:
    if value is None:
        return ""
    if stat == "z_score":
        return f"{value:+.2f}"
    return f"{value:.1%}" if kind != "numeric" else number(value)


def _sample_note(customers: CustomerSample | None) -> str:
    if customers is None:
        return ""
    return (
        f"<p>Customer plots: {escape(customers.source_description)} holds {customers.source_rows:,} rows now;"
        f" {customers.sampled:,} sampled uniformly (seed: the run's), {customers.usable:,} usable,"
        f" {customers.matched:,} matched to this run's assignments"
        f"{' (the others are new since the run or were dropped by it)' if customers.matched < customers.usable else ''}"
        ".</p>"
    )


def _figure(picture: Picture) -> str:
    data = base64.b64encode(picture.png).decode("ascii")
    return (
        f'<figure id="{escape(picture.file.removesuffix(".png"))}">'
        f'<img src="data:image/png;base64,{data}" alt="{escape(picture.title)}">'
        f"<figcaption><strong>{escape(picture.title)}</strong> ({escape(picture.file)}). {escape(picture.caption)}"
        + (
            f' Horizontal axis: <span class="axis">{escape(picture.axes[0])}</span>;'
            f' vertical axis: <span class="axis">{escape(picture.axes[1])}</span>.'
            if picture.axes
            else ""
        )
        + "</figcaption></figure>"
    )


def _features_table(d: RunDetails) -> str:
    names = ["feature", "kind", "transform", "skewness", "impute_value", "missing_count", "mean", "std", "min", "max"]
    head = "".join(f"<th>{escape(n.replace('_', ' '))}</th>" for n in names) + "<th>outliers clipped</th>"
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='num'>{number(value)}</td>"
            if isinstance(value := getattr(f, n), (int, float))
            else f"<td>{escape(str(value or ''))}</td>"
            for n in names
        )
        + f"<td>{escape(_clipping(f))}</td></tr>"
        for f in d.features
    )
    return (
        '<p class="muted">Min and max are the values observed among the customers used. Outliers clipped: the'
        " values moved to a bound before scaling, and the range kept as observed; a bound beyond the observed"
        " values clipped nothing and is not shown.</p>"
        f'<div class="wide"><table class="features"><tr>{head}</tr>{body}</table></div>'
    )


def _clipping(f: FeatureDetail) -> str:
    """What clipping did to a feature, in original units, from the bounds, the observed min and max
    and the count of moved values: nothing is said of a bound outside the observed values."""
    low, high, count = f.clip_low, f.clip_high, f.clipped_count
    if f.kind != "numeric" or (low is None and high is None):
        return ""
    low_cut = low is not None and low > f.min
    high_cut = high is not None and high < f.max
    if count == 0 or (count is None and not (low_cut or high_cut)):
        return "none"
    moved = "some values (count not stored)" if count is None else plural(count, "value")
    if not (low_cut or high_cut):
        return f"{moved} moved to a bound"
    sides = [
        *([f"below {number(low)} (observed min {number(f.min)})"] if low_cut else []),
        *([f"above {number(high)} (observed max {number(f.max)})"] if high_cut else []),
    ]
    kept = f"{number(low if low_cut else f.min)} to {number(high if high_cut else f.max)}"
    return f"{moved} {' or '.join(sides)} moved to the bound; kept as observed: {kept}"


def _validation_section(d: RunDetails) -> str:
    """The segments checked against later behaviour (segjob.results.validation): a small table per segment,
    the share of next-period spend variance they explain, and what that means for a marketer."""
    summary = validation_summary(d)
    if summary is None:
        return ""
    parts = ["<h2>Segments in the next period</h2>", f"<p>{escape(summary[0].upper() + summary[1:])}.</p>"]
    if d.summary.validation_start is None:
        return "\n".join(parts)
    rows = "".join(
        f"<tr><td>{s.segment_id}: {escape(s.label)}</td><td class='num'>{s.size:,}</td>"
        f"<td class='num'>{_share(s.next_purchase_rate)}</td>"
        f"<td class='num'>{number(s.next_spend_mean)}</td>"
        f"<td class='num'>{_share(s.next_revenue_share)}</td></tr>"
        for s in d.segments
    )
    parts.append(
        "<table><tr><th>segment</th><th>customers</th><th>bought again (purchase rate)</th>"
        f"<th>spend per customer</th><th>share of revenue</th></tr>{rows}</table>"
    )
    explained = d.summary.next_spend_explained
    if explained is not None:
        parts.append(
            f"<p>What this means: knowing only a customer's segment explains {explained:.0%} of the differences in"
            " what customers spent afterwards; segments whose purchase rates and spend differ a lot are worth"
            " different campaigns, segments that behave alike may as well be treated as one.</p>"
        )
    return "\n".join(parts)


def _share(value: Any) -> str:
    return "" if value is None else f"{value:.1%}"
