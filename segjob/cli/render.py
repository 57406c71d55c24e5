"""Readable terminal tables for runs and segments (rich, on stdout).

Nearly every string printed here comes from data or users (job, table, column and category
names, labels, error messages), so the console reads no markup and no emoji codes: a feature
named `spend [eur]` keeps its `[eur]`, and a `[/x]` cannot stop the command. Styles are set
explicitly instead.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from segjob.model.criteria import CRITERIA
from segjob.model.explain import left_out_text, plural
from segjob.results.details import FeatureDetail, RunDetails, RunSummary, SegmentDetail
from segjob.results.history import validation_summary


def _console() -> Console:
    """A terminal's own width; piped output (logs, files) gets wide tables and lines of text that
    are never wrapped, so a log line stays one line whatever its length."""
    console = Console(markup=False, emoji=False, highlight=False)
    if console.is_terminal:
        return console
    return Console(markup=False, emoji=False, highlight=False, width=200, soft_wrap=True)


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _time(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if hasattr(value, "strftime") else str(value or "")


def runs_table(rows: list[dict[str, Any]]) -> None:
    console = _console()
    if not rows:
        console.print("no runs yet; start one with 'segjob run' or 'segjob demo'")
        return
    table = Table(title="segjob runs (newest first)")
    for name in ("run", "job", "kind", "status", "started", "k", "rows used", "dropped", "silhouette", "error"):
        table.add_column(
            name, justify="right" if name in ("run", "k", "rows used", "dropped", "silhouette") else "left"
        )
    for row in rows:
        table.add_row(
            str(row["run_id"]),
            row["job"],
            row["kind"],
            _status(row),
            _time(row["started_at"]),
            _number(row["k"]),
            _number(row["rows_used"]),
            _number(row["rows_dropped"]),
            _number(row["silhouette"]),
            (row.get("error") or "")[:60],
        )
    console.print(table)


def _status(run: dict[str, Any]) -> str:
    """ "succeeded (current)" for the run current_segment shows, "succeeded (candidate)" for a
    candidate run that is not current."""
    if run.get("is_current"):
        return f"{run['status']} (current)"
    if run.get("candidate") and run["status"] == "succeeded":
        return f"{run['status']} (candidate)"
    return run["status"]


def _currency(summary: RunSummary) -> str:
    """Whether the run is what dashboards show, and how it got there or gets there."""
    if summary.is_current:
        return f"current run of the job since {_time(summary.current_since)} ({summary.current_reason})"
    if summary.candidate:
        return f"candidate run, not current: 'segjob promote {summary.run_id}' makes it current"
    return f"not current: 'segjob promote {summary.run_id}' makes it current again"


def run_details(details: RunDetails, console: Console | None = None) -> None:
    """Print a run; `console`, when given, must read no markup and no emoji codes (see _console)."""
    console = console or _console()
    summary = details.summary
    score = summary.kind == "score"
    model = f" with the model of run {summary.model_run_id}" if score else ""
    console.print(
        Text.assemble(
            f"{'score run' if score else 'run'} {summary.run_id} of job ",
            (summary.job, "bold"),
            f"{model}: {summary.status} ({details.source}), started {_time(summary.started_at)}",
        )
    )
    if summary.error:
        console.print(f"error: {summary.error}")
    if summary.status != "succeeded":
        return
    console.print(_currency(summary))
    dropped = details.dropped_by_reason or {}
    dropped_text = ", ".join(f"{reason} {count:,}" for reason, count in dropped.items()) or "none"
    console.print(f"rows read {summary.rows_read:,}, used {summary.rows_used:,}, dropped {dropped_text}")
    console.print(f"algorithm {summary.algorithm or 'kmeans'}; {details.k_reason}")
    warning = details.k_explanation.warning
    if warning:
        console.print(f"warning: {warning}", style="bold yellow")
    if not score:  # a score run fits nothing, so it has no quality metrics
        console.print(
            f"silhouette {_number(summary.silhouette)},"
            f" Davies-Bouldin {_number(summary.davies_bouldin)},"
            f" Calinski-Harabasz {_number(summary.calinski_harabasz, 1)}, inertia {_number(summary.inertia, 1)},"
            f" stability {_number(summary.stability)}"
        )
    if details.k_explanation.chosen_k_by:
        console.print(_criteria_line(details))
    for rejected in details.rejected_k:
        console.print(f"rejected k={rejected.k}: {rejected.reason}")
    for line in _transform_lines(details.features, details.spec.get("clip_outliers")):
        console.print(line)
    for line in _drift_lines(details):
        console.print(line)
    for line in _transaction_lines(details.transaction_features):
        console.print(line)
    if len(details.k_sweep) > 1:
        rejected_ks = {row.k for row in details.rejected_k}
        sweep = Table(title="K sweep (* chosen)")
        headers = {c.metric: c.label for c in CRITERIA.values()} | {"smallest_segment_share": "smallest share"}
        backtest = ("backtest_score",) if any("backtest_score" in row.metrics for row in details.k_sweep) else ()
        names = (
            *backtest,
            "silhouette_gain",
            "silhouette",
            "davies_bouldin",
            "calinski_harabasz",
            "inertia",
            "stability",
            "smallest_segment_share",
        )
        for name in ("k", *names, "rejected"):
            sweep.add_column(headers.get(name, name), justify="right")
        for row in details.k_sweep:
            marker = " *" if row.k == summary.k else ""
            metrics = row.metrics
            share = metrics.get("smallest_segment_share")
            sweep.add_row(
                f"{row.k}{marker}",
                *(_number(metrics.get(name)) for name in backtest),
                _number(metrics.get("silhouette_gain")),
                _number(metrics.get("silhouette")),
                _number(metrics.get("davies_bouldin")),
                _number(metrics.get("calinski_harabasz"), 1),
                _number(metrics.get("inertia"), 1),
                _number(metrics.get("stability")),
                "" if share is None else f"{share:.1%}",
                "yes" if row.k in rejected_ks else "",
            )
        console.print(sweep)

    for table in segment_tables(details, console):
        console.print(table)
    _print_validation(console, details)


LABEL_MIN_WIDTH = 12  # narrower, a label of marketer's words breaks every word or two


def segment_tables(details: RunDetails, console: Console) -> list[Table]:
    """The segments with their centroids: one table with a column per feature when it fits the
    console's width; otherwise a table of the segments (size, share, label, what stands out) and
    the centroids with one row per feature and a column per segment, in as few tables as fit.
    Labels wrap at spaces; nothing is cut short, and each "stands out on" item keeps its line."""
    features = details.features
    levels = {f.feature for f in features if f.kind == "categorical"}
    segments = details.segments
    names = [f.feature for f in features]

    def centroid(segment: SegmentDetail, name: str) -> str:
        stats = segment.features.get(name)
        return _centroid(None if stats is None else stats.centroid, share=name in levels)

    def stands_out(segment: SegmentDetail) -> list[str]:
        return [f"{name} ({_z_score(segment, name):+.1f} sd)" for name in segment.top_features]

    items = [item for segment in segments for item in stands_out(segment)]
    widest_item = max([len(item) for item in items] + [len("stands out on")])
    longest_label = max([len(segment.label) for segment in segments] + [len("label")])

    def segments_table(title: str, with_features: bool) -> Table | None:
        """The numbers take what they need, the label wraps at spaces into what is left (at least
        LABEL_MIN_WIDTH), each "stands out on" item keeps its line; None when the features' columns
        leave the label less than that."""
        numbers = ["segment", "size", "share", *(names if with_features else [])]
        cells = {name: [name] for name in numbers}
        rows = []
        for segment in segments:
            segment_id, label, size, share = _segment_cells(segment)
            values = [centroid(segment, name) for name in names] if with_features else []
            row = [segment_id, size, share, *values]
            for name, cell in zip(numbers, row):
                cells[name].append(cell)
            rows.append((row, label, "\n".join(stands_out(segment))))
        used = sum(max(map(len, column)) for column in cells.values()) + 3 * (len(numbers) + 2) + 1
        stands_width = min(widest_item, max(console.width - used - LABEL_MIN_WIDTH, len("stands out on")))
        label_width = min(longest_label, console.width - used - stands_width)
        if label_width < LABEL_MIN_WIDTH:
            if with_features:
                return None
            label_width = LABEL_MIN_WIDTH  # a terminal this narrow wraps what it must
        table = Table(title=title)
        for name in numbers:
            table.add_column(name, justify="right", no_wrap=True)
        table.add_column("label", width=label_width)
        table.add_column("stands out on", width=stands_width)
        for row, label, standing_out in rows:
            table.add_row(*row, label, standing_out)
        return table

    title = "Segments (centroids in original units; categorical levels as shares of the segment)"
    wide = segments_table(title, with_features=True)
    if wide is not None and _least_width(console, wide) <= console.width:
        return [wide]
    summary = segments_table("Segments", with_features=False)
    assert summary is not None  # without features it always returns a table
    tables = [summary]
    remaining = list(segments)
    while remaining:
        take = len(remaining)
        while True:  # as many segments as fit beside the feature names
            chunk = _centroid_table(remaining[:take], names, centroid)
            if take == 1 or _least_width(console, chunk) <= console.width:
                break
            take -= 1
        tables.append(chunk)
        remaining = remaining[take:]
    return tables


def _z_score(segment: SegmentDetail, name: str) -> float:
    stats = segment.features.get(name)
    return 0 if stats is None else stats.z_score


def _least_width(console: Console, table: Table) -> int:
    """The narrowest the table gets without cutting a cell or a word (as if the console were endless)."""
    return console.measure(table, options=console.options.update_width(1_000_000)).minimum


def _segment_cells(segment: SegmentDetail) -> tuple[str, str, str, str]:
    return str(segment.segment_id), segment.label, f"{segment.size:,}", f"{segment.share:.1%}"


def _centroid_table(segments: list[SegmentDetail], names: list[str], centroid) -> Table:
    table = Table(title="Centroids in original units (categorical levels as shares), one column per segment")
    table.add_column("feature", no_wrap=True)
    for segment in segments:
        table.add_column(f"segment {segment.segment_id}", justify="right", no_wrap=True)
    for name in names:
        table.add_row(name, *(centroid(segment, name) for segment in segments))
    return table


def _drift_lines(details: RunDetails) -> list[str]:
    """Drift against the job's previous succeeded run (segjob.results.lineage), when there was one."""
    summary = details.summary
    if summary.compared_run_id is None:
        return ["drift: first succeeded run of the job, nothing to compare with"]
    changed = summary.changed_share
    lines = [
        f"drift vs run {summary.compared_run_id}: {_number(summary.common_customers)} common customers,"
        f" {'' if changed is None else f'{changed:.1%}'} changed segment,"
        f" adjusted Rand index {_number(summary.ari)}"
    ]
    psi = [f"{f.feature} {f.psi:.3f}" for f in details.features if f.psi is not None]
    if psi:
        lines.append(f"PSI (<0.1 stable, >0.25 major shift): {', '.join(psi)}")
    shifts = [f"{s.segment_id} {s.centroid_shift:.3f}" for s in details.segments if s.centroid_shift is not None]
    new = [str(s.segment_id) for s in details.segments if s.centroid_shift is None]
    if shifts:
        lines.append(f"centroid shift by segment (compared run's scaled units): {', '.join(shifts)}")
    if new:
        lines.append(f"segments not in run {summary.compared_run_id}: {', '.join(new)}")
    return lines


