"""Readable terminal tables for runs and segments (rich, on stdout)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _console() -> Console:
    """A terminal's own width; piped output (logs, files) gets wide lines instead of wrapped cells."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=200)


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
        table.add_column(name, justify="right" if name in ("run", "k", "rows used", "dropped", "silhouette") else "left")
    for row in rows:
        table.add_row(
            str(row["run_id"]), row["job"], row["kind"], row["status"], _time(row["started_at"]),
            _number(row["k"]), _number(row["rows_used"]), _number(row["rows_dropped"]),
            _number(row["silhouette"]), (row.get("error") or "")[:60],
        )
    console.print(table)


def run_details(details: dict[str, Any]) -> None:
    console = _console()
    console.print(
        f"run {details['run_id']} of job [bold]{details['job']}[/bold]: {details['status']}"
        f" ({details['source']}), started {_time(details['started_at'])}"
    )
    if details.get("error"):
        console.print(f"error: {details['error']}")
    if details["status"] != "succeeded":
        return
    dropped = details.get("dropped_by_reason") or {}
    dropped_text = ", ".join(f"{reason} {count:,}" for reason, count in dropped.items()) or "none"
    console.print(
        f"rows read {details['rows_read']:,}, used {details['rows_used']:,}, dropped {dropped_text}"
    )
    console.print(
        f"{details['k_reason']}; silhouette {_number(details['silhouette'])},"
        f" Davies-Bouldin {_number(details['davies_bouldin'])},"
        f" Calinski-Harabasz {_number(details['calinski_harabasz'], 1)}, inertia {_number(details['inertia'], 1)}"
    )
    if len(details["k_sweep"]) > 1:
        sweep = Table(title="K sweep")
        for name in ("k", "silhouette", "davies_bouldin", "calinski_harabasz", "inertia"):
            sweep.add_column(name, justify="right")
        for row in details["k_sweep"]:
            marker = " *" if row["k"] == details["k"] else ""
            sweep.add_row(
                f"{row['k']}{marker}", _number(row.get("silhouette")), _number(row.get("davies_bouldin")),
                _number(row.get("calinski_harabasz"), 1), _number(row.get("inertia"), 1),
            )
        console.print(sweep)

    feature_names = [feature["feature"] for feature in details["features"]]
    segments = Table(title="Segments (centroids in original units)")
    for name in ("segment", "label", "size", "share", *feature_names):
        if name == "label":
            segments.add_column(name, no_wrap=True)
        else:
            segments.add_column(name, justify="right")
    for segment in details["segments"]:
        values = [_number(segment["features"].get(name, {}).get("centroid"), 2) for name in feature_names]
        segments.add_row(
            str(segment["segment_id"]), segment["label"], f"{segment['size']:,}", f"{segment['share']:.1%}", *values
        )
    console.print(segments)
