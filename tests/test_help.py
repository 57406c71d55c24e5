"""`segjob run --help` and `segjob score --help` (issue 26): options in panels, choices shown,
plain metavars instead of Python types."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from segjob.cli.app import app


def _help(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(
    ("command", "panels"),
    [
        (
            ("run",),
            [
                "Source",
                "Purchase history (instead of --source)",
                "Preparation",
                "Choosing k",
                "Output",
                "Database",
                "Engine: Apache Spark",
            ],
        ),
        (("score",), ["Model", "Source", "Purchase history (instead of --source)", "Output", "Database"]),
    ],
)
def test_options_sit_in_panels_with_plain_metavars(command, panels):
    text = _help(*command)
    found = re.findall(r"╭─ (.+?) ─", text)
    assert found == ["Options", *panels]
    assert not re.search(r"<(str|int|float|path|list\[str\])>", text)


COMMANDS = [(), ("run",), ("score",), ("report",), ("demo",), ("promote",), ("prune",), ("load-csv",)]
COMMANDS += [("runs",), ("runs", "list"), ("runs", "show"), ("db",), ("db", "upgrade"), ("db", "grant")]
COMMANDS += [("sql",), ("sql", "score")]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_flags_show_no_type(command):
    """A flag takes no value: `--quiet <bool>` would read as `--quiet true`."""
    text = _help(*command)
    assert "--help" in text
    assert "<bool>" not in text


def test_run_help_shows_choices_and_explains_jargon():
    text = " ".join(_help("run").replace("│", " ").split())  # the table wraps: compare words
    for choices in ("[drop|median|mean]", "[standard|robust|minmax|none]", "[auto|none|log1p:COLS]", "[local|spark]"):
        assert choices in text
    assert "recompute the segment centres from every row" in text  # --full-fit
    assert "so a handful of big customers cannot take a segment of their own" in text  # --transform
    assert "the k whose segments stand apart most" in text  # --select
