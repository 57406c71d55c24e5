"""Fast start-up: commands that only talk to the database do not import the numeric stack."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("sklearn", "pandas", "matplotlib", "scipy", "numpy", "kneed")
LIGHT_COMMANDS = [["--help"], ["--version"], ["runs", "list"], ["runs", "--help"], ["run", "--help"]]

# Runs the CLI's Typer app in a fresh interpreter and prints which heavy packages got imported.
_PROBE = """
import json, sys, threading
from segjob.cli.app import app
try:
    app(args=json.loads(sys.argv[1]), prog_name="segjob")
except SystemExit as stop:
    code = stop.code
for thread in threading.enumerate():  # a run imports scikit-learn in a thread of its own
    if thread is not threading.main_thread():
        thread.join()
print(json.dumps({"code": code, "heavy": sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)}))
"""


def _probe(args: list[str], url: str) -> dict:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            _PROBE,
            json.dumps([*args] + (["--database-url", url] if args[-1] == "list" else [])),
            json.dumps(HEAVY),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("args", LIGHT_COMMANDS, ids=" ".join)
def test_light_commands_do_not_import_the_numeric_stack(args, migrated_db_url):
    probe = _probe(args, migrated_db_url)
    assert probe["code"] in (0, None)
    assert probe["heavy"] == []


@pytest.mark.slow
def test_the_probe_sees_heavy_imports_of_a_run(migrated_db_url):
    """The same probe on `segjob run` (which fails fast on a missing table) does see scikit-learn."""
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            _PROBE,
            json.dumps(["run", "--source", "nope", "--id", "id", "--features", "a", "--database-url", migrated_db_url]),
            json.dumps(HEAVY),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    probe = json.loads(completed.stdout.strip().splitlines()[-1])
    assert probe["code"] == 2
    assert "sklearn" in probe["heavy"]


@pytest.mark.slow
def test_a_run_reaches_the_database_before_importing_scikit_learn():
    """The modules a run needs up to its first fit import neither scikit-learn nor SciPy, so the
    preload thread can import them (~2 s) while the run checks, counts and samples the source."""
    probe = (
        "import json, sys; import segjob.cli, segjob.config, segjob.pipeline, segjob.engines.local, segjob.scoring.score;"
        f" print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(completed.stdout) == ["numpy", "pandas"]
