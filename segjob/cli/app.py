"""The `segjob` command line: parse options, call one library function, map errors to exit codes.

Exit codes: 0 success (also an idempotent no-op), 1 unexpected error, 2 usage or configuration
error, 3 input data unusable, 4 another run of the job is in progress, 5 database out of date or
unreachable, 130 Ctrl-C (143 SIGTERM). Library modules are imported inside commands so
`segjob --help` starts fast.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from segjob.errors import SegjobError, UsageError

if TYPE_CHECKING:  # imported by the commands that need it, so `segjob --help` stays fast
    from segjob.results.details import RunDetails


class _FlagHelp:
    """Help whose --help line shows no "<bool>" type: a flag takes no value (our own flags say so
    with metavar="")."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class _HelpWithoutType(_FlagHelp, TyperCommand):
    pass


class _GroupHelpWithoutType(_FlagHelp, TyperGroup):
    pass


app = typer.Typer(
    cls=_GroupHelpWithoutType,
    help="Customer segmentation from a database table to versioned, BI-ready tables.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals would show the database URL
    add_completion=False,
)
db_app = typer.Typer(
    cls=_GroupHelpWithoutType, help="Manage segjob's own schema in the database.", no_args_is_help=True
)
runs_app = typer.Typer(
    cls=_GroupHelpWithoutType, help="Look at run history, metrics and segment profiles.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(runs_app, name="runs")
sql_app = typer.Typer(
    cls=_GroupHelpWithoutType, help="Print SQL that BI tools can run without segjob.", no_args_is_help=True
)
app.add_typer(sql_app, name="sql")

Quiet = Annotated[bool, typer.Option("--quiet", help="No progress on stderr.", rich_help_panel="Output", metavar="")]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="SEGJOB_DATABASE_URL",
        show_envvar=True,
        help="SQLAlchemy URL, e.g. postgresql://user@host:5432/db. Default: sqlite:///segjob.db",
        show_default=False,
        rich_help_panel="Database",
        metavar="URL",
    ),
]
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print one JSON object instead of tables.", rich_help_panel="Output", metavar="")
]
LockWait = Annotated[
    float | None,
    typer.Option(
        "--lock-wait",
        envvar="SEGJOB_LOCK_WAIT",
        help="PostgreSQL: seconds to wait for other sessions' queries on segjob's tables before giving up"
        " (default 60); dashboard queries never queue behind segjob meanwhile.",
        show_default=False,
    ),
]
LOG_FORMATS = ("auto", "text", "json")
LogFormat = Annotated[
    str,
    typer.Option(
        "--log-format",
        envvar="SEGJOB_LOG_FORMAT",
        help="Progress on stderr: auto (bars at a terminal, timestamped lines otherwise), text or json lines.",
        rich_help_panel="Output",
        metavar="[auto|text|json]",
    ),
]


def _print_version(asked: bool) -> None:
    if not asked:
        return
    from importlib.metadata import version  # the packages' versions without importing them (start-up)

    from segjob.version import VERSION

    typer.echo(f"segjob {VERSION} (scikit-learn {version('scikit-learn')}, numpy {version('numpy')})")
    raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print segjob's, scikit-learn's and numpy's versions.",
            metavar="",
        ),
    ] = False,
) -> None:
    pass