def _centroid(value: Any, share: bool) -> str:
    if value is None:
        return ""
    return f"{value:.0%}" if share else _number(value, 2)


def _criteria_line(details: RunDetails) -> str:
    """Which k each criterion would choose, which one decided, and whether they agree."""
    used, explanation = details.summary.k_criterion, details.k_explanation
    choices = ", ".join(
        f"{name} k={k}" + (" (used)" if name == used else "") for name, k in explanation.chosen_k_by.items()
    )
    choices += "".join(f", {name}: no answer ({why})" for name, why in explanation.no_answer.items())
    verdict = "criteria disagree" if explanation.criteria_disagree else "all criteria agree"
    return f"k by criterion: {choices}; {verdict}"


def _transform_lines(features: list[FeatureDetail], clip_outliers: float | None) -> list[str]:
    """log1p and clipping per feature; far-out fences (--transform auto) only where they moved values."""
    lines = []
    how = f"at mean +/- {clip_outliers:g} std" if clip_outliers else "at the far-out fences"
    for feature in features:
        if feature.transform:
            lines.append(f"transform: {feature.feature} {feature.transform} (skewness {_number(feature.skewness, 2)})")
        if feature.clip_low is not None and (clip_outliers or feature.clipped_count):
            lines.append(
                f"clipped {how}: {feature.feature} to"
                f" [{_number(feature.clip_low, 2)}, {_number(feature.clip_high, 2)}]"
                f" ({plural(feature.clipped_count or 0, 'value')})"
            )
    return lines


