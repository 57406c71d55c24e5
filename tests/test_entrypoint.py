"""The installed `segjob` executable, end to end in a subprocess, and the docs that describe it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import LOG_LINE, query

ROOT = Path(__file__).resolve().parents[1]
SEGJOB = shutil.which("segjob", path=str(Path(sys.executable).parent)) or "segjob"


def segjob(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SEGJOB, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_demo_end_to_end(backend, request, tmp_path):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    result = segjob("demo", "--database-url", url)
    assert result.returncode == 0, result.stderr
    runs = query(url, "SELECT run_id, k, status FROM run_summary")
    assert len(runs) == 1 and runs[0]["status"] == "succeeded"
    run = runs[0]
    assert f"run {run['run_id']} of job mall_customers_demo: succeeded" in result.stdout
    assert re.search(rf"k={run['k']}: largest silhouette gain", result.stdout)
    for segment in query(url, "SELECT label, size FROM segment WHERE run_id = :r", r=run["run_id"]):
        assert segment["label"] in result.stdout
    # Not a terminal: progress comes as timestamped lines, as a scheduler's log wants them.
    assert all(LOG_LINE.match(line) for line in result.stderr.splitlines()), result.stderr
    assert "publishing: run 1: " in result.stderr

    again = segjob("demo", "--database-url", url, "--quiet")
    assert again.returncode == 0
    assert len(query(url, "SELECT run_id FROM run")) == 2


@pytest.mark.slow
def test_demo_uses_sqlite_file_in_working_directory_by_default(tmp_path):
    env = {"SEGJOB_DATABASE_URL": ""}
    result = segjob("demo", "--quiet", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "segjob.db").is_file()
    listed = segjob("runs", "list", "--json", cwd=tmp_path, env=env)
    assert [run["job"] for run in json.loads(listed.stdout)] == ["mall_customers_demo"]


@pytest.mark.slow
def test_exit_code_and_single_line_for_an_empty_database(tmp_path):
    result = segjob("runs", "list", "--database-url", f"sqlite:///{tmp_path / 'empty.db'}")
    assert result.returncode == 5
    assert result.stderr.count("\n") == 1 and "segjob db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_python_dash_m_works():
    result = subprocess.run([sys.executable, "-m", "segjob", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "load-csv" in result.stdout


def _commands() -> list[str]:
    from typer.main import get_command

    from segjob.cli.app import app

    root = get_command(app)
    names = []
    for name, command in root.commands.items():
        sub = getattr(command, "commands", None)
        names.extend(f"{name} {child}" for child in sub) if sub else names.append(name)
    return names


@pytest.mark.slow
def test_every_command_has_help_and_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    commands = _commands()
    assert {"db upgrade", "load-csv", "run", "runs list", "runs show", "demo"} <= set(commands)
    for command in commands:
        assert f"segjob {command}" in readme, command
        result = segjob(*command.split(), "--help")
        assert result.returncode == 0 and "Usage" in result.stdout


def test_readme_set_up_commands_match_ci():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    assert blocks[0].strip() == "make demo" and blocks[1].strip() == "make test"
    assert "make test" in (ROOT / ".ci" / "run").read_text()
