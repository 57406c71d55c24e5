"""OpenLineage run events through the openlineage-python client's file transport (issue 26).

Configured the client's standard way (OPENLINEAGE_CONFIG pointing at an openlineage.yml), a run
emits START and COMPLETE (or FAIL) with its input, segjob's output tables and the segjob facet;
unconfigured, nothing is imported or sent; a failing transport never fails the run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import INCOME, MALL_ID, SPENDING, invoke, load_mall, query

from segjob.results.lineage_events import configured

TWO = ("--source", "mall", "--id", MALL_ID, "--features", f"{INCOME},{SPENDING}")


@pytest.fixture(autouse=True)
def _environment_restored():
    """openlineage-python writes OPENLINEAGE__TRANSPORT__* variables into os.environ when it reads
    OPENLINEAGE_URL; the processes later tests start must not inherit a configuration."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def events_file(tmp_path, monkeypatch) -> Path:
    events = tmp_path / "events.jsonl"
    config = tmp_path / "openlineage.yml"
    config.write_text(f"transport:\n  type: file\n  log_file_path: {events}\n  append: true\n")
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_DISABLED", "OPENLINEAGE_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
    return events


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_run_emits_start_and_complete_with_its_datasets_and_counts(migrated_db_url, events_file):
    url = migrated_db_url
    load_mall(url)
    result = invoke(url, "run", *TWO, "--k", "4", "--job", "mall_lineage")
    assert result.exit_code == 0, result.stderr
    run_id = query(url, "SELECT run_id FROM run WHERE job = 'mall_lineage'")[0]["run_id"]

    start, complete = _events(events_file)
    assert [start["eventType"], complete["eventType"]] == ["START", "COMPLETE"]
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert complete["job"] == {"namespace": "segjob", "name": "mall_lineage", "facets": {}}
    postgres = url.startswith("postgresql")
    database = url.rsplit("/", 1)[1]
    assert [d["name"] for d in complete["inputs"]] == [f"{database}.public.mall" if postgres else "mall"]
    outputs = {d["name"]: d for d in complete["outputs"]}
    prefix = f"{database}.segjob." if postgres else ""
    assert set(outputs) == {f"{prefix}{t}" for t in ("assignment", "segment", "segment_centroid", "run_metric")}
    assert outputs[f"{prefix}assignment"]["outputFacets"]["outputStatistics"]["rowCount"] == 200
    namespace = complete["inputs"][0]["namespace"]
    assert namespace.startswith("postgres://127.0.0.1:5432" if postgres else "sqlite:///")
    facet = complete["run"]["facets"]["segjob"]
    assert (facet["runId"], facet["kind"], facet["k"], facet["rowsRead"], facet["rowsUsed"]) == (
        run_id,
        "fit",
        4,
        200,
        200,
    )
    assert "k" not in start["run"]["facets"]["segjob"]  # not known yet when the run starts

    # A second run of the job is another OpenLineage run of the same job.
    assert invoke(url, "run", *TWO, "--k", "3", "--job", "mall_lineage").exit_code == 0
    later = _events(events_file)[2:]
    assert [e["eventType"] for e in later] == ["START", "COMPLETE"]
    assert later[0]["run"]["runId"] != start["run"]["runId"]


def test_a_failed_run_emits_fail_with_the_error_and_a_query_its_sql(migrated_pg_url, events_file):
    url = migrated_pg_url
    load_mall(url)
    text = f'SELECT "{MALL_ID}", "{INCOME}" FROM mall WHERE "{MALL_ID}" < 4'
    result = invoke(url, "run", "--query", text, "--id", MALL_ID, "--features", INCOME, "--k", "5", "--job", "tiny")
    assert result.exit_code == 3, result.stderr
    start, failed = _events(events_file)
    assert [start["eventType"], failed["eventType"]] == ["START", "FAIL"]
    message = failed["run"]["facets"]["errorMessage"]["message"]
    assert message == result.stderr.strip().splitlines()[-1].removeprefix("Error: ")
    assert failed["job"]["facets"]["sql"]["query"] == text
    assert failed["inputs"] == []


def test_a_transport_that_fails_does_not_fail_the_run(migrated_db_url, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENLINEAGE_CONFIG", raising=False)
    monkeypatch.setenv("OPENLINEAGE_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    load_mall(migrated_db_url)
    result = invoke(migrated_db_url, "run", *TWO, "--k", "3")
    assert result.exit_code == 0, result.stderr
    assert query(migrated_db_url, "SELECT status FROM run")[0]["status"] == "succeeded"


def test_configured_follows_the_clients_lookup(tmp_path):
    home = tmp_path / "home"
    (home / ".openlineage").mkdir(parents=True)
    assert not configured({"HOME": str(home)}, cwd=tmp_path)
    assert configured({"HOME": str(home), "OPENLINEAGE_URL": "http://x"}, cwd=tmp_path)
    assert configured({"HOME": str(home), "OPENLINEAGE__TRANSPORT__TYPE": "console"}, cwd=tmp_path)
    assert not configured({"HOME": str(home), "OPENLINEAGE_CONFIG": str(tmp_path / "missing.yml")}, cwd=tmp_path)
    (tmp_path / "openlineage.yml").write_text("transport:\n  type: console\n")
    assert configured({"HOME": str(home)}, cwd=tmp_path)
    assert not configured({"HOME": str(home), "OPENLINEAGE_DISABLED": "true"}, cwd=tmp_path)
    (tmp_path / "openlineage.yml").unlink()
    (home / ".openlineage" / "openlineage.yml").write_text("transport:\n  type: console\n")
    assert configured({"HOME": str(home)}, cwd=tmp_path)


@pytest.mark.slow
def test_unconfigured_runs_do_not_import_the_client(sqlite_template, tmp_path):
    shutil.copyfile(sqlite_template, tmp_path / "segjob.db")
    sqlite_url = f"sqlite:///{tmp_path / 'segjob.db'}"
    load_mall(sqlite_url)
    program = (
        "import sys\n"
        "from segjob.cli.app import app\n"
        "from typer.testing import CliRunner\n"
        f"args = ['run', '--source', 'mall', '--id', {MALL_ID!r}, '--features', {INCOME!r} + ',' + {SPENDING!r},"
        f" '--k', '3', '--database-url', {sqlite_url!r}]\n"
        "result = CliRunner().invoke(app, args)\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'openlineage'))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
