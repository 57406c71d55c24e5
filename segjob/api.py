"""The Python API: what a data engineer calls from Airflow, Dagster or a notebook.

Each function opens the database (`database_url`, else $SEGJOB_DATABASE_URL, else the SQLite
file `segjob.db`), makes one library call and closes it again, so a task holds no connection
between calls. Errors are `segjob.SegjobError` subclasses whose `exit_code` is the CLI's.

    import segjob

    segjob.upgrade("sqlite:///segjob.db")
    outcome = segjob.run(source="customers", id="customer_id", features=["income", "spend"])
    details = segjob.run_details(outcome.run_id)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from segjob.config import JobSpec, build_spec
from segjob.errors import UsageError
from segjob.pipeline import RunOutcome, run_job
from segjob.progress import Progress
from segjob.results import history, promotion, retention
from segjob.results.details import RunDetails
from segjob.results.promotion import Promotion
from segjob.results.retention import PruneResult
from segjob.scoring.score import ScoreInput, score_job
from segjob.source import csvload
from segjob.source.csvload import LoadResult
from segjob.store import db, migrate


def spec(config_file: str | Path | None = None, **options: Any) -> JobSpec:
    """A checked job spec from a TOML file and/or the CLI's options as keyword arguments
    (`source=`, `id=`, `features=[...]`, `k=`, `job=`, ...); UsageError names a bad one."""
    return build_spec(Path(config_file) if config_file is not None else None, **options)


def run(
    job_spec: JobSpec | None = None,
    *,
    database_url: str | None = None,
    config_file: str | Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
    spark_session: Any = None,
    **options: Any,
) -> RunOutcome:
    """Run a segmentation job and publish it, as `segjob run` does; returns its run id (or the
    earlier run with the same run key, `reused=True`). Give a spec, or build one from
    `config_file` and `options` as `spec()` does."""
    checked = job_spec if job_spec is not None else spec(config_file, **options)
    with _engine(database_url, checked.statement_timeout) as engine:
        return run_job(engine, checked, progress, force=force, spark_session=spark_session)


def score(
    job: str,
    *,
    database_url: str | None = None,
    model_run_id: int | None = None,
    run_key: str | None = None,
    candidate: bool = False,
    force: bool = False,
    progress: Progress | None = None,
    **source: str | None,
) -> RunOutcome:
    """Assign customers to the segments of `job`'s current model (or of `model_run_id`) without
    refitting, as `segjob score` does. `source` takes ScoreInput's fields: source=, query=, id=,
    transactions=, customer=, date=, amount=, customers=, as_of= (None keeps the model run's)."""
    scored = ScoreInput(**source)
    with _engine(database_url) as engine:
        return score_job(engine, job, scored, model_run_id, run_key, force, progress, candidate)


def promote(run_id: int, *, job: str | None = None, database_url: str | None = None) -> Promotion:
    """Make a succeeded run its job's current run (what `current_segment` shows)."""
    with _engine(database_url) as engine:
        return promotion.promote(engine, run_id, job)


def roll_back(job: str, *, database_url: str | None = None) -> Promotion:
    """Make the run that was current before the job's current run current again."""
    with _engine(database_url) as engine:
        return promotion.roll_back(engine, job)


def run_details(run_id: int, *, database_url: str | None = None) -> RunDetails:
    """Everything `segjob runs show RUN_ID` tells about a run, typed: its summary (`.summary`, the
    run_summary view's row), how k was chosen, the K sweep, features and segments with their
    centroids in original units. `.as_dict()` is what `segjob runs show RUN_ID --json` prints."""
    with _engine(database_url) as engine:
        return history.show_run(engine, run_id)


def runs(job: str | None = None, *, limit: int = 50, database_url: str | None = None) -> list[dict[str, Any]]:
    """The newest runs (of `job`, or of every job), as `segjob runs list --json` prints them."""
    with _engine(database_url) as engine:
        return history.list_runs(engine, job, limit)


def prune(job: str, keep: int, *, database_url: str | None = None) -> PruneResult:
    """Delete the job's older runs, keeping the newest `keep`, the current run and its rollback target."""
    with _engine(database_url) as engine:
        return retention.prune(engine, job, keep)


def load_csv(path: str | Path, table: str, *, if_exists: str = "fail", database_url: str | None = None) -> LoadResult:
    """Load a CSV file with a header row into `table` of your database, as `segjob load-csv` does
    (`if_exists`: "fail", "replace" or "append")."""
    if if_exists not in ("fail", "replace", "append"):
        raise UsageError(f"if_exists must be fail, replace or append, not {if_exists!r}")
    with _engine(database_url, create=True) as engine:  # the data may come before segjob's schema
        return csvload.load_csv(engine, path, table, if_exists=if_exists)


def upgrade(database_url: str | None = None) -> tuple[str | None, str | None]:
    """Create or migrate segjob's tables and views; returns (revision before, revision after)."""
    return migrate.upgrade(database_url)


@contextmanager
def _engine(
    database_url: str | None, statement_timeout: float | None = None, create: bool = False
) -> Iterator[sa.Engine]:
    engine = db.make_engine(database_url, statement_timeout=statement_timeout, must_exist=not create)
    try:
        yield engine
    finally:
        engine.dispose()
