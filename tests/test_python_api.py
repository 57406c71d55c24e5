"""The Python API (`import segjob`, issue 25): README's example runs as written, every exported
name resolves and is documented, and errors carry the CLI's exit codes."""

from __future__ import annotations

import contextlib
import inspect
import io
import re
import shutil
from pathlib import Path

import pytest
from helpers import INCOME, MALL_CSV, MALL_ID, SPENDING, query

import segjob

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> str:
    match = re.search(r"^## Python API\n.*?```python\n(.*?)```", README.read_text(), re.S | re.M)
    assert match, "README.md has no Python API example"
    return match.group(1)


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    (tmp_path / "segjob" / "data").mkdir(parents=True)
    shutil.copyfile(MALL_CSV, tmp_path / "segjob" / "data" / "mall_customers.csv")
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(_readme_example(), "README.md", "exec"), {})
    url = f"sqlite:///{tmp_path / 'segjob-api.db'}"
    runs = query(url, "SELECT run_id, k, candidate FROM run ORDER BY run_id")
    assert [(r["k"], bool(r["candidate"])) for r in runs] == [(5, False), (3, True)]
    assert {r["run_id"] for r in query(url, "SELECT DISTINCT run_id FROM current_segment")} == {runs[0]["run_id"]}
    assert printed.getvalue().startswith(f"run {runs[0]['run_id']}: k=5 ")
    assert len(printed.getvalue().splitlines()) == 1 + 5


def test_every_exported_name_resolves_and_is_documented():
    for name in segjob.__all__:
        value = getattr(segjob, name)
        if callable(value):
            assert inspect.getdoc(value), name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        segjob.nothing  # noqa: B018


def test_the_api_on_postgresql_and_its_errors(migrated_pg_url):
    url = migrated_pg_url
    segjob.load_csv(MALL_CSV, "mall", database_url=url)
    outcome = segjob.run(database_url=url, job="m", source="mall", id=MALL_ID, features=[INCOME, SPENDING], k=4)
    assert outcome.reused is False
    again = segjob.run(
        database_url=url, job="m", source="mall", id=MALL_ID, features=[INCOME, SPENDING], k=4, run_key="n1"
    )
    assert segjob.run(
        database_url=url, job="m", source="mall", id=MALL_ID, features=[INCOME, SPENDING], k=4, run_key="n1"
    ) == (segjob.RunOutcome(again.run_id, "m", reused=True))
    scored = segjob.score("m", database_url=url, source="mall")
    assert [r["kind"] for r in segjob.runs("m", database_url=url)][:1] == ["score"]
    assert segjob.run_details(scored.run_id, database_url=url).summary.model_run_id == again.run_id
    assert [r.run_id for r in segjob.prune("m", 1, database_url=url).deleted] == [outcome.run_id]

    with pytest.raises(segjob.UsageError, match='column "incme" not found') as error:
        segjob.run(database_url=url, job="m", source="mall", id=MALL_ID, features=["incme"])
    assert error.value.exit_code == 2
    with pytest.raises(segjob.DataError) as error:
        segjob.run(database_url=url, job="m", source="mall", id=MALL_ID, features=[INCOME], k=500)
    assert error.value.exit_code == 3
