"""OpenLineage run events, for data platforms that track datasets (Marquez, DataHub, Airflow's
and Dagster's lineage views).

When the openlineage-python client is configured in one of its standard ways (`OPENLINEAGE_CONFIG`,
an `openlineage.yml` in the working folder or in ~/.openlineage, `OPENLINEAGE_URL`, or
`OPENLINEAGE__TRANSPORT__...` variables) and not disabled (`OPENLINEAGE_DISABLED=true`), every
run that starts emits START, then COMPLETE, FAIL or ABORT (interrupted), through the client's
own transport. Otherwise nothing is imported and nothing is emitted.

- job: namespace `OPENLINEAGE_NAMESPACE` (default "segjob"); name the job's name (a score run:
  "JOB.score").
- run: a UUID derived from the database and segjob's run id, so START and the final event agree
  and a re-delivered event names the same run; the `segjob` run facet carries the run id, kind, k
  and row counts (read, used, dropped).
- inputs: the source table or transactions table (a --query has no table: its text is the job's
  `sql` facet); outputs: segjob's assignment, segment, segment_centroid and run_metric tables, the
  assignment with its row count. Names follow OpenLineage's dataset naming: PostgreSQL
  `postgres://host:port` and `database.schema.table`, SQLite `sqlite://PATH` and the table.

Lineage is a by-product: an emitter that fails is logged and never fails the run.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from segjob.config import JobSpec
from segjob.errors import Interrupted
from segjob.store import db, schema
from segjob.store.dialect import dialect_of

_log = logging.getLogger("segjob.lineage")
_OUTPUT_TABLES = ("assignment", "segment", "segment_centroid", "run_metric")
_PRODUCER = "https://pypi.org/project/segjob/"


def configured(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> bool:
    """Whether the OpenLineage client has a configuration here (its own lookup rules)."""
    environ = os.environ if environ is None else environ
    if environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OPENLINEAGE_URL") or any(name.startswith("OPENLINEAGE__TRANSPORT") for name in environ):
        return True
    files = [environ.get("OPENLINEAGE_CONFIG"), (cwd or Path.cwd()) / "openlineage.yml"]
    files.append(Path(environ.get("HOME", str(Path.home()))) / ".openlineage" / "openlineage.yml")
    return any(path and Path(path).is_file() for path in files)


@contextmanager
def emitted(engine: sa.Engine, spec: JobSpec, run_id: int, kind: str) -> Iterator[None]:
    """START now; COMPLETE when the block ends, FAIL or ABORT when it raises."""
    events = RunEvents(engine, spec, run_id, kind)
    events.start()
    try:
        yield
    except BaseException as exc:
        events.finish(exc)
        raise
    events.finish(None)


class RunEvents:
    """The events of one run: `start()` once it has a run id, then `finish(error)`."""

    def __init__(self, engine: sa.Engine, spec: JobSpec, run_id: int, kind: str) -> None:
        self.engine, self.spec, self.run_id, self.kind = engine, spec, run_id, kind
        self.client: Any = None
        if configured():
            try:
                from openlineage.client import OpenLineageClient
            except ImportError:
                _log.warning("OpenLineage is configured but openlineage-python is not installed; no events sent")
                return
            self.client = OpenLineageClient()

    def start(self) -> None:
        self._emit("START", None)

    def finish(self, error: BaseException | None) -> None:
        if error is None:
            self._emit("COMPLETE", None)
        else:
            self._emit("ABORT" if isinstance(error, Interrupted | KeyboardInterrupt) else "FAIL", error)

    def _emit(self, state: str, error: BaseException | None) -> None:
        if self.client is None:
            return
        try:
            self.client.emit(self._event(state, error))
        except Exception as exc:  # lineage must never fail the run
            _log.warning("could not send the OpenLineage %s event of run %s: %s", state, self.run_id, exc)

    def _event(self, state: str, error: BaseException | None):
        from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import error_message_run, output_statistics_output_dataset, sql_job

        row = self._run_row() if state != "START" else None
        namespace, database = _dataset_namespace(self.engine)
        inputs = [InputDataset(namespace, _qualified(database, name)) for name in _input_tables(self.spec)]
        outputs = []
        for table in _OUTPUT_TABLES:
            facets: dict[str, Any] = {}
            if table == "assignment" and row is not None and row.rows_used is not None and state == "COMPLETE":
                facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=int(row.rows_used)
                )
            name = _qualified(database, f"{schema.SCHEMA}.{table}" if database else table)
            outputs.append(OutputDataset(namespace, name, outputFacets=facets))
        run_facets: dict[str, Any] = {"segjob": _segjob_facet(self.run_id, self.kind, row)}
        if error is not None:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=str(error) or type(error).__name__, programmingLanguage="python"
            )
        job_facets: dict[str, Any] = {}
        if self.spec.query:
            job_facets["sql"] = sql_job.SQLJobFacet(query=self.spec.query)
        return RunEvent(
            eventType=getattr(RunState, state),
            eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=str(self._run_uuid()), facets=run_facets),
            job=Job(
                namespace=os.environ.get("OPENLINEAGE_NAMESPACE", "segjob"), name=self._job_name(), facets=job_facets
            ),
            inputs=inputs,
            outputs=outputs,
            producer=_PRODUCER,
        )

    def _job_name(self) -> str:
        return self.spec.job if self.kind == "fit" else f"{self.spec.job}.{self.kind}"

    def _run_uuid(self) -> uuid.UUID:
        where = db.display_url(self.engine.url)
        return uuid.uuid5(uuid.NAMESPACE_URL, f"segjob:{where}#run={self.run_id}")

    def _run_row(self):
        run = schema.run
        columns = (run.c.k, run.c.rows_read, run.c.rows_used, run.c.rows_dropped)
        try:
            with self.engine.connect() as connection:
                return connection.execute(sa.select(*columns).where(run.c.run_id == self.run_id)).first()
        except sa.exc.SQLAlchemyError:  # the database went away: the event goes without counts
            return None


def _segjob_facet(run_id: int, kind: str, row) -> Any:
    import attr
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class SegjobRunFacet(RunFacet):
        runId: int  # noqa: N815 (OpenLineage facets name fields in camelCase)
        kind: str
        k: int | None = None
        rowsRead: int | None = None  # noqa: N815
        rowsUsed: int | None = None  # noqa: N815
        rowsDropped: int | None = None  # noqa: N815

        @staticmethod
        def _get_schema() -> str:
            return "urn:segjob:facet:SegjobRunFacet:1"

    counts = [None if row is None or value is None else int(value) for value in (row or (None,) * 4)]
    return SegjobRunFacet(
        runId=run_id, kind=kind, k=counts[0], rowsRead=counts[1], rowsUsed=counts[2], rowsDropped=counts[3]
    )


def _input_tables(spec: JobSpec) -> list[str]:
    if spec.transactions:
        return [spec.transactions]
    if spec.source and spec.source_format == "database":
        return [spec.source]
    return []


def _dataset_namespace(engine: sa.Engine) -> tuple[str, str | None]:
    """OpenLineage's namespace for the database, and the database name that prefixes table names."""
    url = engine.url
    if dialect_of(engine).postgres:
        return f"postgres://{url.host or 'localhost'}:{url.port or 5432}", url.database
    return f"sqlite://{Path(url.database or ':memory:').resolve()}", None


def _qualified(database: str | None, table: str) -> str:
    """database.schema.table on PostgreSQL (a table without a schema is in `public`), the table on SQLite."""
    if database is None:
        return table
    return f"{database}.{table}" if "." in table else f"{database}.public.{table}"
