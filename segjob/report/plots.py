"""The report's pictures: each function takes plain numbers and returns PNG bytes. No database here.

matplotlib is used through its object-oriented API on the Agg canvas (no pyplot, no global
backend state, no display), and is imported only by this module, which only `segjob report`
and `segjob demo` load: `segjob --help` stays fast.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from segjob.model.criteria import CRITERIA
from segjob.model.explain import plural
from segjob.model.profile import NOISE_SEGMENT_ID
from segjob.report.customers import CustomerSample
from segjob.results.details import RunDetails, SweepRow
from segjob.results.stored import StoredModel

DPI = 110
NOISE_COLOR = "#9a9a9a"
CHOSEN_COLOR = "#d62728"
REJECTED_COLOR = "#8c8c8c"
LINE_COLOR = "#1f4e79"
# Colours that stay distinct for up to 10 segments (no grey: that is for DBSCAN outliers); more
# cycle through tab20.
_TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79", "#d62728"]


@dataclass(frozen=True)
class SegmentStyle:
    segment_id: int
    label: str
    color: str
    noise: bool = False

    @property
    def name(self) -> str:
        return f"{self.segment_id}: {self.label}"


def segment_styles(segments: list[tuple[int, str, bool]]) -> list[SegmentStyle]:
    """A colour for each (segment id, label, is noise), in the given order; noise is grey."""
    from matplotlib import colormaps

    palette = _TAB10
    if len(segments) > len(_TAB10):
        tab20 = [_hex(colormaps["tab20"](j)) for j in range(20)]
        palette = [color for color in tab20 if color not in ("#7f7f7f", "#c7c7c7")]  # greys: outliers
    styles, i = [], 0
    for segment_id, label, noise in segments:
        if noise:
            styles.append(SegmentStyle(segment_id, label, NOISE_COLOR, True))
            continue
        color = palette[i % len(palette)]
        styles.append(SegmentStyle(segment_id, label, color))
        i += 1
    return styles


def _hex(rgba) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgba[:3])


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    figure.set_dpi(DPI)
    fit_text(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def fit_text(figure: Figure) -> None:
    """Re-wrap each axis label that runs past the figure's edge, narrower until it fits. The
    constrained layout makes room for a label's depth, never for its length: a long label along a
    short axis (the principal components' loadings on the vertical axis) would be cut off."""
    labels = [axis.label for ax in figure.axes for axis in (ax.xaxis, ax.yaxis)]
    for label in _outside(figure, labels):
        text = " ".join(label.get_text().split())
        width = len(text)
        while width > 20 and label in _outside(figure, [label]):
            width = int(width * 0.8)
            label.set_text(_wrap(text, width))


def clipped_texts(figure: Figure) -> list[str]:
    """The titles, axis labels, legend entries and annotations that do not lie wholly inside the figure."""
    texts = list(figure.texts)  # a suptitle is one of them
    for ax in figure.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        if (legend := ax.get_legend()) is not None:
            texts += legend.get_texts()
    return [text.get_text() for text in _outside(figure, texts)]


def _outside(figure: Figure, texts: list) -> list:
    """Those of `texts` (shown, not empty) that reach beyond the figure, as the figure is now laid out."""
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    figure.draw_without_rendering()
    renderer = canvas.get_renderer()
    box = figure.bbox
    outside = []
    for text in texts:
        if not text.get_visible() or not text.get_text().strip():
            continue
        extent = text.get_window_extent(renderer)
        if extent.x0 < box.x0 - 0.5 or extent.y0 < box.y0 - 0.5 or extent.x1 > box.x1 + 0.5 or extent.y1 > box.y1 + 0.5:
            outside.append(text)
    return outside


def _wrap(text: str, width: int = 28) -> str:
    """Lines of at most `width` characters, broken at spaces only: a long word stays whole."""
    return "\n".join(textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)) or text


