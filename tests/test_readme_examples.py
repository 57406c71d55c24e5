"""Every README.md example runs as written (issue 26).

The ```bash blocks that run segjob run in README order, each in `bash` with `set -euo pipefail`, in
one fresh folder holding what the README expects at the repository root (`segjob/data/`), on the
embedded SQLite default (`segjob.db` there), after the set-up `make demo`; each ```sql block runs
at its place on the database the blocks before it left. A block that needs what this machine and
CI do not have carries `<!-- not run in tests: REASON -->` on the line before it, and only the
blocks in NOT_RUN may.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from segjob.config import build_spec

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```[ \t]*$", re.M | re.S)
MARKER = re.compile(r"^ *<!-- not run in tests: (.+?) -->$")
SEGJOB_COMMAND = re.compile(r"(?:^|[\s;&|(])segjob [a-z]", re.M)

# The blocks that cannot run here, in README order: the reason given, and what in the block needs it.
NOT_RUN = [
    ("needs Spark (Java 17, installed packages), a PostgreSQL server and an s3a:// bucket", "--engine spark"),
    ("needs Docker", "docker compose"),
    ("needs a YARN cluster", "--spark-master yarn"),
    ("needs PostgreSQL (sql score prints PostgreSQL SQL, run by psql)", "segjob sql score"),
    ("needs Docker", "docker compose"),
]


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int  # of the opening fence in README.md, from 1
    not_run: str | None  # the marker's reason

    @property
    def runs_segjob(self) -> bool:
        return self.language == "bash" and bool(SEGJOB_COMMAND.search(self.text))


def readme_blocks() -> list[Block]:
    text = README.read_text()
    lines = text.splitlines()
    blocks = []
    for fence in FENCE.finditer(text):
        index = text.count("\n", 0, fence.start())
        marker = MARKER.match(lines[index - 1]) if index else None
        body = textwrap.dedent(fence.group(3))
        blocks.append(Block(fence.group(2), body, index + 1, marker.group(1) if marker else None))
    return blocks


def test_only_the_blocks_that_cannot_run_here_are_marked():
    blocks = readme_blocks()
    marked = [block for block in blocks if block.not_run]
    assert [block.not_run for block in marked] == [reason for reason, _ in NOT_RUN]
    for block, (_, needs) in zip(marked, NOT_RUN, strict=True):
        assert block.runs_segjob and needs in block.text, f"README.md:{block.line}"
    # A marker that is not right above a block's fence hides nothing: it is a mistake.
    assert len(re.findall(r"<!-- not run in tests", README.read_text())) == len(marked)
    assert [block.text.strip() for block in blocks[:2]] == ["make demo", "make test"]


def test_the_config_file_example_is_a_valid_job(tmp_path):
    """The TOML example names a PostgreSQL table (`public.customers`), so it is read, not run: every
    key is a setting segjob knows and every value passes its checks."""
    (example,) = [block.text for block in readme_blocks() if block.language == "toml"]
    (tmp_path / "job.toml").write_text(example)
    (tmp_path / "labels.toml").write_text('2 = "Big spenders"\n')
    spec = build_spec(tmp_path / "job.toml")
    assert (spec.source, spec.id, spec.job, spec.k_max) == ("public.customers", "CustomerID", "customers-nightly", 8)
    assert spec.labels == {"2": "Big spenders"}


def _make_demo_commands() -> list[str]:
    """The recipe of `make demo`, with the venv's bin folder left to PATH."""
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "Makefile has no demo target"
    return [line.strip().replace("$(VENV)/bin/", "") for line in recipe.group(1).splitlines()]


def _run_sql(folder: Path, sql: str) -> None:
    """Run an analyst's query as written: PostgreSQL's `segjob.` and `public.` schemas are the one
    SQLite file, attached under those names (SQLite has no schemas of its own)."""
    connection = sqlite3.connect(":memory:")
    try:
        for schema in ("segjob", "public"):
            connection.execute("ATTACH DATABASE ? AS " + schema, (f"file:{folder / 'segjob.db'}?mode=ro",))
        rows = connection.execute(sql).fetchall()
    finally:
        connection.close()
    assert rows, sql


@pytest.mark.slow
def test_every_readme_example_runs_as_written(tmp_path):
    shutil.copytree(ROOT / "segjob" / "data", tmp_path / "segjob" / "data")
    env = {name: value for name, value in os.environ.items() if not name.startswith(("SEGJOB_", "OPENLINEAGE"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"

    def bash(script: str, where: str) -> str:
        done = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{where} exited {done.returncode}:\n{script}\n{done.stderr[-3000:]}"
        return done.stdout

    blocks = readme_blocks()
    assert _make_demo_commands() == ["segjob demo"]
    bash("\n".join(_make_demo_commands()), "make demo")

    ran = []
    outputs = {}
    for block in blocks:
        if block.not_run:
            continue
        if block.runs_segjob:
            outputs[block.line] = bash(block.text, f"README.md:{block.line}")
            ran.append(block)
        elif block.language == "sql":
            _run_sql(tmp_path, block.text)
            ran.append(block)
    assert [block for block in blocks if block.runs_segjob and not block.not_run] == [
        block for block in ran if block.language == "bash"
    ]
    assert len(ran) >= 8

    database = sqlite3.connect(tmp_path / "segjob.db")
    try:
        runs = {
            run_id: (job, status, bool(candidate))
            for run_id, job, status, candidate in database.execute("SELECT run_id, job, status, candidate FROM run")
        }
        jobs = {job for job, _, _ in runs.values()}
    finally:
        database.close()
    assert {status for _, status, _ in runs.values()} == {"succeeded"}
    # Every job an example names (run or not) is one the examples made, and every report was written.
    for block in blocks:
        if block.runs_segjob:
            assert set(re.findall(r"--job (\S+)", block.text)) <= jobs, f"README.md:{block.line}"
            for folder in re.findall(r"segjob report \S+ --out (\S+)", block.text):
                assert (tmp_path / folder / "report.html").is_file(), f"README.md:{block.line}"
    # The run ids the README names are the runs it means: the quick start's run and the candidate.
    assert runs[1][0] == "mall_customers_demo"
    assert runs[2] == ("customers", "succeeded", False)
    assert runs[8] == ("customers", "succeeded", True)
    candidate_block = next(block for block in ran if "--candidate" in block.text)
    assert "candidate run, not current: 'segjob promote 8' makes it current" in outputs[candidate_block.line]
    assert "run 8 is current now (was run 2)" in outputs[candidate_block.line]
    assert "run 2 is current again (was run 8)" in outputs[candidate_block.line]
