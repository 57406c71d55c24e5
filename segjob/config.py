"""The job spec: what one segmentation job reads and how it fits, from a TOML file plus CLI options.

The spec is stored with every run (run.spec), so it never holds the database URL.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any

from segjob.errors import UsageError
from segjob.model.algorithms import ALGORITHMS, DBSCAN_NAME
from segjob.model.choose_k import DEFAULT_MIN_SEGMENT_SHARE
from segjob.model.criteria import CRITERIA, DEFAULT_CRITERION, NEXT_PERIOD
from segjob.model.fit import DEFAULT_STABILITY_SAMPLE
from segjob.prepare.columns import MissingPolicy, PrepareOptions, ScalerName

MISSING_POLICIES = ("drop", "median", "mean")
ENGINES = ("local", "spark")
SOURCE_FORMATS = ("database", "parquet", "catalog")
SCALERS = ("standard", "robust", "minmax", "none")
# Silhouette costs O(n^2); on a 10k-row sample it agrees with a 20k-row one to about 0.002.
DEFAULT_SILHOUETTE_SAMPLE = 10_000
# Above this many source rows a K-Means run fits on a uniform sample of about this size and
# assigns every row in a streaming pass (segjob.engines.local): 200k rows fit in about a second and
# keep the sampled fit's inertia within a fraction of a percent of a full-data fit.
DEFAULT_FIT_SAMPLE = 200_000
# Generous: a nightly run over tens of millions of rows finishes well within it, while a
# statement stuck behind a lock or a runaway --query does not hold the warehouse forever.
DEFAULT_STATEMENT_TIMEOUT = 6 * 3600  # seconds
DEFAULT_K_MAX, PURCHASE_HISTORY_K_MAX = 10, 8  # --k-max: table and query sources; --transactions
# --transactions jobs without --features (segjob.source.purchases defines them all)
DEFAULT_PURCHASE_FEATURES = ("recency", "frequency", "monetary_total")
# Stored in PostgreSQL integer columns (run.seed; assignment_load.part for Spark's partitions).
MAX_INT4 = 2**31 - 1
# PostgreSQL's statement_timeout is whole milliseconds up to the largest integer.
MAX_STATEMENT_TIMEOUT = MAX_INT4 / 1000  # seconds, about 24.8 days
# A century: longer than any purchase history, and far from the end of Python's calendar.
MAX_VALIDATE_DAYS = 36_500


@dataclass
class JobSpec:
    """Settings of one job. Keys of the TOML file are these field names (`-` or `_`)."""

    id: str
    features: list[str]
    source: str | None = None  # table, optionally schema-qualified
    query: str | None = None  # read-only SELECT, instead of a table
    categorical: list[str] = field(default_factory=list)
    missing: MissingPolicy = "drop"  # one of MISSING_POLICIES, checked by build_spec
    scaler: ScalerName = "standard"  # one of SCALERS, checked by build_spec
    k: int | None = None  # None: choose k automatically in k_min..k_max
    k_min: int = 2
    k_max: int = DEFAULT_K_MAX
    seed: int = 0
    silhouette_sample: int = DEFAULT_SILHOUETTE_SAMPLE
    fit_sample: int = DEFAULT_FIT_SAMPLE  # larger K-Means inputs fit on a sample of this many rows, then stream
    full_fit: bool = False  # after a sampled fit, refine with exact Lloyd iterations over all rows
    candidate: bool = False  # a candidate run becomes current only when promoted (segjob promote)
    job: str = ""
    run_key: str | None = None
    algorithm: str = "kmeans"
    select: str = DEFAULT_CRITERION  # criterion that chooses k among the candidates
    min_segment_share: float = DEFAULT_MIN_SEGMENT_SHARE  # candidates with a smaller segment are rejected
    stability_sample: int = DEFAULT_STABILITY_SAMPLE
    eps: float | None = None  # DBSCAN neighbourhood radius in scaled units; None: from the k-distance knee
    transform: str = "auto"  # "auto" (skewed: log1p, far-out values: clipped), "none" or "log1p:COL,COL"
    clip_outliers: float | None = None  # winsorize numeric features at mean +/- this many std
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT  # seconds per database statement (PostgreSQL)
    labels: dict[str, str] = field(default_factory=dict)  # segment id (as text) -> label
    # Purchase-history source instead of --source/--query (see segjob.source.purchases); `id` is `customer`.
    transactions: str | None = None  # table of transactions, optionally schema-qualified
    customer: str | None = None
    date: str | None = None
    amount: str | None = None
    as_of: str | None = None  # ISO date; None: the day after the latest transaction
    since: str | None = None  # ISO date: ignore older transactions
    customers: str | None = None  # table joined on `customer` whose columns --features may name
    # Move the as-of date back this many days; what customers did in those days checks the segments.
    validate_days: int | None = None
    # Refuse transactions without a customer (exit 3) instead of leaving them out and counting them.
    require_customer: bool = False
    # Where the job runs (segjob.engines): "local" (this process) or "spark" (Apache Spark).
    engine: str = "local"
    spark_master: str = "local[*]"  # a Spark master URL, or a Spark Connect remote (sc://host:port)
    spark_conf: dict[str, str] = field(default_factory=dict)  # extra Spark settings, KEY -> VALUE
    spark_write_partitions: int | None = None  # tasks (and write connections); None: Spark's default parallelism
    # With --engine spark the source may also be Parquet (source_path) or a table of the Spark
    # catalog (source); "database" is a table or query of the segjob database.
    source_format: str = "database"
    source_path: str | None = None
    # Filled in by the run, never by the user: feature definitions, as-of date used, counts, SQL.
    transaction_features: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def log1p_columns(self) -> list[str]:
        if not self.transform.startswith("log1p:"):
            return []
        return _split_names(self.transform.removeprefix("log1p:"), "transform")

    @property
    def auto_log1p(self) -> bool:
        return self.transform == "auto"

    def prepare_options(self) -> PrepareOptions:
        """How `segjob.prepare.columns` builds this job's model columns."""
        return PrepareOptions(
            self.features,
            self.categorical,
            self.missing,
            self.scaler,
            log1p=self.log1p_columns,
            auto_log1p=self.auto_log1p,
            clip_z=self.clip_outliers,
            fence=self.auto_log1p,
        )

    @property
    def segment_labels(self) -> dict[int, str]:
        return {int(segment_id): label for segment_id, label in self.labels.items()}

    @property
    def source_description(self) -> str:
        if self.transactions:
            return f"transactions {self.transactions}"
        if self.source_format == "parquet":
            return f"parquet {self.source_path}"
        if self.source_format == "catalog":
            return f"Spark table {self.source}"
        return f"table {self.source}" if self.source else f"query: {self.query}"