def elbow(ks: list[int], inertia: list[float], chosen_k: int, elbow_k: int | None, rejected: set[int]) -> bytes:
    """Inertia against k; the chosen k and Kneedle's elbow marked, rejected k drawn hollow."""
    figure = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = figure.add_subplot()
    ax.plot(ks, inertia, color=LINE_COLOR, marker="o", zorder=2, label="inertia")
    _mark_rejected(ax, ks, inertia, rejected)
    if elbow_k is not None and elbow_k in ks:
        y = inertia[ks.index(elbow_k)]
        ax.scatter(
            [elbow_k],
            [y],
            s=260,
            facecolors="none",
            edgecolors="#2ca02c",
            linewidths=2,
            zorder=3,
            label=f"elbow (Kneedle): k={elbow_k}",
        )
    ax.axvline(chosen_k, color=CHOSEN_COLOR, linestyle="--", linewidth=1.2, zorder=1, label=f"chosen k={chosen_k}")
    ax.scatter([chosen_k], [inertia[ks.index(chosen_k)]], s=90, color=CHOSEN_COLOR, marker="*", zorder=4)
    ax.set_xticks(ks)
    ax.set_xlabel("k (number of segments)")
    ax.set_ylabel("inertia (sum of squared distances, scaled units)")
    ax.set_title("Elbow curve")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return _png(figure)


def _mark_rejected(ax, ks: list[int], values: list[float], rejected: set[int]) -> None:
    points = [(k, v) for k, v in zip(ks, values) if k in rejected and v is not None and np.isfinite(v)]
    if points:
        ax.scatter(
            *zip(*points), s=70, marker="X", color=REJECTED_COLOR, zorder=5, label="rejected (segment too small)"
        )


