"""`segjob report`: a succeeded run's pictures and profile as PNG files and one self-contained HTML page.

Everything about the choice of k and the segments comes from the run's tables. The pictures of
individual customers (scatter, per-customer silhouette) need rows: the run's source is read
again with the stored job spec, a uniform sample of at most `sample` rows (fixed seed: the
run's) gets its model columns rebuilt from the stored parameters (prepare.apply_params), and
each sampled customer is coloured by the segment the run assigned it (assignment table, joined
on customer_key). Customers the run did not assign (new since, or dropped by it) are left out
and counted. When the source cannot be read any more, the report says why and renders the rest.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from segjob import db, history, schema
from segjob.errors import DataError, Interrupted, SegjobError, UsageError
from segjob.progress import Progress, Silent
from segjob.stored import StoredModel, load_model

DEFAULT_SAMPLE = 5_000  # customers drawn for the scatter and per-customer silhouette plots
# Customer keys per IN (...) lookup: far below SQLite's bound-variable limit (999 on old builds).
_LOOKUP_BATCH = 500
HTML_NAME = "report.html"


class _EmptySource(DataError):
    """The run's source holds no rows any more."""


@dataclass
class CustomerSample:
    """Sampled customers that the run assigned: model columns, original values, stored segment."""

    X: np.ndarray  # (n, model columns) scaled as the run scaled them
    original: np.ndarray  # (n, model columns) original units
    segment: np.ndarray  # (n,) segment id from the assignment table
    source_rows: int  # rows the source holds now
    sampled: int  # rows drawn from them
    usable: int  # sampled rows whose model columns could be rebuilt
    source_description: str

    @property
    def matched(self) -> int:
        return len(self.segment)


@dataclass
class Report:
    html: Path
    pictures: list[Path]
    missing: list[str]  # why pictures are missing (e.g. the source is gone)


def write_report(
    engine: sa.Engine, run_id: int, out_dir: Path, sample: int | None = None, progress: Progress | None = None
) -> Report:
    """Write DIR/report.html and its PNG files for succeeded run `run_id`.

    Raises UsageError for an unknown or unfinished run, a sample below 2 and a directory that
    cannot be written.
    """
    from segjob import report_html

    progress = progress or Silent()
    sample = DEFAULT_SAMPLE if sample is None else sample
    if sample < 2:
        raise UsageError(f"--sample must be at least 2, got {sample}")
    db.check_at_head(engine)
    with db.translate_errors(engine):
        model = load_model(engine, run_id)
        details = history.show_run(engine, run_id)
    out_dir = _writable_dir(out_dir)

    missing: list[str] = []
    customers: CustomerSample | None = None
    try:
        customers = _customer_sample(engine, model, sample, progress)
        if customers.matched == 0:
            missing.append(
                f"none of the {customers.sampled:,} customers sampled from {customers.source_description}"
                f" has an assignment in run {run_id}"
            )
    except Interrupted:
        raise
    except _EmptySource as exc:
        progress.done("no rows")
        missing.append(f"the customer plots are missing: {exc}")
    except (SegjobError, sa.exc.DBAPIError) as exc:
        progress.done("failed, drawing the rest")
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        missing.append(f"the customer plots are missing: reading {model.spec.source_description} failed: {reason}")

    progress.stage("drawing pictures")
    from segjob import plots

    pictures = plots.draw(details, model, customers, missing)
    progress.done(f"{len(pictures)} pictures")

    progress.stage(f"writing {out_dir}")
    paths = [_write_atomically(out_dir / picture.file, picture.png) for picture in pictures]
    for stale in set(plots.PICTURE_FILES) - {picture.file for picture in pictures}:
        (out_dir / stale).unlink(missing_ok=True)
    page = report_html.render(details, pictures, customers, missing, plots.colors(details))
    html = _write_atomically(out_dir / HTML_NAME, page.encode("utf-8"))
    progress.done(f"{len(paths)} PNG files and {HTML_NAME}")
    return Report(html=html, pictures=paths, missing=missing)