_FIELDS = {f.name for f in fields(JobSpec)} - {"transaction_features"}


def _split_names(value: Any, key: str) -> list[str]:
    """Column lists come as a TOML array or a comma-separated string; names are kept exactly."""
    if value is None:
        return []
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",")]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        names = [item.strip() for item in value]
    else:
        raise UsageError(f"{key} must be a list of column names or a comma-separated string")
    if any(not name for name in names):
        raise UsageError(f"{key} has an empty column name: {value!r}")
    if len(set(names)) != len(names):
        raise UsageError(f"{key} names a column more than once: {value!r}")
    return names


def _parse_k(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    number = _whole_number(value)
    if number is None:
        raise UsageError(f"k must be a whole number or 'auto', not {value!r}")
    return number


def _as_int(value: Any, key: str, minimum: int | None = None, maximum: int | None = None, unit: str = "") -> int:
    """A whole number from an option or the TOML file, within minimum..maximum: not a boolean
    (TOML `k = true`) and not a fraction (`k = 2.5`), which int() would take as 1 and 2."""
    number = _whole_number(value)
    if number is None:
        raise UsageError(f"{key} must be a whole number, not {value!r}")
    if minimum is not None and maximum is None and number < minimum:
        raise UsageError(f"--{key} must be at least {minimum}{unit}, not {number}")
    if minimum is not None and maximum is not None and not minimum <= number <= maximum:
        raise UsageError(f"--{key} must be from {minimum} to {maximum}{unit}, not {number}")
    return number


def _whole_number(value: Any) -> int | None:
    """`value` as an int when it is one (3, 3.0, "3"); None for booleans, fractions and other text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_float(value: Any, key: str) -> float:
    if isinstance(value, bool):  # float(True) is 1.0
        raise UsageError(f"{key} must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{key} must be a number, not {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise UsageError(f"{key} must be a finite number, not {value!r}")
    return number


def _parse_transform(value: Any, features: list[str]) -> str:
    """ "none", "auto" or "log1p:COL,..." with every column a numeric feature."""
    text = str(value).strip() if value is not None else "auto"
    if text.lower() in ("none", "auto"):
        return text.lower()
    if not text.startswith("log1p:"):
        raise UsageError(f"--transform must be auto, none or log1p:COL,COL, not {text!r}")
    columns = _split_names(text.removeprefix("log1p:"), "--transform log1p")
    for name in columns:
        if name not in features:
            raise UsageError(
                f"--transform log1p:{name} names a column that is not among --features ({', '.join(features)})"
            )
    return "log1p:" + ",".join(columns)


def load_labels(value: Any, base: Path | None = None) -> dict[str, str]:
    """Segment labels from a TOML or JSON file (path) or an inline table: segment id -> label.

    A .json file is read as JSON, anything else as TOML (`1 = "Big spenders"`). Keys are segment
    ids (whole numbers, 0 for DBSCAN's outliers); relative paths are taken from `base`.
    """
    if isinstance(value, (str, Path)):
        path = Path(value)
        if base is not None and not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise UsageError(f"labels file not found: {path}")
        try:
            raw = json.loads(path.read_text()) if path.suffix.lower() == ".json" else tomllib.loads(path.read_text())
        except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
            raise UsageError(f"labels file {path} is not valid {kind}: {exc}") from None
        where = f"labels file {path}"
    else:
        raw, where = value, "labels"
    if not isinstance(raw, dict):
        raise UsageError(f'{where} must map segment ids to labels, e.g. {{"1": "Big spenders"}}')
    labels = {}
    for key, label in raw.items():
        segment_id = str(key).strip()
        if not segment_id.isdigit():
            raise UsageError(f"{where}: {key!r} is not a segment id (a whole number such as 1)")
        if not isinstance(label, str) or not label.strip():
            raise UsageError(f"{where}: the label of segment {segment_id} must be non-empty text, not {label!r}")
        labels[str(int(segment_id))] = label.strip()
    return labels


def load_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from None
    settings = {key.replace("-", "_"): value for key, value in raw.items()}
    unknown = sorted(set(settings) - _FIELDS)
    if unknown:
        raise UsageError(f"config file {path} has unknown settings {unknown}; known: {sorted(_FIELDS)}")
    if "labels" in settings:  # a file named in the config file is found next to it
        settings["labels"] = load_labels(settings["labels"], base=path.parent)
    return settings


def _transaction_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Checks and defaults of a --transactions job: id is the customer column, features default
    to recency, frequency and monetary_total, the job is named after the table, --transform auto
    (purchase counts and spend are usually right-skewed)."""
    given = [option for option in ("source", "query", "id") if settings.get(option)]
    if given:
        raise UsageError(
            f"--{given[0]} does not go with --transactions, which builds the source itself"
            " (the customer column, --customer, identifies a customer)"
        )
    missing = [f"--{option} COLUMN" for option in ("customer", "date", "amount") if not settings.get(option)]
    if missing:
        raise UsageError(f"--transactions needs {', '.join(missing)}")
    names = [settings["customer"], settings["date"], settings["amount"]]
    if len(set(names)) < 3:
        raise UsageError("--customer, --date and --amount must be three different columns")
    as_of, since = as_date(settings.get("as_of"), "as-of"), as_date(settings.get("since"), "since")
    if as_of and since and since >= as_of:
        raise UsageError(f"--since {since} must be before --as-of {as_of}")
    validate_days = settings.get("validate_days")
    if validate_days is not None:
        validate_days = _as_int(validate_days, "validate-days", 1, MAX_VALIDATE_DAYS, " days of later behaviour")
    table = str(settings["transactions"]).strip()
    return {
        "transactions": table,
        "id": settings["customer"],
        "features": settings.get("features") or list(DEFAULT_PURCHASE_FEATURES),
        "job": settings.get("job") or table,
        "transform": settings.get("transform") or "auto",
        "as_of": as_of,
        "since": since,
        "validate_days": validate_days,
        "require_customer": _flag(settings.get("require_customer", False), "require_customer"),
    }


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be true or false, not {value!r}")
    return value


def as_date(value: Any, key: str) -> str | None:
    """An ISO date (YYYY-MM-DD) as text, from a string or a TOML date."""
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value).strip()).isoformat()
    except ValueError:
        raise UsageError(f"--{key} must be a date like 2024-12-31, not {value!r}") from None


