"""`segjob report`: a succeeded run's pictures and profile as PNG files and one self-contained HTML page.

Everything about the choice of k and the segments comes from the run's tables; the pictures of
individual customers come from a fresh sample of the run's source (segjob.report.customers).
When the source cannot be read any more, the report says why and renders the rest.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from segjob.errors import Interrupted, SegjobError, UsageError
from segjob.progress import Progress, Silent
from segjob.report import html, plots
from segjob.report.customers import DEFAULT_SAMPLE, CustomerSample, EmptySource, customer_sample
from segjob.results import history
from segjob.results.stored import load_model
from segjob.store import db

HTML_NAME = "report.html"


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
        customers = customer_sample(engine, model, sample, progress)
        if customers.matched == 0:
            missing.append(
                f"none of the {customers.sampled:,} customers sampled from {customers.source_description}"
                f" has an assignment in run {run_id}"
            )
    except Interrupted:
        raise
    except EmptySource as exc:
        progress.done("no rows")
        missing.append(f"the customer plots are missing: {exc}")
    except (SegjobError, sa.exc.DBAPIError) as exc:
        progress.done("failed, drawing the rest")
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        missing.append(f"the customer plots are missing: reading {model.spec.source_description} failed: {reason}")

    progress.stage("drawing pictures")
    pictures = plots.draw(details, model, customers, missing)
    progress.done(f"{len(pictures)} pictures")

    progress.stage(f"writing {out_dir}")
    paths = [_write_atomically(out_dir / picture.file, picture.png) for picture in pictures]
    for stale in set(plots.PICTURE_FILES) - {picture.file for picture in pictures}:
        (out_dir / stale).unlink(missing_ok=True)
    page = html.render(details, pictures, customers, missing, plots.colors(details))
    page_path = _write_atomically(out_dir / HTML_NAME, page.encode("utf-8"))
    progress.done(f"{len(paths)} PNG files and {HTML_NAME}")
    return Report(html=page_path, pictures=paths, missing=missing)


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