def _fail(message: str, code: int) -> None:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(command):
    """Turn segjob's errors into one line on stderr and their exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SegjobError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted by SIGINT", 130)
        except typer.Exit:
            raise
        except Exception as exc:
            if os.environ.get("SEGJOB_DEBUG"):
                raise
            first_line = (str(exc).strip().splitlines() or [""])[0]
            _fail(f"unexpected {type(exc).__name__}: {first_line} (set SEGJOB_DEBUG=1 for a traceback)", 1)

    return wrapper


def _engine(database_url: str | None, statement_timeout: float | None = None, create: bool = False):
    """The database engine; only a command that may start a database (`create`) makes a new SQLite file."""
    from segjob.store import db

    return db.make_engine(database_url, statement_timeout=statement_timeout, must_exist=not create)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, default=str, sort_keys=False))


def _progress(quiet: bool, log_format: str = "auto"):
    """Progress on stderr: bars at a terminal, timestamped lines in a log (see --log-format)."""
    from segjob.cli.terminal import for_stderr  # rich: imported only by commands that show progress

    if log_format not in LOG_FORMATS:
        raise UsageError(f"--log-format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    return for_stderr(quiet, log_format)


@db_app.command("upgrade", cls=_HelpWithoutType)
@handle_errors
def db_upgrade(database_url: DatabaseUrl = None, lock_wait: LockWait = None) -> None:
    """Create segjob's schema, or migrate it to this version.

    Example: segjob db upgrade --database-url postgresql://postgres@127.0.0.1:5432/test
    """
    from segjob.store import db, migrate

    url = db.resolve_url(database_url)
    before, after = migrate.upgrade(url, lock_wait=lock_wait)
    where = db.display_url(url)
    if before == after:
        typer.echo(f"{where}: segjob schema already at {after}")
    else:
        typer.echo(f"{where}: segjob schema upgraded from {before or 'empty'} to {after}")


@db_app.command("grant", cls=_HelpWithoutType)
@handle_errors
def db_grant(
    reader: Annotated[str | None, typer.Option(help="Role for BI: may only SELECT the views.")] = None,
    writer: Annotated[
        str | None, typer.Option(help="Role that runs jobs: reads and writes segjob's tables, cannot alter them.")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Grant least privileges to existing PostgreSQL roles (run as the role that owns segjob's schema).

    Example: segjob db grant --reader bi_reader --writer segjob_writer
    """
    from segjob.store.grants import grant

    # No connection is opened before grant() refuses SQLite, so no file is made there either.
    for statement in grant(_engine(database_url, create=True), reader, writer):
        typer.echo(statement)


@app.command("load-csv", cls=_HelpWithoutType)
@handle_errors
def load_csv(
    path: Annotated[Path, typer.Argument(help="CSV file with a header row.", show_default=False)],
    table: Annotated[
        str, typer.Option("--table", help="Table to create, optionally schema.table.", show_default=False)
    ],
    if_exists: Annotated[
        str, typer.Option("--if-exists", help="When the table exists: fail, replace or append.")
    ] = "fail",
    database_url: DatabaseUrl = None,
) -> None:
    """Load a CSV file into a table of your database (header names kept exactly; COPY on PostgreSQL).

    Example: segjob load-csv customers.csv --table customers --if-exists replace
    """
    from segjob.source.csvload import load_csv as load

    if if_exists not in ("fail", "replace", "append"):
        raise UsageError(f"--if-exists must be fail, replace or append, not {if_exists!r}")
    engine = _engine(database_url, create=True)  # the data may come before segjob's schema
    result = load(engine, path, table, if_exists=if_exists)
    typer.echo(f"loaded {result.rows:,} rows into {result.table} ({len(result.columns)} columns)")