def build_spec(config_file: Path | None = None, **options: Any) -> JobSpec:
    """Merge the TOML file (if any) with CLI options (options given as None are not set)."""
    settings = load_config_file(config_file) if config_file else {}
    settings.update({key: value for key, value in options.items() if value is not None})

    source, query = settings.get("source"), settings.get("query")
    engine_settings = _engine_settings(settings)
    if engine_settings["source_format"] == "parquet":
        source = None  # the path names the source; the job is named after it
        settings.setdefault("job", Path(str(engine_settings["source_path"]).rstrip("/")).name)
    if settings.get("transactions"):
        settings.update(_transaction_settings(settings))
    elif engine_settings["source_format"] == "parquet":
        if settings.get("source") or query:
            raise UsageError("--source-format parquet reads --source-path PATH: leave out --source and --query")
    elif bool(source) == bool(query):
        raise UsageError("give exactly one of --source TABLE, --query SQL or --transactions TABLE")
    else:
        only_with_transactions = ("customer", "date", "amount", "as_of", "since", "customers", "validate_days")
        for option in (*only_with_transactions, "require_customer"):
            if settings.get(option) is not None and settings.get(option) is not False:
                raise UsageError(f"--{option.replace('_', '-')} applies only with --transactions TABLE")
    if not settings.get("id"):
        raise UsageError("--id COLUMN is required: the column that identifies a customer")
    features = _split_names(settings.get("features"), "features")
    categorical = _split_names(settings.get("categorical"), "categorical")
    if not features and not categorical:
        raise UsageError("--features is required: the numeric columns to segment on")
    overlap = (set(features) & set(categorical)) | ({settings["id"]} & (set(features) | set(categorical)))
    if overlap:
        raise UsageError(f"column {sorted(overlap)[0]!r} is named twice among --id, --features and --categorical")

    missing = settings.get("missing", "drop")
    if missing not in MISSING_POLICIES:
        raise UsageError(f"--missing must be one of {', '.join(MISSING_POLICIES)}, not {missing!r}")
    scaler = settings.get("scaler", "standard")
    if scaler not in SCALERS:
        raise UsageError(f"--scaler must be one of {', '.join(SCALERS)}, not {scaler!r}")

    k = _parse_k(settings.get("k"))
    k_min = _as_int(settings.get("k_min", 2), "k-min")
    # A purchase history defaults to at most 8 segments: the backtest keeps gaining a little with
    # every segment, and more than 8 is more than a marketing team acts on.
    default_k_max = PURCHASE_HISTORY_K_MAX if settings.get("transactions") else DEFAULT_K_MAX
    k_max = _as_int(settings.get("k_max", default_k_max), "k-max")
    if k is not None and k < 2:
        raise UsageError(f"--k must be at least 2, not {k}")
    if k is None and not 2 <= k_min <= k_max:
        raise UsageError(f"--k-min and --k-max must satisfy 2 <= k-min <= k-max (got {k_min}..{k_max})")
    silhouette_sample = _as_int(
        settings.get("silhouette_sample", DEFAULT_SILHOUETTE_SAMPLE), "silhouette-sample", 100, unit=" rows"
    )
    fit_sample = _as_int(settings.get("fit_sample", DEFAULT_FIT_SAMPLE), "fit-sample", 1000, unit=" rows")
    full_fit, candidate = settings.get("full_fit", False), settings.get("candidate", False)
    for name, flag in (("full_fit", full_fit), ("candidate", candidate)):
        if not isinstance(flag, bool):
            raise UsageError(f"{name} must be true or false, not {flag!r}")

    job = settings.get("job") or (source.strip() if source else None)
    if not job:
        raise UsageError("--job NAME is required with --query (it names the job's history)")

    algorithm = settings.get("algorithm", "kmeans")
    if algorithm not in ALGORITHMS:
        raise UsageError(f"--algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
    # Purchase histories choose k by a backtest of later behaviour (segjob.model.backtest).
    select = settings.get("select", NEXT_PERIOD if settings.get("transactions") else DEFAULT_CRITERION)
    if select not in CRITERIA:
        raise UsageError(f"--select must be one of {', '.join(CRITERIA)}, not {select!r}")
    if select == NEXT_PERIOD and not settings.get("transactions"):
        raise UsageError(
            "--select next-period needs --transactions: only a purchase history has later behaviour to test"
        )
    if algorithm == DBSCAN_NAME:
        given = [
            option
            for option, key in (("--k", "k"), ("--k-min", "k_min"), ("--k-max", "k_max"), ("--select", "select"))
            if settings.get(key) is not None and not (key == "k" and k is None)
        ]
        if given:
            verb = "does" if len(given) == 1 else "do"
            raise UsageError(
                f"{', '.join(given)} {verb} not apply to --algorithm dbscan, which finds the number of"
                " segments itself (tune it with --eps)"
            )
    eps = settings.get("eps")
    if eps is not None:
        eps = _as_float(eps, "eps")
        if algorithm != DBSCAN_NAME:
            raise UsageError("--eps applies only to --algorithm dbscan")
        if eps <= 0:
            raise UsageError(f"--eps must be greater than 0, not {eps:g}")
    min_segment_share = _as_float(settings.get("min_segment_share", DEFAULT_MIN_SEGMENT_SHARE), "min-segment-share")
    if not 0 <= min_segment_share < 0.5:
        raise UsageError(
            f"--min-segment-share must be at least 0 and below 0.5 (a share: 0.01 = 1%), not {min_segment_share:g}"
        )
    stability_sample = _as_int(
        settings.get("stability_sample", DEFAULT_STABILITY_SAMPLE), "stability-sample", 100, unit=" rows"
    )
    clip_outliers = settings.get("clip_outliers")
    if clip_outliers is not None:
        clip_outliers = _as_float(clip_outliers, "clip-outliers")
        if clip_outliers <= 0:
            raise UsageError(f"--clip-outliers must be greater than 0 (standard deviations), not {clip_outliers:g}")
    statement_timeout = _as_float(settings.get("statement_timeout", DEFAULT_STATEMENT_TIMEOUT), "statement-timeout")
    if not 0.001 <= statement_timeout <= MAX_STATEMENT_TIMEOUT:
        raise UsageError(
            f"--statement-timeout must be a positive number of seconds up to {MAX_STATEMENT_TIMEOUT}"
            f" (PostgreSQL's limit), not {statement_timeout:g}"
        )
    labels = load_labels(settings["labels"]) if settings.get("labels") is not None else {}

    return JobSpec(
        id=settings["id"],
        features=features,
        source=source.strip() if source else None,
        query=query,
        categorical=categorical,
        missing=missing,
        scaler=scaler,
        k=k,
        k_min=k_min,
        k_max=k_max,
        seed=_as_int(settings.get("seed", 0), "seed", 0, MAX_INT4),
        silhouette_sample=silhouette_sample,
        fit_sample=fit_sample,
        full_fit=full_fit,
        candidate=candidate,
        job=str(job),
        run_key=settings.get("run_key"),
        algorithm=algorithm,
        select=select,
        min_segment_share=min_segment_share,
        stability_sample=stability_sample,
        eps=eps,
        transform=_parse_transform(settings.get("transform"), features),
        clip_outliers=clip_outliers,
        statement_timeout=statement_timeout,
        labels=labels,
        transactions=settings.get("transactions"),
        customer=settings.get("customer"),
        date=settings.get("date"),
        amount=settings.get("amount"),
        as_of=settings.get("as_of"),
        since=settings.get("since"),
        customers=settings.get("customers"),
        validate_days=settings.get("validate_days"),
        require_customer=settings.get("require_customer", False),
        **engine_settings,
    )


def _engine_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """--engine and the Spark engine's settings, checked against the rest of the job."""
    engine = settings.get("engine", "local")
    if engine not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    source_format = settings.get("source_format", "database")
    if source_format not in SOURCE_FORMATS:
        raise UsageError(f"--source-format must be one of {', '.join(SOURCE_FORMATS)}, not {source_format!r}")
    source_path = settings.get("source_path")
    if source_format == "parquet" and not source_path:
        raise UsageError("--source-format parquet needs --source-path PATH (a Parquet file or folder)")
    if source_path and source_format != "parquet":
        raise UsageError("--source-path applies only with --source-format parquet")
    if source_format == "catalog" and not settings.get("source"):
        raise UsageError("--source-format catalog needs --source TABLE (a table of the Spark catalog)")
    spark_conf = _spark_conf(settings.get("spark_conf") or {})
    partitions = settings.get("spark_write_partitions")
    if partitions is not None:
        partitions = _as_int(partitions, "spark-write-partitions", 1, MAX_INT4)
    master = str(settings.get("spark_master") or "local[*]").strip()
    if engine == "local":
        given = [name for name in ("spark_master", "spark_conf", "spark_write_partitions") if settings.get(name)]
        if source_format != "database":
            given.insert(0, "source_format")
        if given:
            raise UsageError(f"--{given[0].replace('_', '-')} applies only with --engine spark")
    elif settings.get("transactions"):
        raise UsageError("--transactions jobs run on --engine local; --engine spark reads a table, query or Parquet")
    return dict(
        engine=engine,
        spark_master=master,
        spark_conf=spark_conf,
        spark_write_partitions=partitions,
        source_format=source_format,
        source_path=str(source_path) if source_path else None,
    )


def _spark_conf(value: Any) -> dict[str, str]:
    """Spark settings from a TOML table or from KEY=VALUE texts (--spark-conf, repeatable)."""
    if isinstance(value, dict):
        return {str(key): str(item) for key, item in value.items()}
    if isinstance(value, str):
        value = [value]
    conf = {}
    for item in value:
        key, equals, setting = str(item).partition("=")
        if not equals or not key.strip():
            raise UsageError(f"--spark-conf takes KEY=VALUE, such as spark.executor.memory=4g, not {item!r}")
        conf[key.strip()] = setting.strip()
    return conf
