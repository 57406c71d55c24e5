"""The job spec: what one segmentation job reads and how it fits, from a TOML file plus CLI options.

`JobSpec` is a pydantic dataclass: each field carries its type, default and range, and the rules
between fields are its validators. `build_spec` merges the TOML file with the options and checks
them against every rule; a spec built in code (a stored run, `dataclasses.replace`) is checked
field by field only. It stays a dataclass so `dataclasses.replace` and `fields` work on it.

The spec is stored with every run (run.spec), so it never holds the database URL.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, fields
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass
from pydantic.fields import FieldInfo
from pydantic_core import ArgsKwargs, ErrorDetails, PydanticCustomError

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
# Options that only a --transactions job takes.
TRANSACTION_OPTIONS = ("customer", "date", "amount", "as_of", "since", "customers", "validate_days", "require_customer")


def _invalid(message: str) -> PydanticCustomError:
    """A validation error whose text is segjob's one-line message, as build_spec reports it."""
    return PydanticCustomError("segjob", "{message}", {"message": message})


def _flag_name(info: ValidationInfo) -> str:
    return str(info.field_name).replace("_", "-")


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


def _as_whole_number(value: Any, info: ValidationInfo) -> int | None:
    """Not a boolean (TOML `k = true`) and not a fraction (`k = 2.5`), which int() would take as 1 and 2."""
    if value is None:
        return None
    number = _whole_number(value)
    if number is None:
        raise _invalid(f"{_flag_name(info)} must be a whole number, not {value!r}")
    return number