@app.command("run", cls=_HelpWithoutType)
@handle_errors
def run(
    source: Annotated[
        str | None,
        typer.Option(help="Table to read, optionally schema.table.", rich_help_panel="Source", metavar="TABLE"),
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(help="Read-only SELECT to read instead of a table.", rich_help_panel="Source", metavar="SQL"),
    ] = None,
    transactions: Annotated[
        str | None,
        typer.Option(
            help="Transactions table to build purchase-history features from, instead of --source/--query.",
            rich_help_panel="Purchase history (instead of --source)",
            metavar="TABLE",
        ),
    ] = None,
    customer: Annotated[
        str | None,
        typer.Option(
            help="With --transactions: the customer id column.",
            rich_help_panel="Purchase history (instead of --source)",
            metavar="COLUMN",
        ),
    ] = None,
    date: Annotated[
        str | None,
        typer.Option(
            help="With --transactions: the date or timestamp column.",
            rich_help_panel="Purchase history (instead of --source)",
            metavar="COLUMN",
        ),
    ] = None,
    amount: Annotated[
        str | None,
        typer.Option(
            help="With --transactions: the amount column (below 0: a return).",
            rich_help_panel="Purchase history (instead of --source)",
            metavar="COLUMN",
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            help="With --transactions: features as of this date (default: day after the latest).",
            rich_help_panel="Purchase history (instead of --source)",
            metavar="DATE",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="With --transactions: ignore transactions before this date.",
            rich_help_panel="Purchase history (instead of --source)",
            metavar="DATE",
        ),
    ] = None,
    customers: Annotated[
        str | None,
        typer.Option(
            help="With --transactions: table joined on the customer column, for --features.",
            rich_help_panel="Purchase history (instead of --source)",
            metavar="TABLE",
        ),
    ] = None,
    validate_days: Annotated[
        int | None,
        typer.Option(
            help="With --transactions: move the as-of date back N days and check the segments against what"
            " their customers bought in those N days (purchase rate, spend, revenue share per segment);"
            " also the horizon of the backtest that chooses k (default: a quarter of the history).",
            rich_help_panel="Purchase history (instead of --source)",
            metavar="DAYS",
        ),
    ] = None,
    require_customer: Annotated[
        bool,
        typer.Option(
            "--require-customer",
            help="With --transactions: refuse transactions without a customer (exit 3) instead of leaving"
            " them out and counting them.",
            rich_help_panel="Purchase history (instead of --source)",
            metavar="",
        ),
    ] = False,
    id: Annotated[
        str | None,
        typer.Option("--id", help="Column that identifies a customer.", rich_help_panel="Source", metavar="COLUMN"),
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(
            help="Numeric columns, comma-separated. With --transactions: recency, frequency, monetary_total (default),"
            " monetary_avg, tenure, interval_mean, interval_std and columns of --customers.",
            rich_help_panel="Source",
            metavar="COLUMNS",
        ),
    ] = None,
    categorical: Annotated[
        str | None,
        typer.Option(help="Categorical columns to one-hot encode.", rich_help_panel="Source", metavar="COLUMNS"),
    ] = None,
    missing: Annotated[
        str | None,
        typer.Option(
            help="Missing values: drop (default), median or mean.",
            rich_help_panel="Preparation",
            metavar="[drop|median|mean]",
        ),
    ] = None,
    scaler: Annotated[
        str | None,
        typer.Option(
            help="standard (default), robust, minmax or none.",
            rich_help_panel="Preparation",
            metavar="[standard|robust|minmax|none]",
        ),
    ] = None,
    k: Annotated[
        str | None,
        typer.Option(
            "--k", help="Number of segments, or auto (default).", rich_help_panel="Choosing k", metavar="[N|auto]"
        ),
    ] = None,
    k_min: Annotated[
        int | None,
        typer.Option(help="Smallest k tried by --k auto (default 2).", rich_help_panel="Choosing k", metavar="N"),
    ] = None,
    k_max: Annotated[
        int | None,
        typer.Option(
            help="Largest k tried by --k auto (default 10; 8 with --transactions).",
            rich_help_panel="Choosing k",
            metavar="N",
        ),
    ] = None,
    silhouette_sample: Annotated[
        int | None,
        typer.Option(
            help="Rows sampled for the silhouette score (default 10000).", rich_help_panel="Choosing k", metavar="ROWS"
        ),
    ] = None,
    fit_sample: Annotated[
        int | None,
        typer.Option(
            help="K-Means over more source rows than this fits on a uniform sample of this size,"
            " then streams every row through (default 200000).",
            rich_help_panel="Choosing k",
            metavar="ROWS",
        ),
    ] = None,
    full_fit: Annotated[
        bool,
        typer.Option(
            "--full-fit",
            help="After fitting on a sample, recompute the segment centres from every row"
            " (slower, exact; K-Means only).",
            rich_help_panel="Choosing k",
            metavar="",
        ),
    ] = False,
    candidate: Annotated[
        bool,
        typer.Option(
            "--candidate",
            help="Store a complete run that does not become current until 'segjob promote RUN_ID'.",
            rich_help_panel="Output",
            metavar="",
        ),
    ] = False,
    algorithm: Annotated[
        str | None,
        typer.Option(
            help="kmeans (default), minibatch-kmeans, gmm, agglomerative or dbscan.",
            rich_help_panel="Choosing k",
            metavar="ALGORITHM",
        ),
    ] = None,
    select: Annotated[
        str | None,
        typer.Option(
            help="How k is chosen: silhouette-gain (default: the k whose segments stand apart most, compared with"
            " data that has no segments at all), next-period (default with --transactions: the k whose"
            " segments best tell apart what customers bought next, tried on an earlier cut of the history),"
            " silhouette, macro-silhouette, gap, elbow, davies-bouldin, calinski-harabasz, stability.",
            rich_help_panel="Choosing k",
            metavar="CRITERION",
        ),
    ] = None,
    min_segment_share: Annotated[
        float | None,
        typer.Option(
            help="Reject candidate k with a smaller segment (share; default 0.01 = 1%).",
            rich_help_panel="Choosing k",
            metavar="SHARE",
        ),
    ] = None,
    stability_sample: Annotated[
        int | None,
        typer.Option(
            help="Rows the stability refits subsample from (default 10000).",
            rich_help_panel="Choosing k",
            metavar="ROWS",
        ),
    ] = None,
    eps: Annotated[
        float | None,
        typer.Option(
            help="DBSCAN radius in scaled units (default: from the k-distance knee).",
            rich_help_panel="Choosing k",
            metavar="RADIUS",
        ),
    ] = None,
    transform: Annotated[
        str | None,
        typer.Option(
            help="How long-tailed columns are handled: auto (default: spend-like columns get a log scale and"
            " extreme values are capped at Tukey's far-out fences, so a handful of big customers cannot take"
            " a segment of their own), none, or log1p:COL,COL (a log scale on these columns only).",
            rich_help_panel="Preparation",
            metavar="[auto|none|log1p:COLS]",
        ),
    ] = None,
    clip_outliers: Annotated[
        float | None,
        typer.Option(
            help="Winsorize numeric features at mean +/- Z standard deviations.",
            rich_help_panel="Preparation",
            metavar="Z",
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            help='TOML or JSON file mapping segment id to label, e.g. 1 = "Big spenders".',
            rich_help_panel="Output",
            metavar="FILE",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random seed (default 0).", rich_help_panel="Choosing k", metavar="N")
    ] = None,
    job: Annotated[
        str | None,
        typer.Option(help="Job name (default: the source table name).", rich_help_panel="Output", metavar="NAME"),
    ] = None,
    run_key: Annotated[
        str | None,
        typer.Option(
            help="Idempotency key: a succeeded run with this key is not repeated.",
            rich_help_panel="Output",
            metavar="KEY",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Run even if --run-key already succeeded.", rich_help_panel="Output", metavar=""),
    ] = False,
    statement_timeout: Annotated[
        float | None,
        typer.Option(
            help="PostgreSQL: cancel any statement of the run after this many seconds (default 21600 = 6 h).",
            rich_help_panel="Database",
            metavar="SECONDS",
        ),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            help="local (default: this process) or spark (Apache Spark; pip install 'segjob\\[spark]').",
            rich_help_panel="Engine: Apache Spark",
            metavar="[local|spark]",
        ),
    ] = None,
    spark_master: Annotated[
        str | None,
        typer.Option(
            help="With --engine spark: master URL (default local[*]), or a Spark Connect sc://host:port.",
            rich_help_panel="Engine: Apache Spark",
            metavar="URL",
        ),
    ] = None,
    spark_conf: Annotated[
        list[str] | None,
        typer.Option(
            help="With --engine spark: a Spark setting KEY=VALUE (repeatable).",
            show_default=False,
            rich_help_panel="Engine: Apache Spark",
            metavar="KEY=VALUE",
        ),
    ] = None,
    spark_write_partitions: Annotated[
        int | None,
        typer.Option(
            help="With --engine spark: tasks that assign and write, one database connection each"
            " (default: Spark's parallelism).",
            rich_help_panel="Engine: Apache Spark",
            metavar="N",
        ),
    ] = None,
    source_format: Annotated[
        str | None,
        typer.Option(
            help="With --engine spark: database (default: --source/--query in the database),"
            " parquet (--source-path) or catalog (--source names a Spark catalog table).",
            rich_help_panel="Engine: Apache Spark",
            metavar="[database|parquet|catalog]",
        ),
    ] = None,
    source_path: Annotated[
        str | None,
        typer.Option(
            help="With --source-format parquet: a Parquet file or folder.",
            rich_help_panel="Engine: Apache Spark",
            metavar="PATH",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML file with the same settings.", rich_help_panel="Source", metavar="FILE")
    ] = None,
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    log_format: LogFormat = "auto",
    database_url: DatabaseUrl = None,
) -> None:
    """Segment customers: read, clean, scale, choose k, fit and publish the run.

    Example: segjob run --source customers --id CustomerID --features "Age,Annual Income (k$)" --select elbow

    From purchase history: segjob run --transactions orders --customer customer_id --date ordered_at --amount total

    Checked against the last 90 days: add --validate-days 90
    """
    from segjob.config import build_spec
    from segjob.model.explain import left_out
    from segjob.pipeline import run_job
    from segjob.results import history

    spec = build_spec(
        config,
        source=source,
        query=query,
        id=id,
        features=features,
        categorical=categorical,
        missing=missing,
        scaler=scaler,
        k=k,
        k_min=k_min,
        k_max=k_max,
        silhouette_sample=silhouette_sample,
        seed=seed,
        fit_sample=fit_sample,
        full_fit=True if full_fit else None,
        candidate=True if candidate else None,
        job=job,
        run_key=run_key,
        algorithm=algorithm,
        select=select,
        min_segment_share=min_segment_share,
        stability_sample=stability_sample,
        eps=eps,
        transform=transform,
        clip_outliers=clip_outliers,
        labels=labels,
        transactions=transactions,
        customer=customer,
        date=date,
        amount=amount,
        as_of=as_of,
        since=since,
        customers=customers,
        validate_days=validate_days,
        require_customer=True if require_customer else None,
        statement_timeout=statement_timeout,
        engine=engine,
        spark_master=spark_master,
        spark_conf=spark_conf or None,
        spark_write_partitions=spark_write_partitions,
        source_format=source_format,
        source_path=source_path,
    )
    database = _engine(database_url, statement_timeout=spec.statement_timeout)
    outcome = run_job(database, spec, _progress(quiet, log_format), force=force)
    details = history.show_run(database, outcome.run_id)
    if json_output:
        _print_json(
            {
                **details.summary.as_dict(),
                "k_explanation": details.k_explanation.as_dict(),
                "segments": details.brief_segments(),
                "reused": outcome.reused,
                "left_out": left_out(details.transaction_features),
            }
        )
        return
    if outcome.reused:
        typer.echo(f"run key {spec.run_key!r} already succeeded as run {outcome.run_id}; nothing to do")
    _print_run_details(details)


@app.command("score", cls=_HelpWithoutType)
@handle_errors
def score(
    job: Annotated[
        str,
        typer.Option(
            help="Job whose model scores the customers.", show_default=False, rich_help_panel="Model", metavar="NAME"
        ),
    ],
    model_run: Annotated[
        int | None,
        typer.Option(
            help="Fit run whose model to use (default: the current run's model).",
            rich_help_panel="Model",
            metavar="RUN_ID",
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            help="Table of customers to score, optionally schema.table.", rich_help_panel="Source", metavar="TABLE"
        ),
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(help="Read-only SELECT to score instead of a table.", rich_help_panel="Source", metavar="SQL"),
    ] = None,
    id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="Column that identifies a customer (default: the model's).",
            rich_help_panel="Source",
            metavar="COLUMN",
        ),
    ] = None,
    transactions: Annotated[
        str | None,
        typer.Option(
            help="Purchase-history job: transactions table (default: the model's).",
            rich_help_panel="Purchase history (instead of --source)",
            metavar="TABLE",
        ),
    ] = None,
    customer: Annotated[
        str | None,
        typer.Option(
            help="With --transactions: customer column (default: the model's).",
            rich_help_panel="Purchase history (instead of --source)",
            metavar="COLUMN",
        ),
    ] = None,
    date: Annotated[
        str | None,
        typer.Option(
            help="With --transactions: date column (default: the model's).",
            rich_help_panel="Purchase history (instead of --source)",
            metavar="COLUMN",
        ),
    ] = None,
    amount: Annotated[
        str | None,
        typer.Option(
            help="With --transactions: amount column (default: the model's).",
            rich_help_panel="Purchase history (instead of --source)",
            metavar="COLUMN",
        ),
    ] = None,
    customers: Annotated[
        str | None,
        typer.Option(
            help="With --transactions: customers table (default: the model's).",
            rich_help_panel="Purchase history (instead of --source)",
            metavar="TABLE",
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            help="With --transactions: features as of this date (default: day after the latest scored transaction).",
            rich_help_panel="Purchase history (instead of --source)",
            metavar="DATE",
        ),
    ] = None,
    run_key: Annotated[
        str | None,
        typer.Option(
            help="Idempotency key: a succeeded score run with this key is not repeated.",
            rich_help_panel="Output",
            metavar="KEY",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Score even if --run-key already succeeded.", rich_help_panel="Output", metavar=""
        ),
    ] = False,
    candidate: Annotated[
        bool,
        typer.Option(
            "--candidate",
            help="Store the score run without making it current ('segjob promote').",
            rich_help_panel="Output",
            metavar="",
        ),
    ] = False,
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    log_format: LogFormat = "auto",
    database_url: DatabaseUrl = None,
) -> None:
    """Assign customers to the segments of a stored model, without refitting; writes a run of kind score.

    Example: segjob score --job mall_customers_demo --source new_customers --id CustomerID

    Purchase-history job: segjob score --job demo_transactions --transactions orders_this_month
    """
    from segjob.results import history
    from segjob.scoring.score import ScoreInput, score_job

    scored = ScoreInput(
        source=source,
        query=query,
        id=id,
        transactions=transactions,
        customer=customer,
        date=date,
        amount=amount,
        customers=customers,
        as_of=as_of,
    )
    engine = _engine(database_url)
    outcome = score_job(engine, job, scored, model_run, run_key, force, _progress(quiet, log_format), candidate)
    details = history.show_run(engine, outcome.run_id)
    if json_output:
        _print_json({**details.summary.as_dict(), "segments": details.brief_segments(), "reused": outcome.reused})
        return
    if outcome.reused:
        typer.echo(f"run key {run_key!r} already succeeded as run {outcome.run_id}; nothing to do")
    _print_run_details(details)