def _writable_dir(out_dir: Path) -> Path:
    out_dir = Path(out_dir).expanduser().resolve()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write the report to {out_dir}: {exc.strerror or exc}") from None
    return out_dir


def _write_atomically(path: Path, content: bytes) -> Path:
    """Write to a temporary file next to `path`, then rename: a reader never sees half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _customer_sample(engine: sa.Engine, model: StoredModel, sample: int, progress: Progress) -> CustomerSample:
    from segjob.prepare import apply_params

    spec = model.spec
    frame, source_rows, description = _read_sample(engine, model, sample, progress)
    rows = apply_params(frame, spec.id, model.features)
    segment_of = _assigned_segments(engine, model.run_id, rows.keys.tolist())
    matched = np.array([key in segment_of for key in rows.keys], dtype=bool)
    segment = np.array([segment_of[key] for key in rows.keys[matched]], dtype=np.int64)
    return CustomerSample(
        X=rows.X[matched],
        original=rows.original[matched],
        segment=segment,
        source_rows=source_rows,
        sampled=len(frame),
        usable=len(rows.keys),
        source_description=description,
    )


def _read_sample(engine: sa.Engine, model: StoredModel, sample: int, progress: Progress) -> tuple[Any, int, str]:
    """(a uniform sample of at most `sample` source rows, rows in the source, its description)."""
    from segjob.source import describe_source, iter_source

    spec = model.spec
    progress.stage(f"reading customers from {spec.source_description}")
    if spec.transactions:
        from segjob.transactions import transaction_source

        # The features as the run built them: the as-of date it resolved, not "the latest day now".
        as_of = (spec.transaction_features or {}).get("as_of") or spec.as_of
        spec, source = transaction_source(engine, dataclasses.replace(spec, as_of=as_of))
    else:
        source = describe_source(engine, spec)
    with db.translate_errors(engine), closing(iter_source(engine, spec, source)) as chunks:
        frame, rows = uniform_sample(chunks, sample, spec.seed, progress.rows)
    if not rows:
        raise _EmptySource(f"{source.description} holds no rows now")
    progress.done(f"{rows:,} rows, {len(frame):,} sampled")
    return frame, rows, source.description


def uniform_sample(
    chunks: Iterable[pd.DataFrame], size: int, seed: int, progress: Callable[[int], None] | None = None
) -> tuple[pd.DataFrame | None, int]:
    """A uniform sample without replacement of at most `size` rows of all `chunks`, in source order,
    and the number of rows seen (None when there were none). Memory: `size` rows plus one chunk.

    Every row draws a random key from a generator seeded with `seed`; the `size` smallest keys win,
    so each subset of `size` rows is equally likely and the same rows in the same order give the
    same sample.
    """
    rng = np.random.default_rng(seed)
    kept: pd.DataFrame | None = None
    keys = np.empty(0)
    rows = 0
    for chunk in chunks:
        rows += len(chunk)
        if progress:
            progress(rows)
        frame = chunk if kept is None else pd.concat([kept, chunk], ignore_index=True)
        keys = np.concatenate([keys, rng.random(len(chunk))])
        if len(frame) > size:
            smallest = np.sort(np.argpartition(keys, size)[:size])
            frame, keys = frame.iloc[smallest].reset_index(drop=True), keys[smallest]
        kept = frame
    return kept, rows


def _assigned_segments(engine: sa.Engine, run_id: int, keys: list[str]) -> dict[str, int]:
    assignment = schema.assignment
    found: dict[str, int] = {}
    with db.translate_errors(engine), engine.connect() as connection:
        for start in range(0, len(keys), _LOOKUP_BATCH):
            batch = keys[start : start + _LOOKUP_BATCH]
            rows = connection.execute(
                sa.select(assignment.c.customer_key, assignment.c.segment_id).where(
                    assignment.c.run_id == run_id, assignment.c.customer_key.in_(batch)
                )
            )
            found.update((row.customer_key, row.segment_id) for row in rows)
    return found
