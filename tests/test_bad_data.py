"""The bad-data catalogue, through the CLI on both databases.

Each case is a table the job reads after a good run of the same job has succeeded. A case is
either cleaned (the run succeeds; the rows it dropped are counted in run.dropped_by_reason) or
refused with one `Error:` line and its exit code, in which case the run is `failed`, nothing of
it is in any table or view, and the good run stays current and intact. README.md's "Bad input
and what segjob does" lists the same cases and outcomes.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from helpers import invoke, one_error_line, query

JOB = "catalogue"
N = 30


def _base(n: int = N) -> list[tuple]:
    return [(f"c{i:03d}", float(i % 7), float(i * 3 % 11)) for i in range(n)]


def _random_text(rng: random.Random, n_bytes: int) -> str:
    """Random non-ASCII text of exactly n_bytes UTF-8 bytes (so PostgreSQL cannot compress it)."""
    chars, size = [], 0
    while size < n_bytes:
        char = chr(rng.randrange(0x4E00, 0x9FFF)) if n_bytes - size >= 3 else "x"
        chars.append(char)
        size += len(char.encode())
    return "".join(chars)


_rng = random.Random(5)
UNICODE_IDS = [
    "007",
    "ÅngströM",
    "名前",
    "🙂 emoji",
    "עברית",
    "e\u0301",
    "quote ' \" ;--",
    "tab\tin",
    " lead",
    "%s",
    *[_random_text(_rng, 2000 - 3) + f"{i:03d}" for i in range(N - 10)],
]


@dataclass
class Case:
    name: str
    columns: list[tuple[str, str]]  # (name, kind): kind text, float, numeric or any (SQLite: no type)
    rows: list[tuple]
    args: tuple[str, ...] = ()
    k: str = "3"  # a fixed k keeps the catalogue fast; "auto" where the case is about choosing k
    used: int | None = None  # succeeds with this many rows used...
    dropped: dict[str, int] = field(default_factory=dict)  # ...and these dropped
    exit_code: int | None = None  # or fails with this code...
    error: str | None = None  # ...and this line (after "Error: ")
    backends: tuple[str, ...] = ("sqlite", "postgresql")


ABC = [("id", "text"), ("a", "float"), ("b", "float")]
CASES = [
    Case(
        "nulls_in_features",
        ABC,
        [(i, None if n < 3 else a, b) for n, (i, a, b) in enumerate(_base())],
        used=N - 3,
        dropped={"missing_value": 3},
    ),
    Case(
        "nulls_in_features_imputed",
        ABC,
        [(i, None if n < 3 else a, b) for n, (i, a, b) in enumerate(_base())],
        args=("--missing", "median"),
        used=N,
    ),
    Case(
        "nulls_and_blanks_in_ids",
        ABC,
        [(None if n < 2 else "  " if n == 2 else i, a, b) for n, (i, a, b) in enumerate(_base())],
        used=N - 3,
        dropped={"missing_id": 3},
    ),
    Case(
        "nan_and_infinity",
        ABC,
        [(i, [math.nan, math.inf, -math.inf][n] if n < 3 else a, b) for n, (i, a, b) in enumerate(_base())],
        used=N - 3,
        dropped={"missing_value": 1, "non_finite_value": 2},
    ),
    Case(
        "nan_and_infinity_imputed",
        ABC,
        [(i, [math.nan, math.inf, -math.inf][n] if n < 3 else a, b) for n, (i, a, b) in enumerate(_base())],
        args=("--missing", "mean"),
        used=N,
    ),
    Case(
        "numbers_stored_as_text",
        [("id", "text"), ("a", "text"), ("b", "float")],
        [(i, [f" {a:g} ", f"{a:.3e}", str(int(a)), "", "NaN"][n % 5], b) for n, (i, a, b) in enumerate(_base())],
        used=N - 12,
        dropped={"missing_value": 12},
    ),
    Case(
        "mixed_types_numeric",
        [("id", "any"), ("a", "any"), ("b", "float")],
        [(n if n % 2 else f"c{n}", [int(a), a, f" {a} "][n % 3], b) for n, (i, a, b) in enumerate(_base())],
        used=N,
    ),
    Case(
        "mixed_types_with_words",
        [("id", "text"), ("a", "any"), ("b", "float")],
        [(i, "n/a" if n == 5 else [int(a), a, str(a)][n % 3], b) for n, (i, a, b) in enumerate(_base())],
        exit_code=3,
        error='column "a" is not numeric: 1 of 30 values cannot be read as numbers (for example "n/a");'
        " list it under --categorical or choose another feature",
    ),
    Case(
        "duplicate_ids",
        ABC,
        [("c001" if n < 3 else i, a, b) for n, (i, a, b) in enumerate(_base())],
        exit_code=3,
        error='duplicate customer ids in column "id": 1 id appears more than once (for example "c001" appears 3 times);'
        " ids must be unique",
    ),
    Case("empty_table", ABC, [], exit_code=3, error="no usable rows: the input has no rows"),
    Case(
        "single_row",
        ABC,
        _base(1),
        k="auto",
        exit_code=3,
        error="choosing k needs at least 3 distinct rows, but the 1 usable rows hold only 1; set --k or check the input",
    ),
    Case(
        "single_row_fixed_k",
        ABC,
        _base(1),
        k="2",
        exit_code=3,
        error="only 1 usable rows, fewer than k=2; lower --k or check the input",
    ),
    Case("constant_column", ABC, [(i, 5.0, b) for i, a, b in _base()], used=N),
    Case(
        "all_columns_constant",
        ABC,
        [(i, 5.0, 1.0) for i, a, b in _base()],
        exit_code=3,
        error="only 1 distinct rows (customers with different feature values) among 30 usable rows, fewer than k=3;"
        " lower --k or choose features that vary more",
    ),
    Case(
        "more_clusters_than_distinct_points",
        ABC,
        [(i, float(n % 2), 0.0) for n, (i, a, b) in enumerate(_base())],
        k="4",
        exit_code=3,
        error="only 2 distinct rows (customers with different feature values) among 30 usable rows, fewer than k=4;"
        " lower --k or choose features that vary more",
    ),
    Case(
        "feature_all_missing",
        ABC,
        [(i, None, b) for i, a, b in _base()],
        exit_code=3,
        error='column "a" has no usable values: all 30 values are missing or infinite; choose another feature',
    ),
    Case(
        "extreme_magnitudes",
        ABC,
        [(i, a * 1e300, b) for i, a, b in _base()],
        exit_code=3,
        error='column "a" cannot be scaled: its values are too extreme in magnitude (largest absolute value 6e+300);'
        " rescale the column in the source",
    ),
    Case("tiny_magnitudes", ABC, [(i, a * 1e-300, b) for i, a, b in _base()], used=N),
    Case("negative_and_zero_values", ABC, [(i, -a, b - 5) for i, a, b in _base()], used=N),
    Case(
        "negative_values_with_log1p",
        ABC,
        [(i, -a, b - 5) for i, a, b in _base()],
        args=("--transform", "log1p:a"),
        exit_code=3,
        error='column "a" has negative values (smallest -6), so log1p cannot transform it;'
        " leave it out of --transform log1p:...",
    ),
    Case("unicode_and_long_ids", ABC, [(key, a, b) for key, (_, a, b) in zip(UNICODE_IDS, _base())], used=N),
    Case(
        "ids_too_long",
        ABC,
        [(key + "xyz" if n == 12 else key, a, b) for n, (key, (_, a, b)) in enumerate(zip(UNICODE_IDS, _base()))],
        exit_code=3,
        error='1 customer ids in column "id" are longer than 2000 bytes (the longest has 2003); is it really the id column?',
    ),
    Case(
        "categorical_with_missing_values",
        [*ABC, ("tier", "text")],
        [(i, a, b, None if n % 4 == 0 else "gold") for n, (i, a, b) in enumerate(_base())],
        args=("--categorical", "tier"),
        used=N,
    ),
    Case(
        "categorical_with_thousands_of_levels",
        [*ABC, ("tier", "text")],
        [(f"c{n}", float(n % 7), float(n % 5), f"level {n}") for n in range(3000)],
        args=("--categorical", "tier"),
        exit_code=3,
        error='column "tier" has 3000 distinct values, more than the 50 a categorical column may have;'
        " it looks like an id or free text: leave it out of --categorical",
    ),
    Case(
        "number_beyond_double_precision",
        [("id", "text"), ("a", "numeric"), ("b", "float")],
        [(i, 10**400 if n == 0 else a, b) for n, (i, a, b) in enumerate(_base())],
        backends=("postgresql",),
        exit_code=3,
        error="reading the source failed: a value does not fit a double precision number (beyond about 1.8e308);"
        " rescale or filter the column in the source",
    ),
]

_TYPES = {
    "postgresql": {"text": "TEXT", "float": "DOUBLE PRECISION", "numeric": "NUMERIC", "any": "TEXT"},
    "sqlite": {"text": "TEXT", "float": "REAL", "numeric": "NUMERIC", "any": ""},
}


def _create(url: str, table: str, columns: list[tuple[str, str]], rows: list[tuple]) -> None:
    engine = sa.create_engine(url)
    quote = engine.dialect.identifier_preparer.quote
    types = _TYPES[engine.dialect.name]
    with engine.begin() as connection:
        definition = ", ".join(f"{quote(name)} {types[kind]}" for name, kind in columns)
        connection.exec_driver_sql(f"CREATE TABLE {quote(table)} ({definition})")
        if rows:
            target = sa.table(table, *[sa.column(name) for name, _ in columns])
            if engine.dialect.name == "postgresql":  # TEXT columns take every value as its text
                rows = [
                    tuple(
                        v if v is None or kind in ("float", "numeric") else str(v) for v, (_, kind) in zip(row, columns)
                    )
                    for row in rows
                ]
            connection.execute(sa.insert(target), [dict(zip([name for name, _ in columns], row)) for row in rows])
    engine.dispose()


def _dropped(url: str, run_id: int) -> dict:
    value = query(url, "SELECT dropped_by_reason FROM run WHERE run_id = :r", r=run_id)[0]["dropped_by_reason"]
    return json.loads(value) if isinstance(value, str) else value


@pytest.fixture
def good_run(migrated_db_url):
    """A succeeded run of the job on a good table, which every failing case must leave current."""
    _create(migrated_db_url, "good", ABC, _base())
    result = invoke(
        migrated_db_url,
        "run",
        "--source",
        "good",
        "--id",
        "id",
        "--features",
        "a,b",
        "--job",
        JOB,
        "--k",
        "3",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    return migrated_db_url, json.loads(result.stdout)["run_id"]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_data_catalogue(good_run, case):
    url, good_id = good_run
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    if backend not in case.backends:
        pytest.skip(f"{case.name} cannot be stored in {backend}")
    _create(url, case.name, case.columns, case.rows)
    features = ",".join(name for name, kind in case.columns[1:] if name in ("a", "b"))
    result = invoke(
        url,
        "run",
        "--source",
        case.name,
        "--id",
        "id",
        "--features",
        features,
        "--job",
        JOB,
        "--k",
        case.k,
        *case.args,
        "--json",
    )
    runs = query(url, "SELECT run_id, status, error, rows_used FROM run_summary WHERE job = :j ORDER BY run_id", j=JOB)
    assert len(runs) == 2
    new = runs[1]

    if case.exit_code is None:
        assert result.exit_code == 0, result.stderr
        assert new["status"] == "succeeded" and new["rows_used"] == case.used
        assert _dropped(url, new["run_id"]) == case.dropped
        current = query(url, "SELECT run_id, customer_key FROM current_segment WHERE job = :j", j=JOB)
        assert {row["run_id"] for row in current} == {new["run_id"]} and len(current) == case.used
        if case.name == "unicode_and_long_ids":
            assert sorted(row["customer_key"] for row in current) == sorted(UNICODE_IDS)
        return

    assert result.exit_code == case.exit_code, result.stderr
    assert one_error_line(result.stderr) == f"Error: {case.error}"
    assert result.stdout == ""
    assert new["status"] == "failed" and new["error"] == case.error
    for table in ("assignment", "segment", "segment_centroid", "run_metric", "run_feature"):
        assert query(url, f"SELECT COUNT(*) AS n FROM {table} WHERE run_id = :r", r=new["run_id"])[0]["n"] == 0, table
    # The good run is still the current one, complete.
    current = query(url, "SELECT run_id, COUNT(*) AS n FROM current_segment WHERE job = :j GROUP BY run_id", j=JOB)
    assert current == [{"run_id": good_id, "n": N}]
    profile = query(
        url,
        "SELECT run_id, SUM(size) AS n FROM segment_profile WHERE job = :j AND feature = 'a' GROUP BY run_id",
        j=JOB,
    )
    assert [(row["run_id"], int(row["n"])) for row in profile] == [(good_id, N)]


def _streamed_rows(kind: str, n: int = 3000) -> list[tuple]:
    rows = [(f"c{i:05d}", float(i % 7), float(i * 3 % 11)) for i in range(n)]
    if kind == "dirty":  # every 100th row lacks an id; others hold NULL, NaN or infinity

        def dirty(k, row):
            key, a, b = row
            return (
                None if k % 100 == 0 else key,
                None if k % 100 == 1 else a,
                math.nan if k % 200 == 2 else math.inf if k % 200 == 102 else b,
            )

        return [dirty(k, row) for k, row in enumerate(rows)]
    if kind == "duplicate_far_apart":
        return rows[:-1] + [("c00001", 1.0, 2.0)]
    if kind == "long_id_late":
        return rows[:-5] + [("x" * 2100, 1.0, 2.0)] + rows[-4:]
    return rows


@pytest.mark.parametrize(
    "kind, exit_code, expected",
    [
        ("dirty", 0, {"missing_id": 30, "missing_value": 45, "non_finite_value": 15}),
        (
            "duplicate_far_apart",
            3,
            'duplicate customer ids in column "id": 1 id appears more than once (for example "c00001" appears 2 times);'
            " ids must be unique",
        ),
        (
            "long_id_late",
            3,
            '1 customer ids in column "id" are longer than 2000 bytes (the longest has 2100); is it really the id column?',
        ),
    ],
)
def test_bad_data_on_the_streamed_path(good_run, kind, exit_code, expected):
    """Above --fit-sample rows K-Means fits on a sample and streams every row through assignment:
    the same outcomes, even when the bad row is far from the sample."""
    url, good_id = good_run
    _create(url, kind, ABC, _streamed_rows(kind))
    result = invoke(
        url,
        "run",
        "--source",
        kind,
        "--id",
        "id",
        "--features",
        "a,b",
        "--job",
        JOB,
        "--k",
        "3",
        "--fit-sample",
        "1000",
        "--json",
    )
    new = query(url, "SELECT run_id, status, error, rows_used FROM run_summary WHERE job = :j ORDER BY run_id", j=JOB)[
        -1
    ]
    assert result.exit_code == exit_code, result.stderr
    if exit_code == 0:
        assert new["status"] == "succeeded" and new["rows_used"] == 3000 - sum(expected.values())
        assert _dropped(url, new["run_id"]) == expected
        assert query(url, "SELECT COUNT(*) AS n FROM current_segment WHERE job = :j", j=JOB)[0]["n"] == new["rows_used"]
        return
    assert one_error_line(result.stderr) == f"Error: {expected}"
    assert new["status"] == "failed" and new["error"] == expected
    assert query(url, "SELECT COUNT(*) AS n FROM assignment WHERE run_id = :r", r=new["run_id"])[0]["n"] == 0
    current = query(url, "SELECT run_id, COUNT(*) AS n FROM current_segment WHERE job = :j GROUP BY run_id", j=JOB)
    assert current == [{"run_id": good_id, "n": N}]