@sql_app.command("score", cls=_HelpWithoutType)
@handle_errors
def sql_score(
    job: Annotated[str, typer.Option(help="Job whose source and model to use.", show_default=False)],
    model_run: Annotated[
        int | None, typer.Option(help="Fit run whose model to use (default: the current run's model).")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            help="Purchase-history job: features as of this date (default: day after the latest transaction)."
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Print one standalone PostgreSQL SELECT that assigns every row of the job's source to the
    nearest centroid of its stored model: customer_key, segment_id, segment_label, distance.

    Example: segjob sql score --job mall_customers_demo > score_mall.sql
    """
    from segjob.scoring.sql import score_sql

    typer.echo(score_sql(_engine(database_url), job, model_run, as_of), nl=False)


@runs_app.command("list", cls=_HelpWithoutType)
@handle_errors
def runs_list(
    job: Annotated[str | None, typer.Option(help="Only runs of this job.")] = None,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 50,
    json_output: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List runs, newest first, with their status, k and quality metrics."""
    from segjob.results import history
    from segjob.store import db

    engine = _engine(database_url)
    db.check_at_head(engine)
    rows = history.list_runs(engine, job, limit)
    if json_output:
        _print_json(rows)
        return
    from segjob.cli.render import runs_table

    runs_table(rows)


@runs_app.command("show", cls=_HelpWithoutType)
@handle_errors
def runs_show(
    run_id: Annotated[int, typer.Argument(help="Run id (see 'segjob runs list').", show_default=False)],
    json_output: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Show one run: summary, how k was chosen, the K sweep, features and segment profiles."""
    from segjob.results import history
    from segjob.store import db

    engine = _engine(database_url)
    db.check_at_head(engine)
    details = history.show_run(engine, run_id)
    if json_output:
        _print_json(details.as_dict())
        return
    _print_run_details(details)


@app.command("promote", cls=_HelpWithoutType)
@handle_errors
def promote(
    run_id: Annotated[
        int | None, typer.Argument(help="Succeeded run to make its job's current run.", show_default=False)
    ] = None,
    job: Annotated[str | None, typer.Option(help="With --previous: the job to roll back.")] = None,
    previous: Annotated[
        bool,
        typer.Option(
            "--previous", help="Make the run that was current before the current one current again.", metavar=""
        ),
    ] = False,
    json_output: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Make a run its job's current run (the one current_segment shows), atomically; or roll back.

    Example: segjob promote 42   (a candidate run from segjob run --candidate)

    Roll back: segjob promote --job mall_customers_demo --previous
    """
    from segjob.results import promotion

    if previous == (run_id is not None) or (previous and not job):
        raise UsageError("give a RUN_ID to promote, or --job JOB --previous to roll back")
    engine = _engine(database_url)
    if run_id is not None:
        done = promotion.promote(engine, run_id, job)
    else:
        assert job is not None
        done = promotion.roll_back(engine, job)
    if json_output:
        _print_json(asdict(done))
    elif not done.changed:
        typer.echo(f"run {done.run_id} is already the current run of job {done.job}; nothing to do")
    elif previous:
        typer.echo(f"job {done.job}: run {done.run_id} is current again (was run {done.previous_run_id})")
    else:
        was = "no current run" if done.previous_run_id is None else f"run {done.previous_run_id}"
        typer.echo(f"job {done.job}: run {done.run_id} is current now (was {was})")


@app.command("prune", cls=_HelpWithoutType)
@handle_errors
def prune(
    job: Annotated[str, typer.Option(help="Job whose older runs to delete.", show_default=False)],
    keep: Annotated[
        int, typer.Option(help="How many of the job's newest runs to keep (at least 1).", show_default=False)
    ],
    json_output: JsonFlag = False,
    lock_wait: LockWait = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete a job's older runs and everything they wrote. Never deletes the job's current run, the
    run 'segjob promote --previous' would go back to, their models, or a running run.

    Example: segjob prune --job mall_customers_demo --keep 12
    """
    from segjob.results.retention import prune as prune_runs

    result = prune_runs(_engine(database_url), job, keep, lock_wait)
    if json_output:
        _print_json(asdict(result))
        return
    for gone in result.deleted:
        how = "partition dropped" if gone.partition_dropped else "rows deleted"
        typer.echo(
            f"deleted run {gone.run_id} ({gone.kind}, {gone.status}, started {gone.started_at:%Y-%m-%d %H:%M:%S}):"
            f" {gone.assignments:,} assignments, {how}"
        )
    kept = ", ".join(map(str, result.kept))
    typer.echo(f"job {job!r}: deleted {len(result.deleted)} run(s), kept {kept}")
    if result.partitions_left:
        left = ", ".join(map(str, result.partitions_left))
        typer.echo(
            f"the assignments of deleted run(s) {left} are still read by queries that started earlier;"
            " no view shows them, and the next prune or run drops them"
        )


def _print_run_details(details: RunDetails) -> None:
    from segjob.cli.render import run_details

    run_details(details)


@app.command("demo", cls=_HelpWithoutType)
@handle_errors
def demo(
    database_url: DatabaseUrl = None,
    quiet: Quiet = False,
    log_format: LogFormat = "auto",
    transactions: Annotated[
        bool,
        typer.Option("--transactions", help="Segment a bundled purchase-history sample instead (RFM).", metavar=""),
    ] = False,
    report_dir: Annotated[
        Path, typer.Option("--report-dir", help="Directory for the HTML report and its PNG files.")
    ] = Path("segjob-report"),
) -> None:
    """Run the whole job on the bundled Mall Customers sample, print the segments and write the report.

    Loads the sample into table mall_customers, upgrades the database, segments on Age, Annual
    Income and Spending Score with k chosen automatically. Default database: sqlite:///segjob.db.
    With --transactions: loads ~17,000 purchases of ~2,000 customers into demo_transactions and
    segments on recency, frequency and monetary_total computed from them. The HTML report and its
    pictures go to --report-dir (default ./segjob-report).
    """
    from segjob.demo import run_demo

    outcome = run_demo(database_url, _progress(quiet, log_format), transactions=transactions, report_dir=report_dir)
    _print_run_details(outcome.details)
    for reason in outcome.report.missing:
        typer.echo(f"Note: {reason}", err=True)
    typer.echo(f"\nReport: {outcome.report.html}")


@app.command("report", cls=_HelpWithoutType)
@handle_errors
def report(
    run_id: Annotated[
        int, typer.Argument(help="Run id of a succeeded run (see 'segjob runs list').", show_default=False)
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Directory for report.html and its PNG files (created).", show_default=False)
    ],
    sample: Annotated[
        int | None, typer.Option(help="Customers sampled for the scatter and silhouette plots (default 5000).")
    ] = None,
    quiet: Quiet = False,
    log_format: LogFormat = "auto",
    database_url: DatabaseUrl = None,
) -> None:
    """Write a self-contained HTML report of a run (pictures embedded) and the PNG files behind it.

    The customer plots re-read the run's source; if it is gone, the rest is still written.

    Example: segjob report 7 --out report-7
    """
    from segjob.report.write import write_report

    written = write_report(_engine(database_url), run_id, out, sample, _progress(quiet, log_format))
    for reason in written.missing:
        typer.echo(f"Note: {reason}", err=True)
    typer.echo(f"Report: {written.html} ({len(written.pictures)} pictures)")


def main() -> None:
    # pandas keeps its strings in Arrow, whose default allocator (mimalloc) holds on to freed
    # pages: a run's peak memory is ~30 MB lower with the C library's allocator. Arrow reads
    # this on first use, so it is set before any command imports pandas.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    app(prog_name="segjob")


if __name__ == "__main__":
    main()  # returns None; Typer exits with the command's status itself
