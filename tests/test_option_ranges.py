"""Numeric options, from the command line or the TOML file, are whole numbers where they must be
and within the range segjob can use, or the run stops with one `Error:` line and exit 2 (issue 22).

Before, a negative --seed exited 1 from numpy, a seed of 2**31 overflowed run.seed (exit 1), a
statement timeout beyond PostgreSQL's limit failed the connection (exit 5), and TOML booleans
and fractions were taken as 1, 0 and the fraction's whole part.
"""

from __future__ import annotations

import pytest
from helpers import INCOME, MALL_ID, SPENDING, invoke, load_mall, one_error_line, query

JOB = ("--source", "mall", "--id", MALL_ID, "--features", f"{INCOME},{SPENDING}")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("--seed", "-1"), "--seed must be from 0 to 2147483647, not -1"),
        (("--seed", "2147483648"), "--seed must be from 0 to 2147483647, not 2147483648"),
        (
            ("--statement-timeout", "3000000"),
            "--statement-timeout must be a positive number of seconds up to 2147483.647 (PostgreSQL's limit), not 3e+06",
        ),
        (("--fit-sample", "999"), "--fit-sample must be at least 1000 rows, not 999"),
        (("--silhouette-sample", "-5"), "--silhouette-sample must be at least 100 rows, not -5"),
        (("--stability-sample", "0"), "--stability-sample must be at least 100 rows, not 0"),
        (
            ("--engine", "spark", "--spark-write-partitions", "2147483648"),
            "--spark-write-partitions must be from 1 to 2147483647, not 2147483648",
        ),
    ],
)
def test_out_of_range_options_are_usage_errors(sqlite_url, args, error):
    result = invoke(sqlite_url, "run", *JOB, *args)
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == f"Error: {error}"


def test_validate_days_beyond_any_history_is_a_usage_error(sqlite_url):
    purchases = ("--transactions", "tx", "--customer", "c", "--date", "d", "--amount", "a")
    result = invoke(sqlite_url, "run", *purchases, "--validate-days", "1000000")
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == (
        "Error: --validate-days must be from 1 to 36500 days of later behaviour, not 1000000"
    )


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ("k = true", "k must be a whole number or 'auto', not True"),
        ("k = 2.5", "k must be a whole number or 'auto', not 2.5"),
        ("k_max = false", "k-max must be a whole number, not False"),
        ("seed = true", "seed must be a whole number, not True"),
        ("seed = 1.5", "seed must be a whole number, not 1.5"),
        ("fit_sample = 2500.7", "fit-sample must be a whole number, not 2500.7"),
        ("statement_timeout = true", "statement-timeout must be a number, not True"),
        ("min_segment_share = true", "min-segment-share must be a number, not True"),
        ("clip_outliers = true", "clip-outliers must be a number, not True"),
        ('algorithm = "dbscan"\neps = true', "eps must be a number, not True"),
    ],
)
def test_toml_booleans_and_fractions_are_not_whole_numbers(sqlite_url, tmp_path, setting, error):
    config = tmp_path / "job.toml"
    config.write_text(f'source = "mall"\nid = "{MALL_ID}"\nfeatures = ["{INCOME}"]\n{setting}\n')
    result = invoke(sqlite_url, "run", "--config", str(config))
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == f"Error: {error}"


def test_the_largest_seed_and_whole_toml_floats_run_and_are_stored(migrated_pg_url, tmp_path):
    load_mall(migrated_pg_url, "mall")
    config = tmp_path / "job.toml"
    config.write_text("k = 3.0\nseed = 2147483647\n")
    result = invoke(migrated_pg_url, "run", *JOB, "--config", str(config))
    assert result.exit_code == 0, result.stderr
    assert query(migrated_pg_url, "SELECT k, seed FROM run") == [{"k": 3, "seed": 2147483647}]
