"""The report page: one HTML file with inline CSS and every picture embedded as a data: URI.

It opens offline, from a mail attachment or a file share: no script, no font, no link leaves the
file. Every value from the database is HTML-escaped.
"""

from __future__ import annotations

import base64
from datetime import datetime
from html import escape
from typing import Any

from segjob.model.explain import left_out_text
from segjob.report.customers import CustomerSample
from segjob.report.plots import Picture
from segjob.results.history import validation_summary

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.subtitle { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #d8d8d8; padding: 0.3rem 0.55rem; text-align: left; vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { width: 13rem; }
.profile-wrap { overflow-x: auto; }
.swatch { display: inline-block; width: 0.8rem; height: 0.8rem; border-radius: 2px; margin-right: 0.35rem;
          vertical-align: -0.1rem; }
figure { margin: 1.2rem 0 2rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.9rem; margin-top: 0.3rem; }
.warning { background: #fdecea; border-left: 4px solid #c62828; padding: 0.5rem 0.8rem; margin: 0.6rem 0; }
.note { background: #fff7e0; border-left: 4px solid #e0a800; padding: 0.5rem 0.8rem; margin: 0.6rem 0; }
.muted { color: #666; }
"""


def render(
    details: dict[str, Any],
    pictures: list[Picture],
    customers: CustomerSample | None,
    missing: list[str],
    colors: dict[int, str] | None = None,
) -> str:
    """The whole page for run `details` (history.show_run) with `pictures` embedded."""
    colors = colors or {}
    title = f"segjob run {details['run_id']} of job {details['job']}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="subtitle">{escape(details["source"])} &middot; {escape(str(details.get("algorithm") or ""))}'
        f" &middot; k={details['k']} &middot; {escape(_when(details.get('finished_at')))}</p>",
        "<h2>Run</h2>",
        _key_values(_run_rows(details)),
        "<h2>How k was chosen</h2>",
        _choice(details),
        "<h2>Segment profiles</h2>",
        _profile_table(details, colors),
        _validation_section(details),
        "<h2>Pictures</h2>",
        _sample_note(customers),
        *(f'<p class="note">{escape(reason)}</p>' for reason in missing),
        *(_figure(picture) for picture in pictures),
        "<h2>Features</h2>",
        _features_table(details),
        '<p class="muted">Written by segjob report.</p>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if isinstance(value, datetime) else str(value or "")


def _num(value: Any, digits: int = 4) -> str:
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


def _metric(name: str, value: Any) -> str:
    if name.endswith("share") and value is not None:
        return f"{value:.1%}"
    return _num(value)


def _key_values(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(key)}</th><td>{escape(value)}</td></tr>" for key, value in rows)
    return f'<table class="kv">{body}</table>'


def _run_rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    spec = d.get("spec") or {}
    dropped = d.get("dropped_by_reason") or {}
    dropped_text = f"{_num(d.get('rows_dropped') or 0)}" + (
        " (" + ", ".join(f"{reason}: {count:,}" for reason, count in dropped.items()) + ")" if dropped else ""
    )
    rows = [
        ("job", d["job"]),
        ("run id", str(d["run_id"])),
        ("status", d["status"]),
        ("source", d["source"]),
        ("features", ", ".join(spec.get("features") or [])),
    ]
    if spec.get("categorical"):
        rows.append(("categorical", ", ".join(spec["categorical"])))
    rows += [
        ("scaler / missing values", f"{spec.get('scaler', '')} / {spec.get('missing', '')}"),
        ("algorithm", str(d.get("algorithm") or "")),
        ("k and why", d.get("k_reason") or str(d["k"])),
        ("decided by", str(d.get("k_criterion") or "")),
        ("rows read / used", f"{_num(d.get('rows_read'))} / {_num(d.get('rows_used'))}"),
        ("rows dropped", dropped_text),
        *([("left out", text)] if (text := left_out_text(spec.get("transaction_features"))) else []),
        ("started / finished", f"{_when(d.get('started_at'))} / {_when(d.get('finished_at'))}"),
        ("seed", str(d.get("seed"))),
        ("input fingerprint", str(d.get("input_fingerprint") or "")),
        (
            "versions",
            f"segjob {d.get('segjob_version')}, scikit-learn {d.get('sklearn_version')},"
            f" numpy {d.get('numpy_version')}",
        ),
        ("host / pid", f"{d.get('host')} / {d.get('pid')}"),
    ]
    return rows


def _choice(d: dict[str, Any]) -> str:
    explanation = d.get("k_explanation") or {}
    parts = []
    if explanation.get("warning"):
        parts.append(f"<p class='warning'><strong>Warning:</strong> {escape(explanation['warning'])}</p>")
    if explanation.get("rule") and explanation.get("runner_up_k") is not None:
        parts.append(
            f"<p>Chosen: k={explanation['k']} by {escape(explanation['rule'])}; runner-up"
            f" k={explanation['runner_up_k']}, {explanation['runner_up_margin']:.3f} behind.</p>"
        )
    parts.append(f"<p>{escape(d.get('k_reason') or '')}</p>")
    chosen_by = d.get("chosen_k_by") or {}
    if chosen_by:
        used = d.get("k_criterion")
        cells = "".join(
            f"<tr><td>{escape(name)}{' (used)' if name == used else ''}</td><td class='num'>{k}</td></tr>"
            for name, k in chosen_by.items()
        )
        verdict = (
            "The criteria disagree: they would choose different k."
            if d.get("criteria_disagree")
            else "All criteria agree."
        )
        parts.append(f"<p>{verdict}</p><table><tr><th>criterion</th><th>its k</th></tr>{cells}</table>")
    rejected = d.get("rejected_k") or []
    if rejected:
        cells = "".join(f"<tr><td class='num'>{r['k']}</td><td>{escape(r['reason'])}</td></tr>" for r in rejected)
        parts.append(f"<p>Rejected candidates:</p><table><tr><th>k</th><th>why</th></tr>{cells}</table>")
    metrics = d.get("model_metrics") or {}
    if metrics:
        cells = "".join(
            f"<tr><td>{escape(name)}</td><td class='num'>{_metric(name, value)}</td></tr>"
            for name, value in metrics.items()
        )
        parts.append(f"<p>The chosen model:</p><table><tr><th>metric</th><th>value</th></tr>{cells}</table>")
    sweep = d.get("k_sweep") or []
    if len(sweep) > 1:
        names = [
            n
            for n in (
                "backtest_score",
                "backtest_spend_explained",
                "backtest_rate_spread",
                "inertia",
                "silhouette",
                "davies_bouldin",
                "calinski_harabasz",
                "stability",
                "smallest_segment_share",
            )
            if any(n in row for row in sweep)
        ]
        rejected_ks = {r["k"] for r in rejected}
        head = "".join(f"<th>{escape(n)}</th>" for n in ["k", *names])
        body = "".join(
            f"<tr><td class='num'>{row['k']}{' (chosen)' if row['k'] == d['k'] else ''}"
            f"{' (rejected)' if row['k'] in rejected_ks else ''}</td>"
            + "".join(f"<td class='num'>{_metric(n, row.get(n))}</td>" for n in names)
            + "</tr>"
            for row in sweep
        )
        parts.append(f"<p>The K sweep:</p><table><tr>{head}</tr>{body}</table>")
    return "\n".join(parts)


def _profile_table(d: dict[str, Any], colors: dict[int, str]) -> str:
    """Segments as columns; size, share, top features, then per feature centroid/mean/median/z."""
    segments = d["segments"]
    kinds = {f["feature"]: f["kind"] for f in d["features"]}

    def head(s: dict[str, Any]) -> str:
        color = colors.get(s["segment_id"])
        swatch = f'<span class="swatch" style="background:{escape(color)}"></span>' if color else ""
        return f"<th>{swatch}{s['segment_id']}: {escape(s['label'])}</th>"

    rows = [
        "<tr><th>segment</th>" + "".join(head(s) for s in segments) + "</tr>",
        "<tr><th>size</th>" + "".join(f"<td class='num'>{s['size']:,}</td>" for s in segments) + "</tr>",
        "<tr><th>share</th>" + "".join(f"<td class='num'>{s['share']:.1%}</td>" for s in segments) + "</tr>",
        "<tr><th>top features</th>"
        + "".join(f"<td>{escape(', '.join(s['top_features']))}</td>" for s in segments)
        + "</tr>",
    ]
    for feature, kind in kinds.items():
        stats = ("centroid", "mean", "median", "z_score") if kind == "numeric" else ("mean", "z_score")
        for stat in stats:
            name = f"{feature}: {'share of level' if kind != 'numeric' and stat == 'mean' else stat.replace('_', '-')}"
            cells = "".join(
                f"<td class='num'>{_value(s['features'].get(feature, {}).get(stat), kind, stat)}</td>" for s in segments
            )
            rows.append(f"<tr><th>{escape(name)}</th>{cells}</tr>")
    return (
        '<p class="muted">Centroid, mean and median in original units; z-score: segment mean against all'
        " customers, in population standard deviations.</p>"
        f'<div class="profile-wrap"><table class="profile">{"".join(rows)}</table></div>'
    )


def _value(value: Any, kind: str, stat: str) -> str:
    if value is None:
        return ""
    if stat == "z_score":
        return f"{value:+.2f}"
    return f"{value:.1%}" if kind != "numeric" else _num(value)


def _sample_note(customers: CustomerSample | None) -> str:
    if customers is None:
        return ""
    return (
        f"<p>Customer plots: {customers.source_description} holds {customers.source_rows:,} rows now;"
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


def _features_table(d: dict[str, Any]) -> str:
    names = [
        "feature",
        "kind",
        "transform",
        "skewness",
        "impute_value",
        "missing_count",
        "mean",
        "std",
        "min",
        "max",
        "clip_low",
        "clip_high",
        "clipped_count",
    ]
    head = "".join(f"<th>{escape(n.replace('_', ' '))}</th>" for n in names)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='num'>{_num(f.get(n))}</td>"
            if isinstance(f.get(n), (int, float))
            else f"<td>{escape(str(f.get(n) or ''))}</td>"
            for n in names
        )
        + "</tr>"
        for f in d["features"]
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _validation_section(d: dict[str, Any]) -> str:
    """The segments checked against later behaviour (segjob.results.validation): a small table per segment,
    the share of next-period spend variance they explain, and what that means for a marketer."""
    summary = validation_summary(d)
    if summary is None:
        return ""
    parts = ["<h2>Segments in the next period</h2>", f"<p>{escape(summary[0].upper() + summary[1:])}.</p>"]
    if d.get("validation_start") is None:
        return "\n".join(parts)
    rows = "".join(
        f"<tr><td>{s['segment_id']}: {escape(s['label'])}</td><td class='num'>{s['size']:,}</td>"
        f"<td class='num'>{_share(s.get('next_purchase_rate'))}</td>"
        f"<td class='num'>{_num(s.get('next_spend_mean'))}</td>"
        f"<td class='num'>{_share(s.get('next_revenue_share'))}</td></tr>"
        for s in d["segments"]
    )
    parts.append(
        "<table><tr><th>segment</th><th>customers</th><th>bought again (purchase rate)</th>"
        f"<th>spend per customer</th><th>share of revenue</th></tr>{rows}</table>"
    )
    explained = d.get("next_spend_explained")
    if explained is not None:
        parts.append(
            f"<p>What this means: knowing only a customer's segment explains {explained:.0%} of the differences in"
            " what customers spent afterwards; segments whose purchase rates and spend differ a lot are worth"
            " different campaigns, segments that behave alike may as well be treated as one.</p>"
        )
    return "\n".join(parts)


def _share(value: Any) -> str:
    return "" if value is None else f"{value:.1%}"
