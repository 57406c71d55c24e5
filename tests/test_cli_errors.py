"""Bad input through the CLI: one clear line on stderr, the documented exit code, nothing published."""

from __future__ import annotations

import sqlite3

import pytest
from helpers import INCOME, MALL_ID, SPENDING, invoke, one_error_line, query
from typer.testing import CliRunner

from segjob.cli import app


def _nothing_published(url: str) -> None:
    assert query(url, "SELECT COUNT(*) AS n FROM run WHERE status = 'succeeded'")[0]["n"] == 0
    for view in ("current_segment", "segment_profile", "customer_segment_history", "segment_migration"):
        assert query(url, f"SELECT COUNT(*) AS n FROM {view}")[0]["n"] == 0, view
    for table in ("assignment", "segment", "segment_centroid", "run_metric", "run_feature"):
        assert query(url, f"SELECT COUNT(*) AS n FROM {table}")[0]["n"] == 0, table


def test_unknown_table_lists_tables(mall_url):
    result = invoke(mall_url, "run", "--source", "customers", "--id", MALL_ID, "--features", INCOME)
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert 'table "customers" not found' in line and "mall" in line
    assert query(mall_url, "SELECT COUNT(*) AS n FROM run")[0]["n"] == 0


def test_unknown_column_lists_columns(mall_url):
    result = invoke(mall_url, "run", "--source", "mall", "--id", MALL_ID, "--features", "Annual Incme")
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert line == (
        f'Error: column "Annual Incme" not found in table mall (columns: CustomerID, Gender, Age, {INCOME}, {SPENDING});'
        f' did you mean "{INCOME}"?'
    )


@pytest.mark.parametrize(
    "args, unknown, closest",
    [
        # A name equal but for case comes first, ahead of close spellings.
        (("--source", "mall", "--id", "customerid", "--features", INCOME), 'column "customerid"', MALL_ID),
        (("--source", "mall", "--id", MALL_ID, "--features", "age"), 'column "age"', "Age"),
        (("--source", "malls", "--id", MALL_ID, "--features", INCOME), 'table "malls"', "mall"),
        (("--source", "mal", "--id", MALL_ID, "--features", INCOME), 'table "mal"', "mall"),
    ],
)
def test_unknown_names_get_the_closest_known_one(mall_url, args, unknown, closest):
    result = invoke(mall_url, "run", *args)
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert line.startswith(f"Error: {unknown} not found") and line.endswith(f'; did you mean "{closest}"?'), line


def test_no_suggestion_when_nothing_is_close(mall_url):
    result = invoke(mall_url, "run", "--source", "mall", "--id", MALL_ID, "--features", "loyalty_points")
    assert result.exit_code == 2
    assert "did you mean" not in one_error_line(result.stderr)


def test_non_numeric_feature_fails_the_run(mall_url):
    result = invoke(mall_url, "run", "--source", "mall", "--id", MALL_ID, "--features", f"Gender,{INCOME}")
    assert result.exit_code == 3
    line = one_error_line(result.stderr)
    assert '"Gender" is not numeric' in line
    runs = query(mall_url, "SELECT status, error FROM run")
    assert len(runs) == 1 and runs[0]["status"] == "failed" and '"Gender" is not numeric' in runs[0]["error"]
    _nothing_published(mall_url)


def test_fewer_rows_than_k(mall_url):
    result = invoke(
        mall_url,
        "run",
        "--query",
        'SELECT * FROM mall WHERE "CustomerID" <= 3',
        "--job",
        "tiny",
        "--id",
        MALL_ID,
        "--features",
        INCOME,
        "--k",
        "5",
    )
    assert result.exit_code == 3
    assert "fewer than k=5" in one_error_line(result.stderr)
    _nothing_published(mall_url)


def test_no_rows(mall_url):
    result = invoke(
        mall_url,
        "run",
        "--query",
        'SELECT * FROM mall WHERE "Age" > 500',
        "--job",
        "nobody",
        "--id",
        MALL_ID,
        "--features",
        INCOME,
    )
    assert result.exit_code == 3
    assert "no usable rows" in one_error_line(result.stderr)
    _nothing_published(mall_url)


def test_duplicate_ids(mall_url):
    result = invoke(mall_url, "run", "--source", "mall", "--id", "Age", "--features", INCOME)
    assert result.exit_code == 3
    line = one_error_line(result.stderr)
    assert "duplicate customer ids" in line and "appears" in line
    _nothing_published(mall_url)


def test_missing_csv_file(migrated_db_url, tmp_path):
    result = invoke(migrated_db_url, "load-csv", str(tmp_path / "nope.csv"), "--table", "x")
    assert result.exit_code == 2
    assert "nope.csv" in one_error_line(result.stderr)


def test_bad_options_are_usage_errors(mall_url):
    base = ("run", "--source", "mall", "--id", MALL_ID, "--features", INCOME)
    for extra, text in (
        (("--scaler", "zscore"), "--scaler must be one of"),
        (("--missing", "zero"), "--missing must be one of"),
        (("--k", "1"), "--k must be at least 2"),
        (("--k", "many"), "k must be a whole number or 'auto'"),
        (("--k-min", "5", "--k-max", "3"), "2 <= k-min <= k-max"),
    ):
        result = invoke(mall_url, *base, *extra)
        assert result.exit_code == 2, extra
        assert text in one_error_line(result.stderr)
    _nothing_published(mall_url)


def test_commands_refuse_a_database_without_schema(db_url):
    if db_url.startswith("sqlite:///"):  # an existing, empty file (a missing one: see below)
        sqlite3.connect(db_url.removeprefix("sqlite:///")).close()
    for args in (("runs", "list"), ("run", "--source", "mall", "--id", MALL_ID, "--features", INCOME)):
        result = invoke(db_url, *args)
        assert result.exit_code == 5, args
        line = one_error_line(result.stderr)
        assert "has no segjob schema" in line and "segjob db upgrade" in line


def test_unreachable_database_hides_password():
    result = invoke("postgresql://segjob:s3cret@127.0.0.1:1/nowhere", "runs", "list")
    assert result.exit_code == 5
    line = one_error_line(result.stderr)
    assert "s3cret" not in result.stderr and "cannot use database" in line and "***" in line


def test_db_upgrade_reports_versions(db_url):
    first = invoke(db_url, "db", "upgrade")
    assert first.exit_code == 0 and "upgraded from empty to" in first.stdout
    again = invoke(db_url, "db", "upgrade")
    assert again.exit_code == 0 and "already at" in again.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("runs", "list"),
        ("runs", "show", "1"),
        ("report", "1", "--out", "report"),
        ("sql", "score", "--job", "mall"),
        ("promote", "1"),
        ("prune", "--job", "mall", "--keep", "1"),
        ("run", "--source", "mall", "--id", MALL_ID, "--features", INCOME),
        ("score", "--job", "mall", "--source", "mall"),
    ],
    ids=" ".join,
)
def test_commands_that_need_a_segjob_database_never_create_a_file(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nowhere.db"
    result = invoke(f"sqlite:///{missing}", *args)
    assert result.exit_code == 5
    assert one_error_line(result.stderr) == (
        f"Error: database sqlite:///{missing} does not exist;"
        f" create it with 'segjob db upgrade --database-url sqlite:///{missing}' (or try 'segjob demo')"
    )
    assert list(tmp_path.iterdir()) == []


def test_version_names_segjob_scikit_learn_and_numpy():
    from importlib.metadata import version

    import segjob

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == (
        f"segjob {segjob.__version__} (scikit-learn {version('scikit-learn')}, numpy {version('numpy')})\n"
    )