def _transaction_lines(definitions: dict[str, Any] | None) -> list[str]:
    """How a purchase-history run built its features: window, definitions, what was left out."""
    if not definitions:
        return []
    since = f" since {definitions['since']}" if definitions.get("since") else ""
    lines = [f"purchase history as of {definitions['as_of']}{since} ({definitions.get('as_of_rule', '')})"]
    for name, feature in definitions.get("features", {}).items():
        lines.append(f"  {name} [{feature['unit']}]: {feature['definition']}")
    counts = definitions.get("counts") or {}
    if counts:
        lines.append(
            f"  {counts.get('rows', 0):,} transaction rows ({counts.get('return_rows', 0):,} returns);"
            f" {counts.get('customers_with_purchase', 0):,} customers with a purchase; {left_out_text(definitions)}"
        )
    return lines


def _print_validation(console: Console, details: RunDetails) -> None:
    """What each segment's customers did in the next period, when the run has one."""
    summary = validation_summary(details)
    if summary is None:
        return
    console.print(summary)
    if details.summary.validation_start is None:
        return
    table = Table(title="Segments in the next period (net spend, returns included)")
    for name in ("segment", "label", "customers", "purchase rate", "spend per customer", "revenue share"):
        table.add_column(name, no_wrap=name == "label", justify="left" if name == "label" else "right")
    for segment in details.segments:
        rate, share = segment.next_purchase_rate, segment.next_revenue_share
        table.add_row(
            str(segment.segment_id),
            segment.label,
            f"{segment.size:,}",
            "" if rate is None else f"{rate:.1%}",
            _number(segment.next_spend_mean, 2),
            "" if share is None else f"{share:.1%}",
        )
    console.print(table)