def criteria(sweep: list[SweepRow], chosen_k: int, chosen_by: Mapping[str, int], rejected: set[int]) -> bytes:
    """One panel per quality criterion against k, with the chosen k and each criterion's own pick."""
    panels = [c for c in CRITERIA.values() if c.title and any(row.metrics.get(c.metric) is not None for row in sweep)]
    columns = len(panels) if len(panels) <= 2 else 2 if len(panels) == 4 else 3
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(4.6 * columns, 3.6 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax, criterion in zip(axes, panels):
        measured = [(row.k, row.metrics.get(criterion.metric)) for row in sweep]
        ks = [k for k, value in measured if value is not None]
        values = [value for _, value in measured if value is not None]
        ax.plot(ks, values, color=LINE_COLOR, marker="o", zorder=2)
        _mark_rejected(ax, ks, values, rejected)
        pick = chosen_by.get(criterion.name)
        if pick is not None and pick in ks and pick != chosen_k:
            ax.scatter(
                [pick],
                [values[ks.index(pick)]],
                s=220,
                facecolors="none",
                edgecolors="#2ca02c",
                linewidths=2,
                zorder=3,
                label=f"would pick k={pick}",
            )
        ax.axvline(chosen_k, color=CHOSEN_COLOR, linestyle="--", linewidth=1.2, label=f"chosen k={chosen_k}")
        if chosen_k in ks:
            ax.scatter([chosen_k], [values[ks.index(chosen_k)]], s=90, color=CHOSEN_COLOR, marker="*", zorder=4)
        ax.set_xticks(ks)
        ax.set_xlabel("k")
        ax.set_title(f"{criterion.title}\n({criterion.direction})", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    return _png(figure)


def silhouette_samples_plot(values: np.ndarray, labels: np.ndarray, styles: list[SegmentStyle]) -> bytes:
    """Per-customer silhouette, one sorted band per segment, with the mean as a dashed line."""
    members = [s for s in styles if not s.noise and (labels == s.segment_id).any()]
    bands = [np.sort(values[labels == s.segment_id])[::-1] for s in members]  # widest bar on top
    height = max(4.0, 0.55 * len(members) + 2.5)
    figure = Figure(figsize=(7.5, height), layout="constrained")
    ax = figure.add_subplot()
    gap = max(2, len(values) // 60)
    # A small segment still gets room for its (up to three-line) label: each slot is at least
    # about 0.42 inch of the axes' height; solved by a few rounds of fixed-point iteration.
    share = 0.42 / (height - 1.3)
    slot = 0.0
    for _ in range(6):
        slot = share * (sum(max(len(band), slot) for band in bands) + gap * (len(bands) + 1))
    ticks: list[float] = []
    top: float = gap
    for style, band in zip(members, bands):
        room = max(len(band), slot)
        start = top + (room - len(band)) / 2
        ax.fill_betweenx(start + np.arange(len(band)), 0, band, color=style.color, alpha=0.85, linewidth=0)
        ticks.append(top + room / 2)
        top += room + gap
    mean = float(values.mean())
    ax.axvline(mean, color="black", linestyle="--", linewidth=1)
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_yticks(ticks, [_wrap(s.name, 34) for s in members], fontsize=8)
    ax.set_ylim(top, 0)  # segment 1 on top, as in the other pictures
    ax.set_xlim(min(-0.1, float(values.min()) - 0.05), 1.0)
    ax.set_xlabel("silhouette (below 0: closer to another segment; 1: deep inside its own)")
    ax.set_title(f"Silhouette per customer ({len(values):,} sampled)\ndashed line: mean {mean:.3f}", fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    return _png(figure)


def scatter(
    points: np.ndarray,
    labels: np.ndarray,
    centers: dict[int, tuple[float, float]],
    styles: list[SegmentStyle],
    x_label: str,
    y_label: str,
    title: str,
    log_axes: tuple[bool, bool] = (False, False),
) -> tuple[Figure, str]:
    """Customers coloured by segment, centroids as large crosses, legend outside the axes, and a
    note ("" when none) naming the customers drawn at an edge because they lie far outside the rest."""
    figure = Figure(figsize=(9.5, 6.0), layout="constrained")
    ax = figure.add_subplot()
    size = 22 if len(points) <= 1000 else 8
    limits = [None if logged else _outlier_limits(points[:, axis]) for axis, logged in enumerate(log_axes)]
    drawn = points.copy()
    beyond = np.zeros(len(points), dtype=bool)
    for axis, limit in enumerate(limits):
        if limit is not None:
            beyond |= (points[:, axis] < limit[0]) | (points[:, axis] > limit[1])
            drawn[:, axis] = np.clip(points[:, axis], *limit)
    for style in styles:
        mine = labels == style.segment_id
        if not mine.any():
            continue
        ax.scatter(
            drawn[mine & beyond, 0],
            drawn[mine & beyond, 1],
            s=size * 3,
            facecolors="none",
            edgecolors=style.color,
            marker="D",
            linewidths=1.2,
        )
        mine &= ~beyond
        ax.scatter(
            drawn[mine, 0],
            drawn[mine, 1],
            s=size * 2 if style.noise else size,
            color=style.color,
            alpha=0.75,
            marker="x" if style.noise else "o",
            linewidths=1.2 if style.noise else 0,
            label=_wrap(style.name),
        )
    for style in styles:
        if style.segment_id in centers:
            x, y = centers[style.segment_id]
            ax.scatter([x], [y], s=260, marker="X", color=style.color, edgecolors="black", linewidths=1.3, zorder=5)
    ax.scatter([], [], s=120, marker="X", color="white", edgecolors="black", linewidths=1.3, label="centroid")
    # A feature the model saw as log1p is drawn on a log-like axis (linear below 1, where log1p is
    # too), so the picture shows the distances the model used, in original units.
    if log_axes[0]:
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xticks(_log_ticks(points[:, 0]), [f"{t:,g}" for t in _log_ticks(points[:, 0])])
    if log_axes[1]:
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_yticks(_log_ticks(points[:, 1]), [f"{t:,g}" for t in _log_ticks(points[:, 1])])
    note = ""
    if beyond.any():
        for axis, limit in enumerate(limits):
            if limit is not None:
                ax.set_xlim(*_padded(limit)) if axis == 0 else ax.set_ylim(*_padded(limit))
        ranges = "; ".join(
            f"{side} {limit[0]:,.4g} to {limit[1]:,.4g}"
            for side, limit in zip(("horizontal", "vertical"), limits)
            if limit is not None
        )
        count = int(beyond.sum())
        note = (
            f"{plural(count, 'customer')} far outside the rest {'is' if count == 1 else 'are'} drawn at the edge"
            f" as hollow diamonds, so they do not squeeze the others (axes show {ranges})"
        )
        ax.scatter([], [], s=size * 3, facecolors="none", edgecolors="black", marker="D", label="beyond the axes")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8, markerscale=1.5)
    return figure, note


# An axis is cut to the central 99% of the customers (plus a margin) only when the customers
# outside it would otherwise stretch the axis to more than this many times that span.
SQUEEZE_FACTOR = 3.0


def _outlier_limits(values: np.ndarray) -> tuple[float, float] | None:
    """The central 99% of `values` when a few far-out values would squeeze the rest, else None."""
    if len(values) < 20:
        return None
    low, high = np.percentile(values, [0.5, 99.5])
    span = float(high - low)
    if span <= 0 or float(values.max() - values.min()) <= SQUEEZE_FACTOR * span:
        return None
    return float(low), float(high)


def _padded(limit: tuple[float, float]) -> tuple[float, float]:
    margin = 0.04 * (limit[1] - limit[0])
    return limit[0] - margin, limit[1] + margin


def _log_ticks(values: np.ndarray) -> list[float]:
    """Round ticks (0, 1, 2, 5, 10, 20, 50, ...) across the range of non-negative `values`."""
    top = float(np.nanmax(values)) if len(values) else 1.0
    low = float(np.nanmin(values)) if len(values) else 0.0
    ticks = [0.0] if low < 1 else []
    for power in range(0, int(np.floor(np.log10(max(top, 1.0)))) + 1):
        ticks += [
            step * 10.0**power
            for step in (1, 2, 5)
            if low <= step * 10.0**power * 1.5 and step * 10.0**power <= top * 1.1
        ]
    return ticks


def sizes(styles: list[SegmentStyle], counts: list[int], shares: list[float]) -> bytes:
    """Horizontal bars of segment size, each labelled with its count and share."""
    figure = Figure(figsize=(8.5, max(2.6, 0.5 * len(styles) + 1.4)), layout="constrained")
    ax = figure.add_subplot()
    y = np.arange(len(styles))
    ax.barh(y, counts, color=[s.color for s in styles])
    for row, (count, share) in enumerate(zip(counts, shares)):
        ax.text(count, row, f" {count:,} ({share:.1%})", va="center", fontsize=9)
    ax.set_yticks(y, [_wrap(s.name, 40) for s in styles], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, max(counts) * 1.25)
    ax.set_xlabel("customers")
    ax.set_title("Segment sizes")
    ax.spines[["top", "right"]].set_visible(False)
    return _png(figure)


HEATMAP_UPRIGHT_COLUMNS = 8
HEATMAP_MAX_WIDTH = 15.0  # inches; the report shows pictures at most a page wide


def heatmap(z: np.ndarray, styles: list[SegmentStyle], features: list[str]) -> bytes:
    """Segment-by-feature z-scores (segment mean against the population), annotated."""
    from matplotlib.colors import TwoSlopeNorm

    rows, columns = z.shape
    # Wider with more columns, up to what a page shows without shrinking the text away; beyond
    # eight columns the names stand at an angle instead of being wrapped into narrow stacks.
    slanted = columns > HEATMAP_UPRIGHT_COLUMNS
    width = min(HEATMAP_MAX_WIDTH, max(6.5, (0.62 if slanted else 1.15) * columns + 4.5))
    height = max(2.8, 0.5 * rows + 1.8) + (1.6 if slanted else 0.0)
    figure = Figure(figsize=(width, height), layout="constrained")
    ax = figure.add_subplot()
    limit = max(1.0, float(np.nanmax(np.abs(z))) if z.size else 1.0)
    image = ax.imshow(z, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -limit, limit), aspect="auto")
    for i in range(rows):
        for j in range(columns):
            value = z[i, j]
            ax.text(
                j,
                i,
                f"{value:+.2f}",
                ha="center",
                va="center",
                fontsize=9 if columns <= 12 else 7,
                color="white" if abs(value) > 0.6 * limit else "black",
            )
    if slanted:
        ax.set_xticks(np.arange(columns), features, fontsize=8, rotation=40, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticks(np.arange(columns), [_wrap(f, 16) for f in features], fontsize=9)
    ax.set_yticks(np.arange(rows), [_wrap(s.name, 40) for s in styles], fontsize=9)
    ax.set_title("Feature z-scores by segment\n(segment mean vs. all customers, in standard deviations)", fontsize=10)
    figure.colorbar(image, ax=ax, label="z-score", shrink=0.9)
    return _png(figure)


def silhouette_values(X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-row silhouette (needs at least two segments among the rows)."""
    from sklearn import config_context
    from sklearn.metrics import silhouette_samples

    # Distances are computed in chunks of this many MB (scikit-learn's default is 1 GB).
    with config_context(working_memory=64):
        return silhouette_samples(X, labels)


def principal_components(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, first two principal axes (2, d), their share of variance, scores (n, 2)) of X."""
    mean = X.mean(axis=0)
    centered = X - mean
    _, singular, axes = np.linalg.svd(centered, full_matrices=False)
    variance = singular**2
    share = variance / variance.sum() if variance.sum() > 0 else np.zeros_like(variance)
    axes = axes[:2]
    # A fixed sign (largest loading positive) so the same data always gives the same picture.
    axes = axes * np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    return mean, axes, share[:2], centered @ axes.T


# --- the report's pictures from a run ---------------------------------------------------------


# Every picture file a report may hold; a new report into the same directory removes the ones
# it does not draw, so no PNG there is older than report.html.
PICTURE_FILES = (
    "elbow.png",
    "criteria.png",
    "customers.png",
    "silhouette_samples.png",
    "segment_sizes.png",
    "zscore_heatmap.png",
)


@dataclass(frozen=True)
class Picture:
    file: str  # PNG file name in the report directory
    title: str
    caption: str
    png: bytes
    axes: tuple[str, str] | None = None  # (horizontal, vertical) axis labels, repeated in the page


def draw(
    details: RunDetails, model: StoredModel, customers: CustomerSample | None, missing: list[str]
) -> list[Picture]:
    """Every picture the run's tables (and the customer sample, when there is one) allow.

    `details` is `history.show_run`; a reason is appended to `missing` for each picture left out.
    """
    # Feature names and labels are data: a "$" in them is a dollar sign, not the start of a formula.
    with rc_context({"text.parse_math": False}):
        return _draw(details, model, customers, missing)


def _draw(
    details: RunDetails, model: StoredModel, customers: CustomerSample | None, missing: list[str]
) -> list[Picture]:
    styles = _styles(details)
    pictures = _sweep_pictures(details, missing)
    if customers is not None and customers.matched:
        pictures += _customer_pictures(details, model, customers, styles, missing)
    segments = details.segments
    pictures.append(
        Picture(
            "segment_sizes.png",
            "Segment sizes",
            f"Customers in each segment of all {details.summary.rows_used:,} the run used, with their share.",
            sizes(styles, [s.size for s in segments], [s.share for s in segments]),
        )
    )
    names = [f.feature for f in details.features]
    z = np.array([[s.features[name].z_score if name in s.features else np.nan for name in names] for s in segments])
    pictures.append(
        Picture(
            "zscore_heatmap.png",
            "Feature z-scores by segment",
            "How far each segment's mean lies from the mean of all customers, in population standard deviations"
            " (red: above, blue: below). One-hot columns compare the share of a level.",
            heatmap(z, styles, names),
        )
    )
    return pictures


def colors(details: RunDetails) -> dict[int, str]:
    """Segment id -> the colour every picture gives it, for the page's tables."""
    return {style.segment_id: style.color for style in _styles(details)}


def _styles(details: RunDetails) -> list[SegmentStyle]:
    dbscan = details.summary.algorithm == "dbscan"
    return segment_styles(
        [(s.segment_id, s.label, dbscan and s.segment_id == NOISE_SEGMENT_ID) for s in details.segments]
    )


def _sweep_pictures(details: RunDetails, missing: list[str]) -> list[Picture]:
    sweep = [row for row in details.k_sweep if row.metrics.get("inertia") is not None]
    summary = details.summary
    if len(sweep) < 2:
        reasons: dict[str | None, str] = {
            "fixed": f"k was fixed by --k={summary.k}",
            "dbscan": "DBSCAN finds the number of segments itself",
        }
        why = reasons.get(summary.k_criterion, "the run tried fewer than two k")
        missing.append(f"no elbow or criteria plots: {why}, so there is no K sweep to plot")
        return []
    ks = [row.k for row in sweep]
    chosen_k = summary.k
    assert chosen_k is not None  # a run with a K sweep chose a k
    rejected = {row.k for row in details.rejected_k}
    chosen_by = details.k_explanation.chosen_k_by
    elbow_k = chosen_by.get("elbow")
    criterion = summary.k_criterion or "silhouette"
    disagree = ", ".join(f"{name}: k={k}" for name, k in chosen_by.items())
    return [
        Picture(
            "elbow.png",
            "Elbow curve",
            f"Inertia (within-segment sum of squares, scaled units) for k={ks[0]}..{ks[-1]}. Star: the chosen"
            f" k={chosen_k} (by {criterion})"
            + (
                f"; green ring: the elbow found by Kneedle (k={elbow_k})"
                if elbow_k is not None
                else "; Kneedle found no elbow"
            )
            + ("; grey X: rejected k" if rejected else "")
            + ".",
            elbow(
                ks,
                [value for row in sweep if (value := row.metrics.get("inertia")) is not None],
                chosen_k,
                elbow_k,
                rejected,
            ),
        ),
        Picture(
            "criteria.png",
            "Quality criteria against k",
            f"Each criterion over the K sweep; dashed line and star: the chosen k={chosen_k}; green ring: the k"
            f" that criterion would choose when it differs{'; grey X: rejected k' if rejected else ''}."
            f" Each criterion's choice: {disagree}.",
            criteria(sweep, chosen_k, chosen_by, rejected),
        ),
    ]


def _customer_pictures(
    details: RunDetails,
    model: StoredModel,
    customers: CustomerSample,
    styles: list[SegmentStyle],
    missing: list[str],
) -> list[Picture]:
    pictures = []
    scatter_picture = _scatter_picture(details, model, customers, styles, missing)
    if scatter_picture is not None:
        pictures.append(scatter_picture)
    noise = {s.segment_id for s in styles if s.noise}
    members = ~np.isin(customers.segment, list(noise))
    distinct = len(np.unique(customers.segment[members]))
    if 2 <= distinct < members.sum():
        values = silhouette_values(customers.X[members], customers.segment[members])
        pictures.append(
            Picture(
                "silhouette_samples.png",
                "Silhouette per customer",
                f"Silhouette of {int(members.sum()):,} sampled customers in the run's scaled feature space, by the"
                f" segment the run assigned them; mean {values.mean():.3f}"
                + (
                    f" (the run measured {stored:.3f} on its rows)"
                    if (stored := details.model_metrics.get("silhouette")) is not None
                    else ""
                )
                + "; bars left of 0 sit closer to another segment."
                + (" DBSCAN outliers are left out." if noise else ""),
                silhouette_samples_plot(values, customers.segment[members], styles),
            )
        )
    else:
        missing.append("no per-customer silhouette plot: the sampled customers fall into fewer than two segments")
    return pictures


def _scatter_picture(
    details: RunDetails,
    model: StoredModel,
    customers: CustomerSample,
    styles: list[SegmentStyle],
    missing: list[str],
) -> Picture | None:
    features = model.features
    numeric = [j for j, f in enumerate(features) if f.kind == "numeric"]
    noise = {s.segment_id for s in styles if s.noise}
    shown = f"{customers.matched:,} sampled customers"
    if len(numeric) == 2:
        names = [features[j].name for j in numeric]
        points = customers.original[:, numeric]
        x, y = names
        centers = {
            s.segment_id: (s.features[x].centroid, s.features[y].centroid)
            for s in details.segments
            if s.segment_id not in noise
        }
        logged = (features[numeric[0]].transform == "log1p", features[numeric[1]].transform == "log1p")
        labels = [name + (" (log scale: the model used log1p)" if log else "") for name, log in zip(names, logged)]
        figure, note = scatter(
            points,
            customers.segment,
            centers,
            styles,
            labels[0],
            labels[1],
            f"Customers by segment ({customers.matched:,} sampled)",
            logged,
        )
        return Picture(
            "customers.png",
            "Customers by segment",
            f"{shown}, coloured by segment, on the run's two features in original units; X: segment centroids."
            + (f" {note}." if note else ""),
            _png(figure),
            axes=(labels[0], labels[1]),
        )
    if len(features) < 2 or customers.matched < 3:
        missing.append("no customer scatter plot: it needs two model columns and at least three sampled customers")
        return None
    mean, axes, share, scores = principal_components(customers.X)
    projected = (model.centroids - mean) @ axes.T
    centers = {
        int(segment_id): (float(projected[i, 0]), float(projected[i, 1]))
        for i, segment_id in enumerate(model.segment_ids)
        if segment_id not in noise
    }
    labels = [
        _wrap(f"PC{i + 1} ({share[i]:.0%} of variance): {_loadings(axes[i], [f.name for f in features])}", 90)
        for i in range(2)
    ]
    figure, note = scatter(
        scores,
        customers.segment,
        centers,
        styles,
        labels[0],
        labels[1],
        f"Customers by segment on PC1/PC2 of the scaled features ({customers.matched:,} sampled)",
    )
    return Picture(
        "customers.png",
        "Customers by segment (principal components)",
        f"{shown}, coloured by segment, on the first two principal components of the run's scaled features"
        " (the axis labels name the features that load most on each); X: segment centroids."
        + (f" {note}." if note else ""),
        _png(figure),
        axes=(labels[0].replace("\n", " "), labels[1].replace("\n", " ")),
    )


def _loadings(axis: np.ndarray, names: list[str], most: int = 3) -> str:
    """The features that load most on a principal axis, e.g. "+0.71 Age, -0.70 Spending Score"."""
    order = np.argsort(-np.abs(axis))[:most]
    strong = [j for j in order if abs(axis[j]) >= 0.3] or list(order[:1])
    return ", ".join(f"{axis[j]:+.2f} {names[j]}" for j in strong)