def _as_k(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    number = _whole_number(value)
    if number is None:
        raise _invalid(f"k must be a whole number or 'auto', not {value!r}")
    return number


def _as_number(value: Any, info: ValidationInfo) -> float | None:
    if value is None:
        return None
    key = _flag_name(info)
    if isinstance(value, bool):  # float(True) is 1.0
        raise _invalid(f"{key} must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _invalid(f"{key} must be a number, not {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise _invalid(f"{key} must be a finite number, not {value!r}")
    return number


def _as_flag(value: Any, info: ValidationInfo) -> bool:
    if not isinstance(value, bool):
        raise _invalid(f"{info.field_name} must be true or false, not {value!r}")
    return value


def _one_of(choices: tuple[str, ...]) -> BeforeValidator:
    def check(value: Any, info: ValidationInfo) -> Any:
        if value not in choices:
            raise _invalid(f"--{_flag_name(info)} must be one of {', '.join(choices)}, not {value!r}")
        return value

    return BeforeValidator(check)


def _as_names(value: Any, info: ValidationInfo) -> list[str]:
    try:
        return _split_names(value, str(info.field_name))
    except UsageError as exc:
        raise _invalid(str(exc)) from None


def _as_table(value: Any) -> Any:
    return value.strip() if isinstance(value, str) and value else value or None


def _as_iso_date(value: Any, info: ValidationInfo) -> str | None:
    try:
        return as_date(value, _flag_name(info))
    except UsageError as exc:
        raise _invalid(str(exc)) from None


def _as_labels(value: Any) -> dict[str, str]:
    try:
        return load_labels(value)
    except UsageError as exc:
        raise _invalid(str(exc)) from None


def _as_spark_conf(value: Any) -> dict[str, str]:
    """Spark settings from a TOML table or from KEY=VALUE texts (--spark-conf, repeatable)."""
    if isinstance(value, dict):
        return {str(key): str(item) for key, item in value.items()}
    if isinstance(value, str):
        value = [value]
    conf = {}
    for item in value or ():
        key, equals, setting = str(item).partition("=")
        if not equals or not key.strip():
            raise _invalid(f"--spark-conf takes KEY=VALUE, such as spark.executor.memory=4g, not {item!r}")
        conf[key.strip()] = setting.strip()
    return conf


def _as_transform(value: Any) -> str:
    """ "none", "auto" or "log1p:COL,..." (that the columns are features is checked with the job)."""
    text = str(value).strip() if value is not None else "auto"
    if text.lower() in ("none", "auto"):
        return text.lower()
    if not text.startswith("log1p:"):
        raise _invalid(f"--transform must be auto, none or log1p:COL,COL, not {text!r}")
    try:
        return "log1p:" + ",".join(_split_names(text.removeprefix("log1p:"), "--transform log1p"))
    except UsageError as exc:
        raise _invalid(str(exc)) from None


WholeNumber = Annotated[int, BeforeValidator(_as_whole_number)]
Number = Annotated[float, BeforeValidator(_as_number)]
Flag = Annotated[bool, BeforeValidator(_as_flag)]
Names = Annotated[list[str], BeforeValidator(_as_names)]
Table = Annotated[str | None, BeforeValidator(_as_table)]
IsoDate = Annotated[str | None, BeforeValidator(_as_iso_date)]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class JobSpec:
    """Settings of one job. Keys of the TOML file are these field names (`-` or `_`)."""

    id: str
    features: Names
    source: Table = None  # table, optionally schema-qualified
    query: str | None = None  # read-only SELECT, instead of a table
    categorical: Names = Field(default_factory=list)
    missing: Annotated[MissingPolicy, _one_of(MISSING_POLICIES)] = "drop"
    scaler: Annotated[ScalerName, _one_of(SCALERS)] = "standard"
    # None: choose k automatically in k_min..k_max
    k: Annotated[int | None, Field(ge=2), BeforeValidator(_as_k)] = None
    k_min: WholeNumber = 2
    # A purchase history defaults to at most 8 segments (PURCHASE_HISTORY_K_MAX): the backtest keeps
    # gaining a little with every segment, and more than 8 is more than a marketing team acts on.
    k_max: WholeNumber = DEFAULT_K_MAX
    seed: Annotated[WholeNumber, Field(ge=0, le=MAX_INT4)] = 0
    silhouette_sample: Annotated[WholeNumber, Field(ge=100)] = DEFAULT_SILHOUETTE_SAMPLE
    # larger K-Means inputs fit on a sample of this many rows, then stream
    fit_sample: Annotated[WholeNumber, Field(ge=1000)] = DEFAULT_FIT_SAMPLE
    full_fit: Flag = False  # after a sampled fit, refine with exact Lloyd iterations over all rows
    candidate: Flag = False  # a candidate run becomes current only when promoted (segjob promote)
    job: Annotated[str, BeforeValidator(lambda value: value if value is None else str(value))] = ""
    run_key: str | None = None
    algorithm: Annotated[str, _one_of(ALGORITHMS)] = "kmeans"
    # criterion that chooses k among the candidates; purchase histories default to NEXT_PERIOD,
    # a backtest of later behaviour (segjob.model.backtest)
    select: Annotated[str, _one_of(CRITERIA)] = DEFAULT_CRITERION
    # candidates with a smaller segment are rejected
    min_segment_share: Annotated[Number, Field(ge=0, lt=0.5)] = DEFAULT_MIN_SEGMENT_SHARE
    stability_sample: Annotated[WholeNumber, Field(ge=100)] = DEFAULT_STABILITY_SAMPLE
    # DBSCAN neighbourhood radius in scaled units; None: from the k-distance knee
    eps: Annotated[float | None, Field(gt=0), BeforeValidator(_as_number)] = None
    # "auto" (skewed: log1p, far-out values: clipped), "none" or "log1p:COL,COL"
    transform: Annotated[str, BeforeValidator(_as_transform)] = "auto"
    # winsorize numeric features at mean +/- this many std
    clip_outliers: Annotated[float | None, Field(gt=0), BeforeValidator(_as_number)] = None
    # seconds per database statement (PostgreSQL)
    statement_timeout: Annotated[Number, Field(ge=0.001, le=MAX_STATEMENT_TIMEOUT)] = float(DEFAULT_STATEMENT_TIMEOUT)
    labels: Annotated[dict[str, str], BeforeValidator(_as_labels)] = Field(default_factory=dict)  # segment id -> label
    # Purchase-history source instead of --source/--query (see segjob.source.purchases); `id` is `customer`.
    transactions: Table = None  # table of transactions, optionally schema-qualified
    customer: str | None = None
    date: str | None = None
    amount: str | None = None
    as_of: IsoDate = None  # ISO date; None: the day after the latest transaction
    since: IsoDate = None  # ISO date: ignore older transactions
    customers: str | None = None  # table joined on `customer` whose columns --features may name
    # Move the as-of date back this many days; what customers did in those days checks the segments.
    validate_days: Annotated[int | None, Field(ge=1, le=MAX_VALIDATE_DAYS), BeforeValidator(_as_whole_number)] = None
    # Refuse transactions without a customer (exit 3) instead of leaving them out and counting them.
    require_customer: Flag = False
    # Where the job runs (segjob.engines): "local" (this process) or "spark" (Apache Spark).
    engine: Annotated[str, _one_of(ENGINES)] = "local"
    # a Spark master URL, or a Spark Connect remote (sc://host:port)
    spark_master: Annotated[str, BeforeValidator(lambda value: str(value or "local[*]").strip())] = "local[*]"
    # extra Spark settings, KEY -> VALUE
    spark_conf: Annotated[dict[str, str], BeforeValidator(_as_spark_conf)] = Field(default_factory=dict)
    # tasks (and write connections); None: Spark's default parallelism
    spark_write_partitions: Annotated[int | None, Field(ge=1, le=MAX_INT4), BeforeValidator(_as_whole_number)] = None
    # With --engine spark the source may also be Parquet (source_path) or a table of the Spark
    # catalog (source); "database" is a table or query of the segjob database.
    source_format: Annotated[str, _one_of(SOURCE_FORMATS)] = "database"
    source_path: Annotated[str | None, BeforeValidator(lambda value: str(value) if value else None)] = None
    # Filled in by the run, never by the user: feature definitions, as-of date used, counts, SQL.
    transaction_features: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults_of_the_kind_of_job(cls, data: Any) -> Any:
        """Defaults that depend on the kind of job; only settings (a dict, from build_spec) get them."""
        if isinstance(data, ArgsKwargs) or not isinstance(data, dict):
            return data
        settings = {"id": "", "features": [], **data}
        if settings.get("transactions"):
            table = str(settings["transactions"]).strip()
            if not settings.get("id"):
                settings["id"] = settings.get("customer") or ""
            settings["features"] = settings["features"] or list(DEFAULT_PURCHASE_FEATURES)
            settings["job"] = settings.get("job") or table
            settings["transform"] = settings.get("transform") or "auto"
            settings.setdefault("k_max", PURCHASE_HISTORY_K_MAX)
            settings.setdefault("select", NEXT_PERIOD)
        elif settings.get("source_format") == "parquet" and settings.get("source_path"):
            settings.setdefault("job", Path(str(settings["source_path"]).rstrip("/")).name)
        elif isinstance(settings.get("source"), str) and not settings.get("job"):
            settings["job"] = settings["source"].strip()
        return settings

    @model_validator(mode="after")
    def _rules_of_the_job(self, info: ValidationInfo) -> JobSpec:
        """The rules between settings, checked on what the user asked for (build_spec)."""
        given = (info.context or {}).get("given")
        if given is not None:
            self._check_engine(given)
            self._check_source(given)
            self._check_fit(given)
        return self

    def _check_engine(self, given: dict[str, Any]) -> None:
        if self.source_format == "parquet" and not self.source_path:
            raise _invalid("--source-format parquet needs --source-path PATH (a Parquet file or folder)")
        if self.source_path and self.source_format != "parquet":
            raise _invalid("--source-path applies only with --source-format parquet")
        if self.source_format == "catalog" and not self.source:
            raise _invalid("--source-format catalog needs --source TABLE (a table of the Spark catalog)")
        if self.engine == "local":
            spark_only = [name for name in ("spark_master", "spark_conf", "spark_write_partitions") if given.get(name)]
            if self.source_format != "database":
                spark_only.insert(0, "source_format")
            if spark_only:
                raise _invalid(f"--{spark_only[0].replace('_', '-')} applies only with --engine spark")
        elif self.transactions:
            raise _invalid("--transactions jobs run on --engine local; --engine spark reads a table, query or Parquet")

    def _check_source(self, given: dict[str, Any]) -> None:
        if self.transactions:
            self._check_transactions(given)
        elif self.source_format == "parquet":
            if given.get("source") or given.get("query"):
                raise _invalid("--source-format parquet reads --source-path PATH: leave out --source and --query")
        elif bool(given.get("source")) == bool(given.get("query")):
            raise _invalid("give exactly one of --source TABLE, --query SQL or --transactions TABLE")
        else:
            for option in TRANSACTION_OPTIONS:
                if given.get(option) is not None and given.get(option) is not False:
                    raise _invalid(f"--{option.replace('_', '-')} applies only with --transactions TABLE")
        if not self.id:
            raise _invalid("--id COLUMN is required: the column that identifies a customer")
        if not self.features and not self.categorical:
            raise _invalid("--features is required: the numeric columns to segment on")
        named = set(self.features) | set(self.categorical)
        overlap = (set(self.features) & set(self.categorical)) | ({self.id} & named)
        if overlap:
            raise _invalid(f"column {sorted(overlap)[0]!r} is named twice among --id, --features and --categorical")

    def _check_transactions(self, given: dict[str, Any]) -> None:
        """A --transactions job: id is the customer column; the job is named after the table."""
        mixed = [option for option in ("source", "query", "id") if given.get(option)]
        if mixed:
            raise _invalid(
                f"--{mixed[0]} does not go with --transactions, which builds the source itself"
                " (the customer column, --customer, identifies a customer)"
            )
        missing = [f"--{option} COLUMN" for option in ("customer", "date", "amount") if not getattr(self, option)]
        if missing:
            raise _invalid(f"--transactions needs {', '.join(missing)}")
        if len({self.customer, self.date, self.amount}) < 3:
            raise _invalid("--customer, --date and --amount must be three different columns")
        if self.as_of and self.since and self.since >= self.as_of:
            raise _invalid(f"--since {self.since} must be before --as-of {self.as_of}")

    def _check_fit(self, given: dict[str, Any]) -> None:
        if self.k is None and not 2 <= self.k_min <= self.k_max:
            raise _invalid(f"--k-min and --k-max must satisfy 2 <= k-min <= k-max (got {self.k_min}..{self.k_max})")
        if not self.job:
            raise _invalid("--job NAME is required with --query (it names the job's history)")
        if self.select == NEXT_PERIOD and not self.transactions:
            raise _invalid(
                "--select next-period needs --transactions: only a purchase history has later behaviour to test"
            )
        if self.algorithm == DBSCAN_NAME:
            refused = [
                option
                for option, key in (("--k", "k"), ("--k-min", "k_min"), ("--k-max", "k_max"), ("--select", "select"))
                if given.get(key) is not None and not (key == "k" and self.k is None)
            ]
            if refused:
                verb = "does" if len(refused) == 1 else "do"
                raise _invalid(
                    f"{', '.join(refused)} {verb} not apply to --algorithm dbscan, which finds the number of"
                    " segments itself (tune it with --eps)"
                )
        if self.eps is not None and self.algorithm != DBSCAN_NAME:
            raise _invalid("--eps applies only to --algorithm dbscan")
        for name in self.log1p_columns:
            if name not in self.features:
                raise _invalid(
                    f"--transform log1p:{name} names a column that is not among --features ({', '.join(self.features)})"
                )

    @field_validator("transaction_features")
    @classmethod
    def _filled_in_by_the_run(cls, value: Any, info: ValidationInfo) -> Any:
        if info.context is not None and "given" in info.context:
            raise PydanticCustomError(UNKNOWN_SETTING, "never set by the user")
        return value

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


# What a TOML file or an option may set: every field but the one the run fills in.
SETTINGS = tuple(f.name for f in fields(JobSpec) if f.name != "transaction_features")
_SETTINGS_ADAPTER = TypeAdapter(JobSpec)
# Each field's type, default and range, as pydantic sees them.
_FIELD_INFO: dict[str, FieldInfo] = JobSpec.__pydantic_fields__  # type: ignore[attr-defined]


def build_spec(config_file: Path | None = None, **options: Any) -> JobSpec:
    """Merge the TOML file (if any) with CLI options (options given as None are not set)."""
    from_file = load_config_file(config_file) if config_file else {}
    settings = {**from_file, **{key: value for key, value in options.items() if value is not None}}
    try:
        return _SETTINGS_ADAPTER.validate_python(settings, context={"given": settings})
    except ValidationError as exc:
        raise UsageError(_usage_message(exc, config_file, from_file)) from None


def _usage_message(exc: ValidationError, config_file: Path | None, from_file: dict[str, Any]) -> str:
    """segjob's one line for the first problem pydantic found (unknown settings before any other)."""
    errors = exc.errors()
    unknown = sorted(str(error["loc"][0]) for error in errors if error["type"] in _UNKNOWN_ERRORS)
    if unknown:
        where = f"config file {config_file} has" if config_file and set(unknown) <= set(from_file) else "the job has"
        return f"{where} unknown settings {unknown}; known: {sorted(SETTINGS)}"
    return _error_message(errors[0])


UNKNOWN_SETTING = "unknown_setting"
_UNKNOWN_ERRORS = ("extra_forbidden", "unexpected_keyword_argument", UNKNOWN_SETTING)
_RANGE_ERRORS = ("greater_than_equal", "greater_than", "less_than_equal", "less_than")
# Ranges whose message says more than "from LOW to HIGH".
_OUT_OF_RANGE = {
    "k": "--k must be at least 2, not {value}",
    "eps": "--eps must be greater than 0, not {value:g}",
    "clip_outliers": "--clip-outliers must be greater than 0 (standard deviations), not {value:g}",
    "min_segment_share": "--min-segment-share must be at least 0 and below 0.5 (a share: 0.01 = 1%), not {value:g}",
    "statement_timeout": "--statement-timeout must be a positive number of seconds up to"
    f" {MAX_STATEMENT_TIMEOUT} (PostgreSQL's limit), not {{value:g}}",
}
_UNITS = {
    "silhouette_sample": " rows",
    "fit_sample": " rows",
    "stability_sample": " rows",
    "validate_days": " days of later behaviour",
}


def _error_message(error: ErrorDetails) -> str:
    if error["type"] == "segjob":
        return str((error.get("ctx") or {})["message"])
    name = str(error["loc"][0]) if error["loc"] else ""
    value = error["input"]
    if error["type"] in _RANGE_ERRORS:
        if name in _OUT_OF_RANGE:
            return _OUT_OF_RANGE[name].format(value=value)
        bounds = {
            key: getattr(item, key) for item in _FIELD_INFO[name].metadata for key in ("ge", "le") if hasattr(item, key)
        }
        unit = _UNITS.get(name, "")
        flag = "--" + name.replace("_", "-")
        if "le" in bounds:
            return f"{flag} must be from {bounds['ge']} to {bounds['le']}{unit}, not {value}"
        return f"{flag} must be at least {bounds['ge']}{unit}, not {value}"
    if error["type"] == "string_type":
        return f"{name} must be text, not {value!r}"
    return f"{name.replace('_', '-')}: {error['msg']}, not {value!r}"


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
    if "labels" in settings:  # a file named in the config file is found next to it
        settings["labels"] = load_labels(settings["labels"], base=path.parent)
    return settings


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
