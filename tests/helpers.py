"""Shared test helpers: run the CLI in-process, and read segjob's tables and views."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from segjob.cli.app import app
from segjob.store import db
from segjob.store.dialect import dialect_of

SEGJOB = str(Path(sys.executable).parent / "segjob")  # the installed entry point, for process tests
MALL_CSV = Path(__file__).resolve().parents[1] / "segjob" / "data" / "mall_customers.csv"
MALL_ID = "CustomerID"
INCOME = "Annual Income (k$)"
SPENDING = "Spending Score (1-100)"


def invoke(url: str, *args: str):
    """Run `segjob ARGS --database-url URL` in-process; returns the click Result."""
    return CliRunner().invoke(app, [*args, "--database-url", url], catch_exceptions=False)


def run_json(url: str, *args: str) -> dict:
    result = invoke(url, "run", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def load_mall(url: str, table: str = "mall") -> None:
    result = invoke(url, "load-csv", str(MALL_CSV), "--table", table)
    assert result.exit_code == 0, result.stderr


def query(url: str, sql: str, **params) -> list[dict]:
    """Rows of a query over segjob's views/tables, written without schema (segjob. is added on PG)."""
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            if dialect_of(connection).postgres:
                connection.exec_driver_sql("SET search_path TO segjob, public")
            return [dict(row._mapping) for row in connection.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \S")


def one_error_line(stderr: str) -> str:
    """The one "Error: ..." line of a failed command, which comes last; any line before it is a
    timestamped progress line (stderr is not a terminal here, so progress goes to a log)."""
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith("Error: "), stderr
    assert all(LOG_LINE.match(line) for line in lines[:-1]), stderr
    return lines[-1]
